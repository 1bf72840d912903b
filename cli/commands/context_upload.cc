#include "cli/commands/context_upload.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <ostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/format_bytes.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "content/content_client.h"
#include "content/packer.h"
#include "grpcpp/client_context.h"
#include "musafarm/v1/content_service.grpc.pb.h"
#include "pipeline/stages.h"

namespace musafarm::cli {
namespace {

namespace fs = std::filesystem;

std::string Bytes(int64_t n) { return FormatBytes(static_cast<uint64_t>(n)); }

std::string ProgressLine(const std::string& name, const content::UploadProgress& p) {
  return absl::StrCat("context ", name, ": ", p.files, " files, ", Bytes(p.bytes_sent), " of ",
                      Bytes(p.bytes_to_send), " sent, ", Bytes(p.bytes_skipped),
                      " already on the coordinator");
}

bool IsGitSource(const std::string& source) {
  return absl::StartsWith(source, "git+") || absl::StartsWith(source, "git://");
}

// A declared repository as a git input's source: https://... becomes
// git+https://...; git://, git+... stay.
std::string GitSourceOf(const std::string& url) {
  if (IsGitSource(url)) return url;
  return absl::StrCat("git+", url);
}

}  // namespace

int ReportUploadError(const CommandEnv& env, const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
      return ReportRpcError(env, ToGrpc(status));
    default:
      *env.err << "musafarm: "
               << (status.message().empty() ? absl::StatusCodeToString(status.code())
                                            : std::string(status.message()))
               << "\n";
      return kExitUsage;
  }
}

absl::StatusOr<std::pair<std::string, std::string>> ParseContextFlag(const std::string& flag) {
  const size_t eq = flag.find('=');
  if (eq == std::string::npos || eq + 1 == flag.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--context '", flag, "': expected NAME=DIR"));
  }
  std::string name = flag.substr(0, eq);
  if (absl::Status s = pipeline::ValidateInputName(name); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--context '", flag, "': ", s.message()));
  }
  return std::make_pair(std::move(name), flag.substr(eq + 1));
}

absl::StatusOr<std::vector<ContextSource>> ContextSources(
    const std::vector<pipeline::InputDecl>& declared, const std::string& pipeline_dir,
    const std::vector<std::string>& flags, const std::vector<pipeline::InputUse>& uses) {
  std::map<std::string, std::string> given;  // --context NAME -> its value
  std::vector<std::string> order;
  for (const std::string& flag : flags) {
    MF_ASSIGN_OR_RETURN(auto name_dir, ParseContextFlag(flag));
    if (!given.emplace(name_dir.first, name_dir.second).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--context ", name_dir.first, ": given twice"));
    }
    order.push_back(name_dir.first);
  }
  auto find = [&](const std::string& name) -> const pipeline::InputDecl* {
    for (const pipeline::InputDecl& in : declared) {
      if (in.name == name) return &in;
    }
    return nullptr;
  };
  std::vector<ContextSource> out, joins;
  std::vector<std::string> sent;
  auto from_flag = [&](const std::string& name) {
    ContextSource src;
    src.name = name;
    src.source = given.at(name);  // the submitter's, with its own .dockerignore
    src.origin = absl::StrCat("--context ", name);
    sent.push_back(name);
    return src;
  };
  // The declared inputs the job's tasks use, each use once.
  for (const pipeline::InputUse& use : uses) {
    const pipeline::InputDecl* in = find(use.declared);
    if (in == nullptr) continue;  // the compiler checked every reference
    if (given.count(in->name) != 0) {
      if (std::find(sent.begin(), sent.end(), in->name) == sent.end()) {
        out.push_back(from_flag(in->name));
      }
      continue;
    }
    ContextSource src;
    src.name = use.name;
    src.origin = in->where;
    src.ignore_file = "";
    if (!in->git.empty()) {
      src.source = absl::StrCat(GitSourceOf(use.git), use.ref.empty() ? "" : "#", use.ref);
      out.push_back(std::move(src));
      continue;
    }
    if (!in->join.empty()) {
      std::vector<std::string> parts;
      for (const auto& [sub, part] : use.join) parts.push_back(absl::StrCat(sub, "=", part));
      src.source = absl::StrCat("join:", absl::StrJoin(parts, ","));
      joins.push_back(std::move(src));
      continue;
    }
    // Relative to the pipeline file, so that it means the same from any
    // working directory.
    src.source = (fs::path(pipeline_dir.empty() ? "." : pipeline_dir) / in->path)
                     .lexically_normal()
                     .string();
    src.ignore_file = in->ignore;
    std::error_code ec;
    if (!fs::is_directory(src.source, ec)) {
      return absl::InvalidArgumentError(absl::StrCat(
          in->where, ": path '", in->path, "' is ", src.source,
          " (from the pipeline file's directory), which is not a directory here; give "
          "--context ", in->name, "=DIR"));
    }
    if (in->ignore_given && !in->ignore.empty() &&
        !fs::is_regular_file(fs::path(src.source) / in->ignore, ec)) {
      return absl::InvalidArgumentError(absl::StrCat(in->where, ": ignore file '", in->ignore,
                                                     "' is not in ", src.source));
    }
    out.push_back(std::move(src));
  }
  std::vector<std::string> names;
  for (const pipeline::InputDecl& in : declared) names.push_back(in.name);
  for (const std::string& name : order) {
    if (std::find(sent.begin(), sent.end(), name) != sent.end()) continue;
    if (!declared.empty() && find(name) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("--context ", name, ": the pipeline declares no input '", name,
                       "' (inputs are: ", absl::StrJoin(names, ", "), ")"));
    }
    // Undeclared (a pipeline without inputs:), or declared and used by no
    // task of this job: sent as given.
    out.push_back(from_flag(name));
  }
  for (ContextSource& join : joins) out.push_back(std::move(join));
  return out;
}

std::vector<std::string> ReplacedInputNotes(const std::vector<pipeline::InputDecl>& declared,
                                            const std::vector<ContextSource>& sources,
                                            const std::map<std::string, std::string>& given_params) {
  std::vector<std::string> notes;
  for (const pipeline::InputDecl& in : declared) {
    if (in.git.empty()) continue;
    bool replaced = false;
    for (const ContextSource& src : sources) {
      replaced = replaced || (src.name == in.name && absl::StartsWith(src.origin, "--context"));
    }
    if (!replaced) continue;
    for (const auto& [param, value] : given_params) {
      const std::string ref = absl::StrCat("${", param, "}");
      if (!absl::StrContains(in.git, ref) && !absl::StrContains(in.ref, ref)) continue;
      notes.push_back(absl::StrCat("--context ", in.name, " replaces the pipeline's git input ",
                                   in.name, ": that directory is built, and ", param, "=", value,
                                   " selects no source (it only labels the build)"));
    }
  }
  return notes;
}

std::string BuiltInPipelineDir() {
  if (const char* dir = std::getenv("MUSAFARM_PIPELINES_DIR"); dir != nullptr && *dir != '\0') {
    return dir;
  }
  // Beside the binary: <prefix>/bin/musafarm -> <prefix>/share/musafarm/pipelines.
  // The package installs under /usr while a plain `cmake --install` uses
  // CMAKE_INSTALL_PREFIX (/usr/local), and it is the same binary.
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path beside = exe.parent_path().parent_path() / "share" / "musafarm" / "pipelines";
    if (fs::is_directory(beside, ec)) return beside.string();
  }
  return MF_INSTALLED_PIPELINES_DIR;
}

absl::StatusOr<std::vector<v1::JobInput>> UploadContexts(
    const CommandEnv& env, const std::vector<ContextSource>& contexts, bool dry_run,
    bool every_blob) {
  std::vector<v1::JobInput> inputs;
  if (contexts.empty()) return inputs;
  std::unique_ptr<v1::ContentService::Stub> stub;
  content::PackOptions pack;
  for (const ContextSource& src : contexts) {
    const std::string& name = src.name;
    const std::string& dir = src.source;
    if (IsGitSource(dir) || absl::StartsWith(dir, "join:")) {
      v1::JobInput in;  // resolved by the coordinator (git: ls-remote, fetch; join)
      in.set_name(name);
      in.set_source(dir);
      inputs.push_back(std::move(in));
      continue;
    }
    if (!dry_run && stub == nullptr) {
      // The store's size limit, asked once and only when a directory is to
      // be packed: a submit of git inputs makes no call but Submit.
      // This first call finds the active coordinator (issue 20); the
      // uploads then go to it.
      v1::ContentLimits limits;
      if (grpc::Status s = CallActive<v1::ContentService>(
              env, Repeat::kIdempotent,
              [&](v1::ContentService::Stub& content, grpc::ClientContext* ctx) {
                return content.GetLimits(ctx, v1::GetContentLimitsRequest(), &limits);
              });
          !s.ok()) {
        // A coordinator without a content store answers UNIMPLEMENTED with
        // no message; say what was asked and why it matters.
        if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
          return absl::FailedPreconditionError(absl::StrCat(
              "context ", src.name, ": the coordinator at ", CurrentCoordinator(env),
              " serves no content store, so it cannot take a local directory; give a git source "
              "(--context ", src.name, "=git+URL#REF) or use a coordinator of this CLI's version"));
        }
        return FromGrpc(s);
      }
      stub = v1::ContentService::NewStub(NewChannel(env));
      pack.max_bytes = limits.max_input_bytes();
      pack.limit_source = "the coordinator's --blob-store-bytes";
    }
    pack.ignore_file = src.ignore_file;
    absl::StatusOr<content::PackedTree> tree = content::PackDirectory(dir, pack);
    if (!tree.ok()) {
      return absl::Status(tree.status().code(),
                          absl::StrCat(src.origin, ": ", tree.status().message()));
    }
    v1::JobInput in;
    in.set_name(name);
    *in.mutable_tree() = tree->root;
    in.set_source(absl::StrCat("dir:", dir));
    in.set_files(tree->files);
    in.set_bytes(tree->bytes);
    if (!dry_run) {
      content::UploadOptions up;
      up.every_blob = every_blob;
      up.context = [] {
        auto ctx = std::make_unique<grpc::ClientContext>();
        SetUnaryDeadline(ctx.get());
        return ctx;
      };
      // A Write streams as long as its blob takes; keepalive notices a dead peer.
      up.stream_context = [] { return std::make_unique<grpc::ClientContext>(); };
      auto last = std::chrono::steady_clock::now() - std::chrono::seconds(1);
      if (env.tty) {
        up.progress = [&, input = std::string(name)](const content::UploadProgress& p) {
          const auto now = std::chrono::steady_clock::now();
          if (now - last < std::chrono::milliseconds(100) && p.bytes_sent < p.bytes_to_send) return;
          last = now;
          *env.err << "\r\033[K" << ProgressLine(input, p) << std::flush;
        };
      }
      absl::StatusOr<content::UploadProgress> done = content::UploadTree(*stub, *tree, up);
      if (env.tty) *env.err << "\r\033[K";
      if (!done.ok()) {
        return absl::Status(done.status().code(),
                            absl::StrCat(src.origin, ": ", done.status().message()));
      }
      *env.err << "musafarm: " << ProgressLine(name, *done) << " (tree sha256:"
               << tree->root.sha256().substr(0, 12) << ")\n";
    }
    inputs.push_back(std::move(in));
  }
  return inputs;
}

}  // namespace musafarm::cli
