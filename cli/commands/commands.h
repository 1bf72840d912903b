#pragma once

// One function per `musafarm` subcommand. Each returns the process exit code
// (cli/client.h) and writes only to env.out / env.err, so tests drive them
// against a fake coordinator with string streams.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cli/client.h"
#include "cli/commands/context_upload.h"
#include "cli/script_options.h"
#include "musafarm/v1/user_service.pb.h"

namespace musafarm::cli {

struct WatchOptions {
  std::string job_id;
  bool logs = false;
  // Resume after a broken stream: give up once reconnecting has failed this long.
  absl::Duration give_up_after = absl::Seconds(60);
  absl::Duration backoff_initial = absl::Milliseconds(250);
  absl::Duration backoff_max = absl::Seconds(5);
  // Live view redraw period on a terminal.
  absl::Duration redraw_every = absl::Milliseconds(200);
  // If set, called once, right after the first WatchJob request has been
  // sent and before its first event is read: submit --watch prints the new
  // job there, so that the print overlaps the watch's round trip (issue 19).
  std::function<void()> on_request_sent;
};

// A pipeline file's text and how messages name it.
struct PipelineSource {
  std::string yaml;
  std::string file;
};
// `file`, or the built-in pipeline when empty. Errors name the file.
absl::StatusOr<PipelineSource> ReadPipeline(const std::string& file);

// A pipeline as the command line's parse read it (RunCli reads it first, for
// the options the file declares): `arg` the file argument it was read for.
struct ReadPipelineFile {
  std::string arg;
  PipelineSource source;
  pipeline::PipelineOptions declared;
};

struct SubmitOptions {
  std::string file;      // empty: the built-in pipelines/torch_musa.yaml
  GivenOptions given;    // the pipeline's own options, --param, --axis, --secret
  std::string job_name;  // --job-name; else an option with `names_job`, else the pipeline's
  EnvLookup env_lookup = ProcessEnv;
  bool watch = false;
  WatchOptions watch_options;  // job_id is filled in from the submitted job
  // Print the request and the job it expands to as JSON (secret values
  // masked) instead of submitting: what a command line becomes.
  bool dry_run = false;
  // SubmitRequest.strict: a task no connected agent could run (its stage
  // kind, labels or GPUs) is an error, not a warning.
  bool strict = false;
  // `--context NAME=DIR` (issue 17): directories packed and uploaded as job
  // inputs, which a docker_build names as `context: input:NAME`.
  std::vector<std::string> contexts;
  // --webhook URL[,format=json|slack|mattermost|feishu|lark][,first-failure]
  std::vector<std::string> webhooks;
  // The file as RunCli read it, when it was `file`: not read and parsed again.
  std::optional<ReadPipelineFile> read;
};

// One --webhook value as the protocol's Webhook; INVALID_ARGUMENT naming
// what is wrong (never the URL's path, which may be a token).
absl::StatusOr<v1::Webhook> ParseWebhookFlag(const std::string& text);


// A submit command line as a request, checked here first.
struct PreparedSubmit {
  v1::SubmitRequest request;
  v1::Job local;      // what it expands to here
  SubmitParts parts;  // where each value came from, for explaining errors
  // The inputs to send: the pipeline's declared ones and --context's.
  std::vector<ContextSource> contexts;
};
// Reads the pipeline, maps the options and expands the job locally. On failure
// prints why to env.err and returns the exit code; kExitOk otherwise.
int PrepareSubmit(const CommandEnv& env, const SubmitOptions& opts, PreparedSubmit* out);

int RunSubmit(const CommandEnv& env, const SubmitOptions& opts);
// After submit or rerun created `job`: its warnings on stderr, then
// "submitted job N (K tasks)<suffix>" (or the job as -o asks), then with
// `watch` the job followed until it ends (RunWatch's exit code).
int ReportNewJob(const CommandEnv& env, const v1::Job& job,
                 const google::protobuf::RepeatedPtrField<std::string>& warnings,
                 const std::string& suffix, bool watch, WatchOptions watch_options);

// `musafarm jobs`: which jobs to list, filtered by the coordinator.
struct JobsOptions {
  int limit = 0;     // 0: the coordinator's default
  bool mine = false;  // only the caller's jobs
  std::string user;   // only this user's
  std::vector<std::string> states;  // running, succeeded, failed, cancelled
  std::string name;                 // a substring of the name
  std::string since;                // created within this long, e.g. 1d
  std::string older_than;           // created longer ago than this, e.g. 7d
};
int RunJobs(const CommandEnv& env, const JobsOptions& opts);
// `id` is a job id ("7") or a task id ("7/dev-3.8/base").
int RunStatus(const CommandEnv& env, const std::string& id);
int RunWatch(const CommandEnv& env, const WatchOptions& opts);
// Writes the task's log to env.out; with `follow`, until the task has ended.
int RunLogs(const CommandEnv& env, const std::string& task_id, bool follow,
            const WatchOptions& resume = {});
int RunCancel(const CommandEnv& env, const std::string& id);

// `musafarm rerun JOB`: the ended job's tasks again as a new job of the
// caller; with `failed`, only its cells with a failed, timed-out, cancelled
// or skipped task (each with all its stages). Secret values are not kept past
// a job, so the job's secrets are given again, as submit takes them.
struct RerunOptions {
  std::string job_id;
  bool failed = false;
  std::vector<std::string> secrets;  // environment variable names (--secret NAME)
  EnvLookup env_lookup = ProcessEnv;
  bool watch = false;
  WatchOptions watch_options;  // job_id is filled in from the new job
};
int RunRerun(const CommandEnv& env, const RerunOptions& opts);
int RunAgents(const CommandEnv& env);
// `coordinators`: who is active since when (issue 20). Any coordinator of
// the list answers, a standby too.
int RunCoordinators(const CommandEnv& env);
int RunDrain(const CommandEnv& env, const std::string& agent, bool undrain);
// `agents revoke NAME`: every certificate of the name refused, its stream ended.
int RunRevoke(const CommandEnv& env, const std::string& agent);

// Lists the task's artifacts; with a non-empty `dir`, downloads each of them
// into `dir` (created if missing) as dir/NAME, written atomically.
int RunArtifacts(const CommandEnv& env, const std::string& task_id, const std::string& dir);

// Prints the job's test counts per task; with a non-empty `junit_file`, also
// writes them there as JUnit XML. Exits 1 when a test failed or errored or the
// job failed or was cancelled.
int RunResults(const CommandEnv& env, const std::string& job_id, const std::string& junit_file);

// Users (admin; cli/commands/users.cc). `expires`: "" (never) or e.g. "90d".
int RunTokenCreate(const CommandEnv& env, const std::string& user, const std::string& role,
                   const std::string& expires);
// Every token, never a secret.
int RunTokenList(const CommandEnv& env);
// A token by id, or every token of a user by name.
int RunTokenRevoke(const CommandEnv& env, const std::string& id_or_user);
// The audit log: the newest `limit` lines (0: 100) of `user` ("" everyone)
// since `since` ago ("" always), oldest first.
int RunAudit(const CommandEnv& env, const std::string& user, const std::string& since,
             int limit);

// Schedules (issue 14; cli/commands/schedule.cc). `schedule add`: the run is
// `submit`'s command line (opts), checked here; its secrets are read from the
// environment now and kept sealed by the coordinator.
struct ScheduleAddOptions {
  std::string name;
  std::string cron;
  std::string timezone;  // "": UTC
  std::string overlap = "skip";
  SubmitOptions submit;
};
int RunScheduleAdd(const CommandEnv& env, const ScheduleAddOptions& opts);
int RunScheduleList(const CommandEnv& env);
// `runs`: how many last runs (0: 10).
int RunScheduleShow(const CommandEnv& env, const std::string& name, int runs);
// `action`: "remove", "pause", "resume" or "run".
int RunScheduleChange(const CommandEnv& env, const std::string& action, const std::string& name);

}  // namespace musafarm::cli
