#pragma once

// `musafarm rerun JOB [--failed]` (issue 16, item 4): the job a rerun
// submits, made from the old job as stored. Pure: the core gives it an id,
// stores and schedules it as it does a submitted job.

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::coordinator {

// A new job `new_id` with the old job's name, pipeline file, axes, params,
// secret names, inputs, retention, priority (batch) and tasks as expanded at
// submit (the same stage specs, cells and needs, under the new id), rerun_of =
// old's id, and no state yet (the core sets it, as for a submitted job). Not
// its schedule, submitter or webhooks: the rerun is the caller's. With
// `failed_only`, only the matrix cells (chains: needs never leave a cell)
// with a task that failed, timed out, was cancelled or was skipped for that
// are kept, each with every one of its stages, in the old order (a DAG's).
// FAILED_PRECONDITION for a job still running, and for `failed_only` of one
// with no such cell.
absl::StatusOr<v1::Job> RerunJob(const v1::Job& old, const std::string& new_id, bool failed_only);

// Secret values are never kept past a job, so a rerun of a job that had
// secrets needs them again: INVALID_ARGUMENT naming those missing, or a
// name the job never had. Never a value in a message.
absl::Status CheckRerunSecrets(const v1::Job& old,
                               const std::map<std::string, std::string>& given);

// NOT_FOUND for a rerun of job `id`, which is unknown: never submitted, or
// expired (retention deleted it with its tasks' specs).
absl::Status NoJobToRerun(const std::string& id);

}  // namespace musafarm::coordinator
