// Leadership and epoch fencing (issue 20) against the run's private
// PostgreSQL: who wins, who takes over when, and that a deposed coordinator's
// fenced writes are refused. Each test takes a fresh database.

#include "coordinator/leadership.h"

#include <libpq-fe.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "coordinator/postgres_store.h"
#include "coordinator/secret_cipher.h"
#include "coordinator/store_test_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/private_postgres.h"

namespace musafarm::coordinator {
namespace {

using ::testing::HasSubstr;
using namespace store_testing;  // NOLINT: MakeJob

class LeadershipTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> url = test_support::NewTestDatabase();
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    // The schema (version 2 holds the leadership tables).
    absl::StatusOr<std::unique_ptr<Store>> store = OpenPostgresStore(url_, cipher_);
    ASSERT_TRUE(store.ok()) << store.status();
  }

  std::unique_ptr<Leadership> Make(const std::string& id,
                                   absl::Duration session_timeout = absl::Seconds(10)) {
    LeadershipOptions options;
    options.url = url_;
    options.id = id;
    options.address = absl::StrCat(id, ".example:7070");
    options.poll_interval = absl::Milliseconds(50);
    options.check_interval = absl::Milliseconds(100);
    options.session_timeout = session_timeout;
    absl::StatusOr<std::unique_ptr<Leadership>> l = Leadership::Open(options);
    if (!l.ok()) {
      ADD_FAILURE() << l.status();
      return nullptr;
    }
    return *std::move(l);
  }

  // Runs `sql` on a connection of the test's own; "" or the error.
  std::string Exec(const std::string& sql) {
    PGconn* c = PQconnectdb(url_.c_str());
    PGresult* r = PQexec(c, sql.c_str());
    const ExecStatusType st = PQresultStatus(r);
    std::string error =
        st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? "" : PQresultErrorMessage(r);
    PQclear(r);
    PQfinish(c);
    return error;
  }

  std::string url_;
  const SecretCipher cipher_ = *SecretCipher::Create(std::string(SecretCipher::kKeySize, 'k'));
};

TEST_F(LeadershipTest, OneOfTwoWinsAndTheOtherSeesItsAddress) {
  std::unique_ptr<Leadership> a = Make("a");
  std::unique_ptr<Leadership> b = Make("b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  absl::StatusOr<bool> a_won = a->TryAcquire();
  ASSERT_TRUE(a_won.ok()) << a_won.status();
  EXPECT_TRUE(*a_won);
  EXPECT_EQ(a->epoch(), 1);
  absl::StatusOr<bool> b_won = b->TryAcquire();
  ASSERT_TRUE(b_won.ok()) << b_won.status();
  EXPECT_FALSE(*b_won);
  EXPECT_FALSE(b->active());
  EXPECT_TRUE(a->CheckHeld().ok());
  EXPECT_FALSE(b->CheckHeld().ok());

  absl::StatusOr<LeaderInfo> leader = b->ReadLeader();
  ASSERT_TRUE(leader.ok()) << leader.status();
  EXPECT_EQ(leader->epoch, 1);
  EXPECT_EQ(leader->address, "a.example:7070");
  EXPECT_EQ(leader->coordinator, "a");
  EXPECT_TRUE(leader->held);
}

TEST_F(LeadershipTest, TheStandbyTakesOverWhenTheActivesSessionCloses) {
  std::unique_ptr<Leadership> a = Make("a");
  std::unique_ptr<Leadership> b = Make("b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(*a->TryAcquire());
  absl::Notification b_active;
  int64_t b_epoch = 0;
  b->Start({[&](int64_t epoch) {
              b_epoch = epoch;
              b_active.Notify();
            },
            [](absl::Status) {}});
  // The standby learns who is active.
  while (b->active_address() != "a.example:7070") absl::SleepFor(absl::Milliseconds(10));
  EXPECT_FALSE(b_active.HasBeenNotified());

  a.reset();  // closes its session: the server releases the lock
  b_active.WaitForNotification();
  EXPECT_EQ(b_epoch, 2);
  EXPECT_EQ(b->active_address(), "b.example:7070");
  absl::StatusOr<LeaderInfo> leader = b->ReadLeader();
  ASSERT_TRUE(leader.ok()) << leader.status();
  EXPECT_EQ(leader->coordinator, "b");
  absl::StatusOr<std::vector<CoordinatorSeen>> seen = b->ReadCoordinators();
  ASSERT_TRUE(seen.ok()) << seen.status();
  ASSERT_EQ(seen->size(), 2u);
  EXPECT_EQ((*seen)[0].address, "a.example:7070");
  EXPECT_EQ((*seen)[1].address, "b.example:7070");
}

// `musafarm coordinators` reads the rows: the active keeps its own fresh,
// and drops those not seen for forget_after (a restart is a new id each time).
TEST_F(LeadershipTest, TheActiveRefreshesItsRowAndForgetsRowsLongGone) {
  const absl::Time long_ago = absl::Now() - absl::Hours(25);
  const absl::Time lately = absl::Now() - absl::Hours(1);
  ASSERT_EQ(
      Exec(absl::StrCat("INSERT INTO coordinators(id, address, last_seen_us) VALUES ",
                        "('old', 'old.example:7070', ", absl::ToUnixMicros(long_ago),
                        "), ('recent', 'recent.example:7070', ", absl::ToUnixMicros(lately), ")")),
      "");
  std::unique_ptr<Leadership> a = Make("a");
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(*a->TryAcquire());
  const absl::Time won = absl::Now();
  // Its row as TryAcquire wrote it, made old, so a refresh shows.
  ASSERT_EQ(Exec("UPDATE coordinators SET last_seen_us = 0 WHERE id = 'a'"), "");
  a->Start({[](int64_t) {}, [](absl::Status) {}});
  std::vector<std::string> ids;
  absl::Time a_seen = absl::InfinitePast();
  while (true) {
    absl::StatusOr<std::vector<CoordinatorSeen>> seen = a->ReadCoordinators();
    ASSERT_TRUE(seen.ok()) << seen.status();
    ids.clear();
    for (const CoordinatorSeen& c : *seen) {
      ids.push_back(c.id);
      if (c.id == "a") a_seen = c.last_seen;
    }
    if (ids.size() == 2 && a_seen >= won) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_THAT(ids, ::testing::ElementsAre("a", "recent"));
}

TEST_F(LeadershipTest, TheActiveLearnsThatItsSessionWasCutOff) {
  std::unique_ptr<Leadership> a = Make("a");
  ASSERT_NE(a, nullptr);
  absl::Notification active;
  absl::Notification lost;
  absl::Status why;
  a->Start({[&](int64_t) { active.Notify(); },
            [&](absl::Status s) {
              why = s;
              lost.Notify();
            }});
  active.WaitForNotification();
  ASSERT_EQ(Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                 "application_name = 'musafarm-leadership' AND datname = current_database()"),
            "");
  lost.WaitForNotification();
  EXPECT_EQ(why.code(), absl::StatusCode::kUnavailable) << why;
  EXPECT_THAT(why.message(), HasSubstr("leader lock"));
}

// A holder that goes silent (SIGSTOP, a cut network) keeps nothing: the server
// ends its idle session after session_timeout, the standby takes over, and
// the silent one's fenced writes are refused when it wakes.
TEST_F(LeadershipTest, ASilentHoldersLockIsReleasedAndItsWritesAreFencedOut) {
  std::unique_ptr<Leadership> a = Make("a", absl::Seconds(1));
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(*a->TryAcquire());  // and then no checks: a is "frozen"
  absl::StatusOr<std::unique_ptr<Store>> a_store = OpenPostgresStore(url_, cipher_, a->epoch());
  ASSERT_TRUE(a_store.ok()) << a_store.status();
  Mutation m;
  m.jobs = {MakeJob("before")};
  ASSERT_TRUE((*a_store)->Commit(m).ok());

  std::unique_ptr<Leadership> b = Make("b");
  ASSERT_NE(b, nullptr);
  absl::Notification b_active;
  const absl::Time t0 = absl::Now();
  b->Start({[&](int64_t) { b_active.Notify(); }, [](absl::Status) {}});
  b_active.WaitForNotification();
  std::printf("takeover after a silent holder (session_timeout 1s): %.2fs\n",
              absl::ToDoubleSeconds(absl::Now() - t0));
  EXPECT_EQ(b->epoch(), 2);

  EXPECT_FALSE(a->CheckHeld().ok());
  m.jobs = {MakeJob("after")};
  absl::Status late = (*a_store)->Commit(m);
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition) << late;
  EXPECT_THAT(late.message(), HasSubstr("deposed: epoch 1 is no longer the leader's (now 2)"));
  absl::StatusOr<std::unique_ptr<Store>> reader = OpenPostgresStore(url_, cipher_);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_TRUE((*reader)->archive().LoadJob("before").ok());
  EXPECT_EQ((*reader)->archive().LoadJob("after").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace musafarm::coordinator
