// Wire compatibility of musafarm.v1 (docs/protocol.md, "Compatibility"):
// messages recorded before a change (tests/wire/golden/) decode with the
// current definitions to the same field values, and messages the current code
// builds decode with the frozen old definitions (tests/wire/old/) with the old
// fields intact.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/api_times.h"
#include "common/peer_compat.h"
#include "common/stage_kind.h"
#include "musafarm/v1/agent_service.pb.h"
#include "musafarm/v1/user_service.pb.h"
#include "musafarm/v1old/agent_service.pb.h"
#include "musafarm/v1old/user_service.pb.h"
#include "tests/wire/golden_messages.h"

namespace musafarm::wire {
namespace {

namespace fs = std::filesystem;
using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;
using google::protobuf::Message;
using google::protobuf::MessageFactory;
using google::protobuf::util::MessageDifferencer;

const fs::path kGoldenDir = MF_WIRE_GOLDEN_DIR;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The type named by a .txtpb's "# proto-message: T" header.
std::string HeaderType(const std::string& text) {
  const std::string prefix = "# proto-message: ";
  if (text.rfind(prefix, 0) != 0) return "";
  return text.substr(prefix.size(), text.find('\n') - prefix.size());
}

// A fresh message of a generated type (either package), or null.
std::unique_ptr<Message> NewMessage(const std::string& full_name) {
  // Types are found by name in the generated pool, which only holds the files
  // linked in: touch each current file (old ones are linked by the generator).
  v1::Job::descriptor();
  v1::AgentMessage::descriptor();
  v1::WatchEvent::descriptor();
  const Descriptor* d = DescriptorPool::generated_pool()->FindMessageTypeByName(full_name);
  if (d == nullptr) return nullptr;
  return std::unique_ptr<Message>(MessageFactory::generated_factory()->GetPrototype(d)->New());
}

// Where `m` (recursively) holds fields its type does not define: "" if nowhere.
std::string UnknownFieldPaths(const Message& m, const std::string& path = "") {
  std::string found;
  if (!m.GetReflection()->GetUnknownFields(m).empty()) found += (path.empty() ? "." : path) + " ";
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  m.GetReflection()->ListFields(m, &fields);
  for (const auto* f : fields) {
    if (f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    const std::string sub = path + "." + f->name();
    if (!f->is_repeated()) {
      found += UnknownFieldPaths(m.GetReflection()->GetMessage(m, f), sub);
      continue;
    }
    for (int i = 0; i < m.GetReflection()->FieldSize(m, f); ++i) {
      found += UnknownFieldPaths(m.GetReflection()->GetRepeatedMessage(m, f, i), sub);
    }
  }
  return found;
}

std::string OldName(const std::string& v1_name) {
  return "musafarm.v1old." + v1_name.substr(std::string("musafarm.v1.").size());
}

// The committed goldens by name ("AgentMessage.result"), from the .bin files.
std::set<std::string> CommittedNames() {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(kGoldenDir)) {
    if (entry.path().extension() == ".bin") names.insert(entry.path().stem().string());
  }
  return names;
}

// The generator (built with the frozen old definitions) still writes exactly
// the committed files: nobody edited a golden by hand or regenerated it from
// changed definitions.
TEST(WireGolden, CommittedFilesAreWhatTheGeneratorWrites) {
  std::set<std::string> generated;
  for (const auto& g : OldGoldenMessages()) {
    generated.insert(g.name);
    EXPECT_EQ(ReadFile(kGoldenDir / (g.name + ".bin")), DeterministicBytes(*g.message)) << g.name;
    EXPECT_EQ(ReadFile(kGoldenDir / (g.name + ".txtpb")), GoldenText(*g.message)) << g.name;
  }
  EXPECT_EQ(CommittedNames(), generated);
}

// Every golden decodes with the current definitions, every field of it is
// known (no unknown fields: nothing was renumbered away), and the decoded
// values are those the .txtpb shows.
TEST(WireGolden, EveryGoldenDecodesWithTheCurrentDefinitionsToTheSameValues) {
  const std::set<std::string> names = CommittedNames();
  ASSERT_FALSE(names.empty());
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    const std::string text = ReadFile(kGoldenDir / (name + ".txtpb"));
    const std::string type = HeaderType(text);
    ASSERT_EQ(type.rfind("musafarm.v1.", 0), 0u) << "header: " << type;
    std::unique_ptr<Message> decoded = NewMessage(type);
    ASSERT_NE(decoded, nullptr) << "no type " << type;
    ASSERT_TRUE(decoded->ParseFromString(ReadFile(kGoldenDir / (name + ".bin"))));

    std::unique_ptr<Message> expected(decoded->New());
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(text, expected.get()));
    ASSERT_TRUE(expected->ByteSizeLong() > 0 || name == "ListAgentsRequest.empty");

    std::string diff;
    MessageDifferencer differ;
    differ.ReportDifferencesToString(&diff);
    EXPECT_TRUE(differ.Compare(*expected, *decoded)) << diff;
    // An unknown field would mean a recorded field lost its definition.
    EXPECT_EQ(UnknownFieldPaths(*decoded), "");
  }
}

// The goldens cover the protocol: each kind of the three oneof envelopes, an
// assignment of each stage kind, and each request and response type of the
// user API. Checked against the old definitions, which the goldens record.
TEST(WireGolden, GoldensCoverEveryMessageKind) {
  std::set<std::string> covered;  // "Type" and "Type.kind"
  for (const auto& g : OldGoldenMessages()) {
    const Message& m = *g.message;
    covered.insert(m.GetDescriptor()->full_name());
    const Descriptor* d = m.GetDescriptor();
    for (int i = 0; i < d->oneof_decl_count(); ++i) {
      const auto* field = m.GetReflection()->GetOneofFieldDescriptor(m, d->oneof_decl(i));
      if (field != nullptr) covered.insert(d->full_name() + "." + field->name());
    }
    if (d == v1old::CoordinatorMessage::descriptor()) {
      const auto& as = static_cast<const v1old::CoordinatorMessage&>(m).assignment();
      const auto* kind = as.run().GetReflection()->GetOneofFieldDescriptor(
          as.run(), v1old::StageSpec::descriptor()->FindOneofByName("kind"));
      if (kind != nullptr) covered.insert("StageSpec." + kind->name());
    }
  }
  for (const Descriptor* envelope :
       {v1old::AgentMessage::descriptor(), v1old::CoordinatorMessage::descriptor(),
        v1old::WatchEvent::descriptor()}) {
    for (int i = 0; i < envelope->field_count(); ++i) {
      EXPECT_TRUE(covered.count(envelope->full_name() + "." + envelope->field(i)->name()))
          << envelope->full_name() << "." << envelope->field(i)->name();
    }
  }
  const auto* kinds = v1old::StageSpec::descriptor()->FindOneofByName("kind");
  for (int i = 0; i < kinds->field_count(); ++i) {
    EXPECT_TRUE(covered.count("StageSpec." + kinds->field(i)->name())) << kinds->field(i)->name();
  }
  const auto* service =
      DescriptorPool::generated_pool()->FindServiceByName("musafarm.v1old.UserService");
  ASSERT_NE(service, nullptr);
  for (int i = 0; i < service->method_count(); ++i) {
    EXPECT_TRUE(covered.count(service->method(i)->input_type()->full_name()))
        << service->method(i)->name() << " request";
    EXPECT_TRUE(covered.count(service->method(i)->output_type()->full_name()))
        << service->method(i)->name() << " response";
  }
}

// Issue 16's host health, as an agent whose Docker daemon is down and whose
// GPU 1 failed its probe sends it (and the coordinator shows it).
template <typename M>
void SetHostHealth(M* m) {
  m->add_unavailable_kinds(v1::STAGE_KIND_DOCKER_BUILD);
  m->add_unavailable_kinds(v1::STAGE_KIND_DOCKER_RUN);
  m->add_unavailable_kinds(v1::STAGE_KIND_DOCKER_PUSH);
  m->set_kinds_unavailable_reason("docker daemon unreachable: Cannot connect to the Docker daemon");
  m->add_fenced_gpus(1);
  m->set_gpu_fence_reason("GPU 1: `mthreads-gmi -q -i 1` exit 1");
}

// Sets, everywhere in `m`, the fields issues 9, 10 and 12 added, the way the new
// code fills them beside the old ones: the agent's outcome, shutting-down flag
// and executor kinds (peer_compat), its instance secret, the coordinator's
// Agent rows (with the agent policy's trusted labels and grants, and the
// agent's certificate identity and revocation), the agent list's insecure
// flag, a task's and a log page's truncated flags, an assignment's log limit and a
// result's dropped bytes (issue 12's
// --max-log-bytes), the job's submitter and the job list's user filter (issue
// 11), the user API's Timestamps (api_times), issue 16's host health, exec
// `collect` and the job's retention fields, and issue 18's run-stage test
// suites and a result's suite failure. Returns how many messages it changed.
int SetNewFields(Message* m) {
  int changed = 0;
  if (auto* r = dynamic_cast<v1::AttemptResult*>(m)) {
    r->set_outcome(LegacyOutcome(*r));
    // Issue 18: why the declared suites fail it (set only when they do).
    if (r->outcome() == v1::ATTEMPT_OUTCOME_FAILED) {
      r->set_suite_failure("suite unit: exited 139 (killed by signal 11) before printing a test "
                           "summary");
    }
    r->set_log_dropped_bytes(123456);  // issue 12: output the agent dropped past the limit
    ++changed;
  } else if (auto* as = dynamic_cast<v1::Assignment*>(m)) {
    as->set_max_log_bytes(uint64_t{1} << 30);  // issue 12: the coordinator's --max-log-bytes
    ++changed;
  } else if (auto* hb = dynamic_cast<v1::Heartbeat*>(m)) {
    hb->set_shutting_down(ShuttingDown(*hb));
    changed += hb->shutting_down() ? 1 : 0;
    SetHostHealth(hb);  // issue 16
    ++changed;
  } else if (auto* reg = dynamic_cast<v1::Register*>(m)) {
    reg->set_instance_secret(std::string(32, '\x5a'));
    ++changed;
  } else if (auto* caps = dynamic_cast<v1::Capabilities*>(m)) {
    caps->set_shutting_down(ShuttingDown(*caps));
    SetExecutorKinds(ExecutorKinds(*caps), caps);
    SetHostHealth(caps);
    ++changed;
  } else if (auto* agent = dynamic_cast<v1::Agent*>(m)) {
    for (const std::string& name : agent->executors()) {
      agent->add_executor_kinds(StageKindFromName(name));
    }
    agent->set_shutting_down(agent->unavailable_reason() == kShuttingDownText);
    FillApiTimes(agent);
    // The agent policy's view (issue 10): what it trusts and grants.
    *agent->mutable_trusted_labels() = agent->labels();
    agent->mutable_grants()->add_kinds(v1::STAGE_KIND_EXEC);
    agent->mutable_grants()->set_secrets(true);
    agent->mutable_grants()->set_rule("gpu-*");
    // Its identity (issue 10): how it authenticated, and whether it was revoked.
    agent->set_authentication("certificate");
    agent->set_certificate_fingerprint("sha256:" + std::string(64, 'a'));
    agent->mutable_certificate_expire_time()->set_seconds(1'800'000'000);
    agent->set_revoked(true);
    SetHostHealth(agent);  // issue 16: its host's health
    ++changed;
  } else if (auto* list = dynamic_cast<v1::ListAgentsResponse*>(m)) {
    list->set_insecure(true);  // issue 10: the coordinator runs --insecure
    ++changed;
  } else if (auto* job = dynamic_cast<v1::Job*>(m)) {
    FillApiTimes(job);
    job->set_submitter("alice");  // issue 11: who submitted it
    // Issue 16, retention: what it holds, its pipeline's age, what it pushed.
    job->set_stored_bytes(uint64_t{3} << 30);
    job->set_retention_seconds(7 * 24 * 3600);
    job->add_pushed_images("127.0.0.1:5000/musafarm/torch_musa-base:py3.10-nightly");
    ++changed;
  } else if (auto* list_jobs = dynamic_cast<v1::ListJobsRequest*>(m)) {
    list_jobs->set_mine(true);  // issue 11: only the caller's, or one user's, jobs
    list_jobs->set_user("alice");
    ++changed;
  } else if (auto* task = dynamic_cast<v1::Task*>(m)) {
    FillApiTimes(task);
    task->set_log_truncated(true);  // issue 12: the log reached --max-log-bytes
    ++changed;
  } else if (auto* log = dynamic_cast<v1::GetLogResponse*>(m)) {
    log->set_truncated(true);
    ++changed;
  } else if (auto* spec = dynamic_cast<v1::StageSpec*>(m)) {
    // Issue 12: the extra forms a pipeline declares for a stage's secrets.
    for (const std::string& name : spec->secrets()) {
      (*spec->mutable_secret_forms())[name].add_forms("base64");
      ++changed;
    }
    if (spec->has_exec()) {  // issue 16: exec and shell stages collect files
      spec->mutable_exec()->add_collect("reports/junit.xml");
      ++changed;
    }
    if (spec->has_docker_push()) {  // and a push's registry credentials
      spec->mutable_docker_push()->set_registry_auth("REGISTRY_PASSWORD");
      ++changed;
    }
    if (spec->has_docker_run()) {  // issue 18: the test suites a run stage declares
      v1::TestSuite* suite = spec->add_suites();
      suite->set_name("unit");
      suite->set_output("/home/ut_output.txt");
      suite->set_exit_status("/home/ut_exit_code.txt");
      suite->set_junit("/home/ut_junit.xml");
      ++changed;
    }
  }
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  m->GetReflection()->ListFields(*m, &fields);
  for (const auto* f : fields) {
    if (f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->message_type()->file()->package() != "musafarm.v1") continue;  // Timestamps
    if (!f->is_repeated()) {
      changed += SetNewFields(m->GetReflection()->MutableMessage(m, f));
      continue;
    }
    for (int i = 0; i < m->GetReflection()->FieldSize(*m, f); ++i) {
      changed += SetNewFields(m->GetReflection()->MutableRepeatedMessage(m, f, i));
    }
  }
  return changed;
}

// The golden `name` decoded with the current definitions.
std::unique_ptr<Message> DecodeGolden(const std::string& name) {
  const std::string text = ReadFile(kGoldenDir / (name + ".txtpb"));
  std::unique_ptr<Message> m = NewMessage(HeaderType(text));
  if (m == nullptr || !m->ParseFromString(ReadFile(kGoldenDir / (name + ".bin")))) return nullptr;
  return m;
}

// What the new code sends (each golden with the new fields set as the new code
// sets them) decodes with the old definitions to exactly the recorded message:
// the old fields are intact, and the new ones are unknown fields an old peer
// skips.
TEST(WireNewToOld, NewCodesMessagesDecodeWithTheOldDefinitionsWithTheOldFieldsIntact) {
  std::set<std::string> with_new_fields;
  for (const std::string& name : CommittedNames()) {
    SCOPED_TRACE(name);
    std::unique_ptr<Message> current = DecodeGolden(name);
    ASSERT_NE(current, nullptr);
    const std::string before = current->SerializeAsString();
    if (SetNewFields(current.get()) == 0) continue;
    const std::string bytes = current->SerializeAsString();
    ASSERT_NE(bytes.size(), before.size()) << "no new field was set";
    with_new_fields.insert(name);

    const std::string old_type = OldName(current->GetDescriptor()->full_name());
    std::unique_ptr<Message> as_old = NewMessage(old_type);
    ASSERT_NE(as_old, nullptr) << old_type;
    ASSERT_TRUE(as_old->ParseFromString(bytes));
    EXPECT_NE(UnknownFieldPaths(*as_old), "") << "the new fields did not travel";
    as_old->DiscardUnknownFields();

    std::unique_ptr<Message> recorded(as_old->New());
    ASSERT_TRUE(recorded->ParseFromString(ReadFile(kGoldenDir / (name + ".bin"))));
    std::string diff;
    MessageDifferencer differ;
    differ.ReportDifferencesToString(&diff);
    EXPECT_TRUE(differ.Compare(*recorded, *as_old)) << diff;
  }
  // Results, a shutdown heartbeat, registrations, jobs, tasks, agents, assignments and log pages.
  EXPECT_EQ(with_new_fields,
            (std::set<std::string>{
                "AgentMessage.register", "AgentMessage.heartbeat_shutting_down",
                "AgentMessage.result", "AgentMessage.result_cancelled", "AgentMessage.result_error",
                "AgentMessage.result_timed_out", "Job.full", "Job.running", "ListJobsResponse.full",
                "SubmitResponse.full", "WatchEvent.snapshot", "WatchEvent.task",
                "WatchEvent.finished", "ListAgentsResponse.full", "DrainResponse.full",
                "GetLogResponse.full",
                // Issue 11: the job list's user filter.
                "ListJobsRequest.full",
                // Issue 12: assignments whose stages name secrets (their forms) or push.
                "CoordinatorMessage.assignment_exec", "CoordinatorMessage.assignment_docker_build",
                "CoordinatorMessage.assignment_docker_push",
                // Issue 16: heartbeats carry host health; shell stages collect files.
                "AgentMessage.heartbeat", "CoordinatorMessage.assignment_shell",
                // Issue 18: a run stage's test suites.
                // (and issue 12: every assignment carries --max-log-bytes)
                "CoordinatorMessage.assignment_docker_run"}));
}

// Old agents: their results carry only the bools, error and exit status; their
// shutdown only the text; their kinds only names. The new readers map them.
TEST(WireOldPeer, OldAgentsResultsMapToOutcomes) {
  const std::pair<const char*, v1::AttemptOutcome> cases[] = {
      {"AgentMessage.result", v1::ATTEMPT_OUTCOME_FAILED},  // exit 1
      {"AgentMessage.result_cancelled", v1::ATTEMPT_OUTCOME_CANCELLED},
      {"AgentMessage.result_timed_out", v1::ATTEMPT_OUTCOME_TIMED_OUT},
      {"AgentMessage.result_error", v1::ATTEMPT_OUTCOME_ERROR},
  };
  for (const auto& [name, outcome] : cases) {
    SCOPED_TRACE(name);
    std::unique_ptr<Message> m = DecodeGolden(name);
    ASSERT_NE(m, nullptr);
    const auto& result = static_cast<const v1::AgentMessage&>(*m).result();
    EXPECT_EQ(result.outcome(), v1::ATTEMPT_OUTCOME_UNSPECIFIED);  // an old agent's
    EXPECT_EQ(OutcomeOf(result), outcome);
  }
  v1::AgentMessage succeeded;
  succeeded.mutable_result()->set_exit_code(0);
  EXPECT_EQ(OutcomeOf(succeeded.result()), v1::ATTEMPT_OUTCOME_SUCCEEDED);
}

TEST(WireOldPeer, OldAgentsShutdownTextAndKindNamesAreRead) {
  std::unique_ptr<Message> m = DecodeGolden("AgentMessage.heartbeat_shutting_down");
  ASSERT_NE(m, nullptr);
  EXPECT_FALSE(static_cast<v1::AgentMessage&>(*m).heartbeat().shutting_down());
  EXPECT_TRUE(ShuttingDown(static_cast<v1::AgentMessage&>(*m).heartbeat()));

  m = DecodeGolden("AgentMessage.heartbeat");  // low disk: not a shutdown
  ASSERT_NE(m, nullptr);
  EXPECT_FALSE(ShuttingDown(static_cast<v1::AgentMessage&>(*m).heartbeat()));

  m = DecodeGolden("AgentMessage.register");
  ASSERT_NE(m, nullptr);
  const v1::Capabilities& caps = static_cast<v1::AgentMessage&>(*m).register_().capabilities();
  EXPECT_TRUE(ShuttingDown(caps));
  EXPECT_EQ(ExecutorKinds(caps),
            (std::vector<v1::StageKind>{v1::STAGE_KIND_EXEC, v1::STAGE_KIND_DOCKER_BUILD,
                                        v1::STAGE_KIND_DOCKER_RUN, v1::STAGE_KIND_DOCKER_PUSH}));

  // Each assignment's stage kind, from the StageSpec oneof it always had.
  const std::pair<const char*, v1::StageKind> kinds[] = {
      {"CoordinatorMessage.assignment_exec", v1::STAGE_KIND_EXEC},
      {"CoordinatorMessage.assignment_shell", v1::STAGE_KIND_EXEC},
      {"CoordinatorMessage.assignment_docker_build", v1::STAGE_KIND_DOCKER_BUILD},
      {"CoordinatorMessage.assignment_docker_run", v1::STAGE_KIND_DOCKER_RUN},
      {"CoordinatorMessage.assignment_docker_push", v1::STAGE_KIND_DOCKER_PUSH},
  };
  for (const auto& [name, kind] : kinds) {
    m = DecodeGolden(name);
    ASSERT_NE(m, nullptr) << name;
    EXPECT_EQ(StageKindOf(static_cast<v1::CoordinatorMessage&>(*m).assignment().run()), kind)
        << name;
  }
}

}  // namespace
}  // namespace musafarm::wire
