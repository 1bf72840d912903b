#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <queue>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "coordinator/agent_event_sink.h"
#include "coordinator/agent_policy.h"
#include "musafarm/v1/agent_service.pb.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::coordinator {

// The agents and their streams: registration, liveness (heartbeat deadline,
// lost timer), and what each holds (attempts, slots, GPU numbers). Knows
// nothing of tasks beyond their ids; the core decides what a lost or returning
// agent means for them. Not thread-safe: core loop only.
class AgentRegistry {
 public:
  using ConnId = AgentEventSink::ConnId;

  struct Timing {
    absl::Duration heartbeat_timeout = absl::Seconds(10);
    absl::Duration agent_lost_timeout = absl::Seconds(5);
    absl::Duration restart_grace = absl::Seconds(30);
  };

  struct Agent {
    v1::Agent info;
    ConnId conn = 0;  // 0: not connected
    absl::Time disconnected_at = absl::InfinitePast();
    // Its attempts are lost once the clock passes this (while disconnected).
    absl::Time lose_at = absl::InfiniteFuture();
    absl::Time last_seen = absl::InfinitePast();
    // The heartbeat interval it was told, and how long it may be silent
    // before it is disconnected (HeartbeatPace; the timing's heartbeat
    // timeout until the core says otherwise).
    absl::Duration heartbeat_interval = absl::ZeroDuration();
    absl::Duration silence_allowed = absl::ZeroDuration();
    // Since when its current stream has been registered (for the message that
    // refuses another instance).
    absl::Time connected_at = absl::InfinitePast();
    // SHA-256 of the instance secret its current stream registered with;
    // empty: none (an agent from before Register.instance_secret).
    std::string instance_hash;
    // Which entry of the silence queue is current (older ones are stale).
    uint64_t due_seq = 0;
    // Task ids whose current attempt it holds, with the GPU numbers each was given.
    std::map<std::string, std::vector<int32_t>> held;
    // What the agent policy lets it run, and which of its labels it trusts;
    // set by the core on registration and on every policy (re)load.
    Grants grants;
    std::vector<std::string> trusted_labels;

    bool connected() const { return conn != 0; }
    // Connected, not draining, not refusing work.
    bool accepting() const {
      return conn != 0 && !info.draining() && info.unavailable_reason().empty();
    }
    int free_slots() const;
    std::set<int32_t> used_gpus() const;
    // For `musafarm agents`: running tasks, used slots and free GPUs filled in.
    v1::Agent Snapshot() const;
  };

  explicit AgentRegistry(Timing timing) : timing_(timing) {}

  // --- recovery: every agent starts disconnected, its attempts lost after the restart grace.
  Agent& Restore(v1::Agent info, absl::Time now);
  // The agent that a recovered attempt names (created if no row was stored).
  Agent& RestoreHolder(const std::string& name, absl::Time now);

  // --- streams
  ConnId Connect(std::shared_ptr<AgentConnection> conn, absl::Time now);
  // The stream ended. Returns the agent it carried if that agent had not moved
  // on to a newer stream; the caller then calls Disconnect.
  Agent* Gone(ConnId conn);
  // The registered agent on `conn`, or null (unknown stream, or not registered yet).
  Agent* AgentOn(ConnId conn);
  // Closes a stream (protocol error, shutdown); its end still comes via Gone.
  void Close(ConnId conn, const absl::Status& why);
  // Checks `reg` and binds the agent to `conn`. One agent instance per name:
  // while the name's holder is connected and within its heartbeat deadline,
  // the same instance (same Register.instance_secret) replaces its older
  // stream (a reconnect after a blip), and another instance (another or no
  // secret) is AlreadyExists, naming the holder's peer. Once the holder's
  // stream has ended or gone silent past the deadline, any instance may take
  // the name. An invalid registration is InvalidArgument. The caller closes
  // the stream with a refusal.
  absl::StatusOr<Agent*> Register(ConnId conn, const v1::Register& reg, absl::Time now);
  // Treats the agent as disconnected from `now`: it gets no work, and its
  // attempts are lost after agent_lost_timeout unless it returns. A non-OK
  // `why` also closes its stream, whose own end then changes nothing.
  void Disconnect(Agent& agent, const absl::Status& why, absl::Time now);
  std::string PeerOf(ConnId conn) const;
  // Connected (registered) agents.
  size_t connected() const { return connected_; }
  // Changes whenever an agent registers (its labels, stage kinds, GPUs),
  // disconnects or is restored: what it declared and whether it is connected
  // change nowhere else, so anything derived from them alone holds while this
  // stays the same (the core's per-class lists of agents, issue 19).
  uint64_t roster_version() const { return roster_version_; }
  // Records the heartbeat interval a connected agent was told and the silence
  // it is allowed from now on.
  void SetHeartbeatInterval(Agent& agent, absl::Duration interval, absl::Duration silence_allowed);

  // Sends to a connected agent; dropped if it is not connected.
  void Send(const std::string& agent, v1::CoordinatorMessage msg);

  // --- attempts
  void Hold(Agent& agent, const std::string& task_id, std::vector<int32_t> gpus);
  // Forgets that `agent` holds the task. Returns whether it did (a slot is free).
  bool Release(const std::string& agent, const std::string& task_id);

  Agent* Find(const std::string& name);
  std::map<std::string, Agent>& agents() { return agents_; }
  const std::map<std::string, Agent>& agents() const { return agents_; }

  // --- timers (Tick). Each looks only at what is due, from a queue ordered by
  // deadline, never at every agent: with 10,000 agents a scan of the maps
  // every tick was most of an idle coordinator's own CPU.
  // Closes streams that did not register within the heartbeat deadline.
  void CloseUnregistered(absl::Time now);
  // Connected agents silent past their deadline (last_seen + silence_allowed).
  std::vector<Agent*> Silent(absl::Time now);
  // Disconnected agents still holding attempts whose lost timer has run out;
  // the same agent again on each call until it holds none.
  std::vector<Agent*> Lost(absl::Time now);

  // Closes every stream (shutdown); new streams are closed at once from now on.
  void CloseAll(const absl::Status& why);

 private:
  struct Conn {
    std::shared_ptr<AgentConnection> conn;
    std::string agent;  // empty until registered
    absl::Time opened;
  };
  // A deadline to look at again once it has passed. An entry may be stale
  // (the agent heartbeated since, reconnected, or was disconnected): checked
  // against the agent when it comes due, and dropped or queued again.
  struct Due {
    absl::Time when;
    std::string agent;
    uint64_t seq;  // Agent::due_seq when queued (silence); 0 (lost timers)
    bool operator>(const Due& o) const { return when > o.when; }
  };
  using DueQueue = std::priority_queue<Due, std::vector<Due>, std::greater<Due>>;
  void QueueSilence(const std::string& name, Agent& agent);
  void QueueLost(const std::string& name, const Agent& agent);

  const Timing timing_;
  std::map<std::string, Agent> agents_;  // by name
  std::map<ConnId, Conn> conns_;
  ConnId next_conn_ = 1;
  size_t connected_ = 0;
  uint64_t roster_version_ = 1;
  DueQueue silence_due_;  // connected agents, by last_seen + silence_allowed
  DueQueue lost_due_;     // disconnected agents, by lose_at
  // Streams not registered yet, in the order they opened (and so of their
  // deadlines).
  std::queue<std::pair<absl::Time, ConnId>> unregistered_;
  absl::Status closing_ = absl::OkStatus();  // set by CloseAll
};

}  // namespace musafarm::coordinator
