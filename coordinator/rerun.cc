#include "coordinator/rerun.h"

#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace musafarm::coordinator {
namespace {

// A task's matrix cell, as a key ("" for a pipeline without axes: one chain).
std::string CellKey(const v1::Task& task) {
  std::vector<std::string> values;
  for (const v1::MatrixValue& v : task.spec().cell()) values.push_back(v.value());
  return absl::StrJoin(values, "\x1f");
}

bool EndedBadly(v1::TaskState s) {
  return s == v1::TASK_STATE_FAILED || s == v1::TASK_STATE_TIMED_OUT ||
         s == v1::TASK_STATE_CANCELLED || s == v1::TASK_STATE_SKIPPED;
}

// "7/dev-3.8/base" of job 7 as a task of job `new_id`: "12/dev-3.8/base".
std::string Renamed(const std::string& old_job, const std::string& new_id,
                    const std::string& task_id) {
  return absl::StrCat(new_id, task_id.substr(old_job.size()));
}

}  // namespace

absl::StatusOr<v1::Job> RerunJob(const v1::Job& old, const std::string& new_id,
                                 bool failed_only) {
  // A running job's cells have not all ended, and two runs of one cell at
  // once would race for the same agents' images and artifacts.
  if (old.state() == v1::JOB_STATE_RUNNING || old.state() == v1::JOB_STATE_UNSPECIFIED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", old.id(),
        " is still running: a rerun needs it ended (wait for it, or cancel it first: "
        "musafarm cancel ",
        old.id(), ")"));
  }
  std::set<std::string> cells;  // kept, with failed_only
  if (failed_only) {
    for (const v1::Task& t : old.tasks()) {
      if (EndedBadly(t.state())) cells.insert(CellKey(t));
    }
    if (cells.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", old.id(),
                       " has no failed, timed-out, cancelled or skipped task: nothing to rerun with "
                       "--failed (rerun without it reruns the whole job)"));
    }
  }
  v1::Job job;
  job.set_id(new_id);
  job.set_name(old.name());
  job.set_pipeline_file(old.pipeline_file());
  *job.mutable_axes() = old.axes();
  *job.mutable_params() = old.params();
  *job.mutable_secrets() = old.secrets();
  *job.mutable_inputs() = old.inputs();
  job.set_retention_seconds(old.retention_seconds());
  job.set_batch(old.batch());  // its priority; not its schedule: a rerun is no scheduled run
  job.set_rerun_of(old.id());
  for (const v1::Task& t : old.tasks()) {
    if (failed_only && cells.count(CellKey(t)) == 0) continue;
    if (t.id().rfind(old.id() + "/", 0) != 0) {
      return absl::InternalError(
          absl::StrCat("job ", old.id(), " holds task '", t.id(), "' of another job"));
    }
    v1::Task& task = *job.add_tasks();
    task.set_id(Renamed(old.id(), new_id, t.id()));
    task.set_job_id(new_id);
    task.set_state(v1::TASK_STATE_PENDING);
    *task.mutable_spec() = t.spec();
    for (std::string& need : *task.mutable_spec()->mutable_needs()) {
      need = Renamed(old.id(), new_id, need);
    }
  }
  return job;
}

absl::Status CheckRerunSecrets(const v1::Job& old,
                               const std::map<std::string, std::string>& given) {
  const std::set<std::string> had(old.secrets().begin(), old.secrets().end());
  for (const auto& [name, value] : given) {
    if (had.count(name) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "job ", old.id(), " has no secret ", name,
          had.empty() ? " (it has none)" : absl::StrCat(" (it has: ", absl::StrJoin(had, ", "), ")")));
    }
  }
  std::vector<std::string> missing;
  for (const std::string& name : had) {
    if (given.count(name) == 0) missing.push_back(name);
  }
  if (!missing.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "job ", old.id(), " was submitted with secret", missing.size() > 1 ? "s " : " ",
        absl::StrJoin(missing, ", "),
        ", whose values are not kept past a job: give them again (--secret ",
        absl::StrJoin(missing, " --secret "), ")"));
  }
  return absl::OkStatus();
}

absl::Status NoJobToRerun(const std::string& id) {
  return absl::NotFoundError(absl::StrCat(
      "no job '", id,
      "': never submitted here, or expired and deleted by retention with its tasks' specs, so "
      "there is nothing to rerun (submit its pipeline again)"));
}

}  // namespace musafarm::coordinator
