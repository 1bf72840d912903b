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

void LogSaveError(const absl::Status& s) {
  Log()->error(
      "cannot save the agent state: {} (should this agent be killed now, a restart would not "
      "find what runs)",
      std::string(s.message()));
}

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
    // What this run writes must read as newer than anything there.
    state_seq_ = state.sequence();
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
        if (!a.result_path().empty()) keep.insert(canonical(a.result_path()));
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
  // Written in the current format before the old files go: read once.
  if (WriteStateNow()) {
    if (legacy) ::unlink(absl::StrCat(options_.work_dir, "/", kLegacyAgentStateFile).c_str());
    ::unlink(absl::StrCat(options_.work_dir, "/", kOldDurableAgentStateFile).c_str());
  }
}

absl::Status Agent::Recover(const RecordedAttempt& r) {
  v1::AttemptResult result;
  if (!r.result().empty()) {
    if (!result.ParseFromString(r.result())) {
      return absl::DataLossError(absl::StrCat("the recorded result of task ", r.task_id(),
                                              " attempt ", r.attempt_id(), " is not a result"));
    }
  } else {
    // An agent before issue 19 kept the result in a file of its own.
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
    return absl::DataLossError(absl::StrCat(r.result().empty() ? r.result_path() : "the record",
                                            " is the result of task ",
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
  a.persisted = true;
  a.result_bytes = r.result().empty() ? a.result.SerializeAsString() : r.result();
  a.result_path = r.result_path();
  a.started_us = a.result.started_us();
  a.files = std::move(files);
  return absl::OkStatus();
}

void Agent::PersistResult(const std::string& key, Attempt& a) {
  // Without a spool there is nothing to resend from: such a result is not kept.
  if (a.spool == nullptr || !a.spool_error.empty()) return;
  if (!a.result.SerializeToString(&a.result_bytes)) {
    Log()->warn(
        "task={} attempt={}: cannot keep the result for a restart: cannot serialize it (should "
        "this agent end before the coordinator has it, the attempt is re-queued)",
        a.assignment.task_id(), a.assignment.attempt_id());
    return;
  }
  a.persisted = true;
  // Sent once the visible state that records it is written, at the end of
  // this turn (WriteState), not after the durable write (issue 19: its
  // fdatasync was on the way of every result). That write, for every attempt
  // that finished meanwhile and the logs they vouch for, still runs on the
  // state writer's thread; it opens no crash window: a machine crash before it
  // is done loses the agent's record either way (the attempt is re-queued
  // unless the coordinator stored the result), and a killed agent process
  // finds the result in the visible file.
  a.result_recorded = false;
  awaiting_durable_.push_back(key);
  awaiting_record_.push_back(key);
  SaveState(/*durable=*/true);
}

AgentState Agent::Snapshot() {
  AgentState state;
  state.set_agent(options_.name);
  state.set_instance_secret(instance_secret_);
  state.set_sequence(++state_seq_);
  for (const auto& [key, a] : attempts_) {
    RecordedAttempt* r = state.add_attempts();
    r->set_task_id(a.assignment.task_id());
    r->set_attempt_id(a.assignment.attempt_id());
    r->set_kind(a.traces.kind);
    for (const RecordedProcess& p : a.processes) *r->add_processes() = p;
    r->set_container(a.traces.container);
    for (const std::string& image : a.traces.images) r->add_images(image);
    if (a.persisted && a.spool != nullptr) {
      r->set_finished(true);
      r->set_spool_path(a.spool->path());
      r->set_log_base(a.base());
      r->set_log_total(a.total());
      r->set_result(a.result_bytes);
      for (const CollectedFile& f : a.files) {
        RecordedFile* file = r->add_files();
        file->set_name(f.name);
        file->set_host_path(f.host_path);
        file->set_source(f.source);
      }
    }
  }
  return state;
}

void Agent::SaveState(bool durable) {
  state_dirty_ = true;
  if (durable) durable_wanted_ = true;
  if (!in_turn_) FlushState();
}

void Agent::FlushState() {
  if (flushing_) return;  // called back from a start below: the loop goes round again
  flushing_ = true;
  while (state_dirty_ || !to_start_.empty()) {
    if (state_dirty_) WriteState();
    // Emptied directories first, so that this turn's starts take them: the
    // coordinator sends a result's ack with the assignments it unblocked.
    PoolForgotten();
    std::vector<std::string> starting;
    starting.swap(to_start_);
    for (const std::string& key : starting) StartExecution(key);
  }
  RemoveForgotten();
  flushing_ = false;
}

void Agent::PoolForgotten() {
  for (Removal& r : to_remove_) {
    // Never one an attempt of the same name holds again.
    if (!r.dir_reusable || attempts_.count(r.key) != 0) continue;
    r.dir_reusable = false;  // asked once: RemoveForgotten removes what it kept not
    if (work_dirs_.Keep(r.workdir)) r.workdir.clear();
  }
}

void Agent::RemoveForgotten() {
  std::vector<Removal> removals;
  removals.swap(to_remove_);
  for (const Removal& r : removals) {
    // Never one an attempt of the same name holds again.
    if (attempts_.count(r.key) != 0) continue;
    // A task that left nothing (the common case) went back to the pool
    // (PoolForgotten), or goes with one rmdir.
    if (r.workdir.empty()) {
      // pooled
    } else if (::rmdir(r.workdir.c_str()) != 0 && errno != ENOENT) {
      std::error_code ec;
      std::filesystem::remove_all(r.workdir, ec);
    }
    if (!r.result_path.empty()) ::unlink(r.result_path.c_str());
  }
}

void Agent::WriteState() {
  state_dirty_ = false;
  // A docker attempt leaves what a machine crash does not end (its container,
  // the tags it builds): recorded durably before it starts, as always. An
  // exec attempt's processes end with the machine, so the state that lists
  // it need only be visible to a restarted agent process before it starts:
  // no fsync between its assignment and its spawn.
  bool docker = false;
  for (const std::string& key : to_start_) {
    auto it = attempts_.find(key);
    if (it != attempts_.end() && it->second.assignment.run().kind_case() != v1::StageSpec::kExec) {
      docker = true;
    }
  }
  const AgentState state = Snapshot();
  std::vector<std::string> recorded;
  recorded.swap(awaiting_record_);
  if (absl::Status s = state_writer_->WriteVisible(state); !s.ok()) {
    LogSaveError(s);
    recorded.clear();  // they wait for the durable write (OnStateDurable)
  }
  if (docker) {
    std::vector<std::string> covered;
    covered.swap(awaiting_durable_);
    durable_wanted_ = false;
    absl::Status s = state_writer_->WriteDurableNow(state, SpoolsToSync(covered));
    OnStateDurable(covered, s);
  } else if (durable_wanted_ && !durable_in_flight_) {
    StartDurable(state);
  }
  ReleaseResults(recorded);
}

bool Agent::WriteStateNow() {
  const AgentState state = Snapshot();
  absl::Status s = state_writer_->WriteDurableNow(state);
  if (s.ok()) s = state_writer_->WriteVisible(state);
  state_dirty_ = false;
  if (!s.ok()) LogSaveError(s);
  return s.ok();
}

std::vector<int> Agent::SpoolsToSync(const std::vector<std::string>& keys) const {
  std::vector<int> fds;
  for (const std::string& key : keys) {
    auto it = attempts_.find(key);
    // All acknowledged: the coordinator has stored every byte.
    if (it == attempts_.end() || it->second.spool == nullptr || it->second.spool->held() == 0) {
      continue;
    }
    // A duplicate: the attempt may be forgotten (its spool closed) meanwhile.
    const int fd = ::dup(it->second.spool->fd());
    if (fd >= 0) fds.push_back(fd);
  }
  return fds;
}

void Agent::StartDurable(const AgentState& state) {
  durable_wanted_ = false;
  durable_in_flight_ = true;
  std::vector<std::string> covered;
  covered.swap(awaiting_durable_);
  std::vector<int> fds = SpoolsToSync(covered);
  state_writer_->WriteDurableAsync(
      state, std::move(fds), [this, covered = std::move(covered)](absl::Status s) mutable {
        loop_.PostGrouped([this, covered = std::move(covered), s = std::move(s)] {
          durable_in_flight_ = false;
          OnStateDurable(covered, s);
          // Changes that wanted disk while this one was on its way.
          if (durable_wanted_) SaveState(/*durable=*/true);
        });
      });
}

void Agent::OnStateDurable(const std::vector<std::string>& keys, const absl::Status& status) {
  if (!status.ok()) {
    // As when a result file could not be written before: the results go out
    // all the same; only a machine crash before they are stored loses them.
    Log()->warn(
        "cannot keep {} finished attempts' results for a restart: {} (should this host crash "
        "before the coordinator has them, they are re-queued)",
        keys.size(), std::string(status.message()));
  }
  ReleaseResults(keys);
}

void Agent::ReleaseResults(const std::vector<std::string>& keys) {
  for (const std::string& key : keys) {
    auto it = attempts_.find(key);
    if (it == attempts_.end() || it->second.result_recorded) continue;
    it->second.result_recorded = true;
    Pump(it->second);
  }
}

}  // namespace musafarm::agent
