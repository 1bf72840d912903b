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
#include "absl/strings/match.h"
#include "cli/default_pipeline.h"

namespace musafarm::cli {

int RunSubmit(const CommandEnv& env, const SubmitOptions& opts) {
  absl::StatusOr<SubmitParts> parts = MapScriptOptions(opts.script, opts.env_lookup);
  if (!parts.ok()) {
    *env.err << "musafarm: " << parts.status().message() << "\n";
    return kExitUsage;
  }
  // The job's name: --name, which for torch_musa's scripts was the image name
  // and still sets the `name` param where the pipeline has one.
  const std::string job_name = opts.script.name.value_or("");

  std::string yaml;
  std::string file = opts.file;
  if (file.empty()) {
    yaml = std::string(kDefaultPipeline);
    file = kDefaultPipelineFile;
  } else {
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

  pipeline::ExpandOptions expand;
  expand.name_override = job_name;
  expand.params = parts->params;
  expand.axes = parts->axes;
  for (const auto& [name, value] : parts->secrets) expand.secrets.push_back(name);

  // Validate before contacting the coordinator; the error already reads
  // "FILE:LINE:COL: FIELD: message", so it is printed as is.
  absl::StatusOr<v1::Job> local = pipeline::ParseAndExpand(yaml, file, "local", expand);
  if (!local.ok() && opts.script.name.has_value() &&
      absl::StrContains(local.status().message(), "--param name:")) {
    // -n names the job; it sets the `name` param only where the pipeline has one.
    expand.params.erase("name");
    parts->params.erase("name");
    local = pipeline::ParseAndExpand(yaml, file, "local", expand);
  }
  if (!local.ok()) {
    *env.err << ExplainOrigin(std::string(local.status().message()), *parts) << "\n";
    return kExitUsage;
  }

  std::unique_ptr<v1::UserService::Stub> stub =
      v1::UserService::NewStub(NewChannel(env.coordinator));
  v1::SubmitRequest req;
  req.set_spec_yaml(yaml);
  req.set_spec_file(file);
  req.set_name(job_name);
  req.mutable_params()->insert(parts->params.begin(), parts->params.end());
  for (const auto& [axis, values] : parts->axes) {
    v1::AxisValues* a = req.add_axes();
    a->set_axis(axis);
    a->mutable_values()->Assign(values.begin(), values.end());
  }
  req.mutable_secrets()->insert(parts->secrets.begin(), parts->secrets.end());
  v1::SubmitResponse resp;
  grpc::ClientContext ctx;
  SetUnaryDeadline(&ctx);
  grpc::Status status = stub->Submit(&ctx, req, &resp);
  if (!status.ok()) {
    if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      // The coordinator's spec error, in the same FILE:LINE:COL form.
      *env.err << ExplainOrigin(status.error_message(), *parts) << "\n";
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
