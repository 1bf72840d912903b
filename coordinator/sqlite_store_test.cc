#include "coordinator/sqlite_store.h"

#include <sqlite3.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Message;
using ::google::protobuf::Reflection;
using ::testing::HasSubstr;

// A fresh directory under the test temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "store_test.XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << tmpl;
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A second, raw connection, for what the Store interface does not show: the
// schema version, the copied columns, locks.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) ADD_FAILURE() << sqlite3_errmsg(db_);
  }
  ~RawDb() { sqlite3_close(db_); }

  void Exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << (err ? err : "?");
    }
    sqlite3_free(err);
  }

  // Every row of `sql`, its columns as text joined by '|'.
  std::vector<std::string> Rows(const std::string& sql) {
    std::vector<std::string> rows;
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return rows;
    }
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      std::string row;
      for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
        const unsigned char* text = sqlite3_column_text(stmt, i);
        absl::StrAppend(&row, i ? "|" : "", text ? reinterpret_cast<const char*>(text) : "NULL");
      }
      rows.push_back(row);
    }
    sqlite3_finalize(stmt);
    return rows;
  }

  // The first column of the first row of `sql`, as bytes.
  std::string Blob(const std::string& sql) {
    std::string out;
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return out;
    }
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      const void* p = sqlite3_column_blob(stmt, 0);
      out.assign(static_cast<const char*>(p), p ? sqlite3_column_bytes(stmt, 0) : 0);
    } else {
      ADD_FAILURE() << sql << ": no row";
    }
    sqlite3_finalize(stmt);
    return out;
  }

  std::string One(const std::string& sql) {
    std::vector<std::string> rows = Rows(sql);
    return rows.empty() ? "<no rows>" : rows[0];
  }

 private:
  sqlite3* db_ = nullptr;
};

std::unique_ptr<Store> Open(const std::string& path) {
  absl::StatusOr<std::unique_ptr<Store>> store = OpenSqliteStore(path);
  if (!store.ok()) {
    ADD_FAILURE() << "OpenSqliteStore(" << path << "): " << store.status();
    return nullptr;
  }
  return *std::move(store);
}

::testing::AssertionResult ProtoEq(const Message& want, const Message& got) {
  std::string diff;
  google::protobuf::util::MessageDifferencer d;
  d.ReportDifferencesToString(&diff);
  if (d.Compare(want, got)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << diff;
}

// Gives every unset scalar field of `m`, recursively, a non-default value, and
// every empty repeated scalar one element. The fixtures below set their fields
// by hand for readable values; this covers fields added to the protos later, so
// that the round trips still check every field.
void FillUnsetScalars(Message* m) {
  const Reflection* r = m->GetReflection();
  const auto* desc = m->GetDescriptor();
  for (int i = 0; i < desc->field_count(); ++i) {
    const FieldDescriptor* f = desc->field(i);
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (f->is_repeated()) {
        for (int j = 0; j < r->FieldSize(*m, f); ++j) {
          FillUnsetScalars(r->MutableRepeatedMessage(m, f, j));
        }
      } else if (r->HasField(*m, f)) {
        FillUnsetScalars(r->MutableMessage(m, f));
      }
      continue;  // an unset message field is left to ExpectAllFieldsSet to report
    }
    if (f->real_containing_oneof() != nullptr) continue;
    if (f->is_repeated() ? r->FieldSize(*m, f) > 0 : r->HasField(*m, f)) continue;
    const int n = 100 + f->number();  // differs per field, so swapped columns would show
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        f->is_repeated() ? r->AddInt32(m, f, -n) : r->SetInt32(m, f, -n);
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        f->is_repeated() ? r->AddInt64(m, f, -n) : r->SetInt64(m, f, -n);
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        f->is_repeated() ? r->AddUInt32(m, f, n) : r->SetUInt32(m, f, n);
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        f->is_repeated() ? r->AddUInt64(m, f, n) : r->SetUInt64(m, f, n);
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        f->is_repeated() ? r->AddDouble(m, f, n + 0.5) : r->SetDouble(m, f, n + 0.5);
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        f->is_repeated() ? r->AddFloat(m, f, n + 0.5f) : r->SetFloat(m, f, n + 0.5f);
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        f->is_repeated() ? r->AddBool(m, f, true) : r->SetBool(m, f, true);
        break;
      case FieldDescriptor::CPPTYPE_ENUM: {
        const int last = f->enum_type()->value(f->enum_type()->value_count() - 1)->number();
        f->is_repeated() ? r->AddEnumValue(m, f, last) : r->SetEnumValue(m, f, last);
        break;
      }
      case FieldDescriptor::CPPTYPE_STRING: {
        const std::string v = absl::StrCat(f->name(), "-", n);
        f->is_repeated() ? r->AddString(m, f, v) : r->SetString(m, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        break;
    }
  }
}

// Fails unless every field of `m`, recursively, holds a non-default value (one
// member per oneof). A round trip of such a message checks every field, and a
// field added to the proto later fails here until the fixture sets it.
void ExpectAllFieldsSet(const Message& m, const std::string& where) {
  const Reflection* r = m.GetReflection();
  const auto* desc = m.GetDescriptor();
  for (int i = 0; i < desc->real_oneof_decl_count(); ++i) {  // real oneofs come first
    EXPECT_TRUE(r->HasOneof(m, desc->oneof_decl(i)))
        << where << "." << desc->oneof_decl(i)->name() << " unset";
  }
  for (int i = 0; i < desc->field_count(); ++i) {
    const FieldDescriptor* f = desc->field(i);
    const std::string name = where + "." + f->name();
    if (f->is_repeated()) {
      EXPECT_GT(r->FieldSize(m, f), 0) << name << " empty";
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        for (int j = 0; j < r->FieldSize(m, f); ++j) {
          ExpectAllFieldsSet(r->GetRepeatedMessage(m, f, j), absl::StrCat(name, "[", j, "]"));
        }
      }
      continue;
    }
    if (f->real_containing_oneof() != nullptr && !r->HasField(m, f)) continue;
    EXPECT_TRUE(r->HasField(m, f)) << name << " unset";
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && r->HasField(m, f)) {
      ExpectAllFieldsSet(r->GetMessage(m, f), name);
    }
  }
}

v1::Task MakeTask(const std::string& job_id, const std::string& name,
                  v1::TaskState state = v1::TASK_STATE_PENDING) {
  v1::Task t;
  t.set_id(absl::StrCat(job_id, "/", name));
  t.set_job_id(job_id);
  t.mutable_spec()->set_stage(name);
  t.set_state(state);
  return t;
}

v1::Job MakeJob(const std::string& id) {
  v1::Job j;
  j.set_id(id);
  j.set_name("pipeline " + id);
  j.set_state(v1::JOB_STATE_RUNNING);
  j.set_created_us(1000);
  return j;
}

// A task with every field set.
v1::Task FullTask(const std::string& job_id, const std::string& cell, const std::string& stage,
                  int n) {
  v1::Task t;
  t.set_id(absl::StrCat(job_id, "/", cell, "/", stage));
  t.set_job_id(job_id);
  v1::TaskSpec* spec = t.mutable_spec();
  spec->set_stage(stage);
  v1::MatrixValue* mv = spec->add_cell();
  mv->set_axis("py");
  mv->set_value(cell);
  spec->add_needs(absl::StrCat(job_id, "/", cell, "/setup"));
  v1::StageSpec* run = spec->mutable_run();
  run->mutable_exec()->add_argv("make");
  run->mutable_exec()->add_argv("-j8");
  run->mutable_exec()->set_shell(true);
  (*run->mutable_env())["CC"] = "clang";
  (*run->mutable_env())["PY"] = cell;
  run->set_timeout_seconds(3600);
  run->set_retries(2);
  run->add_labels("gpu=s4000");
  run->add_labels("docker");
  run->add_secrets("MUSA_TOOLKITS_URL");
  run->set_gpus(2);
  spec->set_display_name(absl::StrCat(stage, " (", cell, ")"));
  t.set_state(v1::TASK_STATE_FAILED);
  t.set_attempt_id((uint64_t{1} << 63) + n);  // above INT64_MAX: the column is signed
  t.set_attempts(3);
  t.set_agent("builder-" + std::to_string(n));
  t.set_exit_code(-9);
  t.set_reason("exit status 137");
  t.set_created_us(1'700'000'000'000'000 + n);
  t.set_started_us(1'700'000'000'100'000 + n);
  t.set_ended_us(1'700'000'000'200'000 + n);
  t.set_log_size(12345);
  t.set_cancel_requested_us(1'700'000'000'150'000);
  t.set_lost_count(1);
  v1::TestCounts* tests = t.mutable_tests();
  tests->set_passed(10);
  tests->set_failed(2);
  tests->set_skipped(1);
  tests->set_errors(1);
  tests->add_failed_tests("tests/test_ops.py::test_add");
  tests->add_passed_tests("tests/test_ops.py::test_mul");
  v1::Artifact* artifact = t.add_artifacts();
  artifact->set_name("ut_output.txt");
  artifact->set_source("/home/ut_output.txt");
  artifact->set_size(4096);
  t.add_gpu_ids(0);
  t.add_gpu_ids(3);
  FillUnsetScalars(&t);
  return t;
}

v1::Agent FullAgent(const std::string& name, int slots) {
  v1::Agent a;
  a.set_name(name);
  a.add_labels("os=linux");
  a.add_labels("gpu=s4000");
  a.set_slots(slots);
  a.set_used_slots(1);
  a.set_state(v1::AGENT_STATE_DRAINING);
  a.set_last_seen_us(1'700'000'000'000'000);
  a.add_running_tasks("7/dev-3.8/base");
  a.set_version("0.1.0");
  a.set_peer("ipv4:10.0.0.7:40000");
  a.add_executors("docker_build");
  a.set_gpu_vendor("mthreads");
  FillUnsetScalars(&a);
  return a;
}

TEST(SqliteStoreTest, SecretsLiveApartAndAreGoneFromTheFileWhenDropped) {
  const std::string dir = ::testing::TempDir() + "/secrets_store";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/farm.db";
  const std::string kSecret = "https://u:very-secret-token-81f2@dl.example/x.tar";
  {
    std::unique_ptr<Store> store = Open(path);
    ASSERT_NE(store, nullptr);
    Mutation m;
    m.jobs.push_back(MakeJob("7"));
    m.job_secrets.push_back({"7", {{"MUSA_TOOLKITS_URL", kSecret}, {"MCCL_URL", "m"}}});
    ASSERT_TRUE(store->Commit(m).ok());
    auto secrets = store->LoadSecrets();
    ASSERT_TRUE(secrets.ok()) << secrets.status();
    EXPECT_EQ((*secrets)["7"]["MUSA_TOOLKITS_URL"], kSecret);
    EXPECT_EQ((*secrets)["7"]["MCCL_URL"], "m");
    // Never inside a job row.
    auto jobs = store->LoadJobs();
    ASSERT_TRUE(jobs.ok());
    EXPECT_EQ(jobs->at(0).DebugString().find("very-secret"), std::string::npos);
  }
  {
    std::unique_ptr<Store> store = Open(path);  // survives a restart
    auto secrets = store->LoadSecrets();
    ASSERT_TRUE(secrets.ok());
    EXPECT_EQ((*secrets)["7"]["MUSA_TOOLKITS_URL"], kSecret);
    Mutation drop;
    drop.drop_secrets.push_back("7");
    ASSERT_TRUE(store->Commit(drop).ok());
    secrets = store->LoadSecrets();
    ASSERT_TRUE(secrets.ok());
    EXPECT_TRUE(secrets->empty());
    // Not in the database file, its WAL or anything else in the directory.
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      std::ifstream in(entry.path(), std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      EXPECT_EQ(bytes.find("very-secret-token"), std::string::npos) << entry.path();
    }
  }
}

std::vector<std::string> TaskIds(const v1::Job& job) {
  std::vector<std::string> ids;
  for (const v1::Task& t : job.tasks()) ids.push_back(t.id());
  return ids;
}

TEST(SqliteStoreTest, JobWithTasksRoundTripsEveryField) {
  std::unique_ptr<Store> store = Open(":memory:");
  ASSERT_NE(store, nullptr);

  v1::Job job;
  job.set_id("7");
  job.set_name("nightly");
  job.set_state(v1::JOB_STATE_FAILED);
  job.set_created_us(1'700'000'000'000'000);
  job.set_ended_us(1'700'000'000'900'000);
  job.set_pipeline_file("pipelines/nightly.yaml");
  job.add_axes("py");
  (*job.mutable_params())["tag"] = "nightly";
  job.add_secrets("MUSA_TOOLKITS_URL");
  *job.add_tasks() = FullTask("7", "3.8", "setup", 1);
  *job.add_tasks() = FullTask("7", "3.8", "base", 2);
  FillUnsetScalars(&job);
  ExpectAllFieldsSet(job, "job");

  // The job still carries its tasks in m.jobs, which Commit must ignore: each
  // task must come back once, from the tasks rows.
  Mutation m;
  m.jobs.push_back(job);
  m.tasks.assign(job.tasks().begin(), job.tasks().end());
  ASSERT_TRUE(store->Commit(m).ok());

  absl::StatusOr<std::vector<v1::Job>> jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_TRUE(ProtoEq(job, (*jobs)[0]));
}

TEST(SqliteStoreTest, UpsertKeepsInsertionOrderAndUpdates) {
  std::unique_ptr<Store> store = Open(":memory:");
  ASSERT_NE(store, nullptr);

  // Ids chosen so that neither id nor name order is insertion order.
  Mutation submit9;
  submit9.jobs = {MakeJob("9")};
  submit9.tasks = {MakeTask("9", "z"), MakeTask("9", "a"), MakeTask("9", "m")};
  ASSERT_TRUE(store->Commit(submit9).ok());
  Mutation submit10;
  submit10.jobs = {MakeJob("10")};
  submit10.tasks = {MakeTask("10", "b")};
  ASSERT_TRUE(store->Commit(submit10).ok());

  // Later: a task is added to job 9 after job 10 exists, and the first rows change.
  v1::Task z = MakeTask("9", "z", v1::TASK_STATE_RUNNING);
  z.set_attempt_id(4);
  z.set_agent("builder-1");
  v1::Job done9 = MakeJob("9");
  done9.set_state(v1::JOB_STATE_SUCCEEDED);
  done9.set_ended_us(2000);
  Mutation update;
  update.jobs = {done9};
  update.tasks = {MakeTask("9", "late"), z, MakeTask("9", "a", v1::TASK_STATE_QUEUED)};
  ASSERT_TRUE(store->Commit(update).ok());

  absl::StatusOr<std::vector<v1::Job>> jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 2u);
  const v1::Job& j9 = (*jobs)[0];
  EXPECT_EQ(j9.id(), "9");
  EXPECT_EQ(j9.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(j9.ended_us(), 2000);
  EXPECT_EQ(TaskIds(j9), (std::vector<std::string>{"9/z", "9/a", "9/m", "9/late"}));
  EXPECT_TRUE(ProtoEq(z, j9.tasks(0)));
  EXPECT_EQ(j9.tasks(1).state(), v1::TASK_STATE_QUEUED);
  EXPECT_EQ(j9.tasks(2).state(), v1::TASK_STATE_PENDING);
  EXPECT_EQ((*jobs)[1].id(), "10");
  EXPECT_EQ(TaskIds((*jobs)[1]), (std::vector<std::string>{"10/b"}));
}

TEST(SqliteStoreTest, CopiedColumnsFollowTheProto) {
  TempDir dir;
  const std::string path = dir.File("farm.db");
  std::unique_ptr<Store> store = Open(path);
  ASSERT_NE(store, nullptr);

  // The job arrives with its task embedded, as Mutation allows.
  Mutation submit;
  submit.jobs = {MakeJob("7")};
  *submit.jobs[0].add_tasks() = MakeTask("7", "base");
  submit.tasks = {MakeTask("7", "base")};
  ASSERT_TRUE(store->Commit(submit).ok());

  v1::Job job = MakeJob("7");
  job.set_name("renamed");
  job.set_state(v1::JOB_STATE_FAILED);
  job.set_ended_us(5000);
  v1::Task task = MakeTask("7", "base", v1::TASK_STATE_RUNNING);
  task.set_attempt_id(42);
  task.set_agent("builder-2");
  *job.add_tasks() = task;
  Mutation update;
  update.jobs = {job};
  update.tasks = {task};
  update.transitions = {
      {"7/base", 42, v1::TASK_STATE_ASSIGNED, v1::TASK_STATE_RUNNING, 4000, "started"}};
  ASSERT_TRUE(store->Commit(update).ok());

  RawDb raw(path);
  EXPECT_EQ(raw.One("SELECT name, state, created_us, ended_us FROM jobs WHERE id = '7'"),
            absl::StrCat("renamed|", v1::JOB_STATE_FAILED, "|1000|5000"));
  EXPECT_EQ(raw.One("SELECT job_id, state, attempt_id, agent FROM tasks WHERE id = '7/base'"),
            absl::StrCat("7|", v1::TASK_STATE_RUNNING, "|42|builder-2"));
  EXPECT_EQ(raw.One("SELECT task_id, attempt_id, from_state, to_state, at_us, reason "
                    "FROM transitions"),
            absl::StrCat("7/base|42|", v1::TASK_STATE_ASSIGNED, "|", v1::TASK_STATE_RUNNING,
                         "|4000|started"));
  EXPECT_EQ(raw.One("SELECT count(*) FROM tasks"), "1");

  // Tasks have rows of their own; the job's proto must not carry copies.
  v1::Job stored;
  ASSERT_TRUE(stored.ParseFromString(raw.Blob("SELECT proto FROM jobs WHERE id = '7'")));
  EXPECT_EQ(stored.tasks_size(), 0);
  EXPECT_EQ(stored.name(), "renamed");
}

TEST(SqliteStoreTest, TransitionsRoundTripOldestFirst) {
  std::unique_ptr<Store> store = Open(":memory:");
  ASSERT_NE(store, nullptr);
  Mutation submit;
  submit.jobs = {MakeJob("7")};
  submit.tasks = {MakeTask("7", "a"), MakeTask("7", "b")};
  ASSERT_TRUE(store->Commit(submit).ok());

  const uint64_t big = (uint64_t{1} << 63) + 1;  // stored in a signed column
  const std::vector<Transition> a = {
      {"7/a", 0, v1::TASK_STATE_PENDING, v1::TASK_STATE_QUEUED, 300, "ready"},
      {"7/a", big, v1::TASK_STATE_QUEUED, v1::TASK_STATE_ASSIGNED, 200, "agent builder-1"},
      {"7/a", big, v1::TASK_STATE_ASSIGNED, v1::TASK_STATE_QUEUED, 100, "agent lost"},
  };
  // Interleaved with another task's, over two commits, and with timestamps
  // running backwards: order must come from insertion, not from at_us.
  Mutation m1;
  m1.transitions = {
      a[0], {"7/b", 1, v1::TASK_STATE_PENDING, v1::TASK_STATE_SKIPPED, 1, "dep"}, a[1]};
  ASSERT_TRUE(store->Commit(m1).ok());
  Mutation m2;
  m2.transitions = {a[2]};
  ASSERT_TRUE(store->Commit(m2).ok());

  absl::StatusOr<std::vector<Transition>> got = store->LoadTransitions("7/a");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ((*got)[i].task_id, a[i].task_id);
    EXPECT_EQ((*got)[i].attempt_id, a[i].attempt_id);
    EXPECT_EQ((*got)[i].from, a[i].from);
    EXPECT_EQ((*got)[i].to, a[i].to);
    EXPECT_EQ((*got)[i].at_us, a[i].at_us);
    EXPECT_EQ((*got)[i].reason, a[i].reason);
  }

  absl::StatusOr<std::vector<Transition>> b = store->LoadTransitions("7/b");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->size(), 1u);
  absl::StatusOr<std::vector<Transition>> none = store->LoadTransitions("7/nope");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
}

TEST(SqliteStoreTest, AgentsRoundTripByName) {
  std::unique_ptr<Store> store = Open(":memory:");
  ASSERT_NE(store, nullptr);
  Mutation m;
  m.agents = {FullAgent("zeta", 1), FullAgent("alpha", 2), FullAgent("mid", 3)};
  ExpectAllFieldsSet(m.agents[0], "agent");
  ASSERT_TRUE(store->Commit(m).ok());

  v1::Agent alpha = FullAgent("alpha", 8);
  alpha.set_state(v1::AGENT_STATE_DISCONNECTED);
  alpha.clear_running_tasks();
  Mutation update;
  update.agents = {alpha};
  ASSERT_TRUE(store->Commit(update).ok());

  absl::StatusOr<std::vector<v1::Agent>> agents = store->LoadAgents();
  ASSERT_TRUE(agents.ok()) << agents.status();
  ASSERT_EQ(agents->size(), 3u);
  EXPECT_TRUE(ProtoEq(alpha, (*agents)[0]));
  EXPECT_TRUE(ProtoEq(FullAgent("mid", 3), (*agents)[1]));
  EXPECT_TRUE(ProtoEq(FullAgent("zeta", 1), (*agents)[2]));
}

TEST(SqliteStoreTest, FailedMutationLeavesNothingBehind) {
  std::unique_ptr<Store> store = Open(":memory:");
  ASSERT_NE(store, nullptr);
  Mutation before;
  before.jobs = {MakeJob("1")};
  before.tasks = {MakeTask("1", "a", v1::TASK_STATE_QUEUED)};
  ASSERT_TRUE(store->Commit(before).ok());

  // Each kind of row is written before the failing task, which names a job
  // that does not exist.
  Mutation bad;
  bad.jobs = {MakeJob("2")};
  bad.tasks = {MakeTask("2", "x"), MakeTask("1", "a", v1::TASK_STATE_RUNNING),
               MakeTask("404", "orphan")};
  bad.transitions = {{"1/a", 1, v1::TASK_STATE_QUEUED, v1::TASK_STATE_RUNNING, 10, "go"}};
  bad.agents = {FullAgent("builder-1", 1)};
  absl::Status s = store->Commit(bad);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("store: insert task 404/orphan: FOREIGN KEY"));

  absl::StatusOr<std::vector<v1::Job>> jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].id(), "1");
  ASSERT_EQ((*jobs)[0].tasks_size(), 1);
  EXPECT_EQ((*jobs)[0].tasks(0).state(), v1::TASK_STATE_QUEUED);
  absl::StatusOr<std::vector<Transition>> transitions = store->LoadTransitions("1/a");
  ASSERT_TRUE(transitions.ok());
  EXPECT_TRUE(transitions->empty());
  absl::StatusOr<std::vector<v1::Agent>> agents = store->LoadAgents();
  ASSERT_TRUE(agents.ok());
  EXPECT_TRUE(agents->empty());

  // The failed transaction is closed: the same mutation without the orphan commits.
  bad.tasks.pop_back();
  ASSERT_TRUE(store->Commit(bad).ok());
  jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->size(), 2u);
}

TEST(SqliteStoreTest, RejectsEmptyIdsBeforeWriting) {
  std::unique_ptr<Store> store = Open(":memory:");
  ASSERT_NE(store, nullptr);
  Mutation m;
  m.jobs = {MakeJob("1")};
  m.tasks = {MakeTask("1", "a")};
  m.tasks.back().clear_id();
  EXPECT_EQ(store->Commit(m).code(), absl::StatusCode::kInvalidArgument);

  Mutation agent;
  agent.agents = {v1::Agent()};
  EXPECT_EQ(store->Commit(agent).code(), absl::StatusCode::kInvalidArgument);

  absl::StatusOr<std::vector<v1::Job>> jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok());
  EXPECT_TRUE(jobs->empty());
}

TEST(SqliteStoreTest, EmptyMutationTouchesNothing) {
  TempDir dir;
  const std::string path = dir.File("farm.db");
  std::unique_ptr<Store> store = Open(path);
  ASSERT_NE(store, nullptr);

  // Another connection holds the write lock. A no-op returns at once; a Commit
  // that began a transaction would wait out the busy timeout and then fail.
  RawDb other(path);
  other.Exec("BEGIN IMMEDIATE");
  EXPECT_TRUE(store->Commit(Mutation{}).ok());
  other.Exec("ROLLBACK");
}

TEST(SqliteStoreTest, SurvivesReopen) {
  TempDir dir;
  const std::string path = dir.File("farm.db");
  v1::Job job = MakeJob("7");
  *job.add_tasks() = FullTask("7", "3.8", "setup", 1);
  *job.add_tasks() = FullTask("7", "3.9", "setup", 2);
  const Transition t{"7/3.8/setup", 5, v1::TASK_STATE_RUNNING, v1::TASK_STATE_FAILED, 99, "oom"};
  const v1::Agent agent = FullAgent("builder-1", 4);
  {
    std::unique_ptr<Store> store = Open(path);
    ASSERT_NE(store, nullptr);
    Mutation m;
    m.jobs = {job};
    m.tasks.assign(job.tasks().begin(), job.tasks().end());
    m.transitions = {t};
    m.agents = {agent};
    ASSERT_TRUE(store->Commit(m).ok());
  }

  std::unique_ptr<Store> store = Open(path);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::vector<v1::Job>> jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_TRUE(ProtoEq(job, (*jobs)[0]));
  absl::StatusOr<std::vector<Transition>> transitions = store->LoadTransitions(t.task_id);
  ASSERT_TRUE(transitions.ok()) << transitions.status();
  ASSERT_EQ(transitions->size(), 1u);
  EXPECT_EQ((*transitions)[0].reason, "oom");
  EXPECT_EQ((*transitions)[0].to, v1::TASK_STATE_FAILED);
  absl::StatusOr<std::vector<v1::Agent>> agents = store->LoadAgents();
  ASSERT_TRUE(agents.ok()) << agents.status();
  ASSERT_EQ(agents->size(), 1u);
  EXPECT_TRUE(ProtoEq(agent, (*agents)[0]));
}

TEST(SqliteStoreTest, FileDatabaseUsesWal) {
  TempDir dir;
  const std::string path = dir.File("farm.db");
  std::unique_ptr<Store> store = Open(path);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(RawDb(path).One("PRAGMA journal_mode"), "wal");  // kept in the file
}

TEST(SqliteStoreTest, SchemaCreationIsIdempotent) {
  TempDir dir;
  const std::string path = dir.File("farm.db");
  Mutation m;
  m.jobs = {MakeJob("1")};
  m.tasks = {MakeTask("1", "a")};
  {
    std::unique_ptr<Store> first = Open(path);
    ASSERT_NE(first, nullptr);
    ASSERT_TRUE(first->Commit(m).ok());
    // A second open while the first is still open, then more after it closes.
    std::unique_ptr<Store> second = Open(path);
    ASSERT_NE(second, nullptr);
  }
  std::unique_ptr<Store> third = Open(path);
  ASSERT_NE(third, nullptr);
  absl::StatusOr<std::vector<v1::Job>> jobs = third->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].tasks_size(), 1);

  RawDb raw(path);
  EXPECT_EQ(raw.One("PRAGMA user_version"), std::to_string(kSqliteSchemaVersion));
  EXPECT_EQ(raw.Rows("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"),
            (std::vector<std::string>{"agents", "job_secrets", "jobs", "tasks", "transitions"}));
}

TEST(SqliteStoreTest, RefusesNewerSchemaVersion) {
  TempDir dir;
  const std::string path = dir.File("farm.db");
  ASSERT_NE(Open(path), nullptr);
  const int newer = kSqliteSchemaVersion + 1;
  RawDb(path).Exec(absl::StrCat("PRAGMA user_version = ", newer));

  absl::StatusOr<std::unique_ptr<Store>> store = OpenSqliteStore(path);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(path));
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr(absl::StrCat("schema version ", newer)));
  EXPECT_EQ(RawDb(path).One("PRAGMA user_version"), std::to_string(newer));  // left alone
}

TEST(SqliteStoreTest, UnopenablePathIsAClearError) {
  TempDir dir;
  const std::string missing = dir.File("no/such/dir/farm.db");
  absl::StatusOr<std::unique_ptr<Store>> store = OpenSqliteStore(missing);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(missing));

  // Opening succeeds lazily on a file that is not a database; reading it fails.
  const std::string junk = dir.File("junk.db");
  std::ofstream(junk) << std::string(4096, 'x');
  store = OpenSqliteStore(junk);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(junk));
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("not a database"));
}

}  // namespace
}  // namespace musafarm::coordinator
