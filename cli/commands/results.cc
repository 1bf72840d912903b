#include "cli/results.h"

#include <ostream>

#include "common/atomic_file.h"
#include "cli/client.h"
#include "cli/commands/commands.h"
#include "cli/commands/fetch_job.h"
#include "cli/render.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "musafarm/v1/user_service.grpc.pb.h"

namespace musafarm::cli {

int RunResults(const CommandEnv& env, const std::string& job_id, const std::string& junit_file) {
  if (job_id.empty() || job_id.find('/') != std::string::npos) {
    *env.err << "musafarm: '" << job_id << "' is not a job id (like 7)\n";
    return kExitUsage;
  }
  v1::Job job;
  if (grpc::Status s = FetchJob(env, job_id, &job); !s.ok()) return ReportRpcError(env, s);

  if (env.output != OutputFormat::kTable) {
    PrintDocument(env, ResultsDocument(job));
  } else {
    for (const std::string& l : RenderResults(job, env.clock->Now())) *env.out << l << "\n";
  }
  env.out->flush();
  if (!junit_file.empty()) {
    if (absl::Status s = WriteFileAtomically(junit_file, JUnitXml(job)); !s.ok()) {
      *env.err << "musafarm: cannot write " << s.message() << "\n";
      return kExitUsage;
    }
  }
  if (!IsJobEnded(job.state())) {
    *env.err << "musafarm: job " << job.id() << " is still running; these results are partial\n";
  }
  const v1::TestCounts sum = SumTests(job);
  const bool failed = sum.failed() > 0 || sum.errors() > 0 || job.state() == v1::JOB_STATE_FAILED ||
                      job.state() == v1::JOB_STATE_CANCELLED;
  return failed ? kExitJobFailed : kExitOk;
}

}  // namespace musafarm::cli
