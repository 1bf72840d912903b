#include "coordinator/core.h"

#include <unistd.h>

#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/protocol_version.h"
#include "content/digest.h"
#include "content/tree.h"
#include "coordinator/local_blob_store.h"
#include "coordinator/store_test_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "spdlog/sinks/ostream_sink.h"
#include "tests/fakes/fake_agent_connection.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/recording_watcher.h"

namespace musafarm::coordinator {
namespace {

using FakeConnection = testing::FakeAgentConnection;

using RecordingWatcher = testing::RecordingWatcher;

// The newest `limit` jobs, unfiltered.
JobFilter Filter(int limit) {
  JobFilter f;
  f.limit = limit;
  return f;
}

constexpr char kDiamond[] = R"(
name: chain
stages:
  - name: a
    exec: ["true"]
  - name: b
    needs: [a]
    exec: ["true"]
  - name: c
    needs: [b]
    exec: ["true"]
)";

constexpr char kMatrix[] = R"(
name: m
matrix:
  python: ["3.8", "3.9"]
stages:
  - name: build
    exec: ["true"]
)";

// Files underneath, and what was durable at the last Flush() (the sizes then),
// as a backend that batches (PostgreSQL) makes them durable only there.
class FlushTrackingLogStore final : public LogStore {
 public:
  explicit FlushTrackingLogStore(std::unique_ptr<LogStore> inner) : inner_(std::move(inner)) {}
  uint64_t durable(const std::string& task, uint64_t attempt) const {
    auto it = durable_.find({task, attempt});
    return it == durable_.end() ? 0 : it->second;
  }

  absl::StatusOr<uint64_t> Append(const std::string& task_id, uint64_t attempt_id, uint64_t offset,
                                  absl::string_view data) override {
    written_.insert({task_id, attempt_id});
    return inner_->Append(task_id, attempt_id, offset, data);
  }
  absl::Status Flush() override {
    if (!flush_status.ok()) return flush_status;
    for (const auto& key : written_) durable_[key] = inner_->Size(key.first, key.second);
    return inner_->Flush();
  }
  absl::Status flush_status;  // what Flush returns when not OK (a lost database)
  uint64_t Size(const std::string& t, uint64_t a) override { return inner_->Size(t, a); }
  absl::StatusOr<std::string> Read(const std::string& t, uint64_t a, uint64_t o,
                                   uint64_t l) override {
    return inner_->Read(t, a, o, l);
  }
  void Close(const std::string& t, uint64_t a) override { inner_->Close(t, a); }
  absl::StatusOr<uint64_t> AppendArtifact(const std::string& t, uint64_t a, const std::string& n,
                                          uint64_t o, absl::string_view d) override {
    return inner_->AppendArtifact(t, a, n, o, d);
  }
  uint64_t ArtifactSize(const std::string& t, uint64_t a, const std::string& n) override {
    return inner_->ArtifactSize(t, a, n);
  }
  absl::StatusOr<std::string> ReadArtifact(const std::string& t, uint64_t a, const std::string& n,
                                           uint64_t o, uint64_t l) override {
    return inner_->ReadArtifact(t, a, n, o, l);
  }
  void CloseAttempt(const std::string& t, uint64_t a) override { inner_->CloseAttempt(t, a); }
  uint64_t TaskBytes(const std::string& t) override { return inner_->TaskBytes(t); }
  absl::Status RemoveTask(const std::string& t) override { return inner_->RemoveTask(t); }

 private:
  std::unique_ptr<LogStore> inner_;
  std::set<std::pair<std::string, uint64_t>> written_;
  std::map<std::pair<std::string, uint64_t>, uint64_t> durable_;
};

class CoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("mf-core-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    Open();
  }
  void TearDown() override {
    core_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Open() {
    core_.reset();
    logs_.reset();
    store_.reset();
    auto store = OpenSqliteStore((dir_ / "db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    logs_ = OpenFileLogStore((dir_ / "logs").string());
    if (track_flushes_) {
      logs_ = std::make_unique<FlushTrackingLogStore>(std::move(logs_));
    }
    CoreOptions options;
    options.agent_lost_timeout = absl::Seconds(15);
    options.insecure = insecure_;
    options.agent_policy = policy_;
    options.max_log_bytes = max_log_bytes_;
    options.retention = retention_;
    options.max_heartbeat_rate = max_heartbeat_rate_;
    core_ = std::make_unique<Core>(store_.get(), logs_.get(), &clock_, options);
    ASSERT_TRUE(core_->Recover().ok());
  }
  std::pair<Core::ConnId, std::shared_ptr<FakeConnection>> Connect(
      const std::string& name, int slots, std::vector<v1::HeldAttempt> held = {},
      std::optional<std::string> instance_secret = std::nullopt) {
    v1::Register reg;
    reg.set_name(name);
    reg.set_slots(slots);
    // One instance per name unless a test says otherwise: a second Connect of
    // the name is that agent reconnecting.
    reg.set_instance_secret(instance_secret.value_or("instance of " + name));
    for (auto& h : held) *reg.add_held() = h;
    return ConnectWith(reg);
  }
  // Opens a stream and registers `reg` on it.
  std::pair<Core::ConnId, std::shared_ptr<FakeConnection>> ConnectWith(const v1::Register& reg) {
    auto conn = std::make_shared<FakeConnection>();
    Core::ConnId id = core_->OnAgentConnected(conn);
    v1::AgentMessage msg;
    *msg.mutable_register_() = reg;
    core_->OnAgentMessage(id, msg);
    return {id, conn};
  }
  v1::Job Submit(const char* yaml, const std::map<std::string, std::string>& secrets = {}) {
    v1::SubmitRequest req;
    req.set_spec_yaml(yaml);
    req.set_spec_file("test.yaml");
    req.mutable_secrets()->insert(secrets.begin(), secrets.end());
    auto job = core_->Submit(req);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : v1::Job();
  }
  void Result(Core::ConnId conn, const v1::Assignment& a, int exit_code, std::string log = "") {
    v1::AgentMessage started;
    started.mutable_started()->set_task_id(a.task_id());
    started.mutable_started()->set_attempt_id(a.attempt_id());
    core_->OnAgentMessage(conn, started);
    if (!log.empty()) {
      v1::AgentMessage chunk;
      chunk.mutable_log()->set_task_id(a.task_id());
      chunk.mutable_log()->set_attempt_id(a.attempt_id());
      chunk.mutable_log()->set_data(log);
      core_->OnAgentMessage(conn, chunk);
    }
    v1::AgentMessage r;
    r.mutable_result()->set_task_id(a.task_id());
    r.mutable_result()->set_attempt_id(a.attempt_id());
    r.mutable_result()->set_exit_code(exit_code);
    r.mutable_result()->set_log_size(log.size());
    core_->OnAgentMessage(conn, r);
  }
  // A watcher of `job` with its logs (watch id 1); null if the core refused it.
  std::shared_ptr<RecordingWatcher> WatchWithLogs(const std::string& job) {
    auto w = std::make_shared<RecordingWatcher>();
    v1::WatchJobRequest req;
    req.set_job_id(job);
    req.set_logs(true);
    return core_->AddWatcher(1, req, w).ok() ? w : nullptr;
  }
  v1::TaskState StateOf(const std::string& job, const std::string& task) {
    const v1::Job j = *core_->GetJob(job);
    for (const auto& t : j.tasks()) {
      if (t.id() == task) return t.state();
    }
    ADD_FAILURE() << "no task " << task;
    return v1::TASK_STATE_UNSPECIFIED;
  }

  std::filesystem::path dir_;
  bool insecure_ = true;  // CoreOptions.insecure for Open()
  bool track_flushes_ = false;  // Open() wraps the log store in a FlushTrackingLogStore
  uint64_t max_log_bytes_ = limits::kDefaultMaxLogBytes;
  RetentionOptions retention_;  // CoreOptions.retention for Open()
  double max_heartbeat_rate_ = 500;  // CoreOptions.max_heartbeat_rate for Open()
  std::optional<AgentPolicy> policy_;
  testing::FakeClock clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<LogStore> logs_;
  std::unique_ptr<Core> core_;
};

TEST_F(CoreTest, BadSpecIsRefusedAndNothingIsQueued) {
  v1::SubmitRequest req;
  req.set_spec_yaml("stages:\n  - name: a\n    needs: [zz]\n    exec: [x]\n");
  req.set_spec_file("bad.yaml");
  auto job = core_->Submit(req);
  ASSERT_FALSE(job.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(job.status()));
  EXPECT_NE(job.status().message().find("bad.yaml:3"), std::string::npos) << job.status();
  EXPECT_TRUE(core_->ListJobs(Filter(10)).empty());
  EXPECT_TRUE(store_->LoadJobs()->empty());
}

// The submit call's audit line goes into the job's own commit (issue 19: one
// fsync before the answer, not two), naming the new job; a refused submit
// stores neither.
TEST_F(CoreTest, SubmitCommitsItsAuditLineWithTheJob) {
  AuditEntry line;
  line.user = "sam";
  line.role = "submitter";
  line.action = "submit";
  line.peer = "ipv4:127.0.0.1:1";
  line.outcome = "ok";
  v1::SubmitRequest req;
  req.set_spec_yaml("stages:\n  - name: one\n    exec: [x]\n");
  req.set_spec_file("test.yaml");
  absl::StatusOr<v1::Job> job = core_->Submit(req, "sam", line);
  ASSERT_TRUE(job.ok()) << job.status();
  v1::SubmitRequest bad;
  bad.set_spec_yaml("stages: [");
  EXPECT_FALSE(core_->Submit(bad, "sam", line).ok());

  absl::StatusOr<std::vector<AuditEntry>> audit = store_->LoadAudit({});
  ASSERT_TRUE(audit.ok()) << audit.status();
  ASSERT_EQ(audit->size(), 1u);
  EXPECT_EQ((*audit)[0].target, job->id());
  EXPECT_EQ((*audit)[0].user, "sam");
  EXPECT_EQ((*audit)[0].action, "submit");
  EXPECT_EQ((*audit)[0].outcome, "ok");
}

TEST_F(CoreTest, RunsInDependencyOrderAndSucceeds) {
  auto [conn, agent] = Connect("a1", 4);
  v1::Job job = Submit(kDiamond);
  for (const char* stage : {"a", "b", "c"}) {
    auto as = agent->TakeAssignments();
    ASSERT_EQ(as.size(), 1u) << "stage " << stage;
    EXPECT_EQ(as[0].task_id(), job.id() + "/" + stage);
    Result(conn, as[0], 0, std::string("log of ") + stage);
  }
  EXPECT_EQ(core_->GetJob(job.id())->state(), v1::JOB_STATE_SUCCEEDED);
  v1::GetLogRequest req;
  req.set_task_id(job.id() + "/b");
  EXPECT_EQ(core_->GetLog(req)->data(), "log of b");
  EXPECT_TRUE(core_->GetLog(req)->complete());
}

// Issue 19: the ack of a result and the assignment it unblocked leave in one
// flush, the assignment first: a stream writes one message at a time, each
// after the last one's write completed, and the spawn need not wait for that.
TEST_F(CoreTest, AnAssignmentLeavesAheadOfTheAckOfTheResultThatUnblockedIt) {
  auto [conn, agent] = Connect("a1", 1);
  v1::Job job = Submit("stages:\n  - name: a\n    exec: [x]\n"
                       "  - name: b\n    needs: [a]\n    exec: [x]\n");
  const v1::Assignment a = agent->TakeAssignments().at(0);
  core_->BeginGroup();  // as the loop delivers agent messages
  Result(conn, a, 0);
  core_->EndGroup();
  std::vector<std::string> sent;
  for (const v1::CoordinatorMessage& m : agent->sent) {
    if (m.has_assignment()) sent.push_back("assignment " + m.assignment().task_id());
    if (m.has_ack() && m.ack().result_stored()) sent.push_back("ack " + m.ack().task_id());
  }
  EXPECT_EQ(sent, (std::vector<std::string>{"assignment " + job.id() + "/b",
                                            "ack " + job.id() + "/a"}));
}

// The store commits the core has made, from its metrics.
int Commits(Core& core) {
  const std::string text = core.RenderMetrics();
  const std::string key = "musafarm_store_commit_seconds_count ";
  const size_t at = text.find(key);
  return at == std::string::npos ? 0 : std::stoi(text.substr(at + key.size()));
}

// Group commit (issue 19): every event of a group joins one commit, and
// nothing of theirs reaches an agent or a watcher, nor the store, before it.
// A submission in a group (as the user service posts it) is committed with
// the placement of its first tasks: one commit at the group's end, and
// before it nothing on disk, no assignment sent and the submitter not yet
// answered (issue 19).
TEST_F(CoreTest, ASubmissionCommitsWithThePlacementOfItsTasksAndIsAnsweredAfter) {
  auto [conn, agent] = Connect("a1", 4);
  agent->sent.clear();
  const int commits = Commits(*core_);

  core_->BeginGroup();
  v1::Job job = Submit(kMatrix);
  bool answered = false;
  core_->WhenDurable([&answered] { answered = true; });
  EXPECT_FALSE(answered) << "answered before the job was on disk";
  EXPECT_TRUE(agent->TakeAssignments().empty()) << "an assignment before its commit";
  EXPECT_EQ(Commits(*core_), commits);
  {
    auto other = OpenSqliteStore((dir_ / "db").string());
    ASSERT_TRUE(other.ok()) << other.status();
    auto stored = (*other)->archive().LoadUnfinishedJobs();
    ASSERT_TRUE(stored.ok());
    EXPECT_TRUE(stored->empty()) << "the job on disk before the group's commit";
  }

  core_->EndGroup();
  EXPECT_TRUE(answered);
  EXPECT_EQ(Commits(*core_), commits + 1) << "the job and its placement in one commit";
  EXPECT_EQ(agent->TakeAssignments().size(), 2u);
  auto other = OpenSqliteStore((dir_ / "db").string());
  ASSERT_TRUE(other.ok()) << other.status();
  auto stored = (*other)->archive().LoadUnfinishedJobs();
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ((*stored)[0].id(), job.id());
  ASSERT_EQ((*stored)[0].tasks_size(), 2);
  for (const v1::Task& t : (*stored)[0].tasks()) EXPECT_EQ(t.state(), v1::TASK_STATE_ASSIGNED);
}

TEST_F(CoreTest, AGroupCommitsItsEventsOnceAndShowsNothingBefore) {
  auto [conn, agent] = Connect("a1", 4);
  v1::Job job = Submit(kMatrix);
  auto as = agent->TakeAssignments();
  ASSERT_EQ(as.size(), 2u);
  auto w = WatchWithLogs(job.id());
  ASSERT_NE(w, nullptr);
  w->events.clear();
  const int commits = Commits(*core_);

  core_->BeginGroup();
  for (const v1::Assignment& a : as) Result(conn, a, 0, "ok\n");
  EXPECT_EQ(Commits(*core_), commits);
  EXPECT_TRUE(agent->sent.empty()) << "an ack before its commit";
  for (const v1::WatchEvent& e : w->events) {
    EXPECT_FALSE(e.has_task()) << "a state change before its commit: " << e.ShortDebugString();
  }
  {
    auto other = OpenSqliteStore((dir_ / "db").string());
    ASSERT_TRUE(other.ok()) << other.status();
    auto stored = (*other)->archive().LoadUnfinishedJobs();
    ASSERT_TRUE(stored.ok());
    ASSERT_EQ(stored->size(), 1u);
    for (const v1::Task& t : (*stored)[0].tasks()) EXPECT_EQ(t.state(), v1::TASK_STATE_ASSIGNED);
  }

  core_->EndGroup();
  EXPECT_EQ(Commits(*core_), commits + 1);
  EXPECT_FALSE(agent->sent.empty()) << "the acks, after the commit";
  EXPECT_TRUE(w->done);
  Open();  // what a restart sees: all of it
  EXPECT_EQ(core_->GetJob(job.id())->state(), v1::JOB_STATE_SUCCEEDED);
}

// The attack from issue 10: a client registers under a connected agent's
// name, listing that agent's running attempt, and reports a forged result.
TEST_F(CoreTest, AnotherInstanceOfAConnectedAgentIsRefusedAndTakesNothingOver) {
  auto [c1, a1] = Connect("a1", 1);
  v1::Job job = Submit(kDiamond);
  auto as = a1->TakeAssignments();
  ASSERT_EQ(as.size(), 1u);
  v1::HeldAttempt held;
  held.set_task_id(as[0].task_id());
  held.set_attempt_id(as[0].attempt_id());
  for (const std::string& secret : {std::string("forged"), std::string()}) {
    SCOPED_TRACE(secret);
    auto [ci, intruder] = Connect("a1", 1, {held}, secret);
    EXPECT_TRUE(absl::IsAlreadyExists(intruder->closed)) << intruder->closed;
    EXPECT_TRUE(intruder->sent.empty()) << "no registered, ack or assignment";
    Result(ci, as[0], 0, "FORGED");  // on a refused stream: ignored
    core_->OnAgentGone(ci);
  }
  EXPECT_TRUE(a1->closed.ok()) << "the holder is not kicked";
  EXPECT_EQ(StateOf(job.id(), as[0].task_id()), v1::TASK_STATE_ASSIGNED);
  Result(c1, as[0], 0, "real");
  EXPECT_EQ(StateOf(job.id(), as[0].task_id()), v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(core_->GetJob(job.id())->tasks(0).attempts(), 1);
}

// The holder's stream ended: another instance takes the name, and what it
// does not list is re-queued as for any agent coming back without it.
TEST_F(CoreTest, AnotherInstanceTakesTheNameOnceTheHolderIsGone) {
  auto [c1, a1] = Connect("a1", 1);
  v1::Job job = Submit(kDiamond);
  auto as = a1->TakeAssignments();
  ASSERT_EQ(as.size(), 1u);
  core_->OnAgentGone(c1);
  auto [c2, standby] = Connect("a1", 1, {}, "another instance");
  EXPECT_TRUE(standby->closed.ok()) << standby->closed;
  auto next = standby->TakeAssignments();
  ASSERT_EQ(next.size(), 1u) << "the re-queued attempt goes to the new instance";
  EXPECT_EQ(next[0].task_id(), as[0].task_id());
  EXPECT_GT(next[0].attempt_id(), as[0].attempt_id());
}

TEST_F(CoreTest, FailureSkipsDependantsAndFailsJob) {
  auto [conn, agent] = Connect("a1", 1);
  v1::Job job = Submit(kDiamond);
  auto as = agent->TakeAssignments();
  ASSERT_EQ(as.size(), 1u);
  Result(conn, as[0], 2);
  EXPECT_EQ(StateOf(job.id(), job.id() + "/a"), v1::TASK_STATE_FAILED);
  auto j = *core_->GetJob(job.id());
  EXPECT_EQ(j.tasks(1).state(), v1::TASK_STATE_SKIPPED);
  EXPECT_EQ(j.tasks(1).reason(), "skipped: dependency failed");
  EXPECT_EQ(j.tasks(2).state(), v1::TASK_STATE_SKIPPED);
  EXPECT_EQ(j.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(j.tasks(0).reason(), "exit code 2");
}

TEST_F(CoreTest, IndependentTasksGoToBothAgents) {
  auto [c1, a1] = Connect("a1", 2);
  auto [c2, a2] = Connect("a2", 2);
  Submit(kMatrix);
  EXPECT_EQ(a1->TakeAssignments().size(), 1u);
  EXPECT_EQ(a2->TakeAssignments().size(), 1u);
}

TEST_F(CoreTest, RetriesUseANewAttempt) {
  auto [conn, agent] = Connect("a1", 1);
  v1::Job job = Submit("stages:\n  - name: flaky\n    retries: 1\n    exec: [x]\n");
  auto first = agent->TakeAssignments();
  ASSERT_EQ(first.size(), 1u);
  Result(conn, first[0], 1);
  auto second = agent->TakeAssignments();
  ASSERT_EQ(second.size(), 1u);
  EXPECT_GT(second[0].attempt_id(), first[0].attempt_id());
  Result(conn, second[0], 0);
  EXPECT_EQ(core_->GetJob(job.id())->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(core_->GetJob(job.id())->tasks(0).attempts(), 2);
}

TEST_F(CoreTest, ALostAttemptDoesNotUseUpARetry) {
  auto [c1, a1] = Connect("a1", 1);
  v1::Job job = Submit("stages:\n  - name: flaky\n    retries: 1\n    exec: [x]\n");
  ASSERT_EQ(a1->TakeAssignments().size(), 1u);
  core_->OnAgentGone(c1);
  clock_.Advance(absl::Seconds(16));
  auto [c2, a2] = Connect("a2", 1);
  core_->Tick();
  auto second = a2->TakeAssignments();
  ASSERT_EQ(second.size(), 1u);
  Result(c2, second[0], 1);  // the first real failure: the one retry is still there
  auto third = a2->TakeAssignments();
  ASSERT_EQ(third.size(), 1u);
  EXPECT_EQ(StateOf(job.id(), third[0].task_id()), v1::TASK_STATE_ASSIGNED);
  Result(c2, third[0], 1);
  EXPECT_EQ(StateOf(job.id(), third[0].task_id()), v1::TASK_STATE_FAILED);
}

TEST_F(CoreTest, CancelRunningTaskAsksAgentThenEndsCancelled) {
  auto [conn, agent] = Connect("a1", 1);
  v1::Job job = Submit(kDiamond);
  auto as = agent->TakeAssignments();
  ASSERT_EQ(as.size(), 1u);
  auto resp = core_->Cancel(job.id());
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->cancelled_size(), 3);
  EXPECT_TRUE(agent->SawCancel(as[0].task_id(), as[0].attempt_id()));
  EXPECT_EQ(StateOf(job.id(), job.id() + "/b"), v1::TASK_STATE_CANCELLED);
  EXPECT_EQ(core_->GetJob(job.id())->state(), v1::JOB_STATE_RUNNING);  // a still running
  v1::AgentMessage r;
  r.mutable_result()->set_task_id(as[0].task_id());
  r.mutable_result()->set_attempt_id(as[0].attempt_id());
  r.mutable_result()->set_cancelled(true);
  r.mutable_result()->set_exit_code(-1);
  core_->OnAgentMessage(conn, r);
  EXPECT_EQ(StateOf(job.id(), as[0].task_id()), v1::TASK_STATE_CANCELLED);
  EXPECT_EQ(core_->GetJob(job.id())->state(), v1::JOB_STATE_CANCELLED);
}

TEST_F(CoreTest, LostAgentsTasksAreRequeuedAndLateResultIsRefused) {
  auto [c1, a1] = Connect("a1", 1);
  v1::Job job = Submit(kDiamond);
  auto first = a1->TakeAssignments();
  ASSERT_EQ(first.size(), 1u);
  core_->OnAgentGone(c1);
  auto [c2, a2] = Connect("a2", 1);
  core_->Tick();
  EXPECT_TRUE(a2->TakeAssignments().empty());  // still within the lost timeout
  clock_.Advance(absl::Seconds(16));
  v1::AgentMessage beat;
  beat.mutable_heartbeat();
  core_->OnAgentMessage(c2, beat);  // a2 is alive; a1 has been away past the lost timeout
  core_->Tick();
  auto second = a2->TakeAssignments();
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].task_id(), first[0].task_id());
  EXPECT_GT(second[0].attempt_id(), first[0].attempt_id());
  // The old agent returns with its finished attempt: refused and told to stop.
  v1::HeldAttempt held;
  held.set_task_id(first[0].task_id());
  held.set_attempt_id(first[0].attempt_id());
  held.set_finished(true);
  auto [c3, a1again] = Connect("a1", 1, {held});
  EXPECT_TRUE(a1again->SawCancel(first[0].task_id(), first[0].attempt_id()));
  Result(c3, first[0], 0);  // even if it sends the result anyway
  EXPECT_EQ(StateOf(job.id(), first[0].task_id()), v1::TASK_STATE_ASSIGNED);
  Result(c2, second[0], 0);
  EXPECT_EQ(StateOf(job.id(), first[0].task_id()), v1::TASK_STATE_SUCCEEDED);
}

TEST_F(CoreTest, RestartKeepsStateAndAgentReattaches) {
  auto [c1, a1] = Connect("a1", 1);
  v1::Job job = Submit(kDiamond);
  auto as = a1->TakeAssignments();
  ASSERT_EQ(as.size(), 1u);
  v1::AgentMessage chunk;
  chunk.mutable_log()->set_task_id(as[0].task_id());
  chunk.mutable_log()->set_attempt_id(as[0].attempt_id());
  chunk.mutable_log()->set_data("first half;");
  core_->OnAgentMessage(c1, chunk);

  Open();  // a coordinator restart over the same database and logs
  auto j = core_->GetJob(job.id());
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->tasks(0).state(), v1::TASK_STATE_ASSIGNED);
  EXPECT_EQ(j->tasks(1).state(), v1::TASK_STATE_PENDING);

  v1::HeldAttempt held;
  held.set_task_id(as[0].task_id());
  held.set_attempt_id(as[0].attempt_id());
  auto [c2, again] = Connect("a1", 1, {held});
  bool acked = false;
  for (const auto& m : again->sent) {
    if (m.has_ack() && m.ack().resend() && m.ack().log_offset() == 11) acked = true;
  }
  EXPECT_TRUE(acked) << "agent not told where the stored log ends";
  chunk.mutable_log()->set_offset(11);
  chunk.mutable_log()->set_data("second half");
  core_->OnAgentMessage(c2, chunk);
  Result(c2, as[0], 0, "");
  EXPECT_EQ(StateOf(job.id(), as[0].task_id()), v1::TASK_STATE_SUCCEEDED);
  v1::GetLogRequest req;
  req.set_task_id(as[0].task_id());
  EXPECT_EQ(core_->GetLog(req)->data(), "first half;second half");
  // A new attempt id after restart never collides with an old one.
  auto next = again->TakeAssignments();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_GT(next[0].attempt_id(), as[0].attempt_id());
}

TEST_F(CoreTest, WatcherGetsSnapshotTransitionsLogsAndFinish) {
  auto [conn, agent] = Connect("a1", 1);
  v1::Job job = Submit("stages:\n  - name: one\n    exec: [x]\n");
  auto w = WatchWithLogs(job.id());
  ASSERT_NE(w, nullptr);
  auto as = agent->TakeAssignments();
  Result(conn, as[0], 0, "hello\n");
  ASSERT_TRUE(w->done);
  ASSERT_GE(w->events.size(), 4u);
  EXPECT_TRUE(w->events.front().has_snapshot());
  EXPECT_TRUE(w->events.back().has_finished());
  std::string logs;
  bool saw_running = false;
  for (const auto& e : w->events) {
    if (e.has_log()) logs += e.log().data();
    if (e.has_task() && e.task().state() == v1::TASK_STATE_RUNNING) saw_running = true;
  }
  EXPECT_EQ(logs, "hello\n");
  EXPECT_TRUE(saw_running);
}

TEST_F(CoreTest, WatcherGetsTheWholeLogOfARetry) {
  auto [conn, agent] = Connect("a1", 1);
  v1::Job job = Submit("stages:\n  - name: flaky\n    retries: 1\n    exec: [x]\n");
  auto w = WatchWithLogs(job.id());
  ASSERT_NE(w, nullptr);
  auto first = agent->TakeAssignments();
  Result(conn, first[0], 1, "attempt one\n");
  auto second = agent->TakeAssignments();
  ASSERT_EQ(second.size(), 1u);
  Result(conn, second[0], 0, "second\n");
  std::map<uint64_t, std::string> by_attempt;
  for (const auto& e : w->events) {
    if (e.has_log()) by_attempt[e.log().attempt_id()] += e.log().data();
  }
  EXPECT_EQ(by_attempt[first[0].attempt_id()], "attempt one\n");
  EXPECT_EQ(by_attempt[second[0].attempt_id()], "second\n");
}

// Issue 12: past --max-log-bytes a task's output is dropped after one marker
// line, the task goes on, and its result says truncated. Every chunk is
// acknowledged (the agent may forget dropped bytes), a reconnecting agent is
// asked for nothing more, and the result is taken though the log holds fewer
// bytes than the agent wrote.
// The contract a batching log store (PostgreSQL) relies on: the core makes
// the log bytes durable (LogStore::Flush) before any ack of them leaves, so
// an agent never forgets a byte the store could still lose, in a group of
// messages or alone.
// A store that cannot take what memory holds (here the log store's flush, as
// when PostgreSQL's connection is gone) stops the coordinator with exit 3 and
// the reason, as a lost lead does, not with an abort and a core dump: its
// supervisor restarts it and the restart recovers from the store.
TEST_F(CoreTest, AStoreThatFailsStopsTheCoordinatorWithExitThreeAndTheReason) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  track_flushes_ = true;
  Open();
  auto* logs = static_cast<FlushTrackingLogStore*>(logs_.get());
  logs->flush_status = absl::UnavailableError("server closed the connection unexpectedly");
  EXPECT_EXIT(Submit("stages:\n  - name: s\n    exec: [x]\n"), ::testing::ExitedWithCode(3),
              "the log store's flush failed: UNAVAILABLE: server closed the connection "
              "unexpectedly; exiting");
}

TEST_F(CoreTest, LogBytesAreFlushedBeforeTheyAreAcknowledged) {
  track_flushes_ = true;
  Open();
  auto* logs = static_cast<FlushTrackingLogStore*>(logs_.get());
  auto [conn, agent] = Connect("a1", 1);
  Submit("stages:\n  - name: s\n    exec: [x]\n");
  const v1::Assignment a = agent->TakeAssignments().at(0);
  auto log = [&, c = conn](uint64_t offset, const std::string& data) {
    v1::AgentMessage chunk;
    chunk.mutable_log()->set_task_id(a.task_id());
    chunk.mutable_log()->set_attempt_id(a.attempt_id());
    chunk.mutable_log()->set_offset(offset);
    chunk.mutable_log()->set_data(data);
    core_->OnAgentMessage(c, chunk);
  };
  auto check_acks = [&, ag = agent] {
    int acks = 0;
    for (const v1::CoordinatorMessage& m : ag->sent) {
      if (!m.has_ack()) continue;
      ++acks;
      EXPECT_LE(m.ack().log_offset(), logs->durable(a.task_id(), a.attempt_id()))
          << "acknowledged past what the store has made durable";
    }
    return acks;
  };
  log(0, "first line\n");
  EXPECT_EQ(check_acks(), 1);
  // A group (the loop's group commit): acks of every chunk wait for its end.
  core_->BeginGroup();
  log(11, "second\n");
  log(18, "third\n");
  core_->EndGroup();
  EXPECT_EQ(check_acks(), 3);
  EXPECT_EQ(logs->durable(a.task_id(), a.attempt_id()), 24u);
}

// Issue 19, pacing: while a watcher that keeps up has WatchHub::kPace of the
// task's log unwritten, the agent's log acks wait for its drain notice (its
// send window fills, and the task blocks on write instead of running ahead of
// the watcher); a watcher that stalls holds them until the next tick, and then
// no more.
TEST_F(CoreTest, AWatcherThatKeepsUpHoldsTheLogAcksAndAStalledOneOnlyUntilTheTick) {
  auto [conn, agent] = Connect("a1", 1);
  v1::Job job = Submit("stages:\n  - name: s\n    exec: [x]\n");
  auto w = WatchWithLogs(job.id());
  ASSERT_NE(w, nullptr);
  w->count_unwritten = true;
  const v1::Assignment a = agent->TakeAssignments().at(0);
  v1::AgentMessage started;
  started.mutable_started()->set_task_id(a.task_id());
  started.mutable_started()->set_attempt_id(a.attempt_id());
  core_->OnAgentMessage(conn, started);
  uint64_t offset = 0;
  auto log = [&, c = conn] {
    v1::AgentMessage chunk;
    chunk.mutable_log()->set_task_id(a.task_id());
    chunk.mutable_log()->set_attempt_id(a.attempt_id());
    chunk.mutable_log()->set_offset(offset);
    chunk.mutable_log()->set_data(std::string(WatchHub::kPace, 'x'));
    offset += WatchHub::kPace;
    core_->OnAgentMessage(c, chunk);
  };
  auto acked = [ag = agent] {
    uint64_t upto = 0;
    for (const v1::CoordinatorMessage& m : ag->sent) {
      if (m.has_ack()) upto = std::max<uint64_t>(upto, m.ack().log_offset());
    }
    return upto;
  };
  log();
  EXPECT_EQ(acked(), 0u) << "acknowledged while the watcher has a MiB unwritten";
  // It writes it within milliseconds: the ack goes out.
  clock_.Advance(absl::Milliseconds(5));
  w->unwritten = 0;
  core_->WatcherDrained(1);
  EXPECT_EQ(acked(), WatchHub::kPace);
  // It stops reading: the next tick lets the ack go, and it holds no more.
  log();
  EXPECT_EQ(acked(), WatchHub::kPace);
  clock_.Advance(absl::Milliseconds(500));
  core_->Tick();
  EXPECT_EQ(acked(), 2 * WatchHub::kPace);
  log();
  EXPECT_EQ(acked(), 3 * WatchHub::kPace);
  EXPECT_EQ(w->Log().size(), 3 * WatchHub::kPace) << "every byte still reaches the watcher";
}

TEST_F(CoreTest, LogPastMaxLogBytesIsTruncatedAfterOneMarkerAndTheTaskGoesOn) {
  max_log_bytes_ = 10;
  Open();
  auto [conn, agent] = Connect("a1", 1);
  v1::Job job = Submit("stages:\n  - name: chatty\n    exec: [x]\n");
  auto w = WatchWithLogs(job.id());
  ASSERT_NE(w, nullptr);
  const v1::Assignment a = agent->TakeAssignments().at(0);
  v1::AgentMessage started;
  started.mutable_started()->set_task_id(a.task_id());
  started.mutable_started()->set_attempt_id(a.attempt_id());
  core_->OnAgentMessage(conn, started);
  auto log = [&, c = conn](uint64_t offset, const std::string& data) {
    v1::AgentMessage chunk;
    chunk.mutable_log()->set_task_id(a.task_id());
    chunk.mutable_log()->set_attempt_id(a.attempt_id());
    chunk.mutable_log()->set_offset(offset);
    chunk.mutable_log()->set_data(data);
    core_->OnAgentMessage(c, chunk);
  };
  auto last_ack = [&, ag = agent] {
    for (auto it = ag->sent.rbegin(); it != ag->sent.rend(); ++it) {
      if (it->has_ack()) return it->ack();
    }
    return v1::Ack();
  };
  log(0, "0123456");
  EXPECT_FALSE(core_->GetJob(job.id())->tasks(0).log_truncated());
  log(7, "789abcdef\n");  // crosses the limit: 3 bytes kept, then the marker
  EXPECT_EQ(last_ack().log_offset(), 17u);
  log(17, "more output\n");  // dropped, acknowledged
  EXPECT_EQ(last_ack().log_offset(), 29u);
  const std::string marker =
      "\n[musafarm] log truncated at 10 bytes (the coordinator's --max-log-bytes); further output "
      "dropped\n";
  v1::GetLogRequest get;
  get.set_task_id(a.task_id());
  absl::StatusOr<v1::GetLogResponse> stored = core_->GetLog(get);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->data(), "0123456789" + marker);
  EXPECT_TRUE(stored->truncated());
  const v1::Task running = core_->GetJob(job.id())->tasks(0);
  EXPECT_TRUE(running.log_truncated());
  EXPECT_EQ(running.state(), v1::TASK_STATE_RUNNING);
  std::string watched;
  for (const auto& e : w->events) {
    if (e.has_log()) watched += e.log().data();
  }
  EXPECT_EQ(watched, "0123456789" + marker);

  // The agent reconnects holding the attempt: it is asked for nothing more.
  v1::HeldAttempt held;
  held.set_task_id(a.task_id());
  held.set_attempt_id(a.attempt_id());
  auto [conn2, agent2] = Connect("a1", 1, {held});
  v1::Ack resend;
  for (const auto& m : agent2->sent) {
    if (m.has_ack()) resend = m.ack();
  }
  EXPECT_TRUE(resend.resend());
  EXPECT_EQ(resend.log_offset(), std::numeric_limits<uint64_t>::max());

  v1::AgentMessage r;
  r.mutable_result()->set_task_id(a.task_id());
  r.mutable_result()->set_attempt_id(a.attempt_id());
  r.mutable_result()->set_log_size(29);
  core_->OnAgentMessage(conn2, r);
  const v1::Task done = core_->GetJob(job.id())->tasks(0);
  EXPECT_EQ(done.state(), v1::TASK_STATE_SUCCEEDED);
  EXPECT_TRUE(done.log_truncated());
  EXPECT_EQ(done.log_size(), 10 + marker.size());

  // It survives a restart: the flag is part of the stored task.
  Open();
  EXPECT_TRUE(core_->GetJob(job.id())->tasks(0).log_truncated());
}

TEST_F(CoreTest, ArtifactsAndFailingTestCountsComeWithTheResult) {
  auto [conn, agent] = Connect("a1", 1);
  v1::Job job = Submit("stages:\n  - name: t\n    exec: [x]\n");
  auto as = agent->TakeAssignments();
  ASSERT_EQ(as.size(), 1u);
  v1::AgentMessage r;
  v1::AttemptResult* result = r.mutable_result();
  result->set_task_id(as[0].task_id());
  result->set_attempt_id(as[0].attempt_id());
  result->set_exit_code(0);
  result->mutable_tests()->set_passed(10);
  result->mutable_tests()->set_failed(2);
  result->mutable_tests()->add_failed_tests("tests/a.py::test_b");
  v1::Artifact* artifact = result->add_artifacts();
  artifact->set_name("ut_output.txt");
  artifact->set_source("/home/ut_output.txt");
  artifact->set_size(6);
  // The result arrives before the artifact's bytes: refused, resend asked.
  core_->OnAgentMessage(conn, r);
  EXPECT_EQ(StateOf(job.id(), as[0].task_id()), v1::TASK_STATE_ASSIGNED);
  bool resend = false;
  for (const auto& m : agent->sent) resend = resend || (m.has_ack() && m.ack().resend());
  EXPECT_TRUE(resend);
  v1::AgentMessage chunk;
  chunk.mutable_artifact()->set_task_id(as[0].task_id());
  chunk.mutable_artifact()->set_attempt_id(as[0].attempt_id());
  chunk.mutable_artifact()->set_name("ut_output.txt");
  chunk.mutable_artifact()->set_data("passed");
  core_->OnAgentMessage(conn, chunk);
  core_->OnAgentMessage(conn, r);
  const v1::Job j = *core_->GetJob(job.id());
  EXPECT_EQ(j.tasks(0).state(), v1::TASK_STATE_FAILED);
  EXPECT_EQ(j.tasks(0).reason(), "2 failed, 0 errors of 12 tests");
  EXPECT_EQ(j.tasks(0).tests().failed_tests(0), "tests/a.py::test_b");
  ASSERT_EQ(j.tasks(0).artifacts_size(), 1);
  v1::GetArtifactRequest get;
  get.set_task_id(as[0].task_id());
  get.set_name("ut_output.txt");
  EXPECT_EQ(core_->GetArtifact(get)->data(), "passed");
  get.set_name("../../etc/passwd");
  EXPECT_TRUE(absl::IsNotFound(core_->GetArtifact(get).status()));
}

TEST_F(CoreTest, DrainStopsNewWork) {
  auto [conn, agent] = Connect("a1", 2);
  ASSERT_TRUE(core_->Drain("a1", false).ok());
  Submit(kMatrix);
  EXPECT_TRUE(agent->TakeAssignments().empty());
  EXPECT_EQ(core_->ListAgents()[0].state(), v1::AGENT_STATE_DRAINING);
  ASSERT_TRUE(core_->Drain("a1", true).ok());
  EXPECT_EQ(agent->TakeAssignments().size(), 2u);
  EXPECT_TRUE(absl::IsNotFound(core_->Drain("nobody", false).status()));
}

TEST_F(CoreTest, SilentAgentIsDisconnectedAndGetsNoMoreWork) {
  auto [conn, agent] = Connect("a1", 1);
  clock_.Advance(absl::Seconds(20));
  core_->Tick();
  EXPECT_TRUE(absl::IsUnavailable(agent->closed));
  EXPECT_EQ(core_->ListAgents()[0].state(), v1::AGENT_STATE_DISCONNECTED);
  // Its stream is still winding down: nothing is placed on it meanwhile.
  Submit(kMatrix);
  EXPECT_TRUE(agent->TakeAssignments().empty());
}

// The heartbeat interval each message on `conn` told, in order (registered, then paces), in ms.
std::vector<int64_t> IntervalsTold(const FakeConnection& conn) {
  std::vector<int64_t> out;
  for (const v1::CoordinatorMessage& m : conn.sent) {
    if (m.has_registered()) out.push_back(m.registered().heartbeat_interval_ms());
    if (m.has_pace()) out.push_back(m.pace().heartbeat_interval_ms());
  }
  return out;
}

// Past max_heartbeat_rate x interval agents the interval grows with the farm:
// a newcomer is told the longer one when it registers, the agents already
// connected hear of it (HeartbeatPace), and a silent agent is disconnected
// only past its own longer deadline (interval + 7 s of grace), then as before.
TEST_F(CoreTest, TheHeartbeatIntervalGrowsWithTheFarmAndEveryAgentIsTold) {
  max_heartbeat_rate_ = 1;  // 3 agents at 3 s; a fourth needs 4 s, and 5 s leaves room
  Open();
  std::vector<std::shared_ptr<FakeConnection>> early;
  for (const char* name : {"a0", "a1", "a2"}) early.push_back(Connect(name, 1).second);
  EXPECT_EQ(IntervalsTold(*early[0]), std::vector<int64_t>{3000});
  EXPECT_EQ(IntervalsTold(*early[2]), std::vector<int64_t>{3000});
  auto [conn, late] = Connect("a3", 1);
  EXPECT_EQ(IntervalsTold(*late), std::vector<int64_t>{5000});
  for (const auto& agent : early) {
    EXPECT_EQ(IntervalsTold(*agent), (std::vector<int64_t>{3000, 5000}));
  }

  clock_.Advance(absl::Seconds(11));  // past the configured 10 s, within 12 s
  core_->Tick();
  for (const v1::Agent& a : core_->ListAgents()) {
    EXPECT_EQ(a.state(), v1::AGENT_STATE_CONNECTED) << a.name();
  }
  clock_.Advance(absl::Seconds(2));
  core_->Tick();
  for (const v1::Agent& a : core_->ListAgents()) {
    EXPECT_EQ(a.state(), v1::AGENT_STATE_DISCONNECTED) << a.name();
  }
  EXPECT_TRUE(absl::IsUnavailable(late->closed));
}

// Scheduling runs when something placement reads changed, and only over what changed.
TEST_F(CoreTest, LogChunksAndHeartbeatsThatFreeNoSlotRunNoSchedulingPass) {
  auto [conn, agent] = Connect("a1", 1);
  Submit(kMatrix);  // two tasks, one slot: one runs, one waits
  std::vector<v1::Assignment> first = agent->TakeAssignments();
  ASSERT_EQ(first.size(), 1u);
  const v1::Assignment& a = first[0];
  v1::AgentMessage started;
  started.mutable_started()->set_task_id(a.task_id());
  started.mutable_started()->set_attempt_id(a.attempt_id());
  core_->OnAgentMessage(conn, started);

  const SchedulerStats before = core_->scheduler_stats();
  uint64_t offset = 0;
  for (int i = 0; i < 20; ++i) {
    v1::AgentMessage chunk;
    chunk.mutable_log()->set_task_id(a.task_id());
    chunk.mutable_log()->set_attempt_id(a.attempt_id());
    chunk.mutable_log()->set_offset(offset);
    chunk.mutable_log()->set_data(std::string(64 << 10, 'x'));
    offset += 64 << 10;
    core_->OnAgentMessage(conn, chunk);
    v1::AgentMessage beat;
    beat.mutable_heartbeat()->set_free_disk_bytes(1000 + i);
    core_->OnAgentMessage(conn, beat);
  }
  core_->Tick();
  EXPECT_EQ(core_->scheduler_stats().passes, before.passes);
  EXPECT_EQ(core_->scheduler_stats().tasks_examined, before.tasks_examined);
  EXPECT_TRUE(agent->TakeAssignments().empty());

  // The result frees the slot: now a pass runs and places the waiting task.
  v1::AgentMessage r;
  r.mutable_result()->set_task_id(a.task_id());
  r.mutable_result()->set_attempt_id(a.attempt_id());
  r.mutable_result()->set_log_size(offset);
  core_->OnAgentMessage(conn, r);
  EXPECT_GT(core_->scheduler_stats().passes, before.passes);
  EXPECT_EQ(agent->TakeAssignments().size(), 1u);
}

TEST_F(CoreTest, AFreedSlotExaminesOneRequirementClassNotEveryQueuedTask) {
  auto [conn, agent] = Connect("a1", 1);
  Submit(kMatrix);  // two plain tasks: one runs on a1, one waits
  std::vector<v1::Assignment> first = agent->TakeAssignments();
  ASSERT_EQ(first.size(), 1u);

  // 10,000 tasks that need a pool no agent has (ten jobs: a matrix holds at most 1024).
  std::string xs, ys;
  for (int i = 0; i < 40; ++i) absl::StrAppend(&xs, i == 0 ? "" : ", ", "\"", i, "\"");
  for (int i = 0; i < 25; ++i) absl::StrAppend(&ys, i == 0 ? "" : ", ", "\"", i, "\"");
  const std::string nowhere = absl::StrCat("name: nowhere\nmatrix:\n  x: [", xs, "]\n  y: [", ys,
                                           "]\nstages:\n  - name: s\n    labels: [pool=none]\n"
                                           "    exec: [\"true\"]\n");
  v1::Job big;
  for (int j = 0; j < 10; ++j) {
    const SchedulerStats before_submit = core_->scheduler_stats();
    big = Submit(nowhere.c_str());
    ASSERT_EQ(big.tasks_size(), 1000);
    // At most its first task was tried: when that fits nowhere, none does.
    EXPECT_LE(core_->scheduler_stats().tasks_examined - before_submit.tasks_examined, 1u);
  }
  EXPECT_TRUE(agent->TakeAssignments().empty());

  const SchedulerStats before = core_->scheduler_stats();
  Result(conn, first[0], 0);
  const uint64_t examined = core_->scheduler_stats().tasks_examined - before.tasks_examined;
  // The plain class (one waiting task) was examined; the pool=none class,
  // which a1 cannot take, was not.
  EXPECT_EQ(examined, 1u);
  EXPECT_EQ(agent->TakeAssignments().size(), 1u);
  EXPECT_EQ(StateOf(big.id(), big.tasks(0).id()), v1::TASK_STATE_QUEUED);
}

// 10,000 idle agents of another pool cost a pass nothing (issue 19): it looks
// only at the agents that would run the classes it places, and a new such
// agent is seen by the next pass.
TEST_F(CoreTest, APassLooksOnlyAtTheAgentsThatWouldRunTheClass) {
  for (int i = 0; i < 300; ++i) {
    v1::Register reg;
    reg.set_name(absl::StrCat("sim-", i));
    reg.set_slots(4);
    reg.add_labels("pool=sim");
    ConnectWith(reg);
  }
  v1::Register real;
  real.set_name("real");
  real.set_slots(1);
  real.add_labels("pool=real");
  auto [conn, agent] = ConnectWith(real);
  const v1::Job job = Submit(R"(
matrix:
  n: ["1", "2", "3"]
stages:
  - name: s
    labels: [pool=real]
    exec: ["true"]
)");
  std::vector<v1::Assignment> first = agent->TakeAssignments();
  ASSERT_EQ(first.size(), 1u);
  const v1::Job queued = *core_->GetJob(job.id());
  for (const v1::Task& t : queued.tasks()) {
    if (t.state() == v1::TASK_STATE_QUEUED) EXPECT_EQ(t.wait_reason(), "1 matching agent busy");
  }

  const SchedulerStats before = core_->scheduler_stats();
  Result(conn, first[0], 0);
  std::vector<v1::Assignment> second = agent->TakeAssignments();
  ASSERT_EQ(second.size(), 1u);
  EXPECT_GT(core_->scheduler_stats().passes, before.passes);
  // Only `real` was looked at; before, every pass built a view of all 301.
  EXPECT_LE(core_->scheduler_stats().agents_viewed - before.agents_viewed,
            core_->scheduler_stats().passes - before.passes);

  // Another pool=real agent registers: the next pass sees it.
  real.set_name("real-2");
  auto [conn2, agent2] = ConnectWith(real);
  EXPECT_EQ(agent2->TakeAssignments().size(), 1u);
  const v1::Job placed = *core_->GetJob(job.id());
  for (const v1::Task& t : placed.tasks()) EXPECT_NE(t.state(), v1::TASK_STATE_QUEUED) << t.id();
  // And a class no agent would run names what is missing.
  const v1::Job nowhere = Submit("stages:\n  - name: s\n    labels: [pool=none]\n    exec: [x]\n");
  EXPECT_EQ(core_->GetJob(nowhere.id())->tasks(0).wait_reason(),
            "no connected agent with label pool=none");
}

TEST_F(CoreTest, AnAgentTakingWorkAgainRunsAPassThatPlacesOnIt) {
  auto [conn, agent] = Connect("a1", 1);
  v1::AgentMessage busy;
  busy.mutable_heartbeat()->set_unavailable_reason("disk nearly full");
  core_->OnAgentMessage(conn, busy);
  const v1::Job job = Submit("stages:\n  - name: one\n    exec: [x]\n");
  EXPECT_TRUE(agent->TakeAssignments().empty());

  const SchedulerStats before = core_->scheduler_stats();
  core_->OnAgentMessage(conn, busy);  // the same reason: nothing changed
  EXPECT_EQ(core_->scheduler_stats().passes, before.passes);
  v1::AgentMessage free;
  free.mutable_heartbeat();  // no reason: it takes work again
  core_->OnAgentMessage(conn, free);
  EXPECT_EQ(core_->scheduler_stats().passes, before.passes + 1);
  EXPECT_EQ(agent->TakeAssignments().size(), 1u);
  EXPECT_EQ(StateOf(job.id(), job.tasks(0).id()), v1::TASK_STATE_ASSIGNED);
}

TEST_F(CoreTest, StreamThatNeverRegistersIsClosed) {
  auto conn = std::make_shared<FakeConnection>();
  core_->OnAgentConnected(conn);
  clock_.Advance(absl::Seconds(20));
  core_->Tick();
  EXPECT_TRUE(absl::IsDeadlineExceeded(conn->closed));
}

}  // namespace
}  // namespace musafarm::coordinator

namespace musafarm::coordinator {
namespace {

class CoreGpuSecretTest : public CoreTest {
 protected:
  std::pair<Core::ConnId, std::shared_ptr<FakeConnection>> ConnectGpus(const std::string& name,
                                                                       int slots, int gpus) {
    auto conn = std::make_shared<FakeConnection>();
    Core::ConnId id = core_->OnAgentConnected(conn);
    v1::AgentMessage msg;
    msg.mutable_register_()->set_name(name);
    msg.mutable_register_()->set_slots(slots);
    msg.mutable_register_()->mutable_capabilities()->set_gpus(gpus);
    msg.mutable_register_()->mutable_capabilities()->set_gpu_vendor("mthreads");
    core_->OnAgentMessage(id, msg);
    return {id, conn};
  }
};

constexpr char kGpuJob[] = R"(
secrets: [TOKEN, OTHER]
matrix:
  n: ["1", "2", "3"]
stages:
  - name: test
    gpus: 1
    secrets: [TOKEN]
    exec: [x]
)";

TEST_F(CoreGpuSecretTest, GpuTasksGetDistinctGpusAndOnlyTheirSecrets) {
  auto [conn, agent] = ConnectGpus("gpu-host", 8, 2);
  v1::SubmitRequest req;
  req.set_spec_yaml(kGpuJob);
  req.set_spec_file("gpu.yaml");
  (*req.mutable_secrets())["TOKEN"] = "tok-value";
  (*req.mutable_secrets())["OTHER"] = "other-value";
  auto job = core_->Submit(req);
  ASSERT_TRUE(job.ok()) << job.status();
  // The job shows secret names, never values.
  EXPECT_EQ(job->DebugString().find("tok-value"), std::string::npos);
  EXPECT_EQ(job->secrets_size(), 2);

  // Two GPUs: two of the three tasks start, on GPUs 0 and 1, despite 8 slots.
  auto first = agent->TakeAssignments();
  ASSERT_EQ(first.size(), 2u);
  std::set<int> gpus;
  for (const auto& a : first) {
    ASSERT_EQ(a.gpu_ids_size(), 1);
    gpus.insert(a.gpu_ids(0));
    EXPECT_EQ(a.secrets().size(), 1u);
    EXPECT_EQ(a.secrets().at("TOKEN"), "tok-value");
  }
  EXPECT_EQ(gpus, (std::set<int>{0, 1}));
  EXPECT_EQ(core_->ListAgents()[0].free_gpus(), 0);

  // The GPU of a finished task goes to the next one.
  Result(conn, first[1], 0);
  auto second = agent->TakeAssignments();
  ASSERT_EQ(second.size(), 1u);
  ASSERT_EQ(second[0].gpu_ids_size(), 1);
  EXPECT_EQ(second[0].gpu_ids(0), first[1].gpu_ids(0));

  // Secrets survive a coordinator restart while the job runs...
  Open();
  auto [conn2, agent2] = ConnectGpus("gpu-host", 8, 2);
  agent2->TakeAssignments();
  auto loaded = store_->LoadSecrets();
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ((*loaded)[job->id()].at("TOKEN"), "tok-value");
}

TEST_F(CoreGpuSecretTest, SecretsAreDroppedWhenTheJobEnds) {
  auto [conn, agent] = ConnectGpus("gpu-host", 8, 4);
  v1::SubmitRequest req;
  req.set_spec_yaml(kGpuJob);
  req.set_spec_file("gpu.yaml");
  (*req.mutable_secrets())["TOKEN"] = "tok-value";
  auto job = core_->Submit(req);
  ASSERT_TRUE(job.ok()) << job.status();
  for (const auto& a : agent->TakeAssignments()) Result(conn, a, 0);
  EXPECT_EQ(core_->GetJob(job->id())->state(), v1::JOB_STATE_SUCCEEDED);
  auto loaded = store_->LoadSecrets();
  ASSERT_TRUE(loaded.ok());
  EXPECT_TRUE(loaded->empty());
}

TEST_F(CoreGpuSecretTest, SecretErrorsNameTheSecretNotTheValue) {
  v1::SubmitRequest req;
  req.set_spec_yaml(kGpuJob);
  req.set_spec_file("gpu.yaml");
  (*req.mutable_secrets())["UNDECLARED"] = "very-secret-value";
  auto job = core_->Submit(req);
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(job.status().message().find("UNDECLARED"), std::string::npos);
  EXPECT_EQ(job.status().message().find("very-secret"), std::string::npos);
  (*req.mutable_secrets()).clear();
  (*req.mutable_secrets())["TOKEN"] = std::string(65 << 10, 'x');
  job = core_->Submit(req);
  ASSERT_FALSE(job.ok());
  EXPECT_NE(job.status().message().find("--secret TOKEN: value is"), std::string::npos);
}

}  // namespace
}  // namespace musafarm::coordinator

namespace musafarm::coordinator {
namespace {

TEST_F(CoreTest, HandedBackAttemptIsRequeuedWithoutUsingUpRetriesOrLostBudget) {
  auto [c1, a1] = Connect("a1", 1);
  v1::Job job = Submit("stages:\n  - name: long\n    exec: [x]\n");
  auto first = a1->TakeAssignments();
  ASSERT_EQ(first.size(), 1u);
  // A stopping agent first says it takes no new work, then hands back.
  v1::AgentMessage beat;
  beat.mutable_heartbeat()->set_unavailable_reason("shutting down");
  core_->OnAgentMessage(c1, beat);
  v1::AgentMessage back;
  back.mutable_hand_back()->set_task_id(first[0].task_id());
  back.mutable_hand_back()->set_attempt_id(first[0].attempt_id());
  back.mutable_hand_back()->set_reason("agent shutting down");
  core_->OnAgentMessage(c1, back);
  const v1::Task t = core_->GetJob(job.id())->tasks(0);
  EXPECT_EQ(t.state(), v1::TASK_STATE_QUEUED);
  EXPECT_EQ(t.lost_count(), 0);
  EXPECT_NE(t.reason().find("handed it back: agent shutting down"), std::string::npos) << t.reason();
  // The same agent does not get it again while it says it takes no work.
  EXPECT_TRUE(a1->TakeAssignments().empty());
  EXPECT_EQ(core_->ListAgents()[0].unavailable_reason(), "shutting down");
  auto [c2, a2] = Connect("a2", 1);
  auto second = a2->TakeAssignments();
  ASSERT_EQ(second.size(), 1u);
  EXPECT_GT(second[0].attempt_id(), first[0].attempt_id());
  // A second hand-back of the old attempt is fenced off.
  core_->OnAgentMessage(c1, back);
  EXPECT_EQ(StateOf(job.id(), first[0].task_id()), v1::TASK_STATE_ASSIGNED);
  Result(c2, second[0], 0);
  EXPECT_EQ(core_->GetJob(job.id())->state(), v1::JOB_STATE_SUCCEEDED);
}

}  // namespace
}  // namespace musafarm::coordinator

namespace musafarm::coordinator {
namespace {

std::vector<std::string> LastKeep(const FakeConnection& conn) {
  std::vector<std::string> last;
  bool seen = false;
  for (const auto& m : conn.sent) {
    if (m.has_keep_images()) {
      last.assign(m.keep_images().images().begin(), m.keep_images().images().end());
      seen = true;
    }
  }
  EXPECT_TRUE(seen) << "no KeepImages sent";
  return last;
}

TEST_F(CoreTest, AgentsLearnWhichImagesUnfinishedJobsNeed) {
  auto [c1, a1] = Connect("a1", 4);
  EXPECT_TRUE(LastKeep(*a1).empty());  // on register: nothing runs yet
  v1::Job job = Submit(R"(
stages:
  - name: base
    docker_build: {context: /ctx, tags: ["reg/base:1"]}
  - name: dev
    needs: [base]
    docker_build: {context: /ctx, build_args: {BASE_IMG: "reg/base:1"}, tags: ["reg/dev:1"]}
  - name: test
    needs: [dev]
    docker_run: {image: "reg/dev:1"}
)");
  EXPECT_EQ(LastKeep(*a1), (std::vector<std::string>{"reg/base:1", "reg/dev:1"}));
  // A late agent hears it on register; after the job the set is empty again.
  auto [c2, a2] = Connect("a2", 1);
  EXPECT_EQ(LastKeep(*a2), (std::vector<std::string>{"reg/base:1", "reg/dev:1"}));
  ASSERT_TRUE(core_->Cancel(job.id()).ok());
  for (const auto& a : a1->TakeAssignments()) Result(c1, a, 1);
  EXPECT_NE(core_->GetJob(job.id())->state(), v1::JOB_STATE_RUNNING);
  EXPECT_TRUE(LastKeep(*a2).empty());
}

}  // namespace
}  // namespace musafarm::coordinator

namespace musafarm::coordinator {
namespace {

TEST_F(CoreTest, AfterARestartAgentsGetTheGraceNotTheLostTimeout) {
  auto [c1, a1] = Connect("a1", 1);
  v1::Job job = Submit("stages:\n  - name: long\n    exec: [x]\n");
  auto as = a1->TakeAssignments();
  ASSERT_EQ(as.size(), 1u);
  Open();  // restart; the fixture's lost timeout is 15 s, the grace 30 s
  clock_.Advance(absl::Seconds(20));
  core_->Tick();
  EXPECT_EQ(StateOf(job.id(), as[0].task_id()), v1::TASK_STATE_ASSIGNED);
  clock_.Advance(absl::Seconds(11));
  core_->Tick();
  const v1::Task t = core_->GetJob(job.id())->tasks(0);
  EXPECT_EQ(t.state(), v1::TASK_STATE_QUEUED);
  EXPECT_EQ(t.lost_count(), 1);
}

}  // namespace
}  // namespace musafarm::coordinator

namespace musafarm::coordinator {
namespace {

TEST_F(CoreTest, WhatAShutDownAgentStillHoldsIsRequeuedAtTheNextTick) {
  auto [c1, a1] = Connect("a1", 1);
  v1::Job job = Submit("stages:\n  - name: one\n    exec: [x]\n");
  auto as = a1->TakeAssignments();
  ASSERT_EQ(as.size(), 1u);
  // The assignment crossed the agent's shutdown; it closes without handing back.
  v1::AgentMessage beat;
  beat.mutable_heartbeat()->set_unavailable_reason("shutting down");
  core_->OnAgentMessage(c1, beat);
  core_->OnAgentGone(c1);
  clock_.Advance(absl::Milliseconds(1));
  core_->Tick();
  EXPECT_EQ(StateOf(job.id(), as[0].task_id()), v1::TASK_STATE_QUEUED);

  // Any other disconnect waits for the lost timeout (15 s in this fixture).
  auto [c2, a2] = Connect("a2", 1);
  auto again = a2->TakeAssignments();
  ASSERT_EQ(again.size(), 1u);
  core_->OnAgentGone(c2);
  clock_.Advance(absl::Seconds(1));
  core_->Tick();
  EXPECT_EQ(StateOf(job.id(), as[0].task_id()), v1::TASK_STATE_ASSIGNED);
}

}  // namespace
}  // namespace musafarm::coordinator

namespace musafarm::coordinator {
namespace {

TEST_F(CoreTest, ACancelledAssignmentCrossingTheAgentsShutdownEndsCancelled) {
  auto [c1, a1] = Connect("a1", 1);
  v1::Job job = Submit("stages:\n  - name: one\n    exec: [x]\n");
  auto as = a1->TakeAssignments();
  ASSERT_EQ(as.size(), 1u);
  ASSERT_TRUE(core_->Cancel(as[0].task_id()).ok());  // asks the agent; still ASSIGNED
  EXPECT_EQ(StateOf(job.id(), as[0].task_id()), v1::TASK_STATE_ASSIGNED);
  v1::AgentMessage beat;
  beat.mutable_heartbeat()->set_unavailable_reason("shutting down");
  core_->OnAgentMessage(c1, beat);
  core_->OnAgentGone(c1);
  // Handed back by the shutdown with its cancel pending: it ends, it is not queued again.
  EXPECT_EQ(StateOf(job.id(), as[0].task_id()), v1::TASK_STATE_CANCELLED);
  EXPECT_EQ(core_->GetJob(job.id())->state(), v1::JOB_STATE_CANCELLED);
}

TEST_F(CoreTest, AHandBackDoesNotCountAgainstRetries) {
  auto [c1, a1] = Connect("a1", 1);
  v1::Job job = Submit("stages:\n  - name: flaky\n    retries: 1\n    exec: [x]\n");
  auto first = a1->TakeAssignments();
  ASSERT_EQ(first.size(), 1u);
  v1::AgentMessage back;
  back.mutable_hand_back()->set_task_id(first[0].task_id());
  back.mutable_hand_back()->set_attempt_id(first[0].attempt_id());
  back.mutable_hand_back()->set_reason("drain deadline passed");
  core_->OnAgentMessage(c1, back);
  auto second = a1->TakeAssignments();
  ASSERT_EQ(second.size(), 1u);
  Result(c1, second[0], 1);  // the first real failure: one retry left, placed again
  EXPECT_EQ(StateOf(job.id(), first[0].task_id()), v1::TASK_STATE_ASSIGNED);
  auto third = a1->TakeAssignments();
  ASSERT_EQ(third.size(), 1u);
  Result(c1, third[0], 1);
  EXPECT_EQ(StateOf(job.id(), first[0].task_id()), v1::TASK_STATE_FAILED);
}

TEST_F(CoreTest, ARunningTaskOfADrainingAgentSurvivesANetworkBlip) {
  auto [c1, a1] = Connect("a1", 1);
  v1::Job job = Submit("stages:\n  - name: long\n    exec: [x]\n");
  auto as = a1->TakeAssignments();
  ASSERT_EQ(as.size(), 1u);
  v1::AgentMessage started;
  started.mutable_started()->set_task_id(as[0].task_id());
  started.mutable_started()->set_attempt_id(as[0].attempt_id());
  core_->OnAgentMessage(c1, started);
  v1::AgentMessage beat;
  beat.mutable_heartbeat()->set_unavailable_reason("shutting down");
  core_->OnAgentMessage(c1, beat);
  core_->OnAgentGone(c1);  // a blip during a long drain
  clock_.Advance(absl::Seconds(1));
  core_->Tick();
  EXPECT_EQ(StateOf(job.id(), as[0].task_id()), v1::TASK_STATE_RUNNING);
  // It comes back within the lost timeout and re-attaches; the result counts.
  v1::HeldAttempt held;
  held.set_task_id(as[0].task_id());
  held.set_attempt_id(as[0].attempt_id());
  auto [c2, again] = Connect("a1", 1, {held});
  Result(c2, as[0], 0);
  EXPECT_EQ(core_->GetJob(job.id())->state(), v1::JOB_STATE_SUCCEEDED);
}

}  // namespace
}  // namespace musafarm::coordinator

namespace musafarm::coordinator {
namespace {

// Issue 9's protocol fields, read with their fallbacks (common/peer_compat.h):
// the old-agent side (text, names, bools) is what the tests above send.
TEST_F(CoreTest, ANewAgentsShuttingDownFieldIsReadWhateverTheText) {
  auto [c1, a1] = Connect("a1", 1);
  v1::Job job = Submit("stages:\n  - name: one\n    exec: [x]\n");
  auto as = a1->TakeAssignments();
  ASSERT_EQ(as.size(), 1u);
  v1::AgentMessage beat;
  beat.mutable_heartbeat()->set_unavailable_reason("stopping: SIGTERM");
  beat.mutable_heartbeat()->set_shutting_down(true);
  core_->OnAgentMessage(c1, beat);
  EXPECT_TRUE(core_->ListAgents()[0].shutting_down());
  core_->OnAgentGone(c1);
  clock_.Advance(absl::Milliseconds(1));
  core_->Tick();
  EXPECT_EQ(StateOf(job.id(), as[0].task_id()), v1::TASK_STATE_QUEUED);
}

TEST_F(CoreTest, StageKindsAreMatchedByTheEnumOrAnOldAgentsNames) {
  auto connect = [&](const std::string& name, std::vector<v1::StageKind> kinds,
                     std::vector<std::string> names) {
    auto conn = std::make_shared<FakeConnection>();
    Core::ConnId id = core_->OnAgentConnected(conn);
    v1::AgentMessage msg;
    msg.mutable_register_()->set_name(name);
    msg.mutable_register_()->set_slots(1);
    auto* caps = msg.mutable_register_()->mutable_capabilities();
    for (v1::StageKind k : kinds) caps->add_executor_kinds(k);
    for (const std::string& n : names) caps->add_executors(n);
    core_->OnAgentMessage(id, msg);
    return conn;
  };
  // The new agent's enum is read, not its names (which disagree here).
  auto new_agent = connect("new", {v1::STAGE_KIND_DOCKER_RUN}, {"exec"});
  auto old_agent = connect("old", {}, {"docker_build"});
  v1::Job job = Submit(R"(
stages:
  - name: build
    docker_build: {context: /ctx, tags: ["reg/base:1"]}
  - name: run
    docker_run: {image: "reg/dev:1"}
)");
  auto on_new = new_agent->TakeAssignments();
  auto on_old = old_agent->TakeAssignments();
  ASSERT_EQ(on_new.size(), 1u);
  ASSERT_EQ(on_old.size(), 1u);
  EXPECT_EQ(on_new[0].task_id(), job.id() + "/run");
  EXPECT_EQ(on_old[0].task_id(), job.id() + "/build");
  std::map<std::string, std::vector<int>> kinds;
  for (const v1::Agent& a : core_->ListAgents()) {
    kinds[a.name()].assign(a.executor_kinds().begin(), a.executor_kinds().end());
  }
  EXPECT_EQ(kinds["new"], (std::vector<int>{v1::STAGE_KIND_DOCKER_RUN}));
  EXPECT_EQ(kinds["old"], (std::vector<int>{v1::STAGE_KIND_DOCKER_BUILD}));
}

// Protocol versions (issue 16, item 2): the coordinator answers with its own
// and refuses an agent it cannot serve before believing anything it says.
TEST_F(CoreTest, RegistrationNamesTheProtocolAndRefusesOneItCannotServe) {
  v1::Register reg;
  reg.set_name("future");
  reg.set_slots(1);
  reg.set_protocol_version(99);
  auto [id, conn] = ConnectWith(reg);
  EXPECT_TRUE(absl::IsFailedPrecondition(conn->closed)) << conn->closed;
  EXPECT_EQ(conn->closed.message(), CheckAgentProtocol(99).message());
  EXPECT_TRUE(conn->sent.empty());
  EXPECT_TRUE(core_->ListAgents().empty());

  reg.set_protocol_version(0);  // an agent from before the field
  auto [old_id, old] = ConnectWith(reg);
  EXPECT_TRUE(old->closed.ok()) << old->closed;
  ASSERT_FALSE(old->sent.empty());
  ASSERT_TRUE(old->sent[0].has_registered());
  EXPECT_EQ(old->sent[0].registered().protocol_version(), kProtocolVersion);
}

// Why a task waits (issue 16, item 1).
constexpr char kBuildAndTest[] = R"(
stages:
  - name: base
    docker_build: {context: /ctx, tags: ["reg/base:1"]}
  - name: unit
    exec: ["true"]
  - name: more
    exec: ["true"]
)";

const v1::Task* TaskNamed(const v1::Job& job, const std::string& id) {
  for (const v1::Task& t : job.tasks()) {
    if (t.id() == id) return &t;
  }
  ADD_FAILURE() << "no task " << id;
  return nullptr;
}

void ExpectNoWaitReasonStored(Store& store) {
  absl::StatusOr<std::vector<v1::Job>> jobs = store.LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_FALSE(jobs->empty());
  for (const v1::Job& stored : *jobs) {
    for (const v1::Task& t : stored.tasks()) EXPECT_EQ(t.wait_reason(), "") << t.id();
  }
}

TEST_F(CoreTest, QueuedTasksSayWhyTheyWaitWithoutStoringIt) {
  auto [conn, agent] = Connect("a1", 1);  // exec only, one slot
  v1::Job job = Submit(kBuildAndTest);
  auto watcher = WatchWithLogs(job.id());
  ASSERT_NE(watcher, nullptr);
  ASSERT_EQ(agent->TakeAssignments().size(), 1u);  // unit
  v1::Job now = *core_->GetJob(job.id());
  EXPECT_EQ(TaskNamed(now, job.id() + "/base")->wait_reason(),
            "no connected agent runs docker_build");
  EXPECT_EQ(TaskNamed(now, job.id() + "/more")->wait_reason(), "1 matching agent busy");
  EXPECT_EQ(TaskNamed(now, job.id() + "/unit")->wait_reason(), "");
  // Memory only: the store never holds a wait reason.
  ExpectNoWaitReasonStored(*store_);

  // A docker agent that is draining changes the reason, and watchers hear it
  // although no task changed state.
  v1::Register reg;
  reg.set_name("d1");
  reg.set_slots(1);
  reg.mutable_capabilities()->add_executor_kinds(v1::STAGE_KIND_DOCKER_BUILD);
  auto [dconn, docker] = ConnectWith(reg);
  ASSERT_EQ(docker->TakeAssignments().size(), 1u);  // base, at once
  EXPECT_EQ(TaskNamed(*core_->GetJob(job.id()), job.id() + "/base")->wait_reason(), "");
  ASSERT_TRUE(core_->Drain("a1", false).ok());
  EXPECT_EQ(TaskNamed(*core_->GetJob(job.id()), job.id() + "/more")->wait_reason(),
            "1 matching agent draining");
  std::vector<std::string> heard;
  for (const v1::WatchEvent& e : watcher->events) {
    if (e.has_task() && e.task().id() == job.id() + "/more") heard.push_back(e.task().wait_reason());
  }
  EXPECT_EQ(heard.back(), "1 matching agent draining");
  ExpectNoWaitReasonStored(*store_);
}

// A reason follows the agents even when placement has nothing to try: the
// only matching agent's stream ends, and the queued task says so at once.
TEST_F(CoreTest, AWaitReasonFollowsAnAgentThatGoes) {
  auto [conn, agent] = Connect("a1", 1);
  v1::Job job = Submit("stages:\n  - name: one\n    exec: [x]\n  - name: two\n    exec: [x]\n");
  ASSERT_EQ(agent->TakeAssignments().size(), 1u);
  const std::string waiting = StateOf(job.id(), job.id() + "/one") == v1::TASK_STATE_QUEUED
                                  ? job.id() + "/one"
                                  : job.id() + "/two";
  EXPECT_EQ(TaskNamed(*core_->GetJob(job.id()), waiting)->wait_reason(), "1 matching agent busy");
  core_->OnAgentGone(conn);
  EXPECT_EQ(TaskNamed(*core_->GetJob(job.id()), waiting)->wait_reason(), "no connected agent");
}

TEST_F(CoreTest, SubmitWarnsOfTasksNoConnectedAgentCouldRunAndStrictRefuses) {
  v1::SubmitRequest req;
  req.set_spec_yaml(kBuildAndTest);
  req.set_spec_file("test.yaml");
  v1::Job nothing;
  EXPECT_EQ(core_->SubmitWarnings(nothing),
            (std::vector<std::string>{"no agent is connected: every task waits until one registers"}));
  Connect("a1", 1);
  req.set_strict(true);
  absl::StatusOr<v1::Job> refused = core_->Submit(req);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find("task 1/base: no connected agent runs docker_build"),
            std::string::npos)
      << refused.status();
  EXPECT_TRUE(store_->LoadJobs()->empty());
  EXPECT_TRUE(core_->ListJobs(Filter(10)).empty());

  req.set_strict(false);
  absl::StatusOr<v1::Job> job = core_->Submit(req);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(core_->SubmitWarnings(*job),
            (std::vector<std::string>{absl::StrCat("task ", job->id(),
                                                   "/base: no connected agent runs docker_build")}));
  // Busy is no reason to warn, nor to refuse.
  req.set_spec_yaml("stages:\n  - name: one\n    exec: [x]\n");
  req.set_strict(true);
  job = core_->Submit(req);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_TRUE(core_->SubmitWarnings(*job).empty());
}

// The agent policy (issue 10, point 4).
class CorePolicyTest : public CoreTest {
 protected:
  void UsePolicy(const std::string& yaml, bool insecure = false) {
    insecure_ = insecure;
    if (yaml.empty()) {
      policy_.reset();
    } else {
      absl::StatusOr<AgentPolicy> p = AgentPolicy::Parse(yaml, "policy.yaml");
      ASSERT_TRUE(p.ok()) << p.status();
      policy_ = *p;
    }
    Open();
  }
  // An agent that runs exec and docker_run stages.
  std::pair<Core::ConnId, std::shared_ptr<FakeConnection>> ConnectLabelled(
      const std::string& name, int slots, std::vector<std::string> labels) {
    v1::Register reg;
    reg.set_name(name);
    reg.set_slots(slots);
    reg.set_instance_secret("instance of " + name);
    for (const std::string& l : labels) reg.add_labels(l);
    reg.mutable_capabilities()->add_executor_kinds(v1::STAGE_KIND_EXEC);
    reg.mutable_capabilities()->add_executor_kinds(v1::STAGE_KIND_DOCKER_RUN);
    return ConnectWith(reg);
  }
  v1::Job SubmitWithSecret(const char* yaml) { return Submit(yaml, {{"TOKEN", "tok-value"}}); }
  static std::set<std::string> Ids(const std::vector<v1::Assignment>& as) {
    std::set<std::string> out;
    for (const auto& a : as) out.insert(a.task_id());
    return out;
  }
};

constexpr char kTrustedPolicy[] = R"(agents:
  - match: "trusted-*"
    labels: ["pool=*"]
    kinds: [exec, docker_run]
    privileged: true
    secrets: true
)";

constexpr char kNeedsTrust[] = R"(
secrets: [TOKEN]
stages:
  - name: secret
    labels: [pool=a]
    secrets: [TOKEN]
    exec: ["true"]
  - name: priv
    docker_run: {image: debian, privileged: true}
  - name: plain
    labels: [pool=a]
    exec: ["true"]
)";

TEST_F(CorePolicyTest, AnAgentMissingFromThePolicyGetsNoStageNeedingSecretsOrPrivilege) {
  UsePolicy(kTrustedPolicy);
  // The stranger declares the same label and has more free slots.
  auto [sconn, stranger] = ConnectLabelled("stranger", 4, {"pool=a"});
  auto [tconn, trusted] = ConnectLabelled("trusted-1", 1, {"pool=a"});
  const v1::Job job = SubmitWithSecret(kNeedsTrust);
  const std::string secret = job.id() + "/secret", priv = job.id() + "/priv";

  // The secret stage goes to the granted agent; the privileged one waits for
  // its only slot; the ordinary stage goes to the stranger.
  std::vector<v1::Assignment> on_trusted = trusted->TakeAssignments();
  ASSERT_EQ(Ids(on_trusted), std::set<std::string>{secret});
  EXPECT_EQ(on_trusted[0].secrets().at("TOKEN"), "tok-value");
  EXPECT_EQ(Ids(stranger->TakeAssignments()), std::set<std::string>{job.id() + "/plain"});
  EXPECT_EQ(StateOf(job.id(), priv), v1::TASK_STATE_QUEUED);

  // A freed slot on the stranger changes nothing; one on the trusted agent does.
  Result(tconn, on_trusted[0], 0);
  EXPECT_EQ(Ids(trusted->TakeAssignments()), std::set<std::string>{priv});
  EXPECT_TRUE(stranger->TakeAssignments().empty());

  // `musafarm agents` shows what each may do.
  std::map<std::string, v1::Agent> agents;
  for (const v1::Agent& a : core_->ListAgents()) agents[a.name()] = a;
  EXPECT_EQ(agents["stranger"].grants().rule(), "");
  EXPECT_FALSE(agents["stranger"].grants().secrets());
  EXPECT_EQ(agents["stranger"].trusted_labels_size(), 0);
  EXPECT_EQ(agents["stranger"].labels_size(), 1);  // declared, shown
  EXPECT_EQ(agents["trusted-1"].grants().rule(), "trusted-*");
  EXPECT_TRUE(agents["trusted-1"].grants().secrets());
  EXPECT_TRUE(agents["trusted-1"].grants().privileged());
  ASSERT_EQ(agents["trusted-1"].trusted_labels_size(), 1);
  EXPECT_EQ(agents["trusted-1"].trusted_labels(0), "pool=a");
}

TEST_F(CorePolicyTest, ADeclaredButUngrantedLabelAttractsNoStageNeedingTrustButAnOrdinaryOne) {
  // Granted secrets, but none of its labels is trusted.
  UsePolicy("agents:\n  - match: \"*\"\n    secrets: true\n");
  auto [conn, agent] = ConnectLabelled("a", 4, {"gpu"});
  const v1::Job job = SubmitWithSecret(R"(
secrets: [TOKEN]
stages:
  - name: secret
    labels: [gpu]
    secrets: [TOKEN]
    exec: ["true"]
  - name: plain
    labels: [gpu]
    exec: ["true"]
  - name: anywhere
    secrets: [TOKEN]
    exec: ["true"]
)");
  EXPECT_EQ(Ids(agent->TakeAssignments()),
            (std::set<std::string>{job.id() + "/plain", job.id() + "/anywhere"}));
  EXPECT_EQ(StateOf(job.id(), job.id() + "/secret"), v1::TASK_STATE_QUEUED);

  // The operator trusts the label and reloads (SIGHUP): placement runs again.
  absl::StatusOr<AgentPolicy> reloaded = AgentPolicy::Parse(
      "agents:\n  - match: \"*\"\n    secrets: true\n    labels: [gpu]\n", "policy.yaml");
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  core_->SetAgentPolicy(*reloaded);
  EXPECT_EQ(Ids(agent->TakeAssignments()), std::set<std::string>{job.id() + "/secret"});
  ASSERT_EQ(core_->ListAgents()[0].trusted_labels_size(), 1);
}

TEST_F(CorePolicyTest, WithoutAPolicyFileOnlyInsecureModeAllowsWhatNeedsTrust) {
  UsePolicy("", /*insecure=*/false);
  auto [conn, agent] = ConnectLabelled("a", 4, {"pool=a"});
  const v1::Job job = SubmitWithSecret(kNeedsTrust);
  EXPECT_EQ(Ids(agent->TakeAssignments()), std::set<std::string>{job.id() + "/plain"});
  EXPECT_EQ(StateOf(job.id(), job.id() + "/secret"), v1::TASK_STATE_QUEUED);
  EXPECT_EQ(StateOf(job.id(), job.id() + "/priv"), v1::TASK_STATE_QUEUED);
  EXPECT_FALSE(core_->ListAgents()[0].grants().secrets());

  // --insecure with no file: everything, as before issue 10. The queued tasks
  // survive the restart and go now (with `plain` again: this agent came back
  // without it).
  UsePolicy("", /*insecure=*/true);
  auto [conn2, agent2] = ConnectLabelled("a", 4, {"pool=a"});
  EXPECT_EQ(Ids(agent2->TakeAssignments()),
            (std::set<std::string>{job.id() + "/secret", job.id() + "/priv", job.id() + "/plain"}));
  EXPECT_TRUE(core_->ListAgents()[0].grants().secrets());
}

TEST_F(CorePolicyTest, AReloadThatTakesAGrantAwayStopsNewPlacementsOnly) {
  UsePolicy("agents:\n  - match: a\n    secrets: true\n");
  auto [conn, agent] = ConnectLabelled("a", 1, {});
  const v1::Job job = SubmitWithSecret(R"(
secrets: [TOKEN]
stages:
  - name: one
    secrets: [TOKEN]
    exec: ["true"]
  - name: two
    secrets: [TOKEN]
    exec: ["true"]
)");
  std::vector<v1::Assignment> first = agent->TakeAssignments();
  ASSERT_EQ(first.size(), 1u);
  core_->SetAgentPolicy(std::nullopt);  // file removed from the flags: TLS defaults
  // The running attempt stays and may finish; the next one is not placed.
  Result(conn, first[0], 0);
  EXPECT_EQ(StateOf(job.id(), first[0].task_id()), v1::TASK_STATE_SUCCEEDED);
  EXPECT_TRUE(agent->TakeAssignments().empty());
}

}  // namespace
}  // namespace musafarm::coordinator

namespace musafarm::coordinator {
namespace {

// Revocation (issue 10): the core asks its Enrollment whether a name is
// revoked at every Register, and RevokeAgent ends the live stream.
class CoreRevocationTest : public CoreTest {
 protected:
  void SetUp() override {
    CoreTest::SetUp();
    enrollment_ = std::make_unique<Enrollment>(store_.get(), &clock_, EnrollmentOptions{});
    ASSERT_TRUE(enrollment_->Load().ok());
    core_->set_enrollment(enrollment_.get());
  }
  std::unique_ptr<Enrollment> enrollment_;
};

TEST_F(CoreRevocationTest, RevokedAgentLosesItsStreamAndAttemptsAndIsRefusedAfter) {
  auto [c1, a1] = Connect("a1", 1);
  const v1::Job job = Submit(kDiamond);
  std::vector<v1::Assignment> as = a1->TakeAssignments();
  ASSERT_EQ(as.size(), 1u);

  absl::StatusOr<v1::RevokeAgentResponse> r = core_->RevokeAgent("a1");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->agent().revoked());
  EXPECT_TRUE(absl::IsUnauthenticated(a1->closed)) << a1->closed;
  EXPECT_NE(a1->closed.message().find("agent 'a1' was revoked"), std::string::npos) << a1->closed;
  // Its attempt is re-queued at once, not after the lost timeout.
  EXPECT_EQ(StateOf(job.id(), as[0].task_id()), v1::TASK_STATE_QUEUED);

  // Reconnecting with the same instance is refused, and gets no assignment.
  auto [c2, again] = Connect("a1", 1);
  EXPECT_TRUE(absl::IsUnauthenticated(again->closed)) << again->closed;
  EXPECT_TRUE(again->TakeAssignments().empty());
  // Another agent takes the work.
  auto [c3, a2] = Connect("a2", 1);
  EXPECT_EQ(a2->TakeAssignments().size(), 1u);

  // A restart keeps both the revocation and the agent's revoked flag.
  enrollment_.reset();
  Open();
  enrollment_ = std::make_unique<Enrollment>(store_.get(), &clock_, EnrollmentOptions{});
  ASSERT_TRUE(enrollment_->Load().ok());
  core_->set_enrollment(enrollment_.get());
  auto [c4, after] = Connect("a1", 1);
  EXPECT_TRUE(absl::IsUnauthenticated(after->closed)) << after->closed;
  bool listed = false;
  for (const v1::Agent& a : core_->ListAgents()) {
    if (a.name() == "a1") listed = a.revoked();
  }
  EXPECT_TRUE(listed);
}

TEST_F(CoreRevocationTest, RevokingANameNeverSeenIsNotFound) {
  EXPECT_TRUE(absl::IsNotFound(core_->RevokeAgent("typo").status()));
}

TEST_F(CorePolicyTest, ATaskThePolicyKeepsQueuedIsExplainedAtDebug) {
  UsePolicy(kTrustedPolicy);
  // Catch the scheduler's log at DEBUG for the length of the test.
  std::ostringstream out;
  auto log = GetLogger("scheduler");
  const spdlog::level::level_enum level = log->level();
  log->sinks().push_back(std::make_shared<spdlog::sinks::ostream_sink_st>(out));
  log->set_level(spdlog::level::debug);
  ConnectLabelled("stranger", 2, {"gpu"});
  ConnectLabelled("trusted-1", 2, {"gpu"});
  const v1::Job job = SubmitWithSecret(R"(
secrets: [TOKEN]
stages:
  - name: deploy
    labels: [gpu]
    secrets: [TOKEN]
    exec: ["true"]
)");
  log->sinks().pop_back();
  log->set_level(level);
  EXPECT_EQ(StateOf(job.id(), job.id() + "/deploy"), v1::TASK_STATE_QUEUED);
  EXPECT_NE(out.str().find(absl::StrCat("task=", job.id(),
                                        "/deploy stays queued: the agent policy refuses stranger "
                                        "(not granted: secrets), trusted-1 (labels not trusted)")),
            std::string::npos)
      << out.str();
}

// Host health (issue 16, item 3): an agent whose Docker daemon is down gets no
// docker stage but still exec stages; a fenced GPU is never handed out.
TEST_F(CoreGpuSecretTest, UnavailableKindsAndFencedGpusAreNotPlaced) {
  auto conn = std::make_shared<FakeConnection>();
  Core::ConnId id = core_->OnAgentConnected(conn);
  v1::AgentMessage reg;
  reg.mutable_register_()->set_name("host");
  reg.mutable_register_()->set_slots(8);
  auto* caps = reg.mutable_register_()->mutable_capabilities();
  caps->set_gpus(2);
  caps->set_gpu_vendor("mthreads");
  for (int k = v1::STAGE_KIND_EXEC; k <= v1::STAGE_KIND_DOCKER_PUSH; ++k) {
    caps->add_executor_kinds(static_cast<v1::StageKind>(k));
  }
  caps->add_unavailable_kinds(v1::STAGE_KIND_DOCKER_RUN);
  caps->set_kinds_unavailable_reason("docker daemon unreachable: gone");
  caps->add_fenced_gpus(1);
  caps->set_gpu_fence_reason("GPU 1: probe exit 1");
  core_->OnAgentMessage(id, reg);
  v1::Job job = Submit(R"(
matrix: {n: ["1", "2"]}
stages:
  - {name: run, docker_run: {image: "reg/dev:1"}}
  - {name: test, gpus: 1, exec: [x]}
)");
  auto first = conn->TakeAssignments();
  ASSERT_EQ(first.size(), 1u);  // one GPU task on GPU 0; no docker_run; GPU 1 fenced
  EXPECT_EQ(first[0].task_id(), job.id() + "/1/test");
  EXPECT_EQ(std::vector<int>(first[0].gpu_ids().begin(), first[0].gpu_ids().end()),
            std::vector<int>{0});
  EXPECT_EQ(core_->ListAgents()[0].free_gpus(), 0);
  EXPECT_EQ(core_->ListAgents()[0].kinds_unavailable_reason(), "docker daemon unreachable: gone");

  // The daemon is back and GPU 1 passes again: both placed at the heartbeat.
  v1::AgentMessage beat;
  beat.mutable_heartbeat()->set_sent_us(1);
  core_->OnAgentMessage(id, beat);
  auto second = conn->TakeAssignments();
  std::set<std::string> ids;
  for (const auto& a : second) ids.insert(a.task_id());
  EXPECT_EQ(ids, (std::set<std::string>{job.id() + "/1/run", job.id() + "/2/run",
                                        job.id() + "/2/test"}));
  for (const auto& a : second) {
    if (a.task_id() == job.id() + "/2/test") {
      EXPECT_EQ(std::vector<int>(a.gpu_ids().begin(), a.gpu_ids().end()), std::vector<int>{1});
    }
  }
}

// Issue 16, retention: a job that ends leaves memory; every read of it then
// comes from the store, and its id is never given again.
TEST_F(CoreTest, AFinishedJobLeavesMemoryAndIsReadFromTheStore) {
  auto [conn, agent] = Connect("a1", 1);
  v1::Job job = Submit(kDiamond);
  EXPECT_EQ(core_->jobs_held(), 1u);
  for (const char* stage : {"a", "b", "c"}) {
    auto as = agent->TakeAssignments();
    ASSERT_EQ(as.size(), 1u) << "stage " << stage;
    Result(conn, as[0], 0, std::string("log of ") + stage);
  }
  EXPECT_EQ(core_->jobs_held(), 0u);
  const uint64_t before = store_->archive().rows_read();
  absl::StatusOr<v1::Job> got = core_->GetJob(job.id());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->state(), v1::JOB_STATE_SUCCEEDED);
  ASSERT_EQ(got->tasks_size(), 3);
  EXPECT_EQ(got->tasks(1).log_size(), 8u);  // "log of b", from the log store
  EXPECT_GT(store_->archive().rows_read(), before) << "read from the store";
  v1::GetLogRequest req;
  req.set_task_id(job.id() + "/b");
  absl::StatusOr<v1::GetLogResponse> log = core_->GetLog(req);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ(log->data(), "log of b");
  EXPECT_TRUE(log->complete());
  req.set_task_id(job.id() + "/zz");
  EXPECT_TRUE(absl::IsNotFound(core_->GetLog(req).status()));
  EXPECT_EQ(*core_->OwnerOf(job.id() + "/a"), "");
  EXPECT_TRUE(absl::IsNotFound(core_->OwnerOf("99").status()));
  absl::StatusOr<v1::CancelResponse> cancel = core_->Cancel(job.id());
  ASSERT_TRUE(cancel.ok()) << cancel.status();
  EXPECT_EQ(cancel->cancelled_size(), 0);
  // Watching an ended job: the snapshot and `finished`, then the stream ends.
  auto w = WatchWithLogs(job.id());
  ASSERT_NE(w, nullptr);
  EXPECT_TRUE(w->done);
  EXPECT_TRUE(w->finished.ok()) << w->finished;
  ASSERT_FALSE(w->events.empty());
  EXPECT_TRUE(w->events.back().has_finished());
  EXPECT_EQ(w->Log(), "log of alog of blog of c");
  std::vector<v1::Job> listed = core_->ListJobs(Filter(10));
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].state(), v1::JOB_STATE_SUCCEEDED);
  // A restart loads nothing of it, and the next job gets the next id.
  Open();
  EXPECT_EQ(core_->jobs_held(), 0u);
  EXPECT_EQ(Submit(kDiamond).id(), "2");
  EXPECT_EQ(core_->jobs_held(), 1u);
  listed = core_->ListJobs(Filter(10));
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].id(), "2");
  EXPECT_EQ(listed[0].state(), v1::JOB_STATE_RUNNING);
}

// The acceptance point of issue 16, item 5: with 100,000 finished jobs in the
// store, startup reads only the unfinished ones' rows (counted by the store's
// hook), and listing the newest jobs reads only those.
TEST_F(CoreTest, StartupWithAHundredThousandFinishedJobsReadsOnlyUnfinishedRows) {
  constexpr int kFinished = 100'000;
  {
    // The bulk path: one mutation, one transaction (the gRPC API would take minutes).
    Mutation m;
    m.jobs.reserve(kFinished + 2);
    m.tasks.reserve(kFinished + 4);
    for (int i = 1; i <= kFinished + 2; ++i) {
      v1::Job job;
      job.set_id(absl::StrCat(i));
      job.set_name("history");
      const bool running = i > kFinished;
      job.set_state(running ? v1::JOB_STATE_RUNNING : v1::JOB_STATE_SUCCEEDED);
      job.set_created_us(i);
      if (!running) job.set_ended_us(i + 1);
      m.jobs.push_back(job);
      for (int t = 0; t < (running ? 2 : 1); ++t) {
        v1::Task& task = m.tasks.emplace_back();
        task.set_id(absl::StrCat(i, "/c/s", t));
        task.set_job_id(job.id());
        task.set_state(running ? v1::TASK_STATE_QUEUED : v1::TASK_STATE_SUCCEEDED);
        task.mutable_spec()->mutable_run()->mutable_exec()->add_argv("true");
      }
    }
    ASSERT_TRUE(store_->Commit(m).ok());
  }
  Open();  // a fresh store handle and core: rows_read counts from here
  EXPECT_EQ(store_->archive().rows_read(), 2u + 4u) << "2 unfinished jobs and their 4 tasks";
  EXPECT_EQ(core_->jobs_held(), 2u);
  const uint64_t before = store_->archive().rows_read();
  std::vector<v1::Job> newest = core_->ListJobs(Filter(20));
  ASSERT_EQ(newest.size(), 20u);
  EXPECT_EQ(newest[0].id(), absl::StrCat(kFinished + 2));
  EXPECT_EQ(newest[19].id(), absl::StrCat(kFinished - 17));
  EXPECT_EQ(store_->archive().rows_read() - before, 20u);
  absl::StatusOr<v1::Job> old = core_->GetJob("17");
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->state(), v1::JOB_STATE_SUCCEEDED);
  // The unfinished ones are back in the queue, and new ids follow the history.
  auto [conn, agent] = Connect("a1", 4);
  EXPECT_EQ(agent->TakeAssignments().size(), 4u);
  EXPECT_EQ(Submit(kDiamond).id(), absl::StrCat(kFinished + 3));
}

// Registry deletions the core asked for; the test decides when they finish.
class FakeImageDeleter : public ImageDeleter {
 public:
  void Delete(std::vector<std::string> images,
              std::function<void(std::vector<std::string>)> done) override {
    requests.push_back(images);
    pending = std::move(done);
  }
  std::vector<std::vector<std::string>> requests;
  std::function<void(std::vector<std::string>)> pending;
};

class FixedPins : public RetentionPins {
 public:
  std::set<std::string> PinnedJobs() override { return pinned; }
  std::set<std::string> pinned;
};

class CoreRetentionTest : public CoreTest {
 protected:
  void SetUp() override {
    retention_.max_age = absl::Hours(1);
    retention_.registries = {"reg:5000"};
    CoreTest::SetUp();
    core_->set_image_deleter(&deleter_);
    core_->set_retention_pins(&pins_);
  }
  // Runs a one-stage job that pushes `tags` (and logs "log of <id>") to its end.
  v1::Job RunPushing(Core::ConnId conn, FakeConnection& agent, const std::string& tags) {
    v1::Job job = Submit(absl::StrCat(R"(
stages:
  - name: build
    docker_build: {context: /ctx, push: true, tags: [)",
                                      tags, "]}\n")
                             .c_str());
    auto as = agent.TakeAssignments();
    EXPECT_EQ(as.size(), 1u);
    if (!as.empty()) Result(conn, as[0], 0, "log of " + job.id());
    return job;
  }
  // An agent that runs docker builds.
  std::pair<Core::ConnId, std::shared_ptr<FakeConnection>> Builder() {
    v1::Register reg;
    reg.set_name("builder");
    reg.set_slots(1);
    reg.set_instance_secret("builder");
    reg.mutable_capabilities()->add_executor_kinds(v1::STAGE_KIND_DOCKER_BUILD);
    return ConnectWith(reg);
  }
  bool LogFileExists(const std::string& job) {
    return std::filesystem::exists(dir_ / "logs" / job);
  }
  FakeImageDeleter deleter_;
  FixedPins pins_;
};

// A job retention deleted took its tasks' specs with it: a rerun says so.
TEST_F(CoreRetentionTest, RerunOfAnExpiredJobSaysRetentionDeletedIt) {
  const v1::Job job = Submit(kDiamond);
  ASSERT_TRUE(core_->Cancel(job.id()).ok());
  v1::RerunRequest rerun;
  rerun.set_job_id(job.id());
  clock_.Advance(absl::Hours(2));
  core_->RunRetention();
  ASSERT_EQ(core_->retention_stats().jobs_deleted, 1u);
  absl::StatusOr<v1::Job> again = core_->Rerun(rerun, "ann");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(again.status().message()),
              ::testing::HasSubstr("expired and deleted by retention with its tasks' specs"));
}

// The acceptance point of issue 16, item 5: expiry removes what it should
// (files, rows, registry tags) and nothing else.
TEST_F(CoreRetentionTest, ExpiryRemovesOldJobsFilesRowsAndUnsharedTagsAndNothingElse) {
  auto [conn, agent] = Builder();
  // 1 pushes a tag of its own, one 2 also pushes, and one outside the farm.
  v1::Job one = RunPushing(conn, *agent, R"("reg:5000/one:1", "reg:5000/shared:1", "harbor.example/x:1")");
  v1::Job two = RunPushing(conn, *agent, R"("reg:5000/shared:1")");
  v1::Job pinned = RunPushing(conn, *agent, R"("reg:5000/pinned:1")");
  pins_.pinned = {pinned.id()};
  clock_.Advance(absl::Minutes(50));
  v1::Job young = RunPushing(conn, *agent, R"("reg:5000/young:1")");
  // A running job (queued: no agent has its label) that runs the shared image.
  v1::Job running = Submit(R"(
stages:
  - name: test
    docker_run: {image: "reg:5000/shared:1"}
    labels: [nowhere]
)");
  ASSERT_TRUE(LogFileExists(one.id()));
  clock_.Advance(absl::Minutes(20));  // 1, 2 and the pinned one are 70 minutes old
  ASSERT_EQ(core_->GetJob(two.id())->state(), v1::JOB_STATE_SUCCEEDED);

  core_->RunRetention();
  EXPECT_EQ(core_->retention_stats().jobs_deleted, 2u);
  EXPECT_GT(core_->retention_stats().bytes_freed, 0u);
  for (const v1::Job& gone : {one, two}) {
    EXPECT_TRUE(absl::IsNotFound(core_->GetJob(gone.id()).status())) << gone.id();
    EXPECT_FALSE(LogFileExists(gone.id())) << gone.id();
    v1::GetLogRequest req;
    req.set_task_id(gone.id() + "/build");
    EXPECT_TRUE(absl::IsNotFound(core_->GetLog(req).status()));
  }
  for (const v1::Job& kept : {pinned, young, running}) {
    EXPECT_TRUE(core_->GetJob(kept.id()).ok()) << kept.id();
  }
  EXPECT_TRUE(LogFileExists(pinned.id()));
  EXPECT_TRUE(LogFileExists(young.id()));
  // one:1 goes; shared:1 waits while a running job uses it; harbor's is not
  // the farm's and is left alone.
  ASSERT_EQ(deleter_.requests.size(), 1u);
  EXPECT_EQ(deleter_.requests[0], (std::vector<std::string>{"reg:5000/one:1"}));
  deleter_.pending({"reg:5000/one:1"});
  EXPECT_EQ(core_->retention_stats().images_deleted, 1u);

  // The running job ends; unpinned, the pinned job goes too, with its tag.
  ASSERT_TRUE(core_->Cancel(running.id()).ok());
  pins_.pinned.clear();
  core_->RunRetention();
  EXPECT_TRUE(absl::IsNotFound(core_->GetJob(pinned.id()).status()));
  EXPECT_TRUE(core_->GetJob(young.id()).ok());
  ASSERT_EQ(deleter_.requests.size(), 2u);
  EXPECT_EQ(deleter_.requests[1],
            (std::vector<std::string>{"reg:5000/shared:1", "reg:5000/pinned:1"}));
  deleter_.pending({"reg:5000/pinned:1"});  // shared:1 failed: it stays queued
  core_->RunRetention();
  ASSERT_EQ(deleter_.requests.size(), 3u);
  EXPECT_EQ(deleter_.requests[2], (std::vector<std::string>{"reg:5000/shared:1"}));
  EXPECT_EQ(core_->retention_stats().jobs_deleted, 3u);
  // A restart keeps the queue, and ids are never given again.
  Open();
  EXPECT_EQ(Submit(kDiamond).id(), "6");
}

TEST_F(CoreRetentionTest, TheByteBudgetDeletesTheOldestFinishedJobsFirst) {
  retention_.max_age = absl::InfiniteDuration();
  retention_.max_bytes = 1;  // set below: one job's worth
  Open();
  auto [conn, agent] = Builder();
  std::vector<v1::Job> jobs;
  for (int i = 0; i < 3; ++i) {
    jobs.push_back(RunPushing(conn, *agent, R"("local/x:1")"));
    clock_.Advance(absl::Seconds(1));
  }
  const uint64_t each = core_->GetJob(jobs[2].id())->stored_bytes();
  ASSERT_GT(each, 0u);
  retention_.max_bytes = each + each / 2;
  Open();
  core_->RunRetention();
  EXPECT_EQ(core_->retention_stats().jobs_deleted, 2u);
  EXPECT_TRUE(absl::IsNotFound(core_->GetJob(jobs[0].id()).status()));
  EXPECT_TRUE(absl::IsNotFound(core_->GetJob(jobs[1].id()).status()));
  EXPECT_TRUE(core_->GetJob(jobs[2].id()).ok());
  core_->RunRetention();
  EXPECT_EQ(core_->retention_stats().jobs_deleted, 2u) << "under the budget now";
}

// Rerun (issue 16, item 4): a matrix of build -> test in two cells.
constexpr char kBuildTest[] = R"(
name: bt
secrets: [TOKEN]
matrix:
  python: ["3.8", "3.9"]
stages:
  - name: build
    exec: ["true"]
  - name: test
    needs: [build]
    secrets: [TOKEN]
    exec: ["true"]
)";

std::vector<std::string> TaskIds(const v1::Job& job) {
  std::vector<std::string> ids;
  for (const v1::Task& t : job.tasks()) ids.push_back(t.id());
  return ids;
}

v1::RerunRequest RerunOf(const std::string& id, bool failed_only,
                         std::map<std::string, std::string> secrets = {{"TOKEN", "tok"}}) {
  v1::RerunRequest r;
  r.set_job_id(id);
  r.set_failed_only(failed_only);
  r.mutable_secrets()->insert(secrets.begin(), secrets.end());
  return r;
}

TEST_F(CoreTest, RerunOfARunningJobIsRefusedAndOfAnUnknownOneIsNotFound) {
  const v1::Job job = Submit(kBuildTest, {{"TOKEN", "tok"}});
  absl::StatusOr<v1::Job> again = core_->Rerun(RerunOf(job.id(), false), "bob");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(again.status().message()),
              ::testing::HasSubstr("is still running: a rerun needs it ended"));
  again = core_->Rerun(RerunOf("99", false), "bob");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(again.status().message()),
              ::testing::HasSubstr("no job '99': never submitted here, or expired"));
  EXPECT_EQ(core_->ListJobs(Filter(10)).size(), 1u) << "nothing was created";
}

TEST_F(CoreTest, RerunNeedsTheJobsSecretsAgainAndNamesTheMissing) {
  const v1::Job job = Submit(kBuildTest, {{"TOKEN", "tok"}});
  ASSERT_TRUE(core_->Cancel(job.id()).ok());
  absl::StatusOr<v1::Job> again = core_->Rerun(RerunOf(job.id(), false, {}), "bob");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(again.status().message()),
              ::testing::HasSubstr("give them again (--secret TOKEN)"));
  again = core_->Rerun(RerunOf(job.id(), false, {{"TOKEN", "new-tok"}}), "bob");
  ASSERT_TRUE(again.ok()) << again.status();
  // The new job is the caller's, and its test gets the value given now.
  EXPECT_EQ(again->submitter(), "bob");
  EXPECT_EQ(again->rerun_of(), job.id());
  auto [conn, agent] = Connect("a1", 4);
  std::vector<v1::Assignment> as = agent->TakeAssignments();
  ASSERT_EQ(as.size(), 2u);  // the two builds
  for (const v1::Assignment& a : as) Result(conn, a, 0);
  as = agent->TakeAssignments();
  ASSERT_EQ(as.size(), 2u);  // the two tests
  EXPECT_EQ(as[0].secrets().at("TOKEN"), "new-tok");
}

TEST_F(CoreTest, RerunFailedKeepsWholeFailedCellsWithTheirBuilds) {
  const v1::Job job = Submit(kBuildTest, {{"TOKEN", "tok"}});
  auto [conn, agent] = Connect("a1", 4);
  for (const v1::Assignment& a : agent->TakeAssignments()) Result(conn, a, 0);  // builds
  for (const v1::Assignment& a : agent->TakeAssignments()) {
    Result(conn, a, a.task_id() == job.id() + "/3.9/test" ? 1 : 0);
  }
  ASSERT_EQ(core_->GetJob(job.id())->state(), v1::JOB_STATE_FAILED);

  absl::StatusOr<v1::Job> failed = core_->Rerun(RerunOf(job.id(), true), "ann");
  ASSERT_TRUE(failed.ok()) << failed.status();
  const std::string n = failed->id();
  EXPECT_NE(n, job.id());
  EXPECT_THAT(TaskIds(*failed), ::testing::ElementsAre(n + "/3.9/build", n + "/3.9/test"));
  EXPECT_EQ(failed->rerun_of(), job.id());
  // The build runs first again, then the test after it.
  std::vector<v1::Assignment> as = agent->TakeAssignments();
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].task_id(), n + "/3.9/build");
  Result(conn, as[0], 0);
  as = agent->TakeAssignments();
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].task_id(), n + "/3.9/test");
  Result(conn, as[0], 0);
  EXPECT_EQ(core_->GetJob(n)->state(), v1::JOB_STATE_SUCCEEDED);
  // Stored: rerun_of survives a restart.
  Open();
  EXPECT_EQ(core_->GetJob(n)->rerun_of(), job.id());

  // A plain rerun runs every cell; --failed of a job without failures is refused.
  absl::StatusOr<v1::Job> all = core_->Rerun(RerunOf(job.id(), false), "ann");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->tasks_size(), 4);
  absl::StatusOr<v1::Job> none = core_->Rerun(RerunOf(n, true), "ann");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
}

// A content store under `dir` (job inputs), or null after a test failure.
std::unique_ptr<LocalBlobStore> OpenBlobs(const store_testing::TempDir& dir, const std::string& db,
                                          Clock* clock) {
  absl::StatusOr<std::unique_ptr<LocalBlobStore>> opened =
      LocalBlobStore::Open({dir.File("blobs"), db, int64_t{1} << 30, clock});
  EXPECT_TRUE(opened.ok()) << opened.status();
  return opened.ok() ? *std::move(opened) : nullptr;
}

// Stores a tree of one file, `name` holding `bytes`; its root's digest.
v1::Digest PutTree(LocalBlobStore& blobs, const std::string& name, const std::string& bytes) {
  auto put = [&](const std::string& blob) {
    absl::StatusOr<std::unique_ptr<BlobUpload>> up = blobs.StartWrite(content::DigestOf(blob), 0);
    if (up.status().code() == absl::StatusCode::kAlreadyExists) return;
    ASSERT_TRUE(up.ok()) << up.status();
    ASSERT_TRUE((*up)->Append(blob).ok());
    ASSERT_TRUE((*up)->Finish().ok());
  };
  put(bytes);
  v1::Directory root;
  v1::FileNode* f = root.add_files();
  f->set_name(name);
  *f->mutable_digest() = content::DigestOf(bytes);
  const std::string root_blob = content::SerializeDirectory(root);
  put(root_blob);
  return content::DigestOf(root_blob);
}

TEST_F(CoreTest, RerunPinsTheInputsTreesForTheNewJob) {
  store_testing::TempDir blob_dir;
  std::unique_ptr<LocalBlobStore> blobs = OpenBlobs(blob_dir, (dir_ / "db").string(), &clock_);
  ASSERT_NE(blobs, nullptr);
  core_->set_blob_store(blobs.get());
  const v1::Digest root_tree = PutTree(*blobs, "main.cc", "int main() {}\n");
  v1::SubmitRequest req;
  req.set_spec_yaml(kDiamond);
  req.set_spec_file("test.yaml");
  v1::JobInput* in = req.add_inputs();
  in->set_name("src");
  *in->mutable_tree() = root_tree;
  absl::StatusOr<v1::Job> job = core_->Submit(req);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(core_->Cancel(job->id()).ok());
  absl::StatusOr<v1::Job> again = core_->Rerun(RerunOf(job->id(), false, {}), "ann");
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_EQ(again->inputs_size(), 1);
  EXPECT_EQ(again->inputs(0).tree().sha256(), root_tree.sha256());

  // The old job's pin goes (retention): the new job's keeps the tree.
  auto gc = [&] {
    clock_.Advance(absl::Hours(2));
    absl::StatusOr<BlobGcStats> stats = blobs->CollectGarbage(clock_.Now(), absl::Hours(1));
    EXPECT_TRUE(stats.ok()) << stats.status();
    return stats.ok() ? stats->deleted : -1;
  };
  ASSERT_TRUE(blobs->Unpin(job->id()).ok());
  EXPECT_EQ(gc(), 0);
  ASSERT_TRUE(core_->Cancel(again->id()).ok());
  ASSERT_TRUE(blobs->Unpin(again->id()).ok());
  EXPECT_EQ(gc(), 2);
  // Once the tree is gone a rerun says so, and creates nothing.
  const size_t jobs = core_->ListJobs(Filter(10)).size();
  absl::StatusOr<v1::Job> gone = core_->Rerun(RerunOf(job->id(), false, {}), "ann");
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(gone.status().message()),
              ::testing::HasSubstr("job " + job->id() + "'s input 'src'"));
  EXPECT_EQ(core_->ListJobs(Filter(10)).size(), jobs);
  core_->set_blob_store(nullptr);
}

// Issue 18: a cell whose recipe pins another git ref builds the tree of its
// own ref. The submission carries both uses (pipeline/input_uses.h); each
// cell's build is bound to its own, and the job records both. Without the
// per-cell use (a --context replaced the input for every cell) every cell
// builds the one tree.
TEST_F(CoreTest, EachCellBuildsTheTreeOfItsOwnGitRef) {
  store_testing::TempDir blob_dir;
  std::unique_ptr<LocalBlobStore> blobs = OpenBlobs(blob_dir, (dir_ / "db").string(), &clock_);
  ASSERT_NE(blobs, nullptr);
  core_->set_blob_store(blobs.get());
  auto tree = [&](const std::string& version) { return PutTree(*blobs, "VERSION", version); };
  const v1::Digest v1_tree = tree("v1\n");
  const v1::Digest v2_tree = tree("v2\n");
  v1::SubmitRequest req;
  req.set_spec_yaml(R"(name: p
matrix: {recipe: [old, new]}
params: {tag: v1, tag@recipe=new: v2}
inputs:
  src: {git: "git://127.0.0.1/src", ref: "${tag}"}
stages:
  - name: build
    docker_build: {context: input:src, tags: ["x:${recipe}"]}
)");
  req.set_spec_file("test.yaml");
  v1::JobInput* in = req.add_inputs();
  in->set_name("src");
  in->set_source("git://127.0.0.1/src#v1");
  *in->mutable_tree() = v1_tree;
  in = req.add_inputs();
  in->set_name("src@recipe=new");
  in->set_source("git://127.0.0.1/src#v2");
  *in->mutable_tree() = v2_tree;
  absl::StatusOr<v1::Job> job = core_->Submit(req);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_EQ(job->inputs_size(), 2);
  EXPECT_EQ(job->inputs(1).name(), "src@recipe=new");
  std::map<std::string, std::pair<std::string, std::string>> built;  // task -> (input, tree)
  for (const v1::Task& t : job->tasks()) {
    const v1::DockerBuildStage& b = t.spec().run().docker_build();
    built[t.id()] = {b.context_input(), b.context_tree().sha256()};
  }
  EXPECT_EQ(built[job->id() + "/old/build"], std::make_pair(std::string("src"), v1_tree.sha256()));
  EXPECT_EQ(built[job->id() + "/new/build"],
            std::make_pair(std::string("src@recipe=new"), v2_tree.sha256()));

  req.mutable_inputs()->RemoveLast();
  job = core_->Submit(req);
  ASSERT_TRUE(job.ok()) << job.status();
  for (const v1::Task& t : job->tasks()) {
    EXPECT_EQ(t.spec().run().docker_build().context_input(), "src") << t.id();
    EXPECT_EQ(t.spec().run().docker_build().context_tree().sha256(), v1_tree.sha256()) << t.id();
  }
  core_->set_blob_store(nullptr);
}

}  // namespace
}  // namespace musafarm::coordinator
