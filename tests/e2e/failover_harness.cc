#include "tests/e2e/failover_harness.h"

#include <signal.h>

#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "musafarm/v1/user_service.grpc.pb.h"
#include "tests/faults/tcp_proxy.h"
#include "tests/support/private_postgres.h"

namespace musafarm::e2e {

std::vector<std::string> MarkedLines(const std::string& log) {
  std::vector<std::string> out;
  for (absl::string_view l : absl::StrSplit(log, '\n')) {
    const size_t at = l.find("mf-line ");
    if (at != absl::string_view::npos) out.emplace_back(l.substr(at));
  }
  return out;
}

std::string Coordinator::address() const { return absl::StrCat("127.0.0.1:", port); }

void FailoverTest::SetUp() {
  std::string error;
  test_support::PrivatePostgres* pg = test_support::TestPostgres(&error);
  ASSERT_NE(pg, nullptr) << error;
  pg_dir_ = pg->dir();
  absl::StatusOr<std::string> url = pg->CreateDatabase();
  ASSERT_TRUE(url.ok()) << url.status();
  url_ = *url;
  // The database's name: the URL's path.
  const std::string path = url_.substr(std::string("postgresql:///").size());
  database_ = path.substr(0, path.find('?'));
}

Coordinator FailoverTest::StartCoordinator(const std::string& name, const std::string& store,
                                           const std::vector<std::string>& extra) {
  Coordinator c;
  const std::string dir = farm_.dir() + "/" + name;
  const std::string port_file = dir + ".port";
  std::vector<std::string> argv = {MF_COORDINATOR_BIN, "--insecure",  "--listen",
                                   "127.0.0.1:0",      "--port-file", port_file,
                                   "--data-dir",       dir,           "--store",
                                   store,              "--restart-grace", "60"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto p = Process::Start(argv, dir + ".log");
  EXPECT_TRUE(p.ok()) << p.status();
  if (!p.ok()) return c;
  c.process = *std::move(p);
  EXPECT_TRUE(WaitFor([&] {
    return !ReadFile(port_file).empty() || !c.process->Running();
  }, kFailoverSlow)) << c.process->Output();
  EXPECT_TRUE(c.process->Running()) << name << " exited: " << c.process->Output();
  EXPECT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(port_file)), &c.port))
      << c.process->Output();
  return c;
}

// A standby refuses every call (the CLI would follow its pointer, so this
// asks with a raw stub).
bool FailoverTest::IsActive(const Coordinator& c) {
  auto stub = v1::UserService::NewStub(
      grpc::CreateChannel(c.address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  v1::ListAgentsRequest req;
  v1::ListAgentsResponse resp;
  return stub->ListAgents(&ctx, req, &resp).ok();
}

std::map<std::string, std::string> FailoverTest::EndsAndAttempts(const std::string& job) {
  const std::string sql = absl::StrCat(
      "SELECT task_id, count(*) FILTER (WHERE to_state IN (", v1::TASK_STATE_SUCCEEDED, ",",
      v1::TASK_STATE_FAILED, ",", v1::TASK_STATE_CANCELLED,
      ")), count(DISTINCT attempt_id) FILTER (WHERE attempt_id > 0) FROM transitions "
      "WHERE starts_with(task_id, '", job, "/') GROUP BY task_id");
  absl::StatusOr<std::vector<std::string>> rows = test_support::QueryRows(url_, sql);
  EXPECT_TRUE(rows.ok()) << rows.status();
  std::map<std::string, std::string> out;
  if (!rows.ok()) return out;
  for (const std::string& row : *rows) {
    std::vector<std::string> cols = absl::StrSplit(row, absl::MaxSplits('|', 1));
    if (cols.size() == 2) out[cols[0]] = cols[1];
  }
  return out;
}

void FailoverTest::RunFailover(const std::string& what, const FailoverJob& job,
                               Coordinator& active, Coordinator& standby,
                               const std::function<void()>& fail,
                               const std::function<void()>& after_takeover) {
  const std::string both = absl::StrCat(active.address(), ",", standby.address());
  farm_.set_cli_coordinator(both);
  std::vector<Process*> agents;
  for (const FailoverAgent& a : job.agents) {
    agents.push_back(farm_.StartAgentVia(both, a.name, a.labels, a.slots, a.flags));
    ASSERT_NE(agents.back(), nullptr);
  }
  ASSERT_TRUE(WaitFor([&] { return farm_.Agents().size() == job.agents.size(); }, kFailoverSlow))
      << agents.front()->Output();
  const std::string id = farm_.Submit(job.pipeline, job.flags);
  ASSERT_FALSE(id.empty());
  // Mid-job: a task running with some, not all, of its known lines stored.
  std::string followed;  // that task: `logs -f` follows its log across the failover
  ASSERT_TRUE(WaitFor([&] {
    absl::StatusOr<v1::Job> j = farm_.Job(id);
    if (!j.ok()) return false;
    for (const v1::Task& t : j->tasks()) {
      if (t.state() != v1::TASK_STATE_RUNNING || t.log_size() == 0 || !job.fail_during(t)) {
        continue;
      }
      const size_t stored = MarkedLines(farm_.Cli({"logs", t.id()}).out).size();
      if (stored > 0 && stored < job.lines(t).size()) {
        followed = t.id();
        return true;
      }
    }
    return false;
  }, kFailoverSlow)) << "no task was seen printing its lines";
  std::unique_ptr<Process> follow =
      farm_.CliAsync({"logs", "-f", followed}, farm_.dir() + "/follow.log");

  const absl::Time failed_at = absl::Now();
  fail();
  ASSERT_TRUE(WaitFor([&] { return IsActive(standby); }, kFailoverSlow))
      << standby.process->Output();
  const absl::Duration takeover = absl::Now() - failed_at;
  // Recorded, not asserted (docs/scale-out.md quotes it).
  std::printf("[ failover ] %s, during %s: the standby answered as active %.2f s after the "
              "failure\n",
              what.c_str(), followed.c_str(), absl::ToDoubleSeconds(takeover));
  std::fflush(stdout);
  after_takeover();

  ASSERT_TRUE(farm_.WaitForJobEnd(id, 2 * kFailoverSlow)) << standby.process->Output();
  absl::StatusOr<v1::Job> ended = farm_.Job(id);
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_EQ(ended->state(), v1::JOB_STATE_SUCCEEDED) << ended->DebugString();
  ASSERT_EQ(ended->tasks_size(), job.tasks);

  // Every task ended exactly once, run by one attempt: the running ones
  // were re-attached to the new active, not run again.
  const std::map<std::string, std::string> ends = EndsAndAttempts(id);
  for (const v1::Task& t : ended->tasks()) {
    EXPECT_EQ(t.state(), v1::TASK_STATE_SUCCEEDED) << t.id() << ": " << t.reason();
    auto it = ends.find(t.id());
    EXPECT_EQ(it == ends.end() ? "" : it->second, "1|1")
        << t.id() << ": terminal transitions|attempts";
  }
  // Every log holds exactly the lines its task wrote.
  for (const v1::Task& t : ended->tasks()) {
    CliResult logs = farm_.Cli({"logs", t.id()});
    ASSERT_EQ(logs.exit_code, 0) << logs.err;
    EXPECT_EQ(MarkedLines(logs.out), job.lines(t)) << t.id() << ":\n" << logs.out;
  }
  // The follower crossed the failover without losing or repeating a byte.
  ASSERT_NE(follow, nullptr);
  EXPECT_EQ(follow->Wait(kFailoverSlow), 0) << follow->Output();
  CliResult stored = farm_.Cli({"logs", followed});
  EXPECT_EQ(MarkedLines(follow->Output()), MarkedLines(stored.out)) << follow->Output();

  for (Process* a : agents) a->Signal(SIGTERM);
  for (Process* a : agents) EXPECT_EQ(a->Wait(kFailoverSlow), 0) << a->Output();
}

void FailoverTest::KillTheActiveMidJob(const FailoverJob& job) {
  Coordinator first = StartCoordinator("coordinator-1", url_);
  ASSERT_TRUE(WaitFor([&] { return IsActive(first); }, kFailoverSlow)) << first.process->Output();
  Coordinator second = StartCoordinator("coordinator-2", url_);
  ASSERT_FALSE(IsActive(second)) << second.process->Output();
  RunFailover(
      "SIGKILL", job, first, second, [&] { first.process->Signal(SIGKILL); }, [] {});
}

void FailoverTest::CutTheActiveOffMidJob(const FailoverJob& job) {
  // The first coordinator reaches PostgreSQL only through the relay, over
  // TCP loopback; the second on the cluster's Unix socket.
  absl::StatusOr<std::unique_ptr<faults::TcpProxy>> proxy =
      faults::TcpProxy::StartToUnix(absl::StrCat(pg_dir_, "/.s.PGSQL.5432"));
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  const std::string via_proxy =
      absl::StrCat("postgresql://postgres@127.0.0.1:", (*proxy)->port(), "/", database_);
  // A short --leader-timeout: how long PostgreSQL keeps a silent holder's
  // lock session, and so the takeover time after a partition.
  const std::vector<std::string> timeout = {"--leader-timeout", "3s"};
  Coordinator first = StartCoordinator("coordinator-1", via_proxy, timeout);
  ASSERT_TRUE(WaitFor([&] { return IsActive(first); }, kFailoverSlow)) << first.process->Output();
  Coordinator second = StartCoordinator("coordinator-2", url_, timeout);
  ASSERT_FALSE(IsActive(second)) << second.process->Output();
  // The partition: nothing passes either way, no connection ends. PostgreSQL
  // ends the silent leader session after --leader-timeout (its
  // idle_session_timeout), which releases the lock. On loopback the relay's
  // kernel acknowledges what the cut-off coordinator sends, so its own TCP
  // timeouts (which end its check across a real network) cannot fire here.
  // Instead the partition heals once the standby has taken over: what the
  // cut-off coordinator sent meanwhile (log bytes agents kept streaming to
  // it, its lock check) reaches PostgreSQL late, where the fence refuses the
  // writes (the epoch moved on) and the check finds its session ended.
  RunFailover(
      "cut off from PostgreSQL", job, first, second, [&] { (*proxy)->Blackhole(); },
      [&] { (*proxy)->Heal(); });
  // The cut-off coordinator stopped acting: it exits (3) on whichever it
  // learns first (a supervisor starts it again as a standby). Nothing it
  // sent landed: no task ended twice, no log line is repeated (above).
  EXPECT_EQ(first.process->Wait(kFailoverSlow), 3) << first.process->Output();
  const std::string said = first.process->Output();
  for (absl::string_view line : absl::StrSplit(said, '\n')) {
    if (absl::StrContains(line, "; exiting")) {
      std::printf("[ failover ] the cut-off coordinator: %s\n", std::string(line).c_str());
    }
  }
  EXPECT_TRUE(absl::StrContains(said, "lost the leadership") ||
              absl::StrContains(said, "deposed: epoch 1 is no longer the leader's (now 2)"))
      << said;
}

}  // namespace musafarm::e2e
