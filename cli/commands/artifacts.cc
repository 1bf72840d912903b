#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "cli/client.h"
#include "cli/commands/commands.h"
#include "cli/commands/fetch_job.h"
#include "cli/json.h"
#include "cli/render.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "musafarm/v1/user_service.grpc.pb.h"

namespace musafarm::cli {
namespace {

// What one GetArtifact call asks for: the coordinator's most per call.
constexpr uint64_t kArtifactPage = 4 << 20;

// Artifact names come from the coordinator; only plain file names are written,
// so that none lands outside the target directory.
bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_of(std::string("/\0", 2)) == std::string::npos;
}

// Downloads `a` of `task_id` to `path`, page by page, through PATH.part.
// Prints what went wrong and returns the exit code.
int Download(const CommandEnv& env, const std::string& task_id,
             const v1::Artifact& a, const std::string& path) {
  absl::StatusOr<std::unique_ptr<AtomicFile>> file = AtomicFile::Create(path);
  if (!file.ok()) {
    *env.err << "musafarm: cannot write " << file.status().message() << "\n";
    return kExitUsage;
  }
  uint64_t offset = 0;
  std::optional<uint64_t> size;  // as the coordinator has it
  while (true) {
    v1::GetArtifactRequest req;
    req.set_task_id(task_id);
    req.set_name(a.name());
    req.set_offset(offset);
    req.set_limit(kArtifactPage);
    v1::GetArtifactResponse resp;
    if (grpc::Status s = CallActive<v1::UserService>(
            env, Repeat::kIdempotent,
            [&](v1::UserService::Stub& stub, grpc::ClientContext* ctx) {
              return stub.GetArtifact(ctx, req, &resp);
            });
        !s.ok()) {
      return ReportRpcError(env, s);  // the .part file goes with `file`
    }
    if (size && resp.size() != *size) {
      // A retry of the task replaced its artifacts under us.
      *env.err << "musafarm: artifact " << a.name() << " of " << task_id
               << " changed while downloading; try again\n";
      return kExitJobFailed;
    }
    size = resp.size();
    if (resp.offset() > offset) {
      *env.err << "musafarm: coordinator sent artifact " << a.name() << " of " << task_id
               << " from byte " << resp.offset() << " when asked for byte " << offset << "\n";
      return kExitJobFailed;
    }
    absl::string_view data = resp.data();
    const uint64_t end = resp.offset() + data.size();
    const uint64_t before = offset;
    if (end > offset) {
      data.remove_prefix(static_cast<size_t>(offset - resp.offset()));
      if (absl::Status s = (*file)->Append(data); !s.ok()) {
        *env.err << "musafarm: cannot write " << s.message() << "\n";
        return kExitUsage;
      }
      offset = end;
    }
    if (offset >= *size) break;
    if (offset == before) {
      *env.err << "musafarm: artifact " << a.name() << " of " << task_id << " ended at byte "
               << offset << " of " << *size << "\n";
      return kExitJobFailed;
    }
  }
  if (offset != *size) {
    *env.err << "musafarm: artifact " << a.name() << " of " << task_id << " has " << offset
             << " bytes, not " << *size << "\n";
    return kExitJobFailed;
  }
  if (absl::Status s = (*file)->Commit(); !s.ok()) {
    *env.err << "musafarm: cannot write " << s.message() << "\n";
    return kExitUsage;
  }
  if (env.output != OutputFormat::kTable) {
    v1::Artifact got = a;
    got.set_size(offset);  // what was written, should the listing be stale
    Json json = ProtoToJson(got);
    json["path"] = path;
    PrintDocument(env, json);
  } else {
    *env.out << path << " (" << offset << " bytes)\n";
  }
  env.out->flush();
  return kExitOk;
}

}  // namespace

int RunArtifacts(const CommandEnv& env, const std::string& task_id, const std::string& dir) {
  const std::string job_id = JobIdOf(task_id);
  if (job_id.empty() || job_id.size() == task_id.size()) {
    *env.err << "musafarm: '" << task_id << "' is not a task id (like 7/dev-3.8/base)\n";
    return kExitUsage;
  }
  v1::Job job;
  if (grpc::Status s = FetchJob(env, job_id, &job); !s.ok()) return ReportRpcError(env, s);
  const v1::Task* task = nullptr;
  for (const v1::Task& t : job.tasks()) {
    if (t.id() == task_id) task = &t;
  }
  if (task == nullptr) {
    *env.err << "musafarm: job " << job_id << " has no task " << task_id << "\n";
    return kExitUsage;
  }

  if (dir.empty()) {
    if (env.output != OutputFormat::kTable) {
      Json artifacts = Json::array();
      for (const v1::Artifact& a : task->artifacts()) artifacts.push_back(ProtoToJson(a));
      Json json = Json::object();
      json["artifacts"] = std::move(artifacts);
      PrintDocument(env, json);
    } else {
      for (const std::string& l : RenderArtifacts(*task)) *env.out << l << "\n";
    }
    return kExitOk;
  }

  for (const v1::Artifact& a : task->artifacts()) {
    if (!IsPlainFileName(a.name())) {
      *env.err << "musafarm: task " << task_id << " has an artifact named '" << a.name()
               << "', which is not a plain file name; not writing it\n";
      return kExitJobFailed;
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    *env.err << "musafarm: cannot create " << dir << ": " << ec.message() << "\n";
    return kExitUsage;
  }
  if (task->artifacts_size() == 0) {
    *env.err << "musafarm: task " << task_id << " has no artifacts\n";
    return kExitOk;
  }
  for (const v1::Artifact& a : task->artifacts()) {
    const std::string path = (std::filesystem::path(dir) / a.name()).string();
    if (int code = Download(env, task_id, a, path); code != kExitOk) return code;
  }
  return kExitOk;
}

}  // namespace musafarm::cli
