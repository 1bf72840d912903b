#include "agent/host/gpu_health.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace musafarm::agent {

std::vector<std::string> DefaultGpuProbeCommand(const std::string& vendor) {
  if (vendor == "mthreads") return {"mthreads-gmi", "-q", "-i", "{gpu}"};
  if (vendor == "nvidia") return {"nvidia-smi", "-q", "-i", "{gpu}"};
  return {};
}

GpuHealth::GpuHealth(const GpuProbe* probe, std::vector<std::string> argv, int gpus,
                     absl::Duration timeout, std::function<void()> on_change)
    : probe_(probe),
      argv_(std::move(argv)),
      gpus_(gpus),
      timeout_(timeout),
      on_change_(std::move(on_change)) {}

GpuHealth::~GpuHealth() { Stop(); }

std::vector<int32_t> GpuHealth::AllGpus() const {
  std::vector<int32_t> all;
  for (int32_t g = 0; g < gpus_; ++g) all.push_back(g);
  return all;
}

std::string GpuHealth::ProbeOne(int32_t gpu) const {
  std::vector<std::string> argv;
  for (const std::string& a : argv_) {
    argv.push_back(absl::StrReplaceAll(a, {{"{gpu}", absl::StrCat(gpu)}}));
  }
  const ProbeResult r = probe_->Run(argv, timeout_);
  std::string first_line;
  for (absl::string_view line : absl::StrSplit(r.output, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty()) {
      first_line = std::string(line.substr(0, 200));
      break;
    }
  }
  switch (r.outcome) {
    case ProbeResult::Outcome::kExited:
      if (r.exit_code == 0) return "";
      return absl::StrCat("GPU ", gpu, ": `", absl::StrJoin(argv, " "), "` exit ", r.exit_code,
                          first_line.empty() ? "" : absl::StrCat(": ", first_line));
    case ProbeResult::Outcome::kNotFound:
      return absl::StrCat("GPU ", gpu, ": ", argv.empty() ? "no probe" : argv[0], " not found");
    case ProbeResult::Outcome::kTimedOut:
      return absl::StrCat("GPU ", gpu, ": probe did not answer within ",
                          absl::FormatDuration(timeout_));
    case ProbeResult::Outcome::kFailed:
      break;
  }
  return absl::StrCat("GPU ", gpu, ": cannot run the probe: ", r.error);
}

std::string GpuHealth::Check(const std::vector<int32_t>& gpus) {
  if (argv_.empty()) return "";
  std::vector<std::string> failed;
  bool changed = false;
  for (int32_t g : gpus) {
    if (g < 0 || g >= gpus_) continue;
    std::string why = ProbeOne(g);
    if (!why.empty()) failed.push_back(why);
    absl::MutexLock lock(&mu_);
    auto it = fenced_.find(g);
    if (why.empty() && it != fenced_.end()) {
      fenced_.erase(it);
      changed = true;
    } else if (!why.empty() && (it == fenced_.end() || it->second != why)) {
      fenced_[g] = why;
      changed = true;
    }
  }
  if (changed && on_change_) on_change_();
  return absl::StrJoin(failed, "; ");
}

std::map<int32_t, std::string> GpuHealth::Fenced() const {
  absl::MutexLock lock(&mu_);
  return fenced_;
}

void GpuHealth::Start(absl::Duration recheck) {
  if (argv_.empty() || thread_.joinable()) return;
  thread_ = std::thread([this, recheck] {
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        auto stopped = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; };
        if (mu_.AwaitWithTimeout(absl::Condition(&stopped), recheck)) return;
      }
      std::vector<int32_t> fenced;
      for (const auto& [g, why] : Fenced()) fenced.push_back(g);
      if (!fenced.empty()) Check(fenced);
    }
  });
}

void GpuHealth::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace musafarm::agent
