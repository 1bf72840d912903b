// Agent, part: the work dir's lock and the state that survives a restart
// (the state file, persisted results, recovering and removing what an earlier
// run left). See agent.h.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/agent.h"
#include "agent/agent_internal.h"
#include "common/atomic_file.h"

namespace musafarm::agent {
namespace {

using internal::AttemptFileName;
using internal::Log;

// What the state file recorded of an attempt's executor's traces.
AttemptTraces TracesOf(const RecordedAttempt& r) {
  return AttemptTraces{r.task_id(), r.attempt_id(), r.kind(), r.container(),
                       std::vector<std::string>(r.images().begin(), r.images().end())};
}

}  // namespace

absl::Status Agent::LockWorkDir() {
  const std::string path = options_.work_dir + "/agent.lock";
  lock_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  // Two agents on one work dir would remove each other's attempts as
  // leftovers. The lock goes with the process, however it ends.
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(lock_fd_);
    lock_fd_ = -1;
    return absl::FailedPreconditionError(
        err == EWOULDBLOCK
            ? absl::StrCat("work dir '", options_.work_dir, "' is in use by another agent")
            : absl::StrCat("cannot lock ", path, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

void Agent::RemoveLeftovers() {
  AgentState state;
  bool legacy = false;
  absl::StatusOr<AgentState> loaded = LoadAgentState(options_.work_dir, &legacy);
  if (loaded.ok()) {
    state = *std::move(loaded);
    if (legacy) {
      Log()->info("read the state of an earlier run from its {} (an older agent's format)",
                  kLegacyAgentStateFile);
    }
  } else if (!absl::IsNotFound(loaded.status())) {
    Log()->warn("{}; cannot tell which processes an earlier run left",
                std::string(loaded.status().message()));
  }
  // One secret per work dir, kept across restarts: a restarted agent is the
  // same instance to the coordinator and takes its attempts back at once.
  instance_secret_ = state.instance_secret();
  if (instance_secret_.size() < kInstanceSecretBytes / 2) {
    absl::StatusOr<std::string> secret = NewInstanceSecret();
    if (secret.ok()) {
      instance_secret_ = *std::move(secret);
    } else {
      Log()->error("cannot make an instance secret: {}; registering as an unknown instance",
                   std::string(secret.status().message()));
    }
  }
  std::vector<AttemptTraces> leftovers;
  std::set<std::string> keep;  // files of recovered attempts, canonical
  auto canonical = [](const std::string& path) {
    std::error_code ec;
    const std::filesystem::path p = std::filesystem::weakly_canonical(path, ec);
    return ec ? path : p.string();
  };
  for (const RecordedAttempt& a : state.attempts()) {
    if (a.finished()) {
      // Nothing of it runs; a process left in its group is killed below all the same.
      absl::Status s = Recover(a);
      if (s.ok()) {
        const Attempt& got = attempts_.at(Key(a.task_id(), a.attempt_id()));
        Log()->info(
            "task={} attempt={} ({}) had finished in an earlier run of this agent (exit={} "
            "signal={}) but its result was not acknowledged: reporting it ({} log bytes from "
            "offset {} kept)",
            a.task_id(), a.attempt_id(), a.kind(), got.result.exit_code(), got.result.signal(),
            got.spool->held(), got.base());
        keep.insert(canonical(a.spool_path()));
        keep.insert(canonical(a.result_path()));
        if (!got.files.empty()) keep.insert(canonical(got.workdir));
      } else {
        Log()->warn(
            "task={} attempt={} ({}) had finished in an earlier run of this agent, but cannot be "
            "reported: {}",
            a.task_id(), a.attempt_id(), a.kind(), std::string(s.message()));
      }
    }
    std::vector<std::string> killed;
    for (const RecordedProcess& p : a.processes()) {
      const std::vector<int64_t> pids = KillLeftoverProcesses(p);
      if (!pids.empty()) {
        killed.push_back(absl::StrCat("process group ", p.pid(), " (", pids.size(),
                                      " processes: ", absl::StrJoin(pids, " "), ")"));
      }
    }
    // What it started but had not recorded yet (killed right after a spawn).
    const std::vector<int64_t> unrecorded = AttemptProcesses(
        a.task_id(), a.attempt_id(),
        absl::StrCat(options_.work_dir, "/tasks/", AttemptFileName(a.task_id(), a.attempt_id())));
    if (!unrecorded.empty()) {
      KillProcesses(unrecorded);
      killed.push_back(absl::StrCat(unrecorded.size(),
                                    " processes found by the attempt's environment (",
                                    absl::StrJoin(unrecorded, " "), ")"));
    }
    if (attempts_.count(Key(a.task_id(), a.attempt_id())) != 0) {
      if (!killed.empty()) {
        Log()->warn("task={} attempt={}: killed {} left after it finished", a.task_id(),
                    a.attempt_id(), absl::StrJoin(killed, ", "));
      }
      continue;
    }
    leftovers.push_back(TracesOf(a));
    Log()->warn(
        "task={} attempt={} ({}) was held by an earlier run of this agent: {}; not listing it, "
        "so the coordinator re-queues it",
        a.task_id(), a.attempt_id(), a.kind(),
        killed.empty() ? std::string("none of its processes was still running")
                       : absl::StrCat("killed ", absl::StrJoin(killed, ", ")));
  }
  for (Executor* e : {exec_executor_, docker_executor_}) {
    if (e == nullptr) continue;
    for (const std::string& line : e->RemoveLeftovers(leftovers)) Log()->warn("{}", line);
  }
  // Nothing else in the task and spool directories is held any more.
  std::vector<std::filesystem::path> old;
  for (const char* sub : {"/tasks", "/spool"}) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(options_.work_dir + sub, ec)) {
      if (keep.count(canonical(entry.path().string())) == 0) old.push_back(entry.path());
    }
  }
  for (const std::filesystem::path& p : old) {
    std::error_code ec;
    std::filesystem::remove_all(p, ec);
    if (ec) Log()->warn("cannot remove {}: {}", p.string(), ec.message());
  }
  if (!old.empty()) {
    Log()->info("removed {} task and spool entries of an earlier run", old.size());
  }
  // Written in the current format before the legacy file goes: read once.
  if (SaveState() && legacy) {
    ::unlink(absl::StrCat(options_.work_dir, "/", kLegacyAgentStateFile).c_str());
  }
}

absl::Status Agent::Recover(const RecordedAttempt& r) {
  v1::AttemptResult result;
  {
    std::ifstream in(r.result_path(), std::ios::binary);
    if (!in) {
      return absl::NotFoundError(
          absl::StrCat("cannot read ", r.result_path(), ": ", std::strerror(errno)));
    }
    std::stringstream ss;
    ss << in.rdbuf();
    if (!result.ParseFromString(ss.str())) {
      return absl::DataLossError(absl::StrCat(r.result_path(), " is not a result"));
    }
  }
  if (result.task_id() != r.task_id() || result.attempt_id() != r.attempt_id() ||
      result.log_size() != r.log_total()) {
    return absl::DataLossError(absl::StrCat(r.result_path(), " is the result of task ",
                                            result.task_id(), " attempt ", result.attempt_id(),
                                            " with a log of ", result.log_size(), " bytes"));
  }
  // The spool holds the log's tail; below its start all was acknowledged
  // (it may start past log_base: acknowledgements after the record compact
  // it). Whether it holds what the coordinator lacks, the coordinator's
  // answer at registration tells (OnAck).
  absl::StatusOr<std::unique_ptr<LogSpool>> spool = LogSpool::Open(r.spool_path(), r.log_total());
  if (!spool.ok()) return spool.status();
  (*spool)->Ack(r.log_base());
  std::vector<CollectedFile> files;
  for (const RecordedFile& f : r.files()) {
    std::error_code ec;
    const uintmax_t size = std::filesystem::file_size(f.host_path(), ec);
    const v1::Artifact* artifact = nullptr;
    for (const v1::Artifact& x : result.artifacts()) {
      if (x.name() == f.name()) artifact = &x;
    }
    if (ec || (artifact != nullptr && artifact->size() != size)) {
      return absl::DataLossError(absl::StrCat("artifact ", f.name(), " (", f.host_path(), ") ",
                                              ec ? ec.message() : "has another size"));
    }
    files.push_back(CollectedFile{f.name(), f.host_path(), f.source()});
  }
  // Nothing fails from here on. (On an error above the reopened spool's file
  // is removed with it, as the fallback would anyway.)
  Attempt& a = attempts_[Key(r.task_id(), r.attempt_id())];
  a.assignment.set_task_id(r.task_id());
  a.assignment.set_attempt_id(r.attempt_id());
  a.traces = TracesOf(r);
  a.workdir =
      absl::StrCat(options_.work_dir, "/tasks/", AttemptFileName(r.task_id(), r.attempt_id()));
  a.spool = *std::move(spool);
  budget_.Add(static_cast<int64_t>(a.spool->held()));
  a.life = AttemptLife(AttemptPhase::kFinished);
  a.result = std::move(result);
  a.result_path = r.result_path();
  a.started_us = a.result.started_us();
  a.files = std::move(files);
  return absl::OkStatus();
}

void Agent::PersistResult(Attempt& a) {
  // Without a spool there is nothing to resend from: such a result is not kept.
  if (a.spool == nullptr || !a.spool_error.empty()) return;
  const std::string path =
      absl::StrCat(options_.work_dir, "/spool/",
                   AttemptFileName(a.assignment.task_id(), a.assignment.attempt_id()), ".result");
  // The log first: the result file's presence vouches for it.
  absl::Status s = a.spool->Sync();
  std::string bytes;
  if (s.ok() && !a.result.SerializeToString(&bytes)) {
    s = absl::InternalError("cannot serialize the result");
  }
  if (s.ok()) s = WriteFileAtomically(path, bytes, 0600);
  if (!s.ok()) {
    Log()->warn(
        "task={} attempt={}: cannot keep the result for a restart: {} (should this agent end "
        "before the coordinator has it, the attempt is re-queued)",
        a.assignment.task_id(), a.assignment.attempt_id(), std::string(s.message()));
    return;
  }
  a.result_path = path;
  SaveState();
}

bool Agent::SaveState() {
  AgentState state;
  state.set_agent(options_.name);
  state.set_instance_secret(instance_secret_);
  for (const auto& [key, a] : attempts_) {
    RecordedAttempt* r = state.add_attempts();
    r->set_task_id(a.assignment.task_id());
    r->set_attempt_id(a.assignment.attempt_id());
    r->set_kind(a.traces.kind);
    for (const RecordedProcess& p : a.processes) *r->add_processes() = p;
    r->set_container(a.traces.container);
    for (const std::string& image : a.traces.images) r->add_images(image);
    if (!a.result_path.empty() && a.spool != nullptr) {
      r->set_finished(true);
      r->set_spool_path(a.spool->path());
      r->set_log_base(a.base());
      r->set_log_total(a.total());
      r->set_result_path(a.result_path);
      for (const CollectedFile& f : a.files) {
        RecordedFile* file = r->add_files();
        file->set_name(f.name);
        file->set_host_path(f.host_path);
        file->set_source(f.source);
      }
    }
  }
  if (absl::Status s = WriteAgentStateFile(StatePath(), state); !s.ok()) {
    Log()->error(
        "cannot save the agent state: {} (should this agent be killed now, a restart "
        "would not find what runs)",
        std::string(s.message()));
    return false;
  }
  return true;
}

}  // namespace musafarm::agent
