#include "tests/wire/golden_messages.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/text_format.h>

#include <utility>

#include "musafarm/v1old/agent_service.pb.h"
#include "musafarm/v1old/farm.pb.h"
#include "musafarm/v1old/user_service.pb.h"

namespace musafarm::wire {
namespace {

namespace old = ::musafarm::v1old;

// 2026-12-01T10:00:00Z and later, in unix microseconds.
constexpr int64_t kT0 = 1796119200000000;

template <typename M>
void Add(std::vector<Golden>& out, const std::string& variant, const M& m) {
  out.push_back({M::descriptor()->name() + "." + variant, std::make_unique<M>(m)});
}

old::StageSpec ExecSpec() {
  old::StageSpec s;
  s.mutable_exec()->add_argv("python");
  s.mutable_exec()->add_argv("-m");
  s.mutable_exec()->add_argv("pytest");
  (*s.mutable_env())["PYTHONUNBUFFERED"] = "1";
  (*s.mutable_env())["TORCH_DEVICE"] = "musa";
  s.set_timeout_seconds(3600);
  s.set_retries(2);
  s.add_labels("gpu=s4000");
  s.add_labels("linux");
  s.add_secrets("GITHUB_TOKEN");
  s.set_gpus(2);
  return s;
}

old::StageSpec ShellSpec() {
  old::StageSpec s;
  s.mutable_exec()->add_argv("make -j8 && make install");
  s.mutable_exec()->set_shell(true);
  s.set_timeout_seconds(600);
  return s;
}

old::StageSpec DockerBuildSpec() {
  old::StageSpec s;
  auto* b = s.mutable_docker_build();
  b->set_context("https://github.com/MooreThreads/torch_musa.git#main");
  b->set_dockerfile("docker/common/Dockerfile");
  (*b->mutable_build_args())["PYTHON_VERSION"] = "3.10";
  (*b->mutable_build_args())["MUSA_TOOLKITS_URL"] = "https://example.invalid/musa.tar.gz";
  b->add_tags("registry.local/torch_musa/base:py310");
  b->add_tags("registry.local/torch_musa/base:latest");
  b->set_push(true);
  b->set_target("base");
  b->set_network("host");
  s.add_secrets("REGISTRY_PASSWORD");
  s.add_labels("docker");
  return s;
}

old::StageSpec DockerRunSpec() {
  old::StageSpec s;
  auto* r = s.mutable_docker_run();
  r->set_image("registry.local/torch_musa/dev:py310");
  r->add_command("bash");
  r->add_command("-c");
  r->add_command("pytest tests/unittest > /home/ut_output.txt");
  r->set_privileged(true);
  r->set_shm_size("80g");
  r->add_devices("/dev/mtgpu.0");
  auto* m = r->add_mounts();
  m->set_source("/data/models");
  m->set_target("/models");
  m->set_read_only(true);
  auto* m2 = r->add_mounts();
  m2->set_source("/var/cache/pip");
  m2->set_target("/root/.cache/pip");
  r->set_network("none");
  r->add_collect("/home/ut_output.txt");
  r->set_user("1000:1000");
  r->set_workdir("/home/torch_musa");
  s.set_gpus(1);
  s.set_timeout_seconds(7200);
  s.set_retries(1);
  return s;
}

old::StageSpec DockerPushSpec() {
  old::StageSpec s;
  s.mutable_docker_push()->add_images("registry.local/torch_musa/dev:py310");
  s.mutable_docker_push()->add_images("registry.local/torch_musa/dev:latest");
  return s;
}

old::TestCounts Tests() {
  old::TestCounts t;
  t.set_passed(120);
  t.set_failed(2);
  t.set_skipped(7);
  t.set_errors(1);
  t.add_failed_tests("tests/unittest/test_conv.py::test_conv2d[float16]");
  t.add_failed_tests("tests/unittest/test_sdpa.py::test_flash");
  t.add_passed_tests("tests/unittest/test_add.py::test_add");
  return t;
}

old::Artifact UtOutput() {
  old::Artifact a;
  a.set_name("ut_output.txt");
  a.set_source("/home/ut_output.txt");
  a.set_size(48213);
  return a;
}

old::Task FinishedTask() {
  old::Task t;
  t.set_id("7/dev-3.10/test");
  t.set_job_id("7");
  auto* spec = t.mutable_spec();
  spec->set_stage("test");
  auto* c1 = spec->add_cell();
  c1->set_axis("image");
  c1->set_value("dev");
  auto* c2 = spec->add_cell();
  c2->set_axis("python");
  c2->set_value("3.10");
  spec->add_needs("7/dev-3.10/build");
  *spec->mutable_run() = DockerRunSpec();
  spec->set_display_name("test (dev, 3.10)");
  t.set_state(old::TASK_STATE_FAILED);
  t.set_attempt_id(42);
  t.set_attempts(2);
  t.set_agent("gpu-07");
  t.set_exit_code(1);
  t.set_reason("2 failed, 1 errors of 123 tests");
  t.set_created_us(kT0);
  t.set_started_us(kT0 + 5000000);
  t.set_ended_us(kT0 + 905000000);
  t.set_log_size(1048576);
  t.set_cancel_requested_us(0);
  t.set_lost_count(1);
  *t.mutable_tests() = Tests();
  *t.add_artifacts() = UtOutput();
  t.add_gpu_ids(0);
  t.add_gpu_ids(3);
  t.set_handed_back_count(1);
  return t;
}

old::Task CancelledTask() {
  old::Task t;
  t.set_id("7/dev-3.10/build");
  t.set_job_id("7");
  t.mutable_spec()->set_stage("build");
  *t.mutable_spec()->mutable_run() = DockerBuildSpec();
  t.mutable_spec()->set_display_name("build (dev, 3.10)");
  t.set_state(old::TASK_STATE_CANCELLED);
  t.set_attempt_id(41);
  t.set_attempts(1);
  t.set_agent("cpu-01");
  t.set_exit_code(-1);
  t.set_reason("cancelled by user");
  t.set_created_us(kT0);
  t.set_started_us(kT0 + 1000000);
  t.set_ended_us(kT0 + 2000000);
  t.set_cancel_requested_us(kT0 + 1500000);
  return t;
}

old::Task QueuedTask() {
  old::Task t;
  t.set_id("7/dev-3.10/push");
  t.set_job_id("7");
  t.mutable_spec()->set_stage("push");
  *t.mutable_spec()->mutable_run() = DockerPushSpec();
  t.set_state(old::TASK_STATE_QUEUED);
  t.set_created_us(kT0);
  return t;
}

old::Job FullJob() {
  old::Job j;
  j.set_id("7");
  j.set_name("torch_musa nightly");
  j.set_state(old::JOB_STATE_FAILED);
  j.set_created_us(kT0);
  j.set_ended_us(kT0 + 905000000);
  j.set_pipeline_file("pipelines/torch_musa.yaml");
  j.add_axes("image");
  j.add_axes("python");
  *j.add_tasks() = CancelledTask();
  *j.add_tasks() = FinishedTask();
  *j.add_tasks() = QueuedTask();
  (*j.mutable_params())["branch"] = "main";
  (*j.mutable_params())["mudnn_url"] = "https://example.invalid/mudnn.tar.gz";
  j.add_secrets("GITHUB_TOKEN");
  return j;
}

old::Job RunningJobNoTasks() {
  old::Job j;
  j.set_id("8");
  j.set_name("smoke");
  j.set_state(old::JOB_STATE_RUNNING);
  j.set_created_us(kT0 + 60000000);
  j.set_pipeline_file("pipelines/smoke.yaml");
  return j;
}

old::Agent FullAgent() {
  old::Agent a;
  a.set_name("gpu-07");
  a.add_labels("gpu=s4000");
  a.add_labels("linux");
  a.set_slots(4);
  a.set_used_slots(1);
  a.set_state(old::AGENT_STATE_DRAINING);
  a.set_last_seen_us(kT0 + 910000000);
  a.add_running_tasks("7/dev-3.10/test");
  a.set_version("0.1.0");
  a.set_peer("ipv4:10.0.0.7:51234");
  a.set_draining(true);
  a.set_free_disk_bytes(int64_t{512} << 30);
  a.add_executors("exec");
  a.add_executors("docker_build");
  a.add_executors("docker_run");
  a.add_executors("docker_push");
  a.set_gpus(8);
  a.set_gpu_vendor("mthreads");
  a.set_free_gpus(6);
  a.set_unavailable_reason("low disk: 1.2 GiB free in /var/lib/musafarm-agent, below 5.0 GiB");
  return a;
}

old::Agent ShuttingDownAgent() {
  old::Agent a;
  a.set_name("cpu-01");
  a.set_slots(2);
  a.set_state(old::AGENT_STATE_CONNECTED);
  a.set_last_seen_us(kT0 + 3000000);
  a.add_executors("exec");
  a.set_unavailable_reason("shutting down");
  return a;
}

void AgentMessages(std::vector<Golden>& out) {
  old::AgentMessage m;
  auto* reg = m.mutable_register_();
  reg->set_name("gpu-07");
  reg->add_labels("gpu=s4000");
  reg->add_labels("linux");
  reg->set_slots(4);
  auto* caps = reg->mutable_capabilities();
  caps->set_free_disk_bytes(int64_t{512} << 30);
  caps->add_executors("exec");
  caps->add_executors("docker_build");
  caps->add_executors("docker_run");
  caps->add_executors("docker_push");
  caps->set_gpus(8);
  caps->set_gpu_vendor("mthreads");
  caps->set_unavailable_reason("shutting down");
  auto* h1 = reg->add_held();
  h1->set_task_id("7/dev-3.10/test");
  h1->set_attempt_id(42);
  auto* h2 = reg->add_held();
  h2->set_task_id("7/dev-3.9/test");
  h2->set_attempt_id(40);
  h2->set_finished(true);
  reg->set_version("0.1.0");
  Add(out, "register", m);

  m.Clear();
  m.mutable_heartbeat()->set_sent_us(kT0 + 3000000);
  m.mutable_heartbeat()->set_free_disk_bytes(int64_t{1288490188});
  m.mutable_heartbeat()->set_unavailable_reason(
      "low disk: 1.2 GiB free in /var/lib/musafarm-agent, below 5.0 GiB");
  Add(out, "heartbeat", m);

  // The exact text the pre-change coordinator acts on.
  m.Clear();
  m.mutable_heartbeat()->set_sent_us(kT0 + 6000000);
  m.mutable_heartbeat()->set_free_disk_bytes(int64_t{64} << 30);
  m.mutable_heartbeat()->set_unavailable_reason("shutting down");
  Add(out, "heartbeat_shutting_down", m);

  m.Clear();
  m.mutable_started()->set_task_id("7/dev-3.10/test");
  m.mutable_started()->set_attempt_id(42);
  m.mutable_started()->set_started_us(kT0 + 5000000);
  Add(out, "started", m);

  m.Clear();
  m.mutable_log()->set_task_id("7/dev-3.10/test");
  m.mutable_log()->set_attempt_id(42);
  m.mutable_log()->set_offset(65536);
  m.mutable_log()->set_data(std::string("collected 130 items\n\0\xff binary ok\n", 33));
  Add(out, "log", m);

  m.Clear();
  auto* art = m.mutable_artifact();
  art->set_task_id("7/dev-3.10/test");
  art->set_attempt_id(42);
  art->set_name("ut_output.txt");
  art->set_offset(4096);
  art->set_data("FAILED tests/unittest/test_sdpa.py::test_flash\n");
  Add(out, "artifact", m);

  m.Clear();
  auto* r = m.mutable_result();
  r->set_task_id("7/dev-3.10/test");
  r->set_attempt_id(42);
  r->set_exit_code(1);
  r->set_started_us(kT0 + 5000000);
  r->set_ended_us(kT0 + 905000000);
  r->set_log_size(1048576);
  *r->mutable_tests() = Tests();
  *r->add_artifacts() = UtOutput();
  Add(out, "result", m);

  m.Clear();
  r = m.mutable_result();
  r->set_task_id("7/dev-3.10/build");
  r->set_attempt_id(41);
  r->set_exit_code(-1);
  r->set_signal(15);
  r->set_started_us(kT0 + 1000000);
  r->set_ended_us(kT0 + 2000000);
  r->set_log_size(2048);
  r->set_cancelled(true);
  Add(out, "result_cancelled", m);

  m.Clear();
  r = m.mutable_result();
  r->set_task_id("7/dev-3.10/test");
  r->set_attempt_id(43);
  r->set_exit_code(-1);
  r->set_signal(9);
  r->set_started_us(kT0 + 5000000);
  r->set_ended_us(kT0 + 7205000000);
  r->set_log_size(77);
  r->set_timed_out(true);
  Add(out, "result_timed_out", m);

  m.Clear();
  r = m.mutable_result();
  r->set_task_id("7/dev-3.10/test");
  r->set_attempt_id(44);
  r->set_exit_code(-1);
  r->set_started_us(kT0 + 5000000);
  r->set_ended_us(kT0 + 5001000);
  r->set_error("could not start: no such program 'pytest'");
  Add(out, "result_error", m);

  m.Clear();
  m.mutable_hand_back()->set_task_id("7/dev-3.10/test");
  m.mutable_hand_back()->set_attempt_id(42);
  m.mutable_hand_back()->set_reason("agent shutting down: drain deadline of 10m passed");
  Add(out, "hand_back", m);
}

void CoordinatorMessages(std::vector<Golden>& out) {
  old::CoordinatorMessage m;
  m.mutable_registered()->set_heartbeat_interval_ms(3000);
  m.mutable_registered()->set_draining(true);
  Add(out, "registered", m);

  const std::pair<const char*, old::StageSpec> specs[] = {
      {"assignment_exec", ExecSpec()},
      {"assignment_shell", ShellSpec()},
      {"assignment_docker_build", DockerBuildSpec()},
      {"assignment_docker_run", DockerRunSpec()},
      {"assignment_docker_push", DockerPushSpec()},
  };
  for (const auto& [variant, spec] : specs) {
    m.Clear();
    auto* as = m.mutable_assignment();
    as->set_task_id("7/dev-3.10/test");
    as->set_attempt_id(42);
    as->set_job_id("7");
    as->set_display_name("test (dev, 3.10)");
    *as->mutable_run() = spec;
    (*as->mutable_secrets())["GITHUB_TOKEN"] = "ghp_example";
    as->add_gpu_ids(0);
    as->add_gpu_ids(3);
    Add(out, variant, m);
  }

  m.Clear();
  m.mutable_cancel()->set_task_id("7/dev-3.10/test");
  m.mutable_cancel()->set_attempt_id(42);
  m.mutable_cancel()->set_reason("attempt is no longer current");
  Add(out, "cancel", m);

  m.Clear();
  m.mutable_ack()->set_task_id("7/dev-3.10/test");
  m.mutable_ack()->set_attempt_id(42);
  m.mutable_ack()->set_log_offset(1048576);
  m.mutable_ack()->set_result_stored(true);
  m.mutable_ack()->set_resend(true);
  Add(out, "ack", m);

  m.Clear();
  m.mutable_drain()->set_draining(true);
  Add(out, "drain", m);

  m.Clear();
  m.mutable_keep_images()->add_images("registry.local/torch_musa/base:py310");
  m.mutable_keep_images()->add_images("registry.local/torch_musa/dev:py310");
  Add(out, "keep_images", m);
}

void UserMessages(std::vector<Golden>& out) {
  old::SubmitRequest submit;
  submit.set_spec_yaml("name: nightly\nstages:\n  test:\n    exec: [pytest]\n");
  submit.set_spec_file("pipelines/torch_musa.yaml");
  submit.set_name("torch_musa nightly");
  (*submit.mutable_params())["branch"] = "main";
  auto* axis = submit.add_axes();
  axis->set_axis("python");
  axis->add_values("3.9");
  axis->add_values("3.10");
  (*submit.mutable_secrets())["GITHUB_TOKEN"] = "ghp_example";
  Add(out, "full", submit);

  old::SubmitResponse submitted;
  *submitted.mutable_job() = FullJob();
  Add(out, "full", submitted);

  old::GetJobRequest get_job;
  get_job.set_job_id("7");
  Add(out, "full", get_job);

  Add(out, "full", FullJob());
  Add(out, "running", RunningJobNoTasks());

  old::ListJobsRequest list_jobs;
  list_jobs.set_limit(20);
  Add(out, "full", list_jobs);

  old::ListJobsResponse jobs;
  *jobs.add_jobs() = RunningJobNoTasks();
  old::Job listed = FullJob();
  listed.clear_tasks();
  *jobs.add_jobs() = listed;
  Add(out, "full", jobs);

  old::WatchJobRequest watch;
  watch.set_job_id("7");
  watch.set_logs(true);
  (*watch.mutable_log_offsets())["7/dev-3.10/test"] = 65536;
  (*watch.mutable_log_offsets())["7/dev-3.10/build"] = 0;
  watch.set_task_id("7/dev-3.10/test");
  Add(out, "full", watch);

  old::WatchEvent event;
  *event.mutable_snapshot() = FullJob();
  Add(out, "snapshot", event);
  event.Clear();
  *event.mutable_task() = FinishedTask();
  Add(out, "task", event);
  event.Clear();
  event.mutable_log()->set_task_id("7/dev-3.10/test");
  event.mutable_log()->set_attempt_id(42);
  event.mutable_log()->set_offset(65536);
  event.mutable_log()->set_data("PASSED tests/unittest/test_add.py::test_add\n");
  Add(out, "log", event);
  event.Clear();
  *event.mutable_finished() = FullJob();
  Add(out, "finished", event);

  old::GetLogRequest get_log;
  get_log.set_task_id("7/dev-3.10/test");
  get_log.set_offset(1024);
  get_log.set_limit(4096);
  Add(out, "full", get_log);

  old::GetLogResponse log;
  log.set_data("collected 130 items\n");
  log.set_offset(1024);
  log.set_size(1048576);
  log.set_complete(true);
  Add(out, "full", log);

  old::CancelRequest cancel;
  cancel.set_id("7");
  Add(out, "full", cancel);

  old::CancelResponse cancelled;
  cancelled.add_cancelled("7/dev-3.10/build");
  cancelled.add_cancelled("7/dev-3.10/push");
  Add(out, "full", cancelled);

  Add(out, "empty", old::ListAgentsRequest());

  old::ListAgentsResponse agents;
  *agents.add_agents() = FullAgent();
  *agents.add_agents() = ShuttingDownAgent();
  Add(out, "full", agents);

  old::DrainRequest drain;
  drain.set_agent("gpu-07");
  drain.set_undrain(true);
  Add(out, "full", drain);

  old::DrainResponse drained;
  *drained.mutable_agent() = FullAgent();
  Add(out, "full", drained);

  old::GetArtifactRequest get_artifact;
  get_artifact.set_task_id("7/dev-3.10/test");
  get_artifact.set_name("ut_output.txt");
  get_artifact.set_offset(4096);
  get_artifact.set_limit(8192);
  Add(out, "full", get_artifact);

  old::GetArtifactResponse artifact;
  artifact.set_data("PASSED tests/unittest/test_add.py::test_add\n");
  artifact.set_offset(4096);
  artifact.set_size(48213);
  Add(out, "full", artifact);
}

}  // namespace

std::vector<Golden> OldGoldenMessages() {
  std::vector<Golden> out;
  AgentMessages(out);
  CoordinatorMessages(out);
  UserMessages(out);
  return out;
}

std::string DeterministicBytes(const google::protobuf::Message& m) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return bytes;
}

std::string GoldenText(const google::protobuf::Message& m) {
  std::string text;
  google::protobuf::TextFormat::PrintToString(m, &text);
  // Named by its wire type: the v1old package exists only in these tests.
  std::string type = m.GetDescriptor()->full_name();
  const std::string old_package = "musafarm.v1old.";
  if (type.rfind(old_package, 0) == 0) type = "musafarm.v1." + type.substr(old_package.size());
  return "# proto-message: " + type + "\n" + text;
}

}  // namespace musafarm::wire
