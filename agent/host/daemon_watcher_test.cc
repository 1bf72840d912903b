#include "agent/host/daemon_watcher.h"

#include <atomic>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace musafarm::agent {
namespace {

// A daemon that answers or not as the test says; the watcher's reports recorded.
class DaemonWatcherTest : public ::testing::Test {
 protected:
  DaemonWatcher::Options Fast() {
    DaemonWatcher::Options o;
    o.interval = absl::Milliseconds(20);
    o.retry_initial = absl::Milliseconds(10);
    o.retry_max = absl::Milliseconds(40);
    return o;
  }
  absl::Status Ping() {
    absl::MutexLock lock(&mu_);
    ++pings_;
    return up_ ? absl::OkStatus() : absl::UnavailableError("Cannot connect to the Docker daemon");
  }
  void SetDaemonUp(bool up) {
    absl::MutexLock lock(&mu_);
    up_ = up;
  }
  void OnChange(const absl::Status& s) {
    absl::MutexLock lock(&mu_);
    changes_.push_back(s.ok());
  }
  void OnUp() {
    absl::MutexLock lock(&mu_);
    ++ups_;
  }
  // Waits until `n` changes were reported.
  bool WaitChanges(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return changes_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(20));
  }
  std::vector<bool> changes() {
    absl::MutexLock lock(&mu_);
    return changes_;
  }
  int ups() {
    absl::MutexLock lock(&mu_);
    return ups_;
  }

  absl::Mutex mu_;
  bool up_ ABSL_GUARDED_BY(mu_) = true;
  int pings_ ABSL_GUARDED_BY(mu_) = 0;
  int ups_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<bool> changes_ ABSL_GUARDED_BY(mu_);
};

TEST_F(DaemonWatcherTest, ReportsTheDaemonGoingAndComingBack) {
  DaemonWatcher w([this] { return Ping(); }, Fast(),
                  [this](const absl::Status& s) { OnChange(s); }, [this] { OnUp(); });
  w.Start();
  ASSERT_TRUE(WaitChanges(1));
  EXPECT_TRUE(w.Current().ok());
  SetDaemonUp(false);
  ASSERT_TRUE(WaitChanges(2));
  EXPECT_FALSE(w.Current().ok());
  EXPECT_EQ(w.Current().message(), "Cannot connect to the Docker daemon");
  SetDaemonUp(true);
  ASSERT_TRUE(WaitChanges(3));
  w.Stop();
  EXPECT_EQ(changes(), (std::vector<bool>{true, false, true}));
  EXPECT_EQ(ups(), 2);  // the first success, and the return
}

TEST_F(DaemonWatcherTest, MarkDownIsCurrentAtOnceAndTheNextPingClearsIt) {
  DaemonWatcher::Options slow = Fast();
  slow.interval = absl::Hours(1);  // only a poke makes it ping again
  DaemonWatcher w([this] { return Ping(); }, slow,
                  [this](const absl::Status& s) { OnChange(s); }, [this] { OnUp(); });
  w.Start();
  ASSERT_TRUE(WaitChanges(1));
  w.MarkDown("docker daemon unreachable: exit 1");
  // Until the poked ping has run, the mark holds; the ping finds the daemon
  // up and says so (a change from the mark).
  ASSERT_TRUE(WaitChanges(2));
  EXPECT_TRUE(w.Current().ok());
  w.Stop();
  EXPECT_EQ(changes(), (std::vector<bool>{true, true}));
}

}  // namespace
}  // namespace musafarm::agent
