#include "coordinator/schedule_runner.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/limits.h"
#include "common/logging.h"
#include "coordinator/git_inputs.h"
#include "coordinator/joined_inputs.h"
#include "coordinator/webhook_targets.h"
#include "pipeline/spec.h"

namespace musafarm::coordinator {
namespace {

// How many runs GetSchedule shows unless asked, and at most.
constexpr int kDefaultRuns = 10;
constexpr int kMaxRuns = 200;
// A schedule that fires every minute and was down for a year needs 525,600
// steps to find its latest missed slot; past this many, the one reached is
// close enough to stand for all of them.
constexpr int kMaxCatchUp = 100000;
// A slot acted on later than this after its time was missed (the coordinator
// was down), not merely reached by the next tick.
constexpr absl::Duration kLate = absl::Minutes(1);
constexpr size_t kMaxNameBytes = 64;
// A schedule's webhooks are kept with its secrets (sealed: a webhook URL is
// often a credential) under these names, which no secret can have.
constexpr absl::string_view kWebhookPrefix = "webhook:";
// A git input's source when it carries credentials, kept sealed the same way
// under "input:NAME"; the schedule's request shows it without them.
constexpr absl::string_view kInputPrefix = "input:";

std::shared_ptr<spdlog::logger> Log() {
  static auto log = GetLogger("schedules");
  return log;
}

absl::Status CheckName(const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError("a schedule needs a name");
  if (name.size() > kMaxNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat("schedule name '", name.substr(0, 16),
                                                   "...' is longer than ", kMaxNameBytes,
                                                   " bytes"));
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return absl::InvalidArgumentError(absl::StrCat(
          "schedule name '", name, "': use letters, digits, '-', '_' and '.' only"));
    }
  }
  return absl::OkStatus();
}

// What a run submits must expand now, not first fail at 2 a.m.: the same
// check the coordinator's Submit makes, with the names of the secrets only.
absl::Status CheckPipeline(const v1::SubmitRequest& request) {
  if (request.spec_yaml().empty()) {
    return absl::InvalidArgumentError("a schedule needs a pipeline (its spec_yaml is empty)");
  }
  if (static_cast<size_t>(request.secrets_size()) > limits::kMaxSecretsPerJob) {
    return absl::InvalidArgumentError(absl::StrCat(request.secrets_size(),
                                                   " secrets given; the limit is ",
                                                   limits::kMaxSecretsPerJob));
  }
  pipeline::ExpandOptions expand;
  expand.name_override = request.name();
  expand.max_gpus_per_stage = limits::kMaxAgentGpus;
  expand.params.insert(request.params().begin(), request.params().end());
  for (const v1::AxisValues& axis : request.axes()) {
    expand.axes.emplace_back(axis.axis(),
                             std::vector<std::string>(axis.values().begin(), axis.values().end()));
  }
  for (const auto& [name, value] : request.secrets()) {
    if (value.size() > limits::kMaxSecretBytes) {
      return absl::InvalidArgumentError(absl::StrCat("--secret ", name, ": value is ",
                                                     value.size(), " bytes; the limit is ",
                                                     limits::kMaxSecretBytes));
    }
    expand.secrets.push_back(name);
  }
  const std::string file = request.spec_file().empty() ? "<submitted>" : request.spec_file();
  return pipeline::ParseAndExpand(request.spec_yaml(), file, "schedule", expand).status();
}

// Inputs that name a source but no tree yet: git inputs, resolved at each run.
bool HasUnresolvedInputs(const v1::SubmitRequest& request) {
  for (const v1::JobInput& in : request.inputs()) {
    if (in.tree().sha256().empty() && !in.source().empty()) return true;
  }
  return false;
}

void AddCounts(const v1::TestCounts& from, v1::TestCounts* to) {
  to->set_passed(to->passed() + from.passed());
  to->set_failed(to->failed() + from.failed());
  to->set_skipped(to->skipped() + from.skipped());
  to->set_errors(to->errors() + from.errors());
}

}  // namespace

absl::Time TimeOf(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return absl::InfinitePast();
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

void SetTimestamp(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t us = absl::ToUnixMicros(t);
  out->set_seconds(us / 1000000);
  out->set_nanos(static_cast<int32_t>(us % 1000000) * 1000);
}

absl::Status ScheduleRunner::Load() {
  absl::StatusOr<std::vector<v1::Schedule>> stored = store_->LoadAll();
  if (!stored.ok()) return stored.status();
  entries_.clear();
  for (v1::Schedule& schedule : *stored) {
    absl::StatusOr<CronSchedule> cron = CronSchedule::Parse(schedule.cron(), schedule.timezone());
    if (!cron.ok()) {
      // E.g. a time zone this host's database lacks: the others still run.
      Log()->error("schedule '{}' is not run: {}", schedule.name(), cron.status().ToString());
      continue;
    }
    std::string last_job;
    absl::StatusOr<std::vector<v1::ScheduleRun>> runs = store_->LastRuns(schedule.name(), 50);
    if (!runs.ok()) return runs.status();
    for (const v1::ScheduleRun& run : *runs) {
      if (!run.job_id().empty()) {
        last_job = run.job_id();
        break;
      }
    }
    const std::string name = schedule.name();
    entries_.emplace(name, Entry{std::move(schedule), *std::move(cron), std::move(last_job)});
  }
  Log()->info("{} schedule(s) loaded", entries_.size());
  return absl::OkStatus();
}

void ScheduleRunner::Tick() {
  const absl::Time now = clock_->Now();
  for (auto& [name, entry] : entries_) {
    // A run resolving its git inputs records its slot when it is submitted.
    if (entry.resolving || entry.schedule.paused() || !entry.schedule.has_next_fire_time()) {
      continue;
    }
    absl::Time slot = TimeOf(entry.schedule.next_fire_time());
    if (slot > now) continue;
    // Slots missed while the coordinator was down: one run, for the latest.
    int missed = 0;
    for (absl::Time t = entry.cron.Next(slot); t <= now && missed < kMaxCatchUp;
         t = entry.cron.Next(t)) {
      slot = t;
      ++missed;
    }
    const bool late = missed > 0 || now - slot > kLate;
    if (late) {
      Log()->info("schedule '{}': {} slot(s) missed up to {}; running once", name, missed + 1,
                  FormatUtc(slot));
    }
    Fire(entry, slot, late ? "missed" : "cron", /*advance=*/true, nullptr);
  }
}

void ScheduleRunner::Fire(Entry& entry, absl::Time slot, const std::string& trigger,
                          bool advance, RunDone done) {
  const absl::Time now = clock_->Now();
  ScheduleFire fire;
  fire.schedule = entry.schedule;
  if (advance) {
    SetTimestamp(slot, fire.schedule.mutable_last_fire_time());
    const absl::Time next = entry.cron.Next(now);
    if (next == absl::InfiniteFuture()) {
      fire.schedule.clear_next_fire_time();
    } else {
      SetTimestamp(next, fire.schedule.mutable_next_fire_time());
    }
  }
  v1::ScheduleRun& run = fire.run;
  SetTimestamp(slot, run.mutable_scheduled_time());
  SetTimestamp(now, run.mutable_fire_time());
  run.set_trigger(trigger);
  const std::string name = entry.schedule.name();

  if (entry.resolving) {
    return Record(entry, fire, "skipped: the previous run's git inputs are being resolved", done);
  }
  if (!entry.last_job_id.empty() &&
      entry.schedule.overlap() != v1::OVERLAP_POLICY_QUEUE) {
    absl::StatusOr<v1::Job> previous = core_->GetJob(entry.last_job_id);
    if (previous.ok() && previous->state() == v1::JOB_STATE_RUNNING) {
      return Record(entry, fire, absl::StrCat("skipped: job ", entry.last_job_id, " still running"),
                    done);
    }
  }
  absl::StatusOr<std::map<std::string, std::string>> secrets = store_->LoadSecrets(name);
  if (!secrets.ok()) {
    return Record(entry, fire, absl::StrCat("error: ", secrets.status().message()), done);
  }
  v1::SubmitRequest request = entry.schedule.request();
  for (auto& [key, value] : *secrets) {
    if (absl::StartsWith(key, kInputPrefix)) {
      const absl::string_view input = absl::string_view(key).substr(kInputPrefix.size());
      for (v1::JobInput& in : *request.mutable_inputs()) {
        if (in.name() == input) in.set_source(value);
      }
    } else if (!absl::StartsWith(key, kWebhookPrefix)) {
      (*request.mutable_secrets())[key] = std::move(value);
    } else if (!request.add_webhooks()->ParseFromString(value)) {
      return Record(entry, fire, absl::StrCat("error: stored webhook ", key, " does not parse"),
                    done);
    }
  }
  if (!HasUnresolvedInputs(request)) return Submit(entry, std::move(fire), request, done);
  if (resolve_ == nullptr) {
    return Record(entry, fire, "error: this coordinator does not resolve git inputs", done);
  }
  entry.resolving = true;
  Log()->info("schedule '{}' slot {} ({}): resolving its git inputs", name, FormatUtc(slot),
              trigger);
  resolve_(std::move(request), [this, name, advance, fire = std::move(fire),
                                done = std::move(done)](
                                   absl::StatusOr<v1::SubmitRequest> resolved) mutable {
    Entry* again = Find(name);
    if (again == nullptr) {
      Log()->info("schedule '{}' was removed while its run's git inputs were resolved", name);
      if (done) done(absl::NotFoundError(absl::StrCat("schedule '", name, "' was removed")));
      return;
    }
    again->resolving = false;
    // The schedule as it is now (it may have been paused meanwhile), moved
    // on by this slot.
    v1::Schedule schedule = again->schedule;
    if (advance && !schedule.paused()) {
      *schedule.mutable_last_fire_time() = fire.schedule.last_fire_time();
      if (fire.schedule.has_next_fire_time()) {
        *schedule.mutable_next_fire_time() = fire.schedule.next_fire_time();
      } else {
        schedule.clear_next_fire_time();
      }
    }
    fire.schedule = std::move(schedule);
    if (!resolved.ok()) {
      return Record(*again, fire, absl::StrCat("error: ", resolved.status().message()), done);
    }
    Submit(*again, std::move(fire), *resolved, done);
  });
}

void ScheduleRunner::Submit(Entry& entry, ScheduleFire fire, const v1::SubmitRequest& request,
                            const RunDone& done) {
  fire.run.set_outcome("submitted");
  absl::StatusOr<v1::Job> job = core_->SubmitScheduled(request, entry.schedule.created_by(), fire);
  if (!job.ok()) return Record(entry, fire, absl::StrCat("error: ", job.status().message()), done);
  fire.run.set_job_id(job->id());
  entry.last_job_id = job->id();
  entry.schedule = fire.schedule;
  Log()->info("schedule '{}' slot {} ({}): job {}", entry.schedule.name(),
              FormatUtc(TimeOf(fire.run.scheduled_time())), fire.run.trigger(), job->id());
  if (done) done(fire.run);
}

void ScheduleRunner::Record(Entry& entry, ScheduleFire& fire, std::string outcome,
                            const RunDone& done) {
  fire.run.set_outcome(std::move(outcome));
  const std::string& name = fire.schedule.name();
  Log()->info("schedule '{}' slot {} ({}): {}", name, FormatUtc(TimeOf(fire.run.scheduled_time())),
              fire.run.trigger(), fire.run.outcome());
  if (absl::Status s = store_->RecordFire(fire); !s.ok()) {
    Log()->error("schedule '{}': cannot record its run: {}", name, s.ToString());
  }
  entry.schedule = fire.schedule;
  if (done) done(fire.run);
}

absl::Status ScheduleRunner::CheckInputs(const v1::SubmitRequest& request,
                                         std::vector<v1::Digest>* roots) const {
  for (const v1::JobInput& in : request.inputs()) {
    const std::string what = absl::StrCat("input '", in.name(), "'");
    if (!in.tree().sha256().empty()) {
      if (blobs_ == nullptr) {
        return absl::FailedPreconditionError(
            absl::StrCat(what, ": this coordinator has no content store"));
      }
      absl::StatusOr<content::TreeStats> complete = CheckTreeComplete(*blobs_, in.tree(), what);
      if (!complete.ok()) return complete.status();
      roots->push_back(in.tree());
    } else if (IsGitSource(in.source())) {
      if (absl::StatusOr<GitSource> git = ParseGitSource(in.source()); !git.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": ", git.status().message()));
      }
    } else if (IsJoinSource(in.source())) {
      // Made of the other inputs at each run, once the git ones are resolved.
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " carries no tree and is no git URL (--context NAME=DIR or NAME=git+URL#REF)"));
    }
  }
  return absl::OkStatus();
}

ScheduleRunner::Entry* ScheduleRunner::Find(const std::string& name) {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

void ScheduleRunner::FillResult(v1::ScheduleRun& run) const {
  if (run.job_id().empty()) return;
  absl::StatusOr<v1::Job> job = core_->GetJob(run.job_id());
  if (!job.ok()) return;  // expired by retention
  run.set_state(job->state());
  for (const v1::Task& task : job->tasks()) AddCounts(task.tests(), run.mutable_tests());
}

absl::StatusOr<v1::Schedule> ScheduleRunner::AddSchedule(const v1::AddScheduleRequest& request,
                                                         const std::string& created_by) {
  if (absl::Status s = CheckName(request.name()); !s.ok()) return s;
  absl::StatusOr<CronSchedule> cron = CronSchedule::Parse(request.cron(), request.timezone());
  if (!cron.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("schedule '", request.name(), "': ", cron.status().message()));
  }
  if (absl::Status s = CheckPipeline(request.request()); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("schedule '", request.name(), "': ", s.message()));
  }
  if (absl::Status s = core_->CheckWebhooks(request.request()); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("schedule '", request.name(), "': ", s.message()));
  }
  if (Find(request.name()) != nullptr) {
    return absl::AlreadyExistsError(absl::StrCat(
        "schedule '", request.name(), "' exists; remove it first to replace it"));
  }
  std::vector<v1::Digest> roots;
  if (absl::Status s = CheckInputs(request.request(), &roots); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("schedule '", request.name(), "': ", s.message()));
  }
  const absl::Time now = clock_->Now();
  v1::Schedule schedule;
  schedule.set_name(request.name());
  schedule.set_cron(request.cron());
  schedule.set_timezone(request.timezone());
  schedule.set_overlap(request.overlap() == v1::OVERLAP_POLICY_QUEUE ? v1::OVERLAP_POLICY_QUEUE
                                                                     : v1::OVERLAP_POLICY_SKIP);
  *schedule.mutable_request() = request.request();
  std::map<std::string, std::string> secrets(request.request().secrets().begin(),
                                             request.request().secrets().end());
  // Values live sealed in the store only; the schedule names them.
  schedule.mutable_request()->clear_secrets();
  for (const auto& [secret, value] : secrets) schedule.add_secrets(secret);
  for (int i = 0; i < request.request().webhooks_size(); ++i) {
    const v1::Webhook& hook = request.request().webhooks(i);
    secrets[absl::StrCat(kWebhookPrefix, i)] = hook.SerializeAsString();
    schedule.add_webhook_targets(RedactWebhookUrl(hook.url()));
  }
  schedule.mutable_request()->clear_webhooks();
  for (v1::JobInput& in : *schedule.mutable_request()->mutable_inputs()) {
    if (!in.tree().sha256().empty()) continue;
    absl::StatusOr<GitSource> git = ParseGitSource(in.source());  // checked above
    if (git.ok() && git->shown != in.source()) {
      secrets[absl::StrCat(kInputPrefix, in.name())] = in.source();
      in.set_source(git->shown);
    }
  }
  schedule.set_created_by(created_by);
  SetTimestamp(now, schedule.mutable_created_time());
  const absl::Time next = cron->Next(now);
  if (next != absl::InfiniteFuture()) SetTimestamp(next, schedule.mutable_next_fire_time());
  // Pinned before the schedule is stored: a schedule without its pin could
  // lose its tree to GC; a pin without its schedule is dropped below.
  const std::string owner = PinOwner(schedule.name());
  if (!roots.empty()) {
    if (absl::Status s = blobs_->Pin(owner, roots); !s.ok()) {
      return absl::InternalError(
          absl::StrCat("coordinator could not pin the schedule's inputs: ", s.message()));
    }
  }
  if (absl::Status s = store_->Insert(schedule, secrets); !s.ok()) {
    if (!roots.empty()) (void)blobs_->Unpin(owner);
    return s;
  }
  Log()->info("schedule '{}' added by {}: '{}' in {}, next at {}", schedule.name(), created_by,
              schedule.cron(), schedule.timezone().empty() ? "UTC" : schedule.timezone(),
              FormatUtc(next));
  entries_.emplace(schedule.name(), Entry{schedule, *std::move(cron), ""});
  return schedule;
}

absl::StatusOr<std::vector<v1::Schedule>> ScheduleRunner::ListSchedules() {
  std::vector<v1::Schedule> out;
  for (const auto& [name, entry] : entries_) {
    v1::Schedule schedule = entry.schedule;
    absl::StatusOr<std::vector<v1::ScheduleRun>> runs = store_->LastRuns(name, 1);
    if (!runs.ok()) return runs.status();
    for (v1::ScheduleRun& run : *runs) {
      FillResult(run);
      *schedule.add_runs() = std::move(run);
    }
    out.push_back(std::move(schedule));
  }
  return out;
}

absl::StatusOr<v1::Schedule> ScheduleRunner::GetSchedule(const std::string& name, int runs) {
  Entry* entry = Find(name);
  if (entry == nullptr) return absl::NotFoundError(absl::StrCat("no schedule '", name, "'"));
  v1::Schedule schedule = entry->schedule;
  const int limit = runs <= 0 ? kDefaultRuns : std::min(runs, kMaxRuns);
  absl::StatusOr<std::vector<v1::ScheduleRun>> last = store_->LastRuns(name, limit);
  if (!last.ok()) return last.status();
  for (v1::ScheduleRun& run : *last) {
    FillResult(run);
    *schedule.add_runs() = std::move(run);
  }
  return schedule;
}

absl::StatusOr<v1::Schedule> ScheduleRunner::RemoveSchedule(const std::string& name) {
  Entry* entry = Find(name);
  if (entry == nullptr) return absl::NotFoundError(absl::StrCat("no schedule '", name, "'"));
  if (absl::Status s = store_->Delete(name); !s.ok()) return s;
  // Its trees go once no job pins them either (GC's grace applies).
  if (blobs_ != nullptr) {
    if (absl::Status s = blobs_->Unpin(PinOwner(name)); !s.ok()) {
      Log()->error("schedule '{}': its inputs stay pinned: {}", name, s.ToString());
    }
  }
  v1::Schedule removed = std::move(entry->schedule);
  entries_.erase(name);
  Log()->info("schedule '{}' removed", name);
  return removed;
}

absl::StatusOr<v1::Schedule> ScheduleRunner::PauseSchedule(const std::string& name, bool pause) {
  Entry* entry = Find(name);
  if (entry == nullptr) return absl::NotFoundError(absl::StrCat("no schedule '", name, "'"));
  v1::Schedule schedule = entry->schedule;
  schedule.set_paused(pause);
  schedule.clear_next_fire_time();
  if (!pause) {
    const absl::Time next = entry->cron.Next(clock_->Now());
    if (next != absl::InfiniteFuture()) SetTimestamp(next, schedule.mutable_next_fire_time());
  }
  if (absl::Status s = store_->Update(schedule); !s.ok()) return s;
  entry->schedule = schedule;
  Log()->info("schedule '{}' {}", name, pause ? "paused" : "resumed");
  return schedule;
}

void ScheduleRunner::RunSchedule(const std::string& name, RunDone done) {
  Entry* entry = Find(name);
  if (entry == nullptr) return done(absl::NotFoundError(absl::StrCat("no schedule '", name, "'")));
  Fire(*entry, clock_->Now(), "manual", /*advance=*/false, std::move(done));
}

std::set<std::string> ScheduleRunner::PinnedJobs() {
  std::set<std::string> pinned;
  absl::StatusOr<std::vector<std::string>> recent = store_->RecentJobIds(kPinnedRuns);
  if (recent.ok()) {
    pinned.insert(recent->begin(), recent->end());
  } else {
    Log()->error("cannot read the schedules' recent runs; pinning the last of each: {}",
                 recent.status().ToString());
  }
  for (const auto& [name, entry] : entries_) {
    if (!entry.last_job_id.empty()) pinned.insert(entry.last_job_id);
  }
  return pinned;
}

}  // namespace musafarm::coordinator
