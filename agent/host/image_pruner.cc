#include "agent/host/image_pruner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <tuple>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/atomic_file.h"
#include "common/logging.h"
#include "common/subprocess.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace musafarm::agent {
namespace {

constexpr size_t kMaxHelperOutput = 64 * 1024;
constexpr size_t kMaxInspectOutput = 64 * 1024 * 1024;
constexpr size_t kInspectBatch = 50;
constexpr size_t kMaxTouched = 10000;
constexpr absl::Duration kDrainAfterExit = absl::Seconds(2);

struct CliResult {
  bool ok = false;
  bool ran = false;    // started and exited by itself (not killed after helper_timeout)
  std::string output;  // stdout and stderr (one pipe), trimmed
  std::string what;    // "exit 1", "no answer within 1m", "cannot start ..."
  std::string Why() const { return output.empty() ? what : absl::StrCat(what, ": ", output); }
};

CliResult RunCli(const PrunerOptions& o, const EnvMap& env, std::vector<std::string> args,
                 size_t max_output = kMaxHelperOutput) {
  args.insert(args.begin(), o.cli);
  CliResult r;
  const Child child = Spawn(args, env, "");
  if (!child.error.empty()) {
    r.what = child.error;
    return r;
  }
  const absl::Time deadline = absl::Now() + o.helper_timeout;
  bool killed = false;
  const int status = Supervise(
      child,
      [&](std::string data) {
        if (r.output.size() < max_output) r.output += data.substr(0, max_output - r.output.size());
      },
      [&] {
        if (!killed && absl::Now() >= deadline) {
          ::kill(-child.pid, SIGKILL);
          killed = true;
        }
      },
      kDrainAfterExit, nullptr);
  r.output = std::string(absl::StripAsciiWhitespace(r.output));
  r.ran = !killed;
  r.ok = !killed && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  r.what = killed ? absl::StrCat("no answer within ", absl::FormatDuration(o.helper_timeout))
           : WIFEXITED(status) ? absl::StrCat("exit ", WEXITSTATUS(status))
                               : absl::StrCat("signal ", WTERMSIG(status));
  return r;
}

bool IsHex(absl::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789abcdef") == absl::string_view::npos;
}

// The hex of an id ref ("sha256:<hex>" or bare hex of at least 12 digits); "" otherwise.
absl::string_view IdHex(absl::string_view ref) {
  absl::ConsumePrefix(&ref, "sha256:");
  return IsHex(ref) && ref.size() >= 12 && ref.size() <= 64 ? ref : absl::string_view();
}

// The form docker shows in RepoTags / RepoDigests, or the id.
std::string NormalizeRef(absl::string_view ref) {
  ref = absl::StripAsciiWhitespace(ref);
  if (absl::StartsWith(ref, "sha256:")) return std::string(ref);
  if (IsHex(ref) && ref.size() == 64) return absl::StrCat("sha256:", ref);
  if (IsHex(ref) && ref.size() >= 12) return std::string(ref);  // an id prefix, or a repo name
  for (absl::string_view prefix :
       {"docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"}) {
    if (absl::ConsumePrefix(&ref, prefix)) break;
  }
  if (absl::StrContains(ref, '@')) return std::string(ref);
  const size_t slash = ref.rfind('/');
  const size_t colon = ref.rfind(':');
  if (colon == absl::string_view::npos || (slash != absl::string_view::npos && colon < slash)) {
    return absl::StrCat(ref, ":latest");
  }
  return std::string(ref);
}

struct ImageInfo {
  std::string id;  // "sha256:<hex>"
  std::vector<std::string> tags;
  std::vector<std::string> digests;
  absl::Time created = absl::InfinitePast();
  int64_t size = 0;
  bool has_farm = false;  // labelled musafarm.farm (with any value)
  std::string farm;
  std::string agent;  // musafarm.agent; "" when absent
};

// `norm` is a NormalizeRef result.
bool Matches(const std::string& norm, const ImageInfo& img) {
  const absl::string_view hex = IdHex(norm);
  if (!hex.empty() && absl::StartsWith(absl::StripPrefix(img.id, "sha256:"), hex)) return true;
  const std::vector<std::string>& names = absl::StrContains(norm, '@') ? img.digests : img.tags;
  // A bare hex ref may also be a repo name with the implicit tag.
  const std::string as_tag = IsHex(norm) ? absl::StrCat(norm, ":latest") : norm;
  for (const std::string& n : names) {
    if (NormalizeRef(n) == as_tag) return true;
  }
  return false;
}

std::vector<std::string> Strings(const google::protobuf::Value& v) {
  std::vector<std::string> out;
  if (v.kind_case() != google::protobuf::Value::kListValue) return out;
  for (const google::protobuf::Value& e : v.list_value().values()) {
    if (e.kind_case() == google::protobuf::Value::kStringValue) out.push_back(e.string_value());
  }
  return out;
}

const google::protobuf::Value* Field(const google::protobuf::Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? nullptr : &it->second;
}

// One line of `image inspect --format={{json .}}`; nullopt for anything else
// (stderr shares the pipe).
std::optional<ImageInfo> ParseInspectLine(absl::string_view line) {
  line = absl::StripAsciiWhitespace(line);
  if (!absl::StartsWith(line, "{")) return std::nullopt;
  google::protobuf::Struct s;
  if (!google::protobuf::util::JsonStringToMessage(std::string(line), &s).ok()) {
    return std::nullopt;
  }
  const google::protobuf::Value* id = Field(s, "Id");
  if (id == nullptr || id->kind_case() != google::protobuf::Value::kStringValue ||
      !absl::StartsWith(id->string_value(), "sha256:") ||
      !IsHex(absl::StripPrefix(id->string_value(), "sha256:"))) {
    return std::nullopt;
  }
  ImageInfo img;
  img.id = id->string_value();
  if (const auto* v = Field(s, "RepoTags")) img.tags = Strings(*v);
  if (const auto* v = Field(s, "RepoDigests")) img.digests = Strings(*v);
  if (const auto* v = Field(s, "Created");
      v != nullptr && v->kind_case() == google::protobuf::Value::kStringValue) {
    absl::Time t;
    std::string err;
    if (absl::ParseTime(absl::RFC3339_full, v->string_value(), &t, &err)) img.created = t;
  }
  if (const auto* v = Field(s, "Size");
      v != nullptr && v->kind_case() == google::protobuf::Value::kNumberValue) {
    img.size = static_cast<int64_t>(v->number_value());
  }
  const google::protobuf::Value* config = Field(s, "Config");
  if (config != nullptr && config->kind_case() == google::protobuf::Value::kStructValue) {
    const google::protobuf::Value* labels = Field(config->struct_value(), "Labels");
    if (labels != nullptr && labels->kind_case() == google::protobuf::Value::kStructValue) {
      const google::protobuf::Struct& l = labels->struct_value();
      if (const auto* f = Field(l, "musafarm.farm");
          f != nullptr && f->kind_case() == google::protobuf::Value::kStringValue) {
        img.has_farm = true;
        img.farm = f->string_value();
      }
      if (const auto* a = Field(l, "musafarm.agent");
          a != nullptr && a->kind_case() == google::protobuf::Value::kStringValue) {
        img.agent = a->string_value();
      }
    }
  }
  return img;
}

// Ids in `image ls -q --no-trunc` output, first occurrence only (one line per tag).
std::vector<std::string> ParseIds(const std::string& output) {
  std::vector<std::string> ids;
  std::set<std::string> seen;
  for (absl::string_view tok : absl::StrSplit(output, absl::ByAnyChar(" \t\r\n"))) {
    absl::string_view hex = tok;
    absl::ConsumePrefix(&hex, "sha256:");
    if (!IsHex(hex) || hex.size() != 64) continue;  // only ids: warnings share the pipe
    std::string id = absl::StrCat("sha256:", hex);
    if (seen.insert(id).second) ids.push_back(std::move(id));
  }
  return ids;
}

// "Total reclaimed space: 1.5GB" (docker's decimal units) -> bytes; 0 if absent.
int64_t ReclaimedBytes(const std::string& output) {
  const size_t at = output.rfind("reclaimed space:");
  if (at == std::string::npos) return 0;
  absl::string_view v = absl::StripAsciiWhitespace(
      absl::string_view(output).substr(at + std::strlen("reclaimed space:")));
  v = v.substr(0, v.find_first_of("\r\n"));
  const size_t unit = v.find_first_not_of("0123456789.");
  double n = 0;
  if (!absl::SimpleAtod(v.substr(0, unit), &n)) return 0;
  const std::string u =
      absl::AsciiStrToLower(unit == absl::string_view::npos ? "" : v.substr(unit));
  const std::map<std::string, double> kScale = {
      {"", 1},      {"b", 1},     {"kb", 1e3},   {"mb", 1e6},      {"gb", 1e9},
      {"tb", 1e12}, {"pb", 1e15}, {"kib", 1024}, {"mib", 1 << 20}, {"gib", 1 << 30}};
  auto it = kScale.find(std::string(absl::StripAsciiWhitespace(u)));
  return it == kScale.end() ? 0 : static_cast<int64_t>(n * it->second);
}

std::string HumanBytes(int64_t b) {
  if (b >= 1'000'000'000) return absl::StrFormat("%.1f GB", b / 1e9);
  if (b >= 1'000'000) return absl::StrFormat("%.1f MB", b / 1e6);
  if (b >= 1'000) return absl::StrFormat("%.1f kB", b / 1e3);
  return absl::StrCat(b, " B");
}

std::string Shown(const std::string& id, const std::vector<std::string>& tags) {
  const std::string short_id(absl::StripPrefix(id, "sha256:").substr(0, 12));
  return tags.empty() ? short_id : absl::StrCat(absl::StrJoin(tags, ","), " (", short_id, ")");
}

// The daemon is gone or the CLI cannot be run: no point in trying the next image.
bool CliBroken(const CliResult& r) {
  return !r.ran ||
         absl::StrContains(absl::AsciiStrToLower(r.output), "cannot connect to the docker daemon");
}

}  // namespace

std::string PruneReport::Summary() const {
  std::vector<std::string> removed_s, skipped_s;
  for (const PrunedImage& p : removed) {
    removed_s.push_back(absl::StrCat(Shown(p.id, p.tags), " ", HumanBytes(p.size_bytes)));
  }
  for (const SkippedImage& s : skipped) {
    skipped_s.push_back(absl::StrCat(Shown(s.id, s.tags), ": ", s.reason));
  }
  std::string out =
      absl::StrCat("removed ", removed.size(), " images (at most ", HumanBytes(image_bytes), ")");
  if (!removed_s.empty()) absl::StrAppend(&out, ": ", absl::StrJoin(removed_s, ", "));
  if (!skipped_s.empty()) {
    absl::StrAppend(&out, "; skipped ", skipped.size(), ": ", absl::StrJoin(skipped_s, "; "));
  }
  if (build_cache_pruned) absl::StrAppend(&out, "; build cache ", HumanBytes(build_cache_bytes));
  if (!interrupted.empty()) absl::StrAppend(&out, "; stopped: ", interrupted);
  absl::StrAppend(&out, enough ? "; enough" : "; not enough");
  return out;
}

namespace {
EnvMap CliEnv(const PrunerOptions& o) {
  EnvMap env = InheritedEnv();
  if (!o.docker_host.empty()) env["DOCKER_HOST"] = o.docker_host;
  return env;
}
}  // namespace

ImagePruner::ImagePruner(PrunerOptions options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : RealClock::Get()),
      env_(CliEnv(options_)) {
  if (options_.lru_file.empty()) return;
  std::error_code ec;
  if (!std::filesystem::exists(options_.lru_file, ec)) return;
  std::ifstream in(options_.lru_file);
  if (!in) {
    GetLogger("image_pruner")
        ->warn("cannot read {}: {}; starting without use times", options_.lru_file,
               std::strerror(errno));
    return;
  }
  absl::MutexLock lock(&mu_);
  std::string line;
  while (std::getline(in, line)) {
    const std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(line, absl::MaxSplits('\t', 1));
    int64_t micros = 0;
    if (kv.second.empty() || !absl::SimpleAtoi(kv.first, &micros)) continue;
    const std::string ref = NormalizeRef(kv.second);
    const absl::Time t = absl::FromUnixMicros(micros);
    auto [it, inserted] = touched_.emplace(ref, t);
    if (!inserted) it->second = std::max(it->second, t);
  }
}

void ImagePruner::Touch(const std::string& image) {
  const std::string ref = NormalizeRef(image);
  if (ref.empty() || ref == ":latest") return;
  absl::MutexLock lock(&mu_);
  touched_[ref] = clock_->Now();
  if (touched_.size() > kMaxTouched) {
    touched_.erase(
        std::min_element(touched_.begin(), touched_.end(),
                         [](const auto& a, const auto& b) { return a.second < b.second; }));
  }
  SaveLocked();
}

std::map<std::string, absl::Time> ImagePruner::TouchTimes() const {
  absl::MutexLock lock(&mu_);
  return touched_;
}

void ImagePruner::SaveLocked() {
  if (options_.lru_file.empty()) return;
  std::string data;
  for (const auto& [ref, t] : touched_)
    absl::StrAppend(&data, absl::ToUnixMicros(t), "\t", ref, "\n");
  // After a crash the file is the old or the new one, whole.
  const absl::Status s = WriteFileAtomically(options_.lru_file, data);
  const std::string error(s.message());
  if (!error.empty() && !save_failed_) {
    GetLogger("image_pruner")->warn("{}; use times will not survive a restart", error);
  }
  save_failed_ = !error.empty();
}

absl::StatusOr<PruneReport> ImagePruner::Prune(const std::set<std::string>& keep,
                                               const std::function<bool()>& enough) {
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &ImagePruner::NotPruning));
    pruning_ = true;
  }
  absl::Cleanup done = [this] {
    absl::MutexLock lock(&mu_);
    pruning_ = false;
  };
  if (options_.farm.empty()) return absl::InvalidArgumentError("image pruner: empty farm label");
  PruneReport report;
  if (enough()) {
    report.enough = true;
    return report;
  }
  const absl::Time listed_at = clock_->Now();

  // 1. Our images.
  const CliResult ls =
      RunCli(options_, env_,
             {"image", "ls", "-q", "--no-trunc", "--filter=label=musafarm.farm=" + options_.farm});
  if (!ls.ok) return absl::UnavailableError(absl::StrCat("docker image ls: ", ls.Why()));
  const std::vector<std::string> ids = ParseIds(ls.output);
  std::vector<ImageInfo> images;
  for (size_t i = 0; i < ids.size(); i += kInspectBatch) {
    const std::vector<std::string> batch(ids.begin() + i,
                                         ids.begin() + std::min(ids.size(), i + kInspectBatch));
    std::vector<std::string> args = {"image", "inspect", "--format={{json .}}"};
    args.insert(args.end(), batch.begin(), batch.end());
    const CliResult inspect = RunCli(options_, env_, args, kMaxInspectOutput);
    if (!inspect.ran) {
      return absl::UnavailableError(absl::StrCat("docker image inspect: ", inspect.Why()));
    }
    const std::set<std::string> wanted(batch.begin(), batch.end());
    size_t parsed = 0;
    for (absl::string_view line : absl::StrSplit(inspect.output, '\n')) {
      std::optional<ImageInfo> img = ParseInspectLine(line);
      if (!img || wanted.count(img->id) == 0) continue;
      ++parsed;
      images.push_back(*std::move(img));
    }
    // An image removed since `ls` is "No such image"; anything else is a failure.
    if (!inspect.ok && parsed == 0 &&
        !absl::StrContains(absl::AsciiStrToLower(inspect.output), "no such image")) {
      return absl::UnavailableError(absl::StrCat("docker image inspect: ", inspect.Why()));
    }
  }

  // 2. Candidates, least recently used first.
  std::vector<std::string> keep_refs;
  for (const std::string& k : keep) keep_refs.push_back(NormalizeRef(k));
  const std::map<std::string, absl::Time> touched = TouchTimes();
  struct Candidate {
    const ImageInfo* img;
    absl::Time last_used;
  };
  std::vector<Candidate> candidates;
  for (const ImageInfo& img : images) {
    // Checked here, not only by the daemon's filter.
    if (!img.has_farm || img.farm != options_.farm) continue;
    if (!img.agent.empty() && img.agent != options_.agent) continue;  // another agent's
    if (std::any_of(keep_refs.begin(), keep_refs.end(),
                    [&](const std::string& k) { return Matches(k, img); })) {
      continue;
    }
    absl::Time last = img.created;
    for (const auto& [ref, t] : touched) {
      if (t > last && Matches(ref, img)) last = t;
    }
    candidates.push_back({&img, last});
  }
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    return std::tie(a.last_used, a.img->created, a.img->id) <
           std::tie(b.last_used, b.img->created, b.img->id);
  });

  // 3. Remove until enough.
  std::set<std::string> gone;  // ids removed (by us or meanwhile by someone else)
  for (const Candidate& c : candidates) {
    if (enough()) {
      report.enough = true;
      break;
    }
    const ImageInfo& img = *c.img;
    auto skip = [&](std::string reason) {
      report.skipped.push_back({img.id, img.tags, std::move(reason)});
    };
    auto removed = [&] {
      report.removed.push_back({img.id, img.tags, img.size, c.last_used});
      report.image_bytes += img.size;
      gone.insert(img.id);
    };
    // Never -f: the daemon then refuses an image a container uses.
    const CliResult rm = RunCli(options_, env_, {"image", "rm", img.id});
    const std::string answer = absl::AsciiStrToLower(rm.output);
    if (rm.ok) {
      removed();
    } else if (CliBroken(rm)) {
      report.interrupted = absl::StrCat("docker image rm: ", rm.Why());
      break;
    } else if (absl::StrContains(answer, "no such image")) {
      gone.insert(img.id);  // removed meanwhile: it freed nothing for us to report
    } else if (absl::StrContains(answer, "multiple repositories") && !img.tags.empty()) {
      // By id, the daemon wants -f, which would also remove an image of a stopped
      // container; untagging each tag (the last removes it) does not, so that is
      // done when no container, running or stopped, uses it or a child of it.
      const CliResult ps =
          RunCli(options_, env_, {"ps", "-a", "-q", "--no-trunc", "--filter=ancestor=" + img.id});
      if (!ps.ok) {
        skip(absl::StrCat("cannot list its containers: ", ps.Why()));
        if (CliBroken(ps)) {
          report.interrupted = absl::StrCat("docker ps: ", ps.Why());
          break;
        }
        continue;
      }
      const std::vector<std::string> users =
          absl::StrSplit(ps.output, absl::ByAnyChar(" \t\r\n"), absl::SkipEmpty());
      if (!users.empty()) {
        skip(absl::StrCat("tagged in several repositories and used by container ",
                          absl::StrJoin(users, ",")));
        continue;
      }
      std::vector<std::string> untag = {"image", "rm"};
      untag.insert(untag.end(), img.tags.begin(), img.tags.end());
      const CliResult u = RunCli(options_, env_, untag);
      const CliResult check =
          RunCli(options_, env_, {"image", "inspect", "--format={{.Id}}", img.id});
      if (!check.ok && absl::StrContains(absl::AsciiStrToLower(check.output), "no such image")) {
        removed();
      } else {
        skip(u.ok ? "still present after removing its tags" : u.Why());
      }
    } else {
      skip(rm.Why());  // used by a container, has child images, ...
    }
  }
  if (!report.enough) report.enough = enough();

  // 4. Build cache, only where all of it is ours (see PrunerOptions).
  if (!report.enough && report.interrupted.empty() && options_.prune_build_cache) {
    for (const bool all : {false, true}) {
      std::vector<std::string> args = {"builder", "prune", "-f"};
      if (all) args.push_back("-a");
      const CliResult b = RunCli(options_, env_, args);
      report.build_cache_pruned = true;
      if (!b.ok) {
        report.interrupted = absl::StrCat("docker builder prune: ", b.Why());
        break;
      }
      report.build_cache_bytes += ReclaimedBytes(b.output);
      if ((report.enough = enough())) break;
    }
  }

  // 5. Forget use times of images that are gone (not those touched meanwhile).
  {
    absl::MutexLock lock(&mu_);
    for (auto it = touched_.begin(); it != touched_.end();) {
      const bool live = it->second >= listed_at ||
                        std::any_of(images.begin(), images.end(), [&](const ImageInfo& img) {
                          return gone.count(img.id) == 0 && Matches(it->first, img);
                        });
      it = live ? std::next(it) : touched_.erase(it);
    }
    SaveLocked();
  }
  return report;
}

}  // namespace musafarm::agent
