#include "coordinator/store_test_fixtures.h"

#include "absl/strings/str_cat.h"
#include "common/api_times.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/message_differencer.h"

namespace musafarm::coordinator::store_testing {

std::unique_ptr<Store> OpenSqliteOrFail(const std::string& path) {
  absl::StatusOr<std::unique_ptr<Store>> s = OpenSqliteStore(path);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *std::move(s) : nullptr;
}

using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Message;
using ::google::protobuf::Reflection;

::testing::AssertionResult ProtoEq(const Message& want, const Message& got) {
  std::string diff;
  google::protobuf::util::MessageDifferencer d;
  d.ReportDifferencesToString(&diff);
  if (d.Compare(want, got)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << diff;
}

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

v1::Task MakeTask(const std::string& job_id, const std::string& name, v1::TaskState state) {
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
  (*run->mutable_secret_forms())["MUSA_TOOLKITS_URL"].add_forms("base64");
  run->set_gpus(2);
  v1::TestSuite* suite = run->add_suites();
  suite->set_name("unit");
  suite->set_output("/home/ut_output.txt");
  suite->set_exit_status("/home/ut_exit_code.txt");
  suite->set_junit("/home/ut_junit.xml");
  (*run->mutable_secret_sources())["MUSA_TOOLKITS_URL"] =
      absl::StrCat("MUSA_TOOLKITS_URL@py=", cell);
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
  FillApiTimes(&t);  // the Timestamps beside the *_us fields, and the timeout Duration
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
  a.add_trusted_labels("gpu=s4000");
  a.mutable_grants()->set_rule("gpu-*");  // FillUnsetScalars fills the rest
  a.mutable_certificate_expire_time()->set_seconds(1'800'000'000);
  FillApiTimes(&a);
  FillUnsetScalars(&a);
  return a;
}

std::vector<std::string> TaskIds(const v1::Job& job) {
  std::vector<std::string> ids;
  for (const v1::Task& t : job.tasks()) ids.push_back(t.id());
  return ids;
}

}  // namespace musafarm::coordinator::store_testing
