// `musafarm schedule add|list|show|remove|pause|resume|run` (issue 14): the
// coordinator's schedules, over ScheduleService.
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "cli/client.h"
#include "cli/commands/context_upload.h"
#include "cli/commands/commands.h"
#include "cli/render.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "musafarm/v1/schedule_service.grpc.pb.h"

namespace musafarm::cli {
namespace {

std::string When(const google::protobuf::Timestamp& ts, absl::TimeZone tz) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return "-";
  return FormatDateTime(absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos()), tz);
}

std::string Overlap(v1::OverlapPolicy p) {
  return p == v1::OVERLAP_POLICY_QUEUE ? "queue" : "skip";
}

// "job 7 SUCCEEDED 120 passed, 2 failed", "skipped: job 7 still running".
std::string RunResult(const v1::ScheduleRun& run) {
  if (run.job_id().empty()) return run.outcome();
  std::string out = absl::StrCat("job ", run.job_id(), " ",
                                 run.state() == v1::JOB_STATE_UNSPECIFIED
                                     ? std::string("(expired)")
                                     : JobStateName(run.state()));
  const v1::TestCounts& t = run.tests();
  if (t.passed() + t.failed() + t.errors() + t.skipped() > 0) {
    absl::StrAppend(&out, ", tests ", t.passed(), " passed, ", t.failed() + t.errors(),
                    " failed");
  }
  return out;
}

std::vector<std::string> RenderSchedules(const v1::ListSchedulesResponse& resp,
                                         absl::TimeZone tz) {
  std::vector<Row> rows;
  for (const v1::Schedule& s : resp.schedules()) {
    rows.push_back({s.name(), s.cron(), s.timezone().empty() ? "UTC" : s.timezone(),
                    s.paused() ? "paused" : When(s.next_fire_time(), tz),
                    s.runs().empty() ? "-" : RunResult(s.runs(0))});
  }
  return RenderTable({"NAME", "CRON", "TIME ZONE", "NEXT", "LAST RUN"}, rows);
}

std::vector<std::string> RenderSchedule(const v1::Schedule& s, absl::TimeZone tz) {
  std::vector<std::string> lines = {
      absl::StrCat("schedule ", s.name(), s.paused() ? " (paused)" : ""),
      absl::StrCat("  cron:     ", s.cron(), " in ", s.timezone().empty() ? "UTC" : s.timezone()),
      absl::StrCat("  overlap:  ", Overlap(s.overlap())),
      absl::StrCat("  pipeline: ", s.request().spec_file(),
                   s.request().name().empty() ? "" : absl::StrCat(" as ", s.request().name())),
      absl::StrCat("  created:  ", When(s.created_time(), tz), " by ", s.created_by()),
      absl::StrCat("  last:     ", When(s.last_fire_time(), tz)),
      absl::StrCat("  next:     ", s.paused() ? "paused" : When(s.next_fire_time(), tz))};
  for (const v1::JobInput& in : s.request().inputs()) {
    lines.push_back(absl::StrCat(
        "  input:    ", in.name(), ": ", in.source(),
        in.tree().sha256().empty()
            ? " (resolved at each run)"
            : absl::StrCat(", tree ", in.tree().sha256().substr(0, 12), " (pinned)")));
  }
  if (s.secrets_size() > 0) {
    std::string names;
    for (const std::string& n : s.secrets()) absl::StrAppend(&names, names.empty() ? "" : ", ", n);
    lines.push_back(absl::StrCat("  secrets:  ", names, " (stored encrypted, never shown)"));
  }
  std::vector<Row> rows;
  for (const v1::ScheduleRun& run : s.runs()) {
    rows.push_back({When(run.scheduled_time(), tz), run.trigger(), RunResult(run)});
  }
  if (rows.empty()) {
    lines.push_back("no runs yet");
  } else {
    for (std::string& l : RenderTable({"SLOT", "TRIGGER", "RESULT"}, rows)) {
      lines.push_back(std::move(l));
    }
  }
  return lines;
}

void Print(const CommandEnv& env, const std::vector<std::string>& lines) {
  for (const std::string& l : lines) *env.out << l << "\n";
}

}  // namespace

int RunScheduleAdd(const CommandEnv& env, const ScheduleAddOptions& opts) {
  if (opts.submit.watch || opts.submit.dry_run) {
    *env.err << "musafarm: schedule add: --watch and --dry-run are submit's, not a schedule's\n";
    return kExitUsage;
  }
  PreparedSubmit prepared;
  if (int code = PrepareSubmit(env, opts.submit, &prepared); code != kExitOk) return code;
  v1::AddScheduleRequest req;
  req.set_name(opts.name);
  req.set_cron(opts.cron);
  req.set_timezone(opts.timezone);
  req.set_overlap(opts.overlap == "queue" ? v1::OVERLAP_POLICY_QUEUE : v1::OVERLAP_POLICY_SKIP);
  *req.mutable_request() = std::move(prepared.request);
  // A directory is uploaded now, once: every run builds this tree, which the
  // schedule pins. A git context is resolved at each run.
  absl::StatusOr<std::vector<v1::JobInput>> inputs =
      UploadContexts(env, prepared.contexts, /*dry_run=*/false);
  if (!inputs.ok()) return ReportUploadError(env, inputs.status());
  for (v1::JobInput& in : *inputs) *req.mutable_request()->add_inputs() = std::move(in);
  v1::Schedule resp;
  if (grpc::Status s = CallActive<v1::ScheduleService>(
          env, Repeat::kOnce,
          [&](v1::ScheduleService::Stub& stub, grpc::ClientContext* ctx) {
            return stub.AddSchedule(ctx, req, &resp);
          });
      !s.ok()) {
    if (s.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      *env.err << "musafarm: " << ExplainOrigin(s.error_message(), prepared.parts) << "\n";
      return kExitUsage;
    }
    return ReportRpcError(env, s, "musafarm schedule show " + opts.name);
  }
  if (env.output != OutputFormat::kTable) {
    PrintMessage(env, resp);
    return kExitOk;
  }
  *env.out << "schedule " << resp.name() << " added: " << resp.cron() << " in "
           << (resp.timezone().empty() ? "UTC" : resp.timezone()) << ", next run "
           << When(resp.next_fire_time(), env.tz) << "\n";
  return kExitOk;
}

int RunScheduleList(const CommandEnv& env) {
  v1::ListSchedulesResponse resp;
  if (grpc::Status s = CallActive<v1::ScheduleService>(
          env, Repeat::kIdempotent,
          [&](v1::ScheduleService::Stub& stub, grpc::ClientContext* ctx) {
            return stub.ListSchedules(ctx, v1::ListSchedulesRequest(), &resp);
          });
      !s.ok()) {
    return ReportRpcError(env, s);
  }
  if (env.output != OutputFormat::kTable) {
    for (const v1::Schedule& s : resp.schedules()) PrintMessage(env, s);
    return kExitOk;
  }
  if (resp.schedules().empty()) {
    *env.out << "no schedules\n";
    return kExitOk;
  }
  Print(env, RenderSchedules(resp, env.tz));
  return kExitOk;
}

int RunScheduleShow(const CommandEnv& env, const std::string& name, int runs) {
  v1::GetScheduleRequest req;
  req.set_name(name);
  req.set_runs(runs);
  v1::Schedule resp;
  if (grpc::Status s = CallActive<v1::ScheduleService>(
          env, Repeat::kIdempotent,
          [&](v1::ScheduleService::Stub& stub, grpc::ClientContext* ctx) {
            return stub.GetSchedule(ctx, req, &resp);
          });
      !s.ok()) {
    return ReportRpcError(env, s);
  }
  if (env.output != OutputFormat::kTable) {
    PrintMessage(env, resp);
    return kExitOk;
  }
  Print(env, RenderSchedule(resp, env.tz));
  return kExitOk;
}

int RunScheduleChange(const CommandEnv& env, const std::string& action, const std::string& name) {
  v1::ScheduleNameRequest req;
  req.set_name(name);
  const std::string check = "musafarm schedule show " + name;
  if (action == "run") {
    v1::ScheduleRun run;
    if (grpc::Status s = CallActive<v1::ScheduleService>(
            env, Repeat::kOnce,
            [&](v1::ScheduleService::Stub& stub, grpc::ClientContext* ctx) {
              return stub.RunSchedule(ctx, req, &run);
            });
        !s.ok()) {
      return ReportRpcError(env, s, check);
    }
    if (env.output != OutputFormat::kTable) {
      PrintMessage(env, run);
    } else if (run.job_id().empty()) {
      *env.out << "schedule " << name << ": " << run.outcome() << "\n";
    } else {
      *env.out << "schedule " << name << ": submitted job " << run.job_id() << "\n";
    }
    return kExitOk;
  }
  v1::Schedule resp;
  // Pausing or resuming twice leaves the same state; removing twice does not
  // (the second finds no schedule).
  grpc::Status s = CallActive<v1::ScheduleService>(
      env, action == "remove" ? Repeat::kOnce : Repeat::kIdempotent,
      [&](v1::ScheduleService::Stub& stub, grpc::ClientContext* ctx) {
        return action == "remove"  ? stub.RemoveSchedule(ctx, req, &resp)
               : action == "pause" ? stub.PauseSchedule(ctx, req, &resp)
                                   : stub.ResumeSchedule(ctx, req, &resp);
      });
  if (!s.ok()) return ReportRpcError(env, s, check);
  if (env.output != OutputFormat::kTable) {
    PrintMessage(env, resp);
  } else if (action == "resume") {
    *env.out << "schedule " << name << " resumed, next run " << When(resp.next_fire_time(), env.tz)
             << "\n";
  } else {
    *env.out << "schedule " << name << (action == "remove" ? " removed" : " paused") << "\n";
  }
  return kExitOk;
}

}  // namespace musafarm::cli
