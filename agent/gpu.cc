#include "agent/gpu.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/logging.h"

extern char** environ;

namespace musafarm::agent {
namespace {

constexpr absl::Duration kPollStep = absl::Milliseconds(20);

int PollMillis(absl::Duration d) {
  return static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(d), 0, 1000));
}

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

std::string KeyOf(const std::string& label) { return label.substr(0, label.find('=')); }

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
  std::vector<std::string> args = argv;
  std::vector<char*> c_argv;
  for (std::string& a : args) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    result.error = absl::StrCat("pipe: ", std::strerror(errno));
    return result;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = 0;
  // glibc's posix_spawnp reports a failed exec (ENOENT, EACCES) as its result.
  const int rc = ::posix_spawnp(&pid, c_argv[0], &actions, &attr, c_argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    result.outcome = rc == ENOENT ? ProbeResult::Outcome::kNotFound : ProbeResult::Outcome::kFailed;
    result.error = absl::StrCat("cannot run '", argv[0], "': ", std::strerror(rc));
    return result;
  }

  const absl::Time deadline = absl::Now() + timeout;
  bool eof = false, exited = false;
  int status = 0;
  std::string buf(64 * 1024, '\0');
  while (true) {
    if (!eof) {
      struct pollfd p = {fds[0], POLLIN, 0};
      const int ready = ::poll(&p, 1, PollMillis(std::min(kPollStep, deadline - absl::Now())));
      if (ready > 0) {
        const ssize_t r = ::read(fds[0], buf.data(), buf.size());
        if (r > 0) {
          const size_t room = kMaxProbeOutput - std::min(kMaxProbeOutput, result.output.size());
          result.output.append(buf.data(), std::min(room, static_cast<size_t>(r)));
        } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
          eof = true;
        }
      }
    } else if (!exited) {
      absl::SleepFor(std::min(kPollStep, std::max(absl::ZeroDuration(), deadline - absl::Now())));
    }
    if (!exited) {
      siginfo_t info = {};
      // WNOWAIT keeps the zombie, so the group id is still ours for the kill.
      if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
          info.si_pid == pid) {
        exited = true;
        ::kill(-pid, SIGKILL);  // anything it left in its group, which may hold the pipe
        ::waitpid(pid, &status, 0);
      }
    }
    if (exited && eof) break;
    if (absl::Now() >= deadline) {
      if (!exited) {
        ::kill(-pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        ::close(fds[0]);
        result.outcome = ProbeResult::Outcome::kTimedOut;
        result.error =
            absl::StrCat("'", argv[0], "' did not finish within ", absl::FormatDuration(timeout));
        return result;
      }
      break;  // exited, but a process outside its group still holds the pipe: keep what we have
    }
  }
  ::close(fds[0]);
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
  for (const std::string& l : labels) keys.insert(KeyOf(l));
  for (const std::string& l : extra) {
    if (keys.count(KeyOf(l)) == 0) labels.push_back(l);
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
