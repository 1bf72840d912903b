#include "coordinator/git_inputs.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/file_modes.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/subprocess.h"
#include "content/digest.h"
#include "content/packer.h"
#include "coordinator/joined_inputs.h"

namespace musafarm::coordinator {
namespace {

namespace fs = std::filesystem;

struct GitResult {
  bool ok = false;
  std::string output;
};

// `git ARGS...` in `dir`, its output with `secret_url` replaced by `shown`.
GitResult RunGit(const std::vector<std::string>& args, const std::string& dir,
                 const EnvMap& extra_env, absl::Duration timeout, const GitSource& src) {
  std::vector<std::string> argv = {"git"};
  argv.insert(argv.end(), args.begin(), args.end());
  EnvMap env = InheritedEnv();
  env["GIT_TERMINAL_PROMPT"] = "0";  // a missing credential fails; never waits for input
  env["GIT_ASKPASS"] = "/bin/false";
  for (const auto& [k, v] : extra_env) env[k] = v;
  GitResult r;
  const Child child = Spawn(argv, env, dir);
  if (!child.error.empty()) {
    r.output = child.error;
    return r;
  }
  const absl::Time deadline = absl::Now() + timeout;
  bool killed = false;
  const int status = Supervise(
      child,
      [&](std::string data) {
        if (r.output.size() < 64 * 1024) r.output += data;
      },
      [&] {
        if (!killed && absl::Now() >= deadline) {
          ::kill(-child.pid, SIGKILL);
          killed = true;
        }
      },
      absl::Seconds(2), nullptr);
  r.ok = !killed && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (killed) absl::StrAppend(&r.output, "\n(no answer within ", absl::FormatDuration(timeout), ")");
  // Git may quote the URL it was given: never let credentials out.
  if (src.url != src.shown) r.output = absl::StrReplaceAll(r.output, {{src.url, src.shown}});
  r.output = std::string(absl::StripAsciiWhitespace(r.output));
  return r;
}

bool IsCommitId(absl::string_view s) {
  if (s.size() != 40) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(c) || absl::ascii_isupper(c)) return false;
  }
  return true;
}

// Removes "user:password@" from scheme://user:password@host/...
std::string StripCredentials(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  const size_t host = scheme + 3;
  const size_t slash = url.find('/', host);
  const size_t at = url.rfind('@', slash == std::string::npos ? url.size() : slash);
  if (at == std::string::npos || at < host) return url;
  return url.substr(0, host) + url.substr(at + 1);
}

}  // namespace

bool IsGitSource(absl::string_view source) {
  return absl::StartsWith(source, "git+") || absl::StartsWith(source, "git://");
}

absl::StatusOr<GitSource> ParseGitSource(absl::string_view source) {
  GitSource s;
  std::string rest(source);
  if (absl::StartsWith(rest, "git+")) rest.erase(0, 4);
  if (!absl::StartsWith(rest, "https://") && !absl::StartsWith(rest, "http://") &&
      !absl::StartsWith(rest, "file://") && !absl::StartsWith(rest, "git://") &&
      !absl::StartsWith(rest, "ssh://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", StripCredentials(std::string(source)),
        "': a git input is git+https://, git+http://, git+ssh://, git+file:// or git:// URL"));
  }
  const size_t hash = rest.find('#');
  s.url = rest.substr(0, hash);
  s.ref = hash == std::string::npos ? "HEAD" : rest.substr(hash + 1);
  if (s.ref.empty() || s.ref[0] == '-' || absl::StrContains(s.ref, "..") ||
      s.ref.find_first_of(" \t\n:~^?*[\\") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", StripCredentials(std::string(source)), "': '", s.ref, "' is not a ref"));
  }
  const bool plus = absl::StartsWith(source, "git+");
  s.shown = absl::StrCat(plus ? "git+" : "", StripCredentials(s.url),
                         hash == std::string::npos ? "" : absl::StrCat("#", s.ref));
  return s;
}

absl::StatusOr<v1::JobInput> GitImporter::Import(const std::string& name, const std::string& source) {
  ++imports_;
  MF_ASSIGN_OR_RETURN(GitSource src, ParseGitSource(source));
  const std::string what = absl::StrCat("input '", name, "' (", src.shown, ")");
  MF_RETURN_IF_ERROR(MakePrivateDir(cache_dir_));
  // One bare repository per URL (without credentials): later runs fetch only
  // what is new.
  const std::string repo = absl::StrCat(
      cache_dir_, "/", content::DigestOf(StripCredentials(src.url)).sha256().substr(0, 16), ".git");
  if (!fs::exists(repo + "/HEAD")) {
    GitResult init = RunGit({"init", "--bare", "--quiet", repo}, "", {}, timeout_, src);
    if (!init.ok) return absl::InternalError(absl::StrCat(what, ": git init: ", init.output));
  }
  std::string commit = src.ref;
  if (!IsCommitId(src.ref)) {
    GitResult ls = RunGit({"ls-remote", "--", src.url, src.ref}, "", {}, timeout_, src);
    if (!ls.ok) {
      return absl::FailedPreconditionError(absl::StrCat(what, ": git ls-remote: ", ls.output));
    }
    // "<sha>\t<ref>" lines: an exact branch or tag first, else the first.
    commit.clear();
    for (absl::string_view line : absl::StrSplit(ls.output, '\n')) {
      std::vector<absl::string_view> f = absl::StrSplit(line, '\t');
      if (f.size() != 2 || !IsCommitId(f[0])) continue;
      if (commit.empty() || f[1] == absl::StrCat("refs/heads/", src.ref)) commit = std::string(f[0]);
    }
    if (commit.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(what, ": no ref '", src.ref, "' there"));
    }
  }
  // A commit already in the cache costs no network.
  if (!RunGit({"--git-dir", repo, "cat-file", "-e", commit + "^{commit}"}, "", {}, timeout_, src).ok) {
    GitResult fetch = RunGit({"--git-dir", repo, "fetch", "--quiet", "--no-tags", "--", src.url,
                              src.ref},
                             "", {}, timeout_, src);
    if (!fetch.ok) {
      return absl::FailedPreconditionError(absl::StrCat(what, ": git fetch: ", fetch.output));
    }
    if (!RunGit({"--git-dir", repo, "cat-file", "-e", commit + "^{commit}"}, "", {}, timeout_, src).ok) {
      return absl::FailedPreconditionError(absl::StrCat(
          what, ": '", src.ref, "' moved while it was fetched (was ", commit, "); submit again"));
    }
  }
  // An annotated tag names a tag object: the job records the commit it tags.
  GitResult peeled =
      RunGit({"--git-dir", repo, "rev-parse", "--verify", "--quiet", commit + "^{commit}"}, "", {},
             timeout_, src);
  if (peeled.ok && IsCommitId(peeled.output)) commit = peeled.output;
  // The commit's files into a scratch directory, then packed like a local
  // directory (no ignore file: the repository's tree is what was asked for).
  static std::atomic<uint64_t> scratch_seq{0};
  const std::string scratch = absl::StrCat(cache_dir_, "/checkout-", ::getpid(), "-", scratch_seq++);
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
      fs::remove(dir + ".index", ec);
    }
  } cleanup{scratch};
  fs::create_directories(scratch);
  const EnvMap index = {{"GIT_INDEX_FILE", scratch + ".index"}};
  for (const std::vector<std::string>& step :
       {std::vector<std::string>{"--git-dir", repo, "--work-tree", scratch, "read-tree", commit},
        std::vector<std::string>{"--git-dir", repo, "--work-tree", scratch, "checkout-index", "-a",
                                 "-f"}}) {
    GitResult r = RunGit(step, "", index, timeout_, src);
    if (!r.ok) return absl::InternalError(absl::StrCat(what, ": git ", step[4], ": ", r.output));
  }
  content::PackOptions pack;
  pack.ignore_file = "";
  pack.max_bytes = blobs_->max_bytes();
  pack.limit_source = "--blob-store-bytes";
  absl::StatusOr<content::PackedTree> tree = content::PackDirectory(scratch, pack);
  if (!tree.ok()) {
    return absl::Status(tree.status().code(), absl::StrCat(what, ": ", tree.status().message()));
  }
  std::vector<v1::Digest> digests;
  for (const auto& [sha, blob] : tree->blobs) digests.push_back(blob.digest);
  MF_ASSIGN_OR_RETURN(std::vector<v1::Digest> missing, blobs_->FindMissing(digests));
  for (const v1::Digest& d : missing) {
    const content::PackedBlob& blob = tree->blobs.at(d.sha256());
    absl::StatusOr<std::unique_ptr<BlobUpload>> started = blobs_->StartWrite(d, 0);
    if (started.status().code() == absl::StatusCode::kAlreadyExists) continue;  // raced: there
    if (!started.ok()) return started.status();
    std::unique_ptr<BlobUpload> up = *std::move(started);
    if (blob.path.empty()) {
      MF_RETURN_IF_ERROR(up->Append(blob.bytes));
    } else {
      std::ifstream in(blob.path, std::ios::binary);
      std::string buf(1 << 20, '\0');
      while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        MF_RETURN_IF_ERROR(up->Append(absl::string_view(buf.data(), static_cast<size_t>(in.gcount()))));
      }
    }
    MF_RETURN_IF_ERROR(up->Finish());
  }
  GetLogger("git")->info("{}: commit {}, tree {}, {} files, {} new blob(s)", what, commit,
                         content::ShortDigest(tree->root), tree->files, missing.size());
  v1::JobInput in;
  in.set_name(name);
  *in.mutable_tree() = tree->root;
  in.set_source(src.shown);
  in.set_commit(commit);
  in.set_files(tree->files);
  in.set_bytes(tree->bytes);
  return in;
}

absl::Status ResolveGitInputs(GitImporter& git, v1::SubmitRequest* request) {
  // Each distinct (URL, ref) once: cells of one ref share its resolution
  // under their own names (pipeline/input_uses.h).
  std::map<std::string, v1::JobInput> resolved;
  for (v1::JobInput& in : *request->mutable_inputs()) {
    if (!in.tree().sha256().empty() || in.source().empty()) continue;
    if (IsJoinSource(in.source())) continue;  // ResolveJoinedInputs, once its parts have trees
    if (!IsGitSource(in.source())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", in.name(), "' carries no tree and its source is not a git URL (git+https://, "
          "git+file://, git://); a directory is uploaded by the CLI first"));
    }
    if (auto it = resolved.find(in.source()); it != resolved.end()) {
      const std::string name = in.name();
      in = it->second;
      in.set_name(name);
      continue;
    }
    const std::string source = in.source();
    MF_ASSIGN_OR_RETURN(in, git.Import(in.name(), source));
    resolved[source] = in;
  }
  return absl::OkStatus();
}

}  // namespace musafarm::coordinator
