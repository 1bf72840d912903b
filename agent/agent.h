#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "agent/coordinator_stream.h"
#include "agent/executor.h"
#include "agent/gpu.h"
#include "common/backoff.h"
#include "common/event_loop.h"
#include "common/redactor.h"

namespace musafarm::agent {

struct AgentOptions {
  std::string coordinator = "127.0.0.1:7070";
  std::string name;
  std::vector<std::string> labels;
  int slots = 0;  // 0: the number of CPUs
  std::string work_dir = "musafarm-agent";
  absl::Duration reconnect_initial = absl::Milliseconds(250);
  absl::Duration reconnect_max = absl::Seconds(5);
  GpuInventory gpus;  // advertised in Capabilities; the scheduler hands out ids 0..count-1
};

// The agent daemon: keeps one stream to the coordinator (reconnecting with
// jittered backoff), runs assigned attempts through the Executor, and streams
// their output and results back. Output stays buffered until the coordinator
// acknowledges it, so a coordinator restart loses nothing: on reconnect the
// agent lists the attempts it holds and resends from the acknowledged offset.
//
// Nothing an attempt produces leaves the agent with a secret value of its
// assignment in it: output passes through the attempt's Redactor before it is
// given log offsets (offsets count the redacted bytes), collected files are
// redacted in place before they are measured, parsed or sent, and so is the
// result's error text.
//
// All state lives on the agent's EventLoop; gRPC and executor callbacks only
// post to it.
class Agent {
 public:
  // `exec` runs exec/shell stages; `docker`, if given, the three docker kinds.
  Agent(AgentOptions options, Executor* exec, Executor* docker = nullptr);
  ~Agent();

  // Validates options, starts the loop and the first connection.
  absl::Status Start();
  // Cancels running attempts, waits for them to end, closes the stream.
  void Stop();

 private:
  struct Attempt {
    v1::Assignment assignment;
    std::unique_ptr<Execution> execution;
    std::string workdir;
    std::string buffer;  // log bytes [base, total) not yet acknowledged
    uint64_t base = 0;
    uint64_t sent = 0;  // bytes sent on the current stream
    uint64_t total = 0;
    bool awaiting_ack = false;  // after a reconnect: wait to learn the stored offset
    bool finished = false;
    bool result_sent = false;
    bool stale = false;  // the coordinator no longer wants it: drop on exit
    int64_t started_us = 0;
    v1::AttemptResult result;
    std::vector<CollectedFile> files;  // sent as artifacts before the result
    std::vector<std::string> secrets;  // the assignment's secret values
    Redactor redactor;                 // of `secrets`, over the attempt's output
  };
  static std::string Key(const std::string& task, uint64_t attempt);

  void Connect();
  void OnMessage(uint64_t generation, const v1::CoordinatorMessage& msg);
  void OnStreamEnd(uint64_t generation, const grpc::Status& status);
  void OnAssignment(const v1::Assignment& a);
  void OnCancel(const v1::CancelAttempt& c);
  void OnAck(const v1::Ack& ack);
  void OnOutput(const std::string& key, std::string data);
  // Adds already redacted bytes to the attempt's log.
  static void AppendLog(Attempt& a, const std::string& redacted);
  void OnExit(const std::string& key, ExitInfo info);
  void Pump(Attempt& a);
  void SendArtifacts(Attempt& a);
  void Send(v1::AgentMessage msg);
  void Heartbeat(uint64_t generation);
  void Forget(const std::string& key);

  const AgentOptions options_;
  Executor* const exec_executor_;
  Executor* const docker_executor_;  // may be null: no Docker on this host
  EventLoop loop_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AgentService::Stub> stub_;
  Backoff backoff_;

  // Loop-only state.
  std::shared_ptr<CoordinatorStream> stream_;
  uint64_t generation_ = 0;
  bool registered_ = false;
  bool stopping_ = false;
  bool started_ = false;  // Start() succeeded: the loop runs
  absl::Notification* stream_ended_ = nullptr;  // Stop() waits on it
  absl::Duration heartbeat_interval_ = absl::Seconds(3);
  int failures_ = 0;
  std::map<std::string, Attempt> attempts_;
};

}  // namespace musafarm::agent
