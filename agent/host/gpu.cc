#include "agent/host/gpu.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/labels.h"
#include "common/logging.h"
#include "common/subprocess.h"

namespace musafarm::agent {
namespace {

// After the probe exits, how long to keep reading output a leftover process holds.
constexpr absl::Duration kDrainAfterExit = absl::Milliseconds(200);

// Reads digits at the front of `s`; false if there are none.
bool ConsumeIndex(absl::string_view& s, int& index) {
  size_t n = 0;
  while (n < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[n]))) ++n;
  if (n == 0 || n > 6) return false;
  const bool ok = absl::SimpleAtoi(s.substr(0, n), &index);
  s.remove_prefix(n);
  return ok;
}

const char* Name(ProbeResult::Outcome o) {
  switch (o) {
    case ProbeResult::Outcome::kExited:
      return "exited";
    case ProbeResult::Outcome::kNotFound:
      return "not found";
    case ProbeResult::Outcome::kTimedOut:
      return "timed out";
    case ProbeResult::Outcome::kFailed:
      return "failed";
  }
  return "?";
}

// Keeps [A-Za-z0-9_.-/], turns blanks into '_', drops the rest.
std::string SanitizeLabelValue(absl::string_view v) {
  std::string out;
  for (char c : absl::StripAsciiWhitespace(v)) {
    const auto u = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(u) || c == '_' || c == '-' || c == '.' || c == '/') {
      out.push_back(c);
    } else if (absl::ascii_isspace(u)) {
      out.push_back('_');
    }
  }
  return out;
}

bool ValidVendor(const std::string& v) {
  if (v.empty()) return false;
  for (char c : v) {
    if (!absl::ascii_islower(static_cast<unsigned char>(c)) &&
        !absl::ascii_isdigit(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

}  // namespace

ProbeResult SpawnGpuProbe::Run(const std::vector<std::string>& argv, absl::Duration timeout) const {
  ProbeResult result;
  if (argv.empty() || argv[0].empty()) {
    result.error = "empty argv";
    return result;
  }
  // Its stderr shares the pipe; the parsers look only at the lines they know.
  const Child child = Spawn(argv, InheritedEnv(), "");
  if (!child.error.empty()) {
    result.outcome = child.spawn_errno == ENOENT ? ProbeResult::Outcome::kNotFound
                                                 : ProbeResult::Outcome::kFailed;
    result.error = child.error;
    return result;
  }
  const absl::Time deadline = absl::Now() + timeout;
  bool timed_out = false;
  const int status = Supervise(
      child,
      [&](std::string data) {
        const size_t room = kMaxProbeOutput - std::min(kMaxProbeOutput, result.output.size());
        result.output.append(data, 0, std::min(room, data.size()));
      },
      [&] {
        if (!timed_out && absl::Now() >= deadline) {
          timed_out = true;
          ::kill(-child.pid, SIGKILL);
        }
      },
      kDrainAfterExit, nullptr);
  if (timed_out) {
    result.outcome = ProbeResult::Outcome::kTimedOut;
    result.error =
        absl::StrCat("'", argv[0], "' did not finish within ", absl::FormatDuration(timeout));
    return result;
  }
  result.outcome = ProbeResult::Outcome::kExited;
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.exit_code = 128 + WTERMSIG(status);
  return result;
}

std::vector<std::string> ParseGpuList(const std::string& output) {
  std::vector<std::string> models;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    absl::string_view s = absl::StripAsciiWhitespace(line);
    if (!absl::ConsumePrefix(&s, "GPU")) continue;
    s = absl::StripLeadingAsciiWhitespace(s);
    int index = 0;
    if (!ConsumeIndex(s, index)) continue;
    s = absl::StripLeadingAsciiWhitespace(s);
    if (!absl::ConsumePrefix(&s, ":")) continue;
    absl::string_view model = s;
    // Cut "(UUID: ...)" and whatever follows it; keep other parentheses.
    const std::string upper = absl::AsciiStrToUpper(s);
    if (size_t at = upper.find("(UUID"); at != std::string::npos) model = s.substr(0, at);
    models.emplace_back(absl::StripAsciiWhitespace(model));
  }
  return models;
}

std::vector<std::string> ParseMthreadsGmiTable(const std::string& output) {
  std::vector<std::string> models;
  std::set<int> seen;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    absl::string_view s = absl::StripAsciiWhitespace(line);
    if (absl::StartsWithIgnoreCase(s, "Processes")) break;
    absl::ConsumePrefix(&s, "|");
    s = absl::StripLeadingAsciiWhitespace(s);
    int index = 0;
    if (!ConsumeIndex(s, index)) continue;
    const size_t before = s.size();
    s = absl::StripLeadingAsciiWhitespace(s);
    if (s.size() == before || s.empty() || !absl::ascii_isalpha(static_cast<unsigned char>(s[0]))) {
      continue;
    }
    size_t end = s.find('|');
    if (size_t gap = s.find("  "); gap < end) end = gap;
    if (size_t tab = s.find('\t'); tab < end) end = tab;
    if (!seen.insert(index).second) continue;
    models.emplace_back(absl::StripAsciiWhitespace(s.substr(0, end)));
  }
  return models;
}

GpuInventory DetectGpus(const GpuProbe& probe) {
  auto log = GetLogger("gpu");
  auto run = [&](std::vector<std::string> argv) {
    ProbeResult r = probe.Run(argv, kGpuProbeTimeout);
    log->debug("'{}': {} (exit {}) {}", absl::StrJoin(argv, " "), Name(r.outcome), r.exit_code,
               r.error);
    if (r.outcome == ProbeResult::Outcome::kTimedOut ||
        r.outcome == ProbeResult::Outcome::kFailed) {
      log->warn("GPU detection: {}", r.error);
    }
    return r;
  };
  auto inventory = [](std::string vendor, std::vector<std::string> models) {
    GpuInventory inv;
    inv.vendor = std::move(vendor);
    inv.count = static_cast<int>(models.size());
    inv.models = std::move(models);
    return inv;
  };
  const ProbeResult list = run({"mthreads-gmi", "-L"});
  if (list.outcome == ProbeResult::Outcome::kExited) {
    std::vector<std::string> models;
    if (list.exit_code == 0) models = ParseGpuList(list.output);
    if (models.empty()) {
      // An older mthreads-gmi without -L: read its default device table.
      const ProbeResult table = run({"mthreads-gmi"});
      if (table.outcome == ProbeResult::Outcome::kExited && table.exit_code == 0) {
        models = ParseMthreadsGmiTable(table.output);
      }
    }
    if (!models.empty()) return inventory("mthreads", std::move(models));
  }
  const ProbeResult smi = run({"nvidia-smi", "-L"});
  if (smi.outcome == ProbeResult::Outcome::kExited && smi.exit_code == 0) {
    std::vector<std::string> models = ParseGpuList(smi.output);
    if (!models.empty()) return inventory("nvidia", std::move(models));
  }
  return {};
}

std::vector<std::string> GpuLabels(const GpuInventory& inv) {
  if (inv.vendor.empty() || inv.count <= 0) return {};
  std::vector<std::string> labels = {absl::StrCat("gpu=", SanitizeLabelValue(inv.vendor)),
                                     absl::StrCat("gpus=", inv.count)};
  std::set<std::string> seen;
  for (const std::string& m : inv.models) {
    std::string v = SanitizeLabelValue(m);
    if (v.empty() || !seen.insert(v).second) continue;
    labels.push_back(absl::StrCat("gpu.model=", v));
  }
  return labels;
}

std::vector<std::string> MergeLabels(std::vector<std::string> labels,
                                     const std::vector<std::string>& extra) {
  std::set<std::string> keys;
  for (const std::string& l : labels) keys.insert(LabelKey(l));
  for (const std::string& l : extra) {
    if (keys.count(LabelKey(l)) == 0) labels.push_back(l);
  }
  return labels;
}

bool ShouldDetectGpus(const GpuFlags& flags) {
  if (!flags.detect) return false;
  if (flags.gpus.has_value() && (*flags.gpus == 0 || !flags.vendor.empty())) return false;
  return true;
}

absl::StatusOr<GpuInventory> ResolveGpus(const std::optional<GpuInventory>& detected,
                                         const GpuFlags& flags) {
  GpuInventory found;
  if (detected.has_value() && !detected->vendor.empty() && detected->count > 0) found = *detected;
  if (flags.gpus.has_value() && *flags.gpus < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--gpus ", *flags.gpus, ": must be >= 0"));
  }
  if (!flags.vendor.empty() && !ValidVendor(flags.vendor)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--gpu-vendor '", flags.vendor, "': use lower-case letters, digits and _ - . only"));
  }
  if (flags.gpus.has_value() && *flags.gpus == 0) return GpuInventory{};
  if (flags.vendor.empty() && !flags.gpus.has_value()) return found;

  GpuInventory out;
  out.vendor = flags.vendor.empty() ? found.vendor : flags.vendor;
  if (out.vendor.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--gpus ", *flags.gpus, ": no GPU detected, so say whose with --gpu-vendor"));
  }
  const bool same = out.vendor == found.vendor;
  if (flags.gpus.has_value()) {
    out.count = *flags.gpus;
  } else if (same) {
    out.count = found.count;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("--gpu-vendor ", flags.vendor,
                                                   ": no such GPU detected (", DescribeGpus(found),
                                                   "); say how many with --gpus"));
  }
  if (same) out.models = found.models;
  return out;
}

std::string DescribeGpus(const GpuInventory& inv) {
  if (inv.vendor.empty() || inv.count <= 0) return "none";
  std::vector<std::string> distinct;
  for (const std::string& m : inv.models) {
    if (std::find(distinct.begin(), distinct.end(), m) == distinct.end()) distinct.push_back(m);
  }
  std::string s = absl::StrCat(inv.count, " x ", inv.vendor);
  if (!distinct.empty()) absl::StrAppend(&s, " (", absl::StrJoin(distinct, ", "), ")");
  return s;
}

}  // namespace musafarm::agent
