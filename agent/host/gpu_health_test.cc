#include "agent/host/gpu_health.h"

#include <filesystem>
#include <fstream>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Answers per GPU index (the last argv element); records what ran.
class ScriptedProbe final : public GpuProbe {
 public:
  void Set(const std::string& gpu, int exit_code, std::string output = "") {
    absl::MutexLock lock(&mu_);
    exits_[gpu] = {exit_code, std::move(output)};
  }
  ProbeResult Run(const std::vector<std::string>& argv, absl::Duration) const override {
    absl::MutexLock lock(&mu_);
    runs_.push_back(argv);
    ProbeResult r;
    r.outcome = ProbeResult::Outcome::kExited;
    r.exit_code = 0;
    auto it = exits_.find(argv.back());
    if (it != exits_.end()) {
      r.exit_code = it->second.first;
      r.output = it->second.second;
    }
    return r;
  }
  std::vector<std::vector<std::string>> runs() const {
    absl::MutexLock lock(&mu_);
    return runs_;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::pair<int, std::string>> exits_ ABSL_GUARDED_BY(mu_);
  mutable std::vector<std::vector<std::string>> runs_ ABSL_GUARDED_BY(mu_);
};

TEST(GpuHealthTest, AFailingGpuIsFencedUntilItPassesAgain) {
  ScriptedProbe probe;
  int changes = 0;
  GpuHealth health(&probe, {"probe", "--index", "{gpu}"}, 2, absl::Seconds(1), [&] { ++changes; });
  EXPECT_EQ(health.Check(health.AllGpus()), "");
  EXPECT_THAT(probe.runs(), ElementsAre(ElementsAre("probe", "--index", "0"),
                                        ElementsAre("probe", "--index", "1")));
  EXPECT_TRUE(health.Fenced().empty());
  EXPECT_EQ(changes, 0);

  probe.Set("1", 3, "\nECC error on GPU 1\nmore\n");
  EXPECT_EQ(health.Check({0, 1}), "GPU 1: `probe --index 1` exit 3: ECC error on GPU 1");
  ASSERT_EQ(health.Fenced().size(), 1u);
  EXPECT_THAT(health.Fenced().at(1), HasSubstr("exit 3"));
  EXPECT_EQ(changes, 1);
  health.Check({1});  // still failing, same reason: no change
  EXPECT_EQ(changes, 1);

  probe.Set("1", 0);
  EXPECT_EQ(health.Check({1}), "");
  EXPECT_TRUE(health.Fenced().empty());
  EXPECT_EQ(changes, 2);
}

// Counts on_change calls from any thread.
struct Changes {
  void Add() {
    absl::MutexLock lock(&mu);
    ++n;
  }
  bool WaitFor(int want) {
    absl::MutexLock lock(&mu);
    auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return n >= want; };
    return mu.AwaitWithTimeout(absl::Condition(&reached), absl::Seconds(20));
  }
  absl::Mutex mu;
  int n ABSL_GUARDED_BY(mu) = 0;
};

TEST(GpuHealthTest, TheRecheckThreadUnfencesAGpuThatPassesAgain) {
  ScriptedProbe probe;
  Changes changes;
  GpuHealth health(&probe, {"probe", "{gpu}"}, 2, absl::Seconds(1), [&] { changes.Add(); });
  probe.Set("0", 1);
  EXPECT_NE(health.Check({0}), "");
  probe.Set("0", 0);
  health.Start(absl::Milliseconds(10));
  EXPECT_TRUE(changes.WaitFor(2));
  EXPECT_TRUE(health.Fenced().empty());
}

TEST(GpuHealthTest, NoCommandProbesNothingAndIndicesOutsideAreIgnored) {
  ScriptedProbe probe;
  GpuHealth none(&probe, {}, 2, absl::Seconds(1), nullptr);
  EXPECT_EQ(none.Check({0, 1}), "");
  GpuHealth two(&probe, {"p", "{gpu}"}, 2, absl::Seconds(1), nullptr);
  EXPECT_EQ(two.Check({-1, 2, 7}), "");
  EXPECT_TRUE(probe.runs().empty());
  EXPECT_THAT(DefaultGpuProbeCommand("mthreads"), ElementsAre("mthreads-gmi", "-q", "-i", "{gpu}"));
  EXPECT_THAT(DefaultGpuProbeCommand("nvidia"), ElementsAre("nvidia-smi", "-q", "-i", "{gpu}"));
  EXPECT_TRUE(DefaultGpuProbeCommand("").empty());
}

// The real spawner: a script whose answer the test changes, argv only.
TEST(GpuHealthTest, ARealProbeScriptFencesAndUnfences) {
  const std::string dir = ::testing::TempDir() + "/gpu-health-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string script = dir + "/probe.sh";
  std::ofstream(script) << "#!/bin/sh\n[ -e \"" << dir << "/bad-$1\" ] && { echo \"GPU $1 broken\"; exit 1; }\nexit 0\n";
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  SpawnGpuProbe probe;
  GpuHealth health(&probe, {script, "{gpu}"}, 2, absl::Seconds(5), nullptr);
  EXPECT_EQ(health.Check({0, 1}), "");
  std::ofstream(dir + "/bad-1") << "";
  EXPECT_THAT(health.Check({0, 1}), HasSubstr("GPU 1: `" + script + " 1` exit 1: GPU 1 broken"));
  EXPECT_EQ(health.Fenced().count(1), 1u);
  std::filesystem::remove(dir + "/bad-1");
  EXPECT_EQ(health.Check({1}), "");
  EXPECT_TRUE(health.Fenced().empty());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace musafarm::agent
