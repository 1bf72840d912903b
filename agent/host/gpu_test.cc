#include "agent/host/gpu.h"

#include <unistd.h>

#include <filesystem>
#include <map>

#include "absl/strings/str_join.h"
#include "common/labels.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Answers by the joined argv; anything it was not told about is "not found",
// as on a host without that tool. Records what was asked.
class FakeProbe final : public GpuProbe {
 public:
  void Exits(const std::string& cmd, int code, std::string out) {
    ProbeResult r;
    r.outcome = ProbeResult::Outcome::kExited;
    r.exit_code = code;
    r.output = std::move(out);
    answers_[cmd] = r;
  }
  void Ends(const std::string& cmd, ProbeResult::Outcome outcome) {
    ProbeResult r;
    r.outcome = outcome;
    r.error = "fake " + cmd;
    answers_[cmd] = r;
  }
  ProbeResult Run(const std::vector<std::string>& argv, absl::Duration timeout) const override {
    const std::string cmd = absl::StrJoin(argv, " ");
    calls_.push_back(cmd);
    timeouts_.push_back(timeout);
    auto it = answers_.find(cmd);
    if (it != answers_.end()) return it->second;
    ProbeResult r;
    r.outcome = ProbeResult::Outcome::kNotFound;
    return r;
  }
  const std::vector<std::string>& calls() const { return calls_; }
  const std::vector<absl::Duration>& timeouts() const { return timeouts_; }

 private:
  std::map<std::string, ProbeResult> answers_;
  mutable std::vector<std::string> calls_;
  mutable std::vector<absl::Duration> timeouts_;
};

// `mthreads-gmi -L` on an 8 x S4000 host: blanks around both colons.
std::string MthreadsList8() {
  std::string out;
  for (int i = 0; i < 8; ++i) {
    out += "GPU " + std::to_string(i) + " : MTT S4000 (UUID : GPU-4a1b2c3d-000" +
           std::to_string(i) + "-1111-2222-333344445555)\n";
  }
  return out;
}

// Plain `mthreads-gmi` (a tool without -L): two GPUs and a process table.
constexpr char kMthreadsTable[] = R"(Wed Jun 12 10:11:33 2024
---------------------------------------------------------------
    mthreads-gmi:1.9.0           Driver Version:2.5.0
---------------------------------------------------------------
ID   Name           |PCIe                |%GPU  Mem
     Device Type    |Pcie Lane Width     |Temp  MPC Capable
                                         |      ECC Mode
+-------------------------------------------------------------+
0    MTT S80        |00000000:3a:00.0    |0%    3MiB(16384MiB)
     Physical       |16x(16x)            |47C   YES
                                         |      Off
---------------------------------------------------------------
1    MTT S80        |00000000:3b:00.0    |12%   900MiB(16384MiB)
     Physical       |16x(16x)            |51C   YES
                                         |      Off
---------------------------------------------------------------

---------------------------------------------------------------
Processes:
ID   PID       Process name                         GPU Memory
                                                         Usage
+-------------------------------------------------------------+
1    4242      python                               896MiB
2    4343      python                               10MiB
3    N/A       N/A                                  10MiB
---------------------------------------------------------------
)";

TEST(GpuDetectTest, MthreadsListWithEightGpus) {
  FakeProbe probe;
  probe.Exits("mthreads-gmi -L", 0, MthreadsList8());
  GpuInventory inv = DetectGpus(probe);
  EXPECT_EQ(inv.vendor, "mthreads");
  EXPECT_EQ(inv.count, 8);
  ASSERT_EQ(inv.models.size(), 8u);
  for (const std::string& m : inv.models) EXPECT_EQ(m, "MTT S4000");
  EXPECT_THAT(probe.calls(), ElementsAre("mthreads-gmi -L"));  // found: nvidia-smi not asked
  EXPECT_THAT(probe.timeouts(), ElementsAre(absl::Seconds(5)));
}

TEST(GpuDetectTest, NvidiaListWithTwoGpus) {
  FakeProbe probe;  // no mthreads-gmi on this host
  probe.Exits("nvidia-smi -L", 0,
              "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-2c1f1e0a-9b7d-4c4e-8a61-0d1f2e3a4b5c)\n"
              "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-7e6d5c4b-3a29-1807-f6e5-d4c3b2a19080)\n");
  GpuInventory inv = DetectGpus(probe);
  EXPECT_EQ(inv.vendor, "nvidia");
  EXPECT_EQ(inv.count, 2);
  EXPECT_THAT(inv.models, ElementsAre("NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"));
  EXPECT_THAT(probe.calls(), ElementsAre("mthreads-gmi -L", "nvidia-smi -L"));
}

TEST(GpuDetectTest, NvidiaMigLinesAreNotGpus) {
  EXPECT_THAT(ParseGpuList("GPUs found: 2\n"
                           "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-aaa)\n"
                           "  MIG 1g.5gb     Device  0: (UUID: MIG-bbb)\n"
                           "  MIG 1g.5gb     Device  1: (UUID: MIG-ccc)\n"
                           "GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-ddd)\n"),
              ElementsAre("NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-40GB"));
}

TEST(GpuDetectTest, MthreadsFallbackToDeviceTable) {
  FakeProbe probe;
  probe.Exits("mthreads-gmi -L", 2, "mthreads-gmi: invalid option -- 'L'\n");
  probe.Exits("mthreads-gmi", 0, kMthreadsTable);
  GpuInventory inv = DetectGpus(probe);
  EXPECT_EQ(inv.vendor, "mthreads");
  EXPECT_EQ(inv.count, 2);  // process rows (indices 1, 2 and 3) add nothing
  EXPECT_THAT(inv.models, ElementsAre("MTT S80", "MTT S80"));
  EXPECT_THAT(probe.calls(), ElementsAre("mthreads-gmi -L", "mthreads-gmi"));
}

TEST(GpuDetectTest, MthreadsFallbackWhenListPrintsNoGpus) {
  // A tool that ignores -L and prints its table with exit 0: still read via the table.
  FakeProbe probe;
  probe.Exits("mthreads-gmi -L", 0, kMthreadsTable);
  probe.Exits("mthreads-gmi", 0, kMthreadsTable);
  EXPECT_EQ(DetectGpus(probe).count, 2);
}

TEST(GpuDetectTest, TableWithPipeBordersAndNoHeader) {
  // Without a "Processes" line, a process row on GPU 1 still does not add a GPU.
  EXPECT_THAT(ParseMthreadsGmiTable("|  0  MTT S3000   | 00000000:01:00.0 |\n"
                                    "|     Physical    | 16x              |\n"
                                    "|  1  MTT S3000\n"
                                    "|  1  N/A  python  10MiB |\n"),
              ElementsAre("MTT S3000", "MTT S3000"));
}

TEST(GpuDetectTest, MissingProgramsMeanNoGpu) {
  FakeProbe probe;  // everything "not found"
  GpuInventory inv = DetectGpus(probe);
  EXPECT_EQ(inv.vendor, "");
  EXPECT_EQ(inv.count, 0);
  EXPECT_THAT(inv.models, IsEmpty());
  // The plain mthreads-gmi is not tried when the program is missing.
  EXPECT_THAT(probe.calls(), ElementsAre("mthreads-gmi -L", "nvidia-smi -L"));
  EXPECT_THAT(GpuLabels(inv), IsEmpty());
}

TEST(GpuDetectTest, TimeoutsAndFailuresMeanNoGpu) {
  FakeProbe probe;
  probe.Ends("mthreads-gmi -L", ProbeResult::Outcome::kTimedOut);
  probe.Ends("nvidia-smi -L", ProbeResult::Outcome::kFailed);
  GpuInventory inv = DetectGpus(probe);
  EXPECT_EQ(inv.count, 0);
  EXPECT_EQ(inv.vendor, "");
  // A hung mthreads-gmi is not given a second 5 s.
  EXPECT_THAT(probe.calls(), ElementsAre("mthreads-gmi -L", "nvidia-smi -L"));
}

TEST(GpuDetectTest, BrokenDriversAndGarbageMeanNoGpu) {
  FakeProbe probe;
  probe.Exits("mthreads-gmi -L", 0, "\x01\x02 not a list\nGPU\nGPU x: y\n");
  probe.Exits("mthreads-gmi", 1, "failed to initialize: driver not loaded\n");
  EXPECT_EQ(DetectGpus(probe).count, 0);
  // A listing from a tool that then fails is not trusted either.
  probe.Exits("mthreads-gmi -L", 255, "GPU 0 : MTT S4000 (UUID : GPU-1)\nerror: driver\n");
  probe.Exits("mthreads-gmi", 3, kMthreadsTable);
  probe.Exits("nvidia-smi -L", 9,
              "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"
              "GPU 0: would be a lie\n");
  EXPECT_EQ(DetectGpus(probe).count, 0);
}

TEST(GpuDetectTest, MthreadsComesFirst) {
  FakeProbe probe;
  probe.Exits("mthreads-gmi -L", 0, "GPU 0: MTT S4000 (UUID: GPU-1)\n");
  probe.Exits("nvidia-smi -L", 0, "GPU 0: NVIDIA L4 (UUID: GPU-2)\n");
  EXPECT_EQ(DetectGpus(probe).vendor, "mthreads");
}

TEST(GpuLabelsTest, LabelsAreSanitisedAndValid) {
  GpuInventory inv{"mthreads", 8, std::vector<std::string>(8, "MTT S4000")};
  EXPECT_THAT(GpuLabels(inv), ElementsAre("gpu=mthreads", "gpus=8", "gpu.model=MTT_S4000"));

  GpuInventory odd{"nvidia",
                   3,
                   {" NVIDIA  GeForce RTX 4090 (rev=a1)\t", "NVIDIA H100 80GB HBM3",
                    "NVIDIA GeForce RTX 4090 (rev a1)", "@#!"}};
  std::vector<std::string> labels = GpuLabels(odd);
  EXPECT_THAT(
      labels,
      ElementsAre("gpu=nvidia", "gpus=3", "gpu.model=NVIDIA__GeForce_RTX_4090_reva1",
                  "gpu.model=NVIDIA_H100_80GB_HBM3", "gpu.model=NVIDIA_GeForce_RTX_4090_rev_a1"));
  for (const std::string& l : labels) EXPECT_TRUE(musafarm::ValidateLabel(l).ok()) << l;
  for (const std::string& l : labels) {
    EXPECT_EQ(
        l.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/="),
        std::string::npos)
        << l;
  }

  EXPECT_THAT(GpuLabels({}), IsEmpty());
  EXPECT_THAT(GpuLabels({"mthreads", 0, {}}), IsEmpty());
  EXPECT_THAT(GpuLabels({"mthreads", 2, {}}), ElementsAre("gpu=mthreads", "gpus=2"));
}

TEST(GpuLabelsTest, UserLabelsWinByKey) {
  std::vector<std::string> gpu = {"gpu=mthreads", "gpus=8", "gpu.model=MTT_S4000",
                                  "gpu.model=MTT_S80"};
  EXPECT_THAT(MergeLabels({"os=linux", "gpus=4", "gpu.model"}, gpu),
              ElementsAre("os=linux", "gpus=4", "gpu.model", "gpu=mthreads"));
  EXPECT_THAT(MergeLabels({}, gpu),
              ElementsAre("gpu=mthreads", "gpus=8", "gpu.model=MTT_S4000", "gpu.model=MTT_S80"));
  EXPECT_THAT(MergeLabels({"docker"}, {}), ElementsAre("docker"));
}

TEST(GpuFlagsTest, FlagsOverrideDetection) {
  const GpuInventory eight{"mthreads", 8, std::vector<std::string>(8, "MTT S4000")};
  auto resolve = [](std::optional<GpuInventory> d, GpuFlags f) {
    absl::StatusOr<GpuInventory> r = ResolveGpus(d, f);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : GpuInventory{"error", -1, {}};
  };
  GpuFlags none;
  GpuFlags count4;
  count4.gpus = 4;
  GpuFlags zero;
  zero.gpus = 0;
  zero.vendor = "mthreads";
  GpuFlags nvidia2;
  nvidia2.gpus = 2;
  nvidia2.vendor = "nvidia";
  GpuFlags mthreads;
  mthreads.vendor = "mthreads";
  GpuFlags mthreads3 = mthreads;
  mthreads3.gpus = 3;

  // No flags: what was detected; nothing when detection did not run.
  GpuInventory r = resolve(eight, none);
  EXPECT_EQ(r.vendor, "mthreads");
  EXPECT_EQ(r.count, 8);
  EXPECT_EQ(resolve(std::nullopt, none).count, 0);
  // --gpus N alone: the detected vendor and models, N GPUs.
  r = resolve(eight, count4);
  EXPECT_EQ(r.vendor, "mthreads");
  EXPECT_EQ(r.count, 4);
  EXPECT_EQ(r.models.size(), 8u);
  // --gpus 0 wins over detection and vendor.
  r = resolve(eight, zero);
  EXPECT_EQ(r.count, 0);
  EXPECT_EQ(r.vendor, "");
  // Both flags: a declared host; a different vendor drops the detected models.
  r = resolve(eight, nvidia2);
  EXPECT_EQ(r.vendor, "nvidia");
  EXPECT_EQ(r.count, 2);
  EXPECT_THAT(r.models, IsEmpty());
  r = resolve(std::nullopt, mthreads3);
  EXPECT_EQ(r.vendor, "mthreads");
  EXPECT_EQ(r.count, 3);
  // --gpu-vendor alone confirms what was detected.
  r = resolve(eight, mthreads);
  EXPECT_EQ(r.count, 8);
  EXPECT_EQ(r.models.size(), 8u);

  // Flags that cannot be honoured are errors, not guesses.
  EXPECT_FALSE(ResolveGpus(std::nullopt, count4).ok());    // whose GPUs?
  EXPECT_FALSE(ResolveGpus(std::nullopt, mthreads).ok());  // how many?
  GpuFlags amd;
  amd.vendor = "amd";
  EXPECT_FALSE(ResolveGpus(eight, amd).ok());
  GpuFlags bad = nvidia2;
  bad.vendor = "Moore Threads";
  EXPECT_FALSE(ResolveGpus(std::nullopt, bad).ok());
  GpuFlags negative = nvidia2;
  negative.gpus = -1;
  EXPECT_FALSE(ResolveGpus(std::nullopt, negative).ok());
}

TEST(GpuFlagsTest, WhenToDetect) {
  GpuFlags f;
  EXPECT_TRUE(ShouldDetectGpus(f));
  f.detect = false;
  EXPECT_FALSE(ShouldDetectGpus(f));
  f = GpuFlags{};
  f.gpus = 0;
  EXPECT_FALSE(ShouldDetectGpus(f));
  f.gpus = 2;
  EXPECT_TRUE(ShouldDetectGpus(f));  // needs the detected vendor
  f.vendor = "mthreads";
  EXPECT_FALSE(ShouldDetectGpus(f));  // fully declared
  f.gpus.reset();
  EXPECT_TRUE(ShouldDetectGpus(f));  // needs the detected count
}

TEST(GpuDescribeTest, Describe) {
  EXPECT_EQ(DescribeGpus({}), "none");
  EXPECT_EQ(DescribeGpus({"mthreads", 8, std::vector<std::string>(8, "MTT S4000")}),
            "8 x mthreads (MTT S4000)");
  EXPECT_EQ(DescribeGpus({"nvidia", 2, {}}), "2 x nvidia");
}

// The real probe runs argv without a shell.
TEST(GpuSpawnProbeTest, RunsArgvVerbatim) {
  const std::filesystem::path marker =
      std::filesystem::temp_directory_path() / ("mf-gpu-probe-" + std::to_string(::getpid()));
  std::filesystem::remove(marker);
  const std::string trap = "$(touch " + marker.string() + ")";
  ProbeResult r = SpawnGpuProbe().Run({"/bin/echo", trap, "a  b;", "`id`"}, absl::Seconds(5));
  ASSERT_EQ(r.outcome, ProbeResult::Outcome::kExited) << r.error;
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output, trap + " a  b; `id`\n");
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST(GpuSpawnProbeTest, MissingProgramIsNotFound) {
  ProbeResult r = SpawnGpuProbe().Run({"musafarm-no-such-gpu-tool"}, absl::Seconds(5));
  EXPECT_EQ(r.outcome, ProbeResult::Outcome::kNotFound) << r.error;
}

TEST(GpuSpawnProbeTest, ExitCodeAndTimeout) {
  ProbeResult r = SpawnGpuProbe().Run({"false"}, absl::Seconds(5));  // found on PATH
  ASSERT_EQ(r.outcome, ProbeResult::Outcome::kExited) << r.error;
  EXPECT_EQ(r.exit_code, 1);

  const absl::Time start = absl::Now();
  r = SpawnGpuProbe().Run({"sleep", "30"}, absl::Milliseconds(200));
  EXPECT_EQ(r.outcome, ProbeResult::Outcome::kTimedOut);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

}  // namespace
}  // namespace musafarm::agent
