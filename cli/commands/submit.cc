#include <cerrno>
#include <cstring>
#include <fstream>
#include <ostream>
#include <sstream>

#include "absl/status/statusor.h"
#include "cli/client.h"
#include "cli/commands/commands.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "musafarm/v1/user_service.grpc.pb.h"
#include "pipeline/spec.h"

namespace musafarm::cli {

int RunSubmit(const CommandEnv& env, const SubmitOptions& opts) {
  std::string yaml;
  {
    std::ifstream in(opts.file, std::ios::binary);
    if (!in) {
      *env.err << "musafarm: cannot read " << opts.file << ": " << std::strerror(errno) << "\n";
      return kExitUsage;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) {
      *env.err << "musafarm: cannot read " << opts.file << ": " << std::strerror(errno) << "\n";
      return kExitUsage;
    }
    yaml = ss.str();
  }

  // Validate before contacting the coordinator; the error already reads
  // "FILE:LINE:COL: FIELD: message", so it is printed as is.
  if (absl::StatusOr<v1::Job> local = pipeline::ParseAndExpand(yaml, opts.file, "local", opts.name);
      !local.ok()) {
    *env.err << local.status().message() << "\n";
    return kExitUsage;
  }

  std::unique_ptr<v1::UserService::Stub> stub =
      v1::UserService::NewStub(NewChannel(env.coordinator));
  v1::SubmitRequest req;
  req.set_spec_yaml(yaml);
  req.set_spec_file(opts.file);
  req.set_name(opts.name);
  v1::SubmitResponse resp;
  grpc::ClientContext ctx;
  SetUnaryDeadline(&ctx);
  grpc::Status status = stub->Submit(&ctx, req, &resp);
  if (!status.ok()) {
    if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      // The coordinator's spec error, in the same FILE:LINE:COL form.
      *env.err << status.error_message() << "\n";
      return kExitUsage;
    }
    return ReportRpcError(env, status);
  }

  if (env.output == OutputFormat::kJson) {
    PrintJson(env, resp.job());
  } else {
    *env.out << "submitted job " << resp.job().id() << " (" << resp.job().tasks_size()
             << " tasks)\n";
  }
  env.out->flush();
  if (!opts.watch) return kExitOk;
  WatchOptions w = opts.watch_options;
  w.job_id = resp.job().id();
  return RunWatch(env, w);
}

}  // namespace musafarm::cli
