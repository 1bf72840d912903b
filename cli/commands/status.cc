#include <ostream>
#include <vector>

#include "cli/client.h"
#include "cli/color.h"
#include "cli/commands/commands.h"
#include "cli/commands/fetch_job.h"
#include "cli/render.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "musafarm/v1/user_service.grpc.pb.h"

namespace musafarm::cli {

int RunStatus(const CommandEnv& env, const std::string& id) {
  const std::string job_id = JobIdOf(id);
  const bool is_task = job_id.size() != id.size();
  if (job_id.empty()) {
    *env.err << "musafarm: '" << id << "' is neither a job id nor a task id\n";
    return kExitUsage;
  }
  v1::Job job;
  if (grpc::Status s = FetchJob(env, job_id, &job); !s.ok()) return ReportRpcError(env, s);

  const v1::Task* task = nullptr;
  if (is_task) {
    for (const v1::Task& t : job.tasks()) {
      if (t.id() == id) task = &t;
    }
    if (task == nullptr) {
      *env.err << "musafarm: job " << job_id << " has no task " << id << "\n";
      return kExitUsage;
    }
  }

  if (env.output != OutputFormat::kTable) {
    if (task != nullptr) {
      PrintMessage(env, *task);
    } else {
      PrintMessage(env, job);
    }
  } else {
    std::vector<std::string> lines = RenderStatus(job, is_task ? id : "", env.clock->Now());
    if (env.color) lines = ColorStateColumn(std::move(lines));
    for (const std::string& l : lines) *env.out << l << "\n";
  }
  return job.state() == v1::JOB_STATE_FAILED || job.state() == v1::JOB_STATE_CANCELLED
             ? kExitJobFailed
             : kExitOk;
}

}  // namespace musafarm::cli
