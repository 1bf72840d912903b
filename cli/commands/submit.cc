#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <ostream>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "cli/client.h"
#include "cli/commands/commands.h"
#include "cli/commands/context_upload.h"
#include "cli/default_pipeline.h"
#include "cli/json.h"
#include "common/grpc_status.h"
#include "common/limits.h"
#include "common/status_macros.h"
#include "common/utf8.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "musafarm/v1/user_service.grpc.pb.h"
#include "pipeline/spec.h"

namespace musafarm::cli {

namespace {

namespace fs = std::filesystem;

// "FILE:LINE:COL: ..." for the first byte that starts no UTF-8 sequence: a
// proto string cannot carry it, and the coordinator would only see a message
// it cannot decode (issue 12).
absl::Status CheckUtf8(const std::string& text, const std::string& file) {
  const size_t bad = FirstInvalidUtf8(text);
  if (bad == std::string::npos) return absl::OkStatus();
  size_t line = 1, col = 1;
  for (size_t i = 0; i < bad; ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
      ++col;  // a character's first byte
    }
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("%s:%d:%d: byte 0x%02x is not UTF-8; a pipeline file must be UTF-8 text",
                      file, line, col, static_cast<unsigned char>(text[bad])));
}

// Values from flags and the environment travel in proto strings too.
absl::Status CheckFlagsUtf8(const SubmitParts& parts, const std::string& job_name) {
  auto check = [](const std::string& what, const std::string& value) {
    if (IsValidUtf8(value)) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(what, ": the value is not UTF-8"));
  };
  MF_RETURN_IF_ERROR(check("--job-name", job_name));
  for (const auto& [name, value] : parts.params) MF_RETURN_IF_ERROR(check("param " + name, value));
  for (const auto& [axis, values] : parts.axes) {
    for (const std::string& v : values) MF_RETURN_IF_ERROR(check("--axis " + axis, v));
  }
  for (const auto& [name, value] : parts.secrets) {
    MF_RETURN_IF_ERROR(check("secret " + name, value));
  }
  return absl::OkStatus();
}

// --dry-run: the request that would be sent, and the job it expands to here,
// as one JSON document; secret values masked, the pipeline text left out.
void PrintDryRun(const CommandEnv& env, v1::SubmitRequest req, const v1::Job& job) {
  for (auto& [name, value] : *req.mutable_secrets()) value = "***";
  req.clear_spec_yaml();
  Json doc;
  doc["request"] = ProtoToJson(req);
  doc["job"] = ProtoToJson(job);
  *env.out << DumpJson(doc) << "\n";
  env.out->flush();
}

}  // namespace

absl::StatusOr<v1::Webhook> ParseWebhookFlag(const std::string& text) {
  std::vector<std::string> parts = absl::StrSplit(text, ',');
  v1::Webhook hook;
  hook.set_url(parts[0]);
  if (!absl::StartsWith(parts[0], "http://") && !absl::StartsWith(parts[0], "https://")) {
    return absl::InvalidArgumentError("--webhook: the URL must start with http:// or https://");
  }
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    if (p == "first-failure") {
      hook.set_on_first_failure(true);
    } else if (p == "format=json") {
      hook.set_format(v1::WEBHOOK_FORMAT_JSON);
    } else if (p == "format=slack" || p == "format=mattermost") {
      hook.set_format(v1::WEBHOOK_FORMAT_SLACK);
    } else if (p == "format=feishu" || p == "format=lark") {
      hook.set_format(v1::WEBHOOK_FORMAT_FEISHU);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "--webhook: unknown setting '", p.substr(0, 32),
          "'; after the URL: format=json|slack|mattermost|feishu|lark, first-failure"));
    }
  }
  return hook;
}

absl::StatusOr<PipelineSource> ReadPipeline(const std::string& file) {
  if (file.empty()) return PipelineSource{std::string(kDefaultPipeline), kDefaultPipelineFile};
  // Its size first: a 100 MB file is refused without being read (issue 12).
  struct stat st {};
  if (::stat(file.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
      static_cast<uint64_t>(st.st_size) > limits::kMaxSpecBytes) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": is ", st.st_size,
                                                   " bytes; a pipeline file may be at most ",
                                                   limits::kMaxSpecBytes));
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", file, ": ", std::strerror(errno)));
  }
  // At most one byte past the limit, also from a pipe or a device; the
  // buffer grows with what arrives (one zeroed buffer of the limit's size
  // cost a submit 256 page faults, twice: issue 19).
  std::string text;
  char chunk[64 * 1024];
  while (text.size() <= limits::kMaxSpecBytes && in) {
    in.read(chunk, static_cast<std::streamsize>(
                       std::min(sizeof(chunk), limits::kMaxSpecBytes + 1 - text.size())));
    text.append(chunk, static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", file, ": ", std::strerror(errno)));
  }
  if (text.size() > limits::kMaxSpecBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        file, ": is more than ", limits::kMaxSpecBytes, " bytes; a pipeline file may be at most ",
        limits::kMaxSpecBytes));
  }
  MF_RETURN_IF_ERROR(CheckUtf8(text, file));
  return PipelineSource{std::move(text), file};
}

int PrepareSubmit(const CommandEnv& env, const SubmitOptions& opts, PreparedSubmit* out) {
  const bool read_already = opts.read.has_value() && opts.read->arg == opts.file;
  absl::StatusOr<PipelineSource> source =
      read_already ? absl::StatusOr<PipelineSource>(opts.read->source) : ReadPipeline(opts.file);
  if (!source.ok()) {
    *env.err << "musafarm: " << source.status().message() << "\n";
    return kExitUsage;
  }
  const std::string& yaml = source->yaml;
  const std::string& file = source->file;
  // The file says which options it takes; its errors read
  // "FILE:LINE:COL: FIELD: message" and are printed as they are.
  absl::StatusOr<pipeline::PipelineOptions> declared =
      read_already ? absl::StatusOr<pipeline::PipelineOptions>(opts.read->declared)
                   : pipeline::DeclaredOptions(yaml, file);
  if (!declared.ok()) {
    *env.err << declared.status().message() << "\n";
    return kExitUsage;
  }
  absl::StatusOr<SubmitParts> parts = MapSubmitOptions(*declared, opts.given, opts.env_lookup);
  if (!parts.ok()) {
    *env.err << "musafarm: " << parts.status().message() << "\n";
    return kExitUsage;
  }
  for (const std::string& note : parts->notes) *env.err << "musafarm: note: " << note << "\n";
  const std::string job_name = !opts.job_name.empty() ? opts.job_name : parts->job_name;
  if (absl::Status s = CheckFlagsUtf8(*parts, job_name); !s.ok()) {
    *env.err << "musafarm: " << s.message() << "\n";
    return kExitUsage;
  }

  pipeline::ExpandOptions expand;
  expand.name_override = job_name;
  // The coordinator checks its own --max-gpus-per-stage; here only what no
  // agent could ever have.
  expand.max_gpus_per_stage = limits::kMaxAgentGpus;
  expand.params = parts->params;
  expand.axes = parts->axes;
  for (const auto& [name, value] : parts->secrets) expand.secrets.push_back(name);

  // A --context replaces a declared input in every cell.
  for (const std::string& flag : opts.contexts) {
    if (auto name_dir = ParseContextFlag(flag); name_dir.ok()) {
      expand.replaced_inputs.push_back(name_dir->first);
    }
  }

  // Validate before contacting the coordinator.
  std::vector<pipeline::InputUse> uses;
  absl::StatusOr<v1::Job> local = pipeline::ParseAndExpand(yaml, file, "local", expand, &uses);
  if (!local.ok()) {
    *env.err << ExplainOrigin(std::string(local.status().message()), *parts) << "\n";
    return kExitUsage;
  }

  v1::SubmitRequest& req = out->request;
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
  req.set_strict(opts.strict);
  for (const std::string& text : opts.webhooks) {
    absl::StatusOr<v1::Webhook> hook = ParseWebhookFlag(text);
    if (!hook.ok()) {
      *env.err << "musafarm: " << hook.status().message() << "\n";
      return kExitUsage;
    }
    *req.add_webhooks() = *std::move(hook);
  }
  // The pipeline's declared inputs, from its file's directory (the built-in
  // pipeline's is where the package installs it), and --context.
  absl::StatusOr<std::vector<ContextSource>> contexts = ContextSources(
      declared->inputs,
      opts.file.empty() ? BuiltInPipelineDir() : fs::path(file).parent_path().string(),
      opts.contexts, uses);
  if (!contexts.ok()) {
    *env.err << "musafarm: " << contexts.status().message() << "\n";
    return kExitUsage;
  }
  for (const std::string& note : ReplacedInputNotes(declared->inputs, *contexts, parts->params)) {
    *env.err << "musafarm: note: " << note << "\n";
  }
  out->contexts = *std::move(contexts);
  out->local = *std::move(local);
  out->parts = *std::move(parts);
  return kExitOk;
}

int RunSubmit(const CommandEnv& env, const SubmitOptions& opts) {
  // The connection is made while the pipeline is read, checked and expanded.
  std::optional<ConnectAhead> connecting;
  if (!opts.dry_run) connecting.emplace(env);
  PreparedSubmit prepared;
  if (int code = PrepareSubmit(env, opts, &prepared); code != kExitOk) return code;
  v1::SubmitRequest& req = prepared.request;
  const SubmitParts* parts = &prepared.parts;
  absl::StatusOr<std::vector<v1::JobInput>> inputs =
      UploadContexts(env, prepared.contexts, opts.dry_run);
  if (!inputs.ok()) return ReportUploadError(env, inputs.status());
  for (v1::JobInput& in : *inputs) *req.add_inputs() = std::move(in);
  if (opts.dry_run) {
    PrintDryRun(env, req, prepared.local);
    return kExitOk;
  }
  v1::SubmitResponse resp;
  // Submitting twice makes two jobs: a submit that may have reached the
  // active coordinator before the connection was lost is not sent again.
  auto submit = [&] {
    return CallActive<v1::UserService>(
        env, Repeat::kOnce, [&](v1::UserService::Stub& stub, grpc::ClientContext* ctx) {
          return stub.Submit(ctx, req, &resp);
        });
  };
  grpc::Status status = submit();
  if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
      absl::StrContains(status.error_message(), "is not in the content store")) {
    // A blob under a directory the coordinator kept was collected: send
    // again, asking about every blob this time, and submit once more.
    *env.err << "musafarm: " << status.error_message() << "; uploading again\n";
    absl::StatusOr<std::vector<v1::JobInput>> again =
        UploadContexts(env, prepared.contexts, /*dry_run=*/false, /*every_blob=*/true);
    if (!again.ok()) return ReportRpcError(env, ToGrpc(again.status()));
    status = submit();
  }
  if (!status.ok()) {
    if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      // The coordinator's spec error, in the same FILE:LINE:COL form.
      *env.err << ExplainOrigin(status.error_message(), *parts) << "\n";
      return kExitUsage;
    }
    return ReportRpcError(env, status, "musafarm jobs, for a job submitted just now");
  }

  return ReportNewJob(env, resp.job(), resp.warnings(), "", opts.watch, opts.watch_options);
}

int ReportNewJob(const CommandEnv& env, const v1::Job& job,
                 const google::protobuf::RepeatedPtrField<std::string>& warnings,
                 const std::string& suffix, bool watch, WatchOptions watch_options) {
  // The job is created; these tasks wait until the farm changes.
  for (const std::string& w : warnings) *env.err << "musafarm: warning: " << w << "\n";
  env.err->flush();
  auto print_job = [&env, &job, &suffix] {
    if (env.output != OutputFormat::kTable) {
      PrintMessage(env, job);
    } else {
      *env.out << "submitted job " << job.id() << " (" << job.tasks_size() << " tasks)" << suffix
               << "\n";
    }
    env.out->flush();
  };
  // The terminal's live view draws from the watch's start: the job goes
  // first. Otherwise the watch is asked for first and the job printed while
  // its answer is on the way (-o json's first print builds the descriptors
  // it walks: a millisecond or more, issue 19).
  if (!watch || (env.tty && env.output == OutputFormat::kTable)) {
    print_job();
    if (!watch) return kExitOk;
  } else {
    watch_options.on_request_sent = print_job;
  }
  watch_options.job_id = job.id();
  return RunWatch(env, watch_options);
}

}  // namespace musafarm::cli
