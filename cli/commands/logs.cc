#include <algorithm>
#include <ostream>

#include "cli/client.h"
#include "cli/commands/commands.h"
#include "cli/commands/watch_stream.h"
#include "cli/render.h"
#include "cli/watch_model.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "musafarm/v1/user_service.grpc.pb.h"

namespace musafarm::cli {
namespace {

// Writes log bytes at `offset` of the task's attempt `attempt_id` (0: not known
// yet, for bytes read before following): raw, or with -o json as one LogData a
// line (-o yaml: a document each), the shape `watch --logs -o json` prints under "log" (data in base64,
// since a log is bytes, not necessarily UTF-8).
void WriteLog(const CommandEnv& env, const std::string& task_id, uint64_t attempt_id,
              uint64_t offset, absl::string_view data) {
  if (data.empty()) return;
  if (env.output != OutputFormat::kTable) {
    v1::LogData chunk;
    chunk.set_task_id(task_id);
    chunk.set_attempt_id(attempt_id);
    chunk.set_offset(offset);
    chunk.set_data(std::string(data));
    PrintMessage(env, chunk);
    return;
  }
  env.out->write(data.data(), static_cast<std::streamsize>(data.size()));
}

}  // namespace

int RunLogs(const CommandEnv& env, const std::string& task_id, bool follow,
            const WatchOptions& resume) {
  const std::string job_id = JobIdOf(task_id);
  if (job_id.empty() || job_id.size() == task_id.size()) {
    *env.err << "musafarm: '" << task_id << "' is not a task id (like 7/dev-3.8/base)\n";
    return kExitUsage;
  }

  // What is stored so far, in pieces of at most the server's limit.
  uint64_t offset = 0;
  bool complete = false;
  while (true) {
    v1::GetLogRequest req;
    req.set_task_id(task_id);
    req.set_offset(offset);
    v1::GetLogResponse resp;
    if (grpc::Status s = CallActive<v1::UserService>(
            env, Repeat::kIdempotent,
            [&](v1::UserService::Stub& stub, grpc::ClientContext* ctx) {
              return stub.GetLog(ctx, req, &resp);
            });
        !s.ok()) {
      return ReportRpcError(env, s);
    }
    absl::string_view data = resp.data();
    const uint64_t end = resp.offset() + data.size();
    if (end > offset) {
      if (resp.offset() < offset) data.remove_prefix(static_cast<size_t>(offset - resp.offset()));
      WriteLog(env, task_id, /*attempt_id=*/0, end - data.size(), data);
      offset = end;
    }
    complete = resp.complete();
    if (resp.data().empty() || offset >= resp.size()) break;
  }
  env.out->flush();
  if (!follow || complete) return kExitOk;

  // Then follow it live, from where GetLog stopped.
  LogCursor cursor;
  uint64_t known_attempt = 0;  // the task's current attempt, as last seen
  auto make_request = [&] {
    v1::WatchJobRequest req;
    req.set_job_id(job_id);
    req.set_task_id(task_id);
    req.set_logs(true);
    if (!cursor.started()) {
      (*req.mutable_log_offsets())[task_id] = offset;
    } else if (cursor.attempt_id() == known_attempt) {
      (*req.mutable_log_offsets())[task_id] = cursor.consumed();
    }
    return req;
  };
  auto learn_attempt = [&](const v1::Job& job) {
    for (const v1::Task& t : job.tasks()) {
      if (t.id() != task_id) continue;
      known_attempt = t.attempt_id();
      // The bytes GetLog returned belong to the attempt current at the first snapshot.
      if (!cursor.started()) cursor.Seed(t.attempt_id(), offset);
    }
  };
  grpc::Status status = FollowWatch(
      env, resume, make_request,
      [&](const v1::WatchEvent& ev) {
        switch (ev.kind_case()) {
          case v1::WatchEvent::kSnapshot:
            learn_attempt(ev.snapshot());
            break;
          case v1::WatchEvent::kFinished:
            learn_attempt(ev.finished());
            break;
          case v1::WatchEvent::kTask:
            if (ev.task().id() == task_id) known_attempt = ev.task().attempt_id();
            break;
          case v1::WatchEvent::kLog: {
            if (ev.log().task_id() != task_id) break;
            absl::string_view fresh =
                cursor.Accept(ev.log().attempt_id(), ev.log().offset(), ev.log().data());
            // Accept returns the tail of the event's data: it ends where the event ends.
            WriteLog(env, task_id, ev.log().attempt_id(),
                     ev.log().offset() + ev.log().data().size() - fresh.size(), fresh);
            env.out->flush();
            break;
          }
          case v1::WatchEvent::KIND_NOT_SET:
            break;
        }
      },
      [&](const std::string& line) { *env.err << "musafarm: " << line << "\n"; });
  env.out->flush();
  if (!status.ok()) return ReportRpcError(env, status);
  return kExitOk;
}

}  // namespace musafarm::cli
