#include <cerrno>
#include <cstring>
#include <fstream>
#include <ostream>
#include <sstream>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "cli/client.h"
#include "cli/commands/commands.h"
#include "cli/default_pipeline.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "musafarm/v1/user_service.grpc.pb.h"
#include "pipeline/spec.h"

namespace musafarm::cli {

absl::StatusOr<PipelineSource> ReadPipeline(const std::string& file) {
  if (file.empty()) return PipelineSource{std::string(kDefaultPipeline), kDefaultPipelineFile};
  std::ifstream in(file, std::ios::binary);
  std::ostringstream ss;
  if (in) ss << in.rdbuf();
  if (!in || in.bad()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", file, ": ", std::strerror(errno)));
  }
  return PipelineSource{ss.str(), file};
}

int RunSubmit(const CommandEnv& env, const SubmitOptions& opts) {
  absl::StatusOr<PipelineSource> source = ReadPipeline(opts.file);
  if (!source.ok()) {
    *env.err << "musafarm: " << source.status().message() << "\n";
    return kExitUsage;
  }
  const std::string& yaml = source->yaml;
  const std::string& file = source->file;
  // The file says which options it takes; its errors read
  // "FILE:LINE:COL: FIELD: message" and are printed as they are.
  absl::StatusOr<pipeline::PipelineOptions> declared = pipeline::DeclaredOptions(yaml, file);
  if (!declared.ok()) {
    *env.err << declared.status().message() << "\n";
    return kExitUsage;
  }
  absl::StatusOr<SubmitParts> parts = MapSubmitOptions(*declared, opts.given, opts.env_lookup);
  if (!parts.ok()) {
    *env.err << "musafarm: " << parts.status().message() << "\n";
    return kExitUsage;
  }
  const std::string job_name = !opts.job_name.empty() ? opts.job_name : parts->job_name;

  pipeline::ExpandOptions expand;
  expand.name_override = job_name;
  expand.params = parts->params;
  expand.axes = parts->axes;
  for (const auto& [name, value] : parts->secrets) expand.secrets.push_back(name);

  // Validate before contacting the coordinator.
  absl::StatusOr<v1::Job> local = pipeline::ParseAndExpand(yaml, file, "local", expand);
  if (!local.ok()) {
    *env.err << ExplainOrigin(std::string(local.status().message()), *parts) << "\n";
    return kExitUsage;
  }

  std::unique_ptr<v1::UserService::Stub> stub = v1::UserService::NewStub(NewChannel(env));
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
