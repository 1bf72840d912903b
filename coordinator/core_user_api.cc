// Core, part 2 of 4: the user API (UserApi): submit, read, cancel, drain,
// logs, artifacts, watchers. The orchestration is in core.cc.
#include "coordinator/core.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/limits.h"
#include "common/logging.h"
#include "common/task_state.h"
#include "coordinator/agent_messages.h"
#include "coordinator/job_inputs.h"
#include "coordinator/rerun.h"
#include "coordinator/webhook_targets.h"
#include "pipeline/spec.h"

namespace musafarm::coordinator {
namespace {

using limits::kMaxSecretBytes;
using limits::kMaxSpecBytes;
using limits::kMaxTasksPerJob;
// Below gRPC clients' default 4 MiB receive limit, with room for the other fields.
constexpr uint64_t kMaxLogRead = (4 << 20) - (64 << 10);

std::shared_ptr<spdlog::logger> Log() {
  static auto log = GetLogger("core");
  return log;
}

}  // namespace

absl::StatusOr<v1::Job> Core::Submit(const v1::SubmitRequest& request,
                                     const std::string& submitter,
                                     std::optional<AuditEntry> audit) {
  return SubmitJob(request, submitter, nullptr, std::move(audit));
}

absl::StatusOr<v1::Job> Core::SubmitScheduled(const v1::SubmitRequest& request,
                                              const std::string& submitter, ScheduleFire fire) {
  return SubmitJob(request, submitter, &fire, std::nullopt);
}

absl::StatusOr<v1::Job> Core::SubmitJob(const v1::SubmitRequest& request,
                                        const std::string& submitter, ScheduleFire* fire,
                                        std::optional<AuditEntry> audit) {
  if (request.spec_yaml().size() > kMaxSpecBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        request.spec_file().empty() ? "<submitted>" : request.spec_file(), ":1:1: pipeline: is ",
        request.spec_yaml().size(), " bytes; the limit is ", kMaxSpecBytes));
  }
  if (absl::Status s = CheckWebhooks(request); !s.ok()) return s;
  const std::string job_id = absl::StrCat(jobs_.next_job_number());
  Admission admission;
  admission.file = request.spec_file().empty() ? "<submitted>" : request.spec_file();
  admission.secrets.insert(request.secrets().begin(), request.secrets().end());
  admission.webhooks.assign(request.webhooks().begin(), request.webhooks().end());
  admission.strict = request.strict();
  admission.fire = fire;
  admission.audit = std::move(audit);
  const std::string& file = admission.file;
  if (absl::Status s = CheckSecretLimits(admission.secrets, file); !s.ok()) return s;
  pipeline::ExpandOptions expand;
  expand.name_override = request.name();
  expand.max_gpus_per_stage = options_.max_gpus_per_stage;
  expand.params.insert(request.params().begin(), request.params().end());
  for (const v1::AxisValues& axis : request.axes()) {
    expand.axes.emplace_back(axis.axis(),
                             std::vector<std::string>(axis.values().begin(), axis.values().end()));
  }
  // Names only from here on: an error message must never carry a value.
  for (const auto& entry : admission.secrets) expand.secrets.push_back(entry.first);
  absl::StatusOr<v1::Job> parsed =
      pipeline::ParseAndExpand(request.spec_yaml(), file, job_id, expand);
  if (!parsed.ok()) return parsed.status();
  v1::Job job = *std::move(parsed);
  // Issue 17: the trees its stages build from, complete in the content store.
  absl::StatusOr<std::vector<v1::JobInput>> inputs =
      ResolveJobInputs(request, blobs_, file, &job);
  if (!inputs.ok()) return inputs.status();
  for (v1::JobInput& in : *inputs) *job.add_inputs() = std::move(in);
  return AdmitJob(std::move(job), submitter, std::move(admission));
}

absl::Status Core::CheckSecretLimits(const std::map<std::string, std::string>& secrets,
                                     const std::string& file) {
  if (secrets.size() > limits::kMaxSecretsPerJob) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": ", secrets.size(),
                                                   " secrets given; the limit is ",
                                                   limits::kMaxSecretsPerJob));
  }
  for (const auto& [name, value] : secrets) {
    if (value.size() > kMaxSecretBytes) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": --secret ", name, ": value is ",
                                                     value.size(), " bytes; the limit is ",
                                                     kMaxSecretBytes));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Job> Core::AdmitJob(v1::Job job, const std::string& submitter,
                                       Admission admission) {
  const std::string job_id = job.id();
  const std::string& file = admission.file;
  if (static_cast<size_t>(job.tasks_size()) > kMaxTasksPerJob) {
    return absl::InvalidArgumentError(absl::StrCat(file, ":1:1: pipeline: expands to ",
                                                   job.tasks_size(), " tasks; the limit is ",
                                                   kMaxTasksPerJob));
  }
  const int64_t now = ToMicros(clock_->Now());
  job.set_state(v1::JOB_STATE_RUNNING);
  job.set_created_us(now);
  job.set_submitter(submitter);
  job.clear_pushed_images();
  for (std::string& image : PushedImages(job)) job.add_pushed_images(std::move(image));
  if (admission.strict) {
    // Refused before anything is stored or pinned: the submitter fixes the
    // pipeline or the farm, and submits again.
    std::vector<std::string> unrunnable = SubmitWarnings(job);
    if (!unrunnable.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--strict: job not created: ", absl::StrJoin(unrunnable, "; ")));
    }
  }
  // The inputs' trees are pinned before the job exists (a pin without its
  // job is dropped below; a job without its pin could lose its sources to GC).
  std::vector<v1::Digest> roots;
  for (const v1::JobInput& in : job.inputs()) roots.push_back(in.tree());
  if (!roots.empty()) {
    if (blobs_ == nullptr) {
      return absl::FailedPreconditionError("the job has inputs: this coordinator has no content store");
    }
    if (absl::Status pinned = blobs_->Pin(job_id, roots); !pinned.ok()) {
      Log()->error("job={} inputs not pinned: {}", job_id, pinned.ToString());
      return absl::InternalError(
          absl::StrCat("coordinator could not pin the job's inputs: ", pinned.message()));
    }
  }

  // Webhook URLs are often credentials: kept sealed, shown redacted.
  const std::vector<v1::Webhook>& hooks = admission.webhooks;
  job.clear_webhook_targets();
  for (const v1::Webhook& hook : hooks) job.add_webhook_targets(RedactWebhookUrl(hook.url()));

  Mutation m;
  if (!hooks.empty()) m.job_webhooks.emplace_back(job_id, hooks);
  if (ScheduleFire* fire = admission.fire; fire != nullptr) {
    job.set_schedule(fire->schedule.name());
    *job.mutable_scheduled_time() = fire->run.scheduled_time();
    job.set_batch(true);
    fire->run.set_job_id(job_id);
    m.schedule_fires.push_back(*fire);
  }
  for (v1::Task& task : *job.mutable_tasks()) {
    task.set_created_us(now);
    const v1::TaskState initial = InitialState(task);
    task.set_state(initial);
    m.transitions.push_back(
        Transition{task.id(), 0, v1::TASK_STATE_UNSPECIFIED, initial, now, "submitted"});
    m.tasks.push_back(task);
  }
  v1::Job header = job;
  header.clear_tasks();
  m.jobs.push_back(std::move(header));
  std::map<std::string, std::string>& secrets = admission.secrets;
  if (!secrets.empty()) m.job_secrets.emplace_back(job_id, secrets);
  if (admission.audit.has_value()) {
    admission.audit->target = job_id;
    m.audit.push_back(*std::move(admission.audit));
  }
  // The job joins the pending mutation and is committed with the placement
  // of its first tasks, at the end of the group this call runs in: one
  // transaction and one fsync for both (issue 19). Nothing of it leaves the
  // process before that commit: assignments and watchers wait for Flush, the
  // submitter's answer for WhenDurable. A failed commit stops the
  // coordinator, as any commit's failure does (memory holds the job by then);
  // an input pin left behind is collected after GC's grace.
  AppendMutation(pending_.mutation, std::move(m));
  JobEntry& entry = jobs_.Add(job, std::move(secrets));
  if (!hooks.empty()) webhooks_[job_id].targets = hooks;
  metrics_.OnJobSubmitted();
  for (size_t i = 0; i < static_cast<size_t>(job.tasks_size()); ++i) {
    const v1::Task& task = job.tasks(static_cast<int>(i));
    metrics_.OnTaskKnown(task, clock_->Now());
    if (task.state() == v1::TASK_STATE_QUEUED) {
      Enqueue(*entry.job.mutable_tasks(static_cast<int>(i)), {entry.seq, i});
    }
  }
  Log()->info("job={} submitted by {}: '{}' from {}, {} tasks{}", job_id,
              submitter.empty() ? "(unknown)" : submitter, job.name(), job.pipeline_file(),
              job.tasks_size(), job.rerun_of().empty() ? "" : ", rerun of job " + job.rerun_of());
  UpdateKeepImages();
  Schedule();
  Flush();  // outside a group: the job (and KeepImages) even when nothing was placed
  // bench/watch_trace.py: the submission is on disk.
  WhenDurable([job_id] { Log()->debug("job={} stored at={}", job_id, NowMicros()); });
  return entry.job;
}

absl::StatusOr<v1::Job> Core::Rerun(const v1::RerunRequest& request,
                                    const std::string& submitter) {
  const std::string& id = request.job_id();
  if (id.empty()) return absl::InvalidArgumentError("rerun: no job id given");
  absl::StatusOr<v1::Job> old = GetJob(id);
  if (absl::IsNotFound(old.status())) return NoJobToRerun(id);
  if (!old.ok()) return old.status();
  Admission admission;
  admission.file = old->pipeline_file().empty() ? "<submitted>" : old->pipeline_file();
  admission.secrets.insert(request.secrets().begin(), request.secrets().end());
  if (absl::Status s = CheckRerunSecrets(*old, admission.secrets); !s.ok()) return s;
  if (absl::Status s = CheckSecretLimits(admission.secrets, admission.file); !s.ok()) return s;
  absl::StatusOr<v1::Job> job =
      RerunJob(*old, absl::StrCat(jobs_.next_job_number()), request.failed_only());
  if (!job.ok()) return job.status();
  // The old job's trees again: still complete while it is kept (its pin holds
  // them), but checked as a submission's are.
  for (const v1::JobInput& in : job->inputs()) {
    const std::string what = absl::StrCat("job ", id, "'s input '", in.name(), "'");
    if (blobs_ == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, ": this coordinator has no content store"));
    }
    absl::StatusOr<content::TreeStats> complete = CheckTreeComplete(*blobs_, in.tree(), what);
    if (!complete.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          complete.status().message(), " (submit its pipeline again with --context)"));
    }
  }
  return AdmitJob(*std::move(job), submitter, std::move(admission));
}

absl::StatusOr<v1::Job> Core::StoredJob(const std::string& job_id) const {
  absl::StatusOr<v1::Job> job = store_->archive().LoadJob(job_id);
  if (!job.ok()) {
    if (!absl::IsNotFound(job.status())) Log()->error("job={}: {}", job_id, job.status().ToString());
    return job.status();
  }
  // As Recover does: the stored size may lag what the files hold.
  for (v1::Task& task : *job->mutable_tasks()) {
    if (task.attempt_id() != 0) task.set_log_size(logs_->Size(task.id(), task.attempt_id()));
  }
  return job;
}

absl::StatusOr<v1::Task> Core::StoredTask(const std::string& task_id) const {
  // A task id starts with its job's id ("7/dev-3.8/base").
  const std::string job_id = task_id.substr(0, task_id.find('/'));
  absl::StatusOr<v1::Job> job = task_id.find('/') == std::string::npos
                                    ? absl::NotFoundError("not a task id")
                                    : StoredJob(job_id);
  if (job.ok()) {
    for (v1::Task& task : *job->mutable_tasks()) {
      if (task.id() == task_id) return std::move(task);
    }
  } else if (!absl::IsNotFound(job.status())) {
    return job.status();
  }
  return absl::NotFoundError(absl::StrCat("no task '", task_id, "'"));
}

absl::StatusOr<v1::Job> Core::GetJob(const std::string& job_id) const {
  if (const JobEntry* job = jobs_.Find(job_id)) return job->job;
  return StoredJob(job_id);  // ended, or unknown
}

std::vector<v1::Job> Core::ListJobs(const JobFilter& filter) const {
  // From the store, which holds every job (running ones as submitted): one
  // indexed query, newest first, whatever the history's length.
  absl::StatusOr<std::vector<v1::Job>> jobs = store_->archive().ListJobs(filter);
  if (!jobs.ok()) {
    Log()->error("list jobs: {}", jobs.status().ToString());
    return {};
  }
  // A running job's header in the store is the submitted one; memory's is
  // current, and is what the filter must pass (its state may be newer).
  std::vector<v1::Job> out;
  out.reserve(jobs->size());
  for (v1::Job& job : *jobs) {
    if (const JobEntry* held = jobs_.Find(job.id())) {
      if (!JobMatches(filter, held->job)) continue;
      job = held->job;
      job.clear_tasks();
    }
    out.push_back(std::move(job));
  }
  return out;
}

absl::StatusOr<std::string> Core::OwnerOf(const std::string& id) const {
  if (const JobEntry* job = jobs_.Find(id)) return job->job.submitter();
  if (const v1::Task* task = jobs_.FindTask(id)) {
    return jobs_.Find(task->job_id())->job.submitter();
  }
  absl::StatusOr<v1::Job> job = StoredJob(id);
  if (job.ok()) return job->submitter();
  absl::StatusOr<v1::Task> task = StoredTask(id);
  if (task.ok()) return StoredJob(task->job_id())->submitter();
  return absl::NotFoundError(absl::StrCat("no job or task '", id, "'"));
}

void Core::CancelTask(JobEntry& job, v1::Task& task, v1::CancelResponse& response) {
  if (IsTerminal(task.state())) return;
  response.add_cancelled(task.id());
  if (!IsActive(task.state())) {
    Apply(task, {TaskEvent::kCancel, 0, nullptr, "", "cancelled by user"});
    Propagate(job, task);  // no-op for dependants already cancelled
    return;
  }
  if (task.cancel_requested_us() == 0) {
    task.set_cancel_requested_us(ToMicros(clock_->Now()));
    MarkChanged(task);
  }
  const Agent* agent = agents_.Find(task.agent());
  if (agent != nullptr && agent->connected()) {
    // The agent kills the process group and reports; the task ends then.
    SendTo(task.agent(), CancelMessage(task.id(), task.attempt_id(), "cancelled by user"));
    return;
  }
  // Nobody to ask: end it now. If the agent comes back holding the attempt, it
  // is told to stop it (the attempt is no longer current).
  ReleaseFromAgent(task);
  Apply(task, {TaskEvent::kCancel, 0, nullptr, "", "cancelled by user (agent disconnected)"});
  Propagate(job, task);
}

absl::StatusOr<v1::CancelResponse> Core::Cancel(const std::string& id) {
  v1::CancelResponse response;
  if (JobEntry* job = jobs_.Find(id)) {
    // Waiting tasks first, so they read "cancelled" rather than "skipped"
    // because an earlier one was cancelled.
    for (v1::Task& task : *job->job.mutable_tasks()) {
      if (!IsActive(task.state()) && !IsTerminal(task.state())) {
        response.add_cancelled(task.id());
        Apply(task, {TaskEvent::kCancel, 0, nullptr, "", "cancelled by user"});
      }
    }
    for (v1::Task& task : *job->job.mutable_tasks()) {
      if (IsActive(task.state())) CancelTask(*job, task, response);
    }
    MaybeFinishJob(*job);
  } else if (v1::Task* task = jobs_.FindTask(id)) {
    CancelTask(jobs_.JobOf(*task), *task, response);
  } else if (!StoredJob(id).ok() && !StoredTask(id).ok()) {
    return absl::NotFoundError(absl::StrCat("no job or task '", id, "'"));
  }  // else it ended: nothing to cancel
  Flush();
  Schedule();
  return response;
}

std::vector<v1::Agent> Core::ListAgents() const {
  std::vector<v1::Agent> out;
  for (const auto& [name, agent] : agents_.agents()) out.push_back(agent.Snapshot());
  return out;
}

absl::StatusOr<v1::Agent> Core::Drain(const std::string& name, bool undrain) {
  Agent* agent = agents_.Find(name);
  if (agent == nullptr) return absl::NotFoundError(absl::StrCat("no agent '", name, "'"));
  agent->info.set_draining(!undrain);
  if (undrain) dirty_agents_.insert(name);
  if (agent->connected()) {
    agent->info.set_state(undrain ? v1::AGENT_STATE_CONNECTED : v1::AGENT_STATE_DRAINING);
    v1::CoordinatorMessage msg;
    msg.mutable_drain()->set_draining(!undrain);
    SendTo(name, std::move(msg));
  }
  Log()->info("agent={} {}", name, undrain ? "undrained" : "draining");
  SaveAgent(*agent);
  Flush();
  Schedule();
  v1::Agent info = agent->info;
  info.clear_running_tasks();
  for (const auto& [task, gpus] : agent->held) info.add_running_tasks(task);
  return info;
}

absl::StatusOr<v1::RevokeAgentResponse> Core::RevokeAgent(const std::string& name) {
  if (enrollment_ == nullptr) {
    return absl::FailedPreconditionError("this coordinator keeps no revocations");
  }
  Agent* agent = agents_.Find(name);
  absl::StatusOr<Revocation> revocation = enrollment_->Revoke(name, agent != nullptr);
  if (!revocation.ok()) return revocation.status();
  v1::RevokeAgentResponse response;
  for (const std::string& serial : revocation->serials) response.add_serials(serial);
  if (agent == nullptr) {  // enrolled, never connected
    response.mutable_agent()->set_name(name);
    response.mutable_agent()->set_revoked(true);
    return response;
  }
  agent->info.set_revoked(true);
  if (agent->connected()) DisconnectAgent(*agent, enrollment_->RevokedError(name));
  // It will not be let back, so its attempts need not wait for it.
  std::vector<std::string> held;
  for (const auto& [id, gpus] : agent->held) held.push_back(id);
  for (const std::string& id : held) {
    LoseAttempt(*jobs_.FindTask(id), absl::StrCat("agent ", name, " was revoked"));
  }
  SaveAgent(*agent);
  Flush();
  Schedule();
  *response.mutable_agent() = agent->Snapshot();
  return response;
}

absl::StatusOr<v1::Task> Core::FindAnyTask(const std::string& task_id) const {
  if (const v1::Task* task = jobs_.FindTask(task_id)) return *task;
  return StoredTask(task_id);
}

absl::StatusOr<v1::GetArtifactResponse> Core::GetArtifact(const v1::GetArtifactRequest& request) {
  absl::StatusOr<v1::Task> found = FindAnyTask(request.task_id());
  if (!found.ok()) return found.status();
  const v1::Task* task = &*found;
  const v1::Artifact* artifact = nullptr;
  for (const v1::Artifact& a : task->artifacts()) {
    if (a.name() == request.name()) artifact = &a;
  }
  if (artifact == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("task '", request.task_id(), "' has no artifact '", request.name(), "'"));
  }
  const uint64_t limit =
      request.limit() == 0 ? kMaxLogRead : std::min<uint64_t>(request.limit(), kMaxLogRead);
  absl::StatusOr<std::string> data = logs_->ReadArtifact(task->id(), task->attempt_id(),
                                                         artifact->name(), request.offset(), limit);
  if (!data.ok()) return data.status();
  v1::GetArtifactResponse response;
  response.set_offset(request.offset());
  response.set_size(artifact->size());
  response.set_data(*std::move(data));
  return response;
}

absl::StatusOr<v1::GetLogResponse> Core::GetLog(const v1::GetLogRequest& request) {
  absl::StatusOr<v1::Task> found = FindAnyTask(request.task_id());
  if (!found.ok()) return found.status();
  const v1::Task* task = &*found;
  v1::GetLogResponse response;
  response.set_offset(request.offset());
  if (task->attempt_id() != 0) {
    const uint64_t limit =
        request.limit() == 0 ? kMaxLogRead : std::min<uint64_t>(request.limit(), kMaxLogRead);
    absl::StatusOr<std::string> data =
        logs_->Read(task->id(), task->attempt_id(), request.offset(), limit);
    if (!data.ok()) return data.status();
    response.set_data(*std::move(data));
    response.set_size(logs_->Size(task->id(), task->attempt_id()));
  }
  response.set_truncated(task->log_truncated());
  response.set_complete(IsTerminal(task->state()) &&
                        request.offset() + response.data().size() >= response.size());
  return response;
}

absl::Status Core::AddWatcher(WatchId id, const v1::WatchJobRequest& request,
                              std::shared_ptr<Watcher> watcher) {
  if (shutting_down_) return absl::UnavailableError("coordinator shutting down");
  absl::StatusOr<v1::Job> job = GetJob(request.job_id());  // an ended one from the store
  if (!job.ok()) return job.status();
  if (!request.task_id().empty() &&
      std::none_of(job->tasks().begin(), job->tasks().end(),
                   [&](const v1::Task& t) { return t.id() == request.task_id(); })) {
    return absl::NotFoundError(
        absl::StrCat("job ", request.job_id(), " has no task '", request.task_id(), "'"));
  }
  watchers_.Add(id, request, *job, std::move(watcher));
  return absl::OkStatus();
}

void Core::RemoveWatcher(WatchId id) {
  watchers_.Remove(id);
  ReleaseAcks();
  Flush();
}

void Core::WatcherDrained(WatchId id) {
  watchers_.Resume(id);
  ReleaseAcks();
  Flush();
}

}  // namespace musafarm::coordinator
