// Fault suite, full disk (issue 5, "Disk"): an agent whose work directory is
// on a small file system of its own (a tmpfs the test mounts) has that file
// system filled under a running task. Nothing may be lost: the agent stops the
// attempt it cannot keep the output of and hands it back (no retry used up);
// it takes no new work and says why in `musafarm agents`; other work goes to
// the other agent; once space is back the agent takes work again and the task
// completes with its exact log.
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/e2e/harness.h"
#include "tests/faults/fault_suite.h"

namespace musafarm::faults {
namespace {

using e2e::Farm;
using e2e::FindTask;
using e2e::WaitFor;

// Mounts a tmpfs of `mib` MiB at `dir` for the life of the object.
class SmallDisk {
 public:
  SmallDisk(const std::string& dir, int mib) : dir_(dir) {
    std::filesystem::create_directories(dir);
    const std::string opts = absl::StrCat("size=", mib, "m,mode=0755");
    if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, opts.c_str()) != 0) {
      error_ = absl::StrCat("mount tmpfs at ", dir, ": ", std::strerror(errno));
    }
  }
  ~SmallDisk() {
    // Lazy: an agent that is still stopping may hold files open in it.
    if (error_.empty()) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  const std::string& error() const { return error_; }

  // Writes zeros to `path` until the file system is full.
  static void Fill(const std::string& path) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
    const std::string chunk(1 << 16, '\0');
    for (;;) {
      const ssize_t n = ::write(fd, chunk.data(), chunk.size());
      if (n <= 0) break;  // ENOSPC
    }
    // Smaller writes take the last partial pages too.
    for (;;) {
      if (::write(fd, chunk.data(), 512) <= 0) break;
    }
    ::close(fd);
  }

 private:
  std::string dir_;
  std::string error_;
};

// The agent's current entry; an empty one (no name) when it is not listed.
v1::Agent AgentNamed(Farm& farm, const std::string& name) {
  for (const v1::Agent& a : farm.Agents()) {
    if (a.name() == name) return a;
  }
  return v1::Agent();
}

TEST(FullDiskTest, FullWorkDiskFailsTheAttemptCleanlyStopsNewWorkAndLosesNothing) {
  Farm farm;
  farm.StartCoordinator({"--heartbeat-timeout", "2", "--agent-lost-timeout", "2"});
  SmallDisk disk(farm.dir() + "/small-disk", 24);
  ASSERT_EQ(disk.error(), "");
  const std::string filler = farm.dir() + "/small-disk/filler";
  // agent-1 works on the small disk (its work dir, which the harness names,
  // is a link into it) and wants 4 MiB free; agent-2 has room.
  std::filesystem::create_directories(farm.dir() + "/small-disk/agent-1");
  std::filesystem::create_directory_symlink(farm.dir() + "/small-disk/agent-1",
                                            farm.dir() + "/agent-agent-1");
  ASSERT_NE(farm.StartAgent("agent-1", {"disk=small"}, 2, {"--min-free-disk", "4M"}), nullptr);
  ASSERT_NE(farm.StartAgent("agent-2", {}, 2, {"--min-free-disk", "4M"}), nullptr);
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 2; }));

  // A task that can only run on agent-1 and prints for a while.
  StageShape pinned = Shape("pinned", 400, 80, 10, "0.05");
  pinned.labels = {"disk=small"};
  pinned.retries = 2;
  const Workload first(farm.dir() + "/out", {"small"}, {pinned});
  const std::string job1 = farm.Submit(farm.WritePipeline("pinned.yaml", first.Yaml()));
  ASSERT_FALSE(job1.empty());
  ASSERT_TRUE(WaitFor([&] {
    auto job = farm.Job(job1);
    const v1::Task* t = job.ok() ? FindTask(*job, "small/pinned") : nullptr;
    return t != nullptr && t->state() == v1::TASK_STATE_RUNNING && t->log_size() > 0;
  }));
  const uint64_t filled_attempt = FindTask(*farm.Job(job1), "small/pinned")->attempt_id();

  // The disk fills up under the running task.
  SmallDisk::Fill(filler);
  // The agent says why it takes no work...
  ASSERT_TRUE(WaitFor(
      [&] {
        return absl::StartsWith(AgentNamed(farm, "agent-1").unavailable_reason(), "low disk");
      },
      absl::Seconds(30)));
  e2e::CliResult agents = farm.Cli({"agents"});
  EXPECT_TRUE(absl::StrContains(agents.out, "low disk")) << agents.out;
  std::cout << "full disk: musafarm agents says:\n" << agents.out << std::flush;

  // ...and other work goes to agent-2 meanwhile, completely.
  const Workload other(farm.dir() + "/out", {"a", "b"},
                       {Shape("s1", 20, 64, 10, "0.05"), Shape("s2", 20, 64, 10, "0.05", {"s1"})});
  const std::string job2 = farm.Submit(farm.WritePipeline("other.yaml", other.Yaml()));
  ASSERT_TRUE(farm.WaitForJobEnd(job2, absl::Seconds(60)));
  auto done2 = farm.Job(job2);
  ASSERT_TRUE(done2.ok());
  for (const v1::Task& t : done2->tasks()) {
    EXPECT_EQ(t.state(), v1::TASK_STATE_SUCCEEDED) << t.id() << ": " << t.reason();
    EXPECT_EQ(t.agent(), "agent-2") << t.id();
  }

  // The pinned task is not lost: its attempt either failed cleanly for want
  // of room and the task waits for agent-1, or it is still running (its output
  // held back). Either way, room comes back and it completes.
  std::filesystem::remove(filler);
  ASSERT_TRUE(WaitFor(
      [&] {
        const v1::Agent a = AgentNamed(farm, "agent-1");
        return !a.name().empty() && a.unavailable_reason().empty();
      },
      absl::Seconds(30)));
  RunReport r = CheckRun(farm, job1, first, 0, "full-disk", absl::Seconds(90));
  const v1::Task* t = FindTask(r.job, "small/pinned");
  ASSERT_NE(t, nullptr);
  std::cout << "full disk: the filled attempt " << filled_attempt
            << (t->attempt_id() == filled_attempt ? " went on after the disk was freed"
                                                  : " was stopped and another attempt completed")
            << "; attempts=" << t->attempts() << std::endl;
  bool handed_back = t->attempt_id() == filled_attempt;
  for (const TransitionRow& row : r.transitions) {
    if (row.attempt_id != filled_attempt) continue;
    std::cout << "  " << row.reason << std::endl;
    // A full disk is the host's fault: the attempt goes back to the queue
    // without using up the task's retries.
    handed_back = handed_back || absl::StrContains(row.reason, "handed it back");
  }
  EXPECT_TRUE(handed_back);
  EXPECT_EQ(t->lost_count(), 0);
}

}  // namespace
}  // namespace musafarm::faults
