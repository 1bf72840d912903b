#include "coordinator/agent_registry.h"

#include <openssl/sha.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/labels.h"
#include "common/peer_compat.h"
#include "common/status_macros.h"
#include "coordinator/host_health.h"

namespace musafarm::coordinator {
namespace {

// Only a hash of an instance secret is kept, so that no dump of the
// coordinator's memory or state shows a secret an attacker could replay.
std::string InstanceHash(const std::string& secret) {
  if (secret.empty()) return "";
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof(digest));
}

}  // namespace

int AgentRegistry::Agent::free_slots() const {
  return std::max(0, info.slots() - static_cast<int>(held.size()));
}

std::set<int32_t> AgentRegistry::Agent::used_gpus() const {
  std::set<int32_t> used;
  for (const auto& [task, gpus] : held) used.insert(gpus.begin(), gpus.end());
  // A fenced GPU (failed its probe) is never handed out: as good as in use.
  for (int32_t g : FencedGpus(info)) {
    if (g >= 0 && g < info.gpus()) used.insert(g);
  }
  return used;
}

v1::Agent AgentRegistry::Agent::Snapshot() const {
  v1::Agent out = info;
  out.clear_running_tasks();
  for (const auto& [task, gpus] : held) out.add_running_tasks(task);
  out.set_used_slots(static_cast<int32_t>(held.size()));
  out.set_free_gpus(std::max(0, info.gpus() - static_cast<int32_t>(used_gpus().size())));
  return out;
}

AgentRegistry::Agent& AgentRegistry::Restore(v1::Agent info, absl::Time now) {
  ++roster_version_;
  Agent& agent = agents_[info.name()];
  agent.info = std::move(info);
  agent.info.set_state(v1::AGENT_STATE_DISCONNECTED);
  agent.info.set_used_slots(0);
  agent.info.clear_running_tasks();
  agent.disconnected_at = now;
  agent.lose_at = now + std::max(timing_.restart_grace, timing_.agent_lost_timeout);
  QueueLost(agent.info.name(), agent);
  return agent;
}

AgentRegistry::Agent& AgentRegistry::RestoreHolder(const std::string& name, absl::Time now) {
  auto it = agents_.find(name);
  if (it != agents_.end()) return it->second;
  v1::Agent info;
  info.set_name(name);
  return Restore(std::move(info), now);
}

AgentRegistry::ConnId AgentRegistry::Connect(std::shared_ptr<AgentConnection> conn,
                                             absl::Time now) {
  const ConnId id = next_conn_++;
  if (!closing_.ok()) conn->Close(closing_);
  conns_[id] = Conn{std::move(conn), "", now};
  unregistered_.emplace(now, id);
  return id;
}

AgentRegistry::Agent* AgentRegistry::Gone(ConnId conn) {
  auto it = conns_.find(conn);
  if (it == conns_.end()) return nullptr;
  const std::string name = it->second.agent;
  conns_.erase(it);
  if (name.empty()) return nullptr;
  Agent* agent = Find(name);
  if (agent == nullptr || agent->conn != conn) return nullptr;  // an older stream, replaced
  return agent;
}

AgentRegistry::Agent* AgentRegistry::AgentOn(ConnId conn) {
  auto it = conns_.find(conn);
  if (it == conns_.end() || it->second.agent.empty()) return nullptr;
  return Find(it->second.agent);
}

void AgentRegistry::Close(ConnId conn, const absl::Status& why) {
  auto it = conns_.find(conn);
  if (it != conns_.end()) it->second.conn->Close(why);
}

std::string AgentRegistry::PeerOf(ConnId conn) const {
  auto it = conns_.find(conn);
  return it == conns_.end() ? "" : it->second.conn->Peer();
}

namespace {

// A stream with a verified certificate may register only under the name the
// certificate gives (its CN). Without one (--insecure) the name is as declared.
absl::Status CheckIdentity(const AgentIdentity* identity, const v1::Register& reg) {
  if (identity != nullptr && identity->name != reg.name()) {
    return absl::PermissionDeniedError(absl::StrCat("certificate names '", identity->name,
                                                    "'; cannot register as '", reg.name(), "'"));
  }
  return absl::OkStatus();
}

void SetAuthentication(const AgentIdentity* identity, v1::Agent* info) {
  info->set_authentication(identity != nullptr ? "certificate" : "none");
  info->set_certificate_fingerprint(identity != nullptr ? identity->fingerprint : "");
  info->clear_certificate_expire_time();
  if (identity != nullptr) {
    info->mutable_certificate_expire_time()->set_seconds(absl::ToUnixSeconds(identity->not_after));
  }
}

}  // namespace

absl::StatusOr<AgentRegistry::Agent*> AgentRegistry::Register(ConnId conn_id,
                                                              const v1::Register& reg,
                                                              absl::Time now) {
  auto c = conns_.find(conn_id);
  if (c == conns_.end()) return absl::NotFoundError("stream already gone");
  absl::Status bad;
  if (!c->second.agent.empty()) bad = absl::InvalidArgumentError("register sent twice on one stream");
  if (reg.name().empty()) bad = absl::InvalidArgumentError("register: agent name is empty");
  if (reg.slots() <= 0) bad = absl::InvalidArgumentError("register: slots must be at least 1");
  for (const std::string& label : reg.labels()) {
    if (absl::Status s = ValidateLabel(label); !s.ok()) bad = s;
  }
  if (!bad.ok()) return bad;
  const AgentIdentity* identity = c->second.conn->Identity();
  MF_RETURN_IF_ERROR(CheckIdentity(identity, reg));
  const std::string hash = InstanceHash(reg.instance_secret());
  Agent& agent = agents_[reg.name()];
  if (agent.conn != 0 && agent.conn != conn_id) {
    const bool same_instance = !hash.empty() && hash == agent.instance_hash;
    const bool holder_alive = now - agent.last_seen <= agent.silence_allowed;
    if (!same_instance && holder_alive) {
      // Two processes with one name would otherwise evict each other in a
      // loop, and a client that merely knows the name could take over the
      // holder's attempts.
      return absl::AlreadyExistsError(absl::StrCat(
          "agent name ", reg.name(), " is held by another instance connected from ",
          agent.info.peer(), " since ", absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", agent.connected_at,
                                                         absl::UTCTimeZone()),
          "; stop the other agent or give this one another --name"));
    }
    // The same agent reconnected before its old TCP connection died, or the
    // holder went silent past its deadline: the newest stream wins.
    auto old = conns_.find(agent.conn);
    if (old != conns_.end()) {
      old->second.agent.clear();
      old->second.conn->Close(
          absl::AbortedError("replaced by a newer connection from the same agent"));
    }
  }
  c->second.agent = reg.name();
  ++roster_version_;
  if (agent.conn == 0) ++connected_;
  agent.conn = conn_id;
  agent.last_seen = now;
  agent.heartbeat_interval = absl::ZeroDuration();
  agent.silence_allowed = timing_.heartbeat_timeout;
  QueueSilence(reg.name(), agent);
  agent.connected_at = now;
  agent.instance_hash = hash;
  agent.info.set_name(reg.name());
  agent.info.mutable_labels()->Assign(reg.labels().begin(), reg.labels().end());
  agent.info.set_slots(reg.slots());
  agent.info.set_version(reg.version());
  agent.info.set_peer(c->second.conn->Peer());
  SetAuthentication(identity, &agent.info);
  agent.info.set_free_disk_bytes(reg.capabilities().free_disk_bytes());
  agent.info.mutable_executors()->Assign(reg.capabilities().executors().begin(),
                                         reg.capabilities().executors().end());
  agent.info.set_unavailable_reason(reg.capabilities().unavailable_reason());
  // Read with the fallbacks for agents from before these fields (peer_compat).
  agent.info.clear_executor_kinds();
  for (v1::StageKind kind : ExecutorKinds(reg.capabilities())) agent.info.add_executor_kinds(kind);
  agent.info.set_shutting_down(ShuttingDown(reg.capabilities()));
  SetHostHealth(reg.capabilities(), &agent.info);
  agent.info.set_gpus(std::max(0, reg.capabilities().gpus()));
  agent.info.set_gpu_vendor(reg.capabilities().gpu_vendor());
  agent.info.set_last_seen_us(ToMicros(now));
  agent.info.set_state(agent.info.draining() ? v1::AGENT_STATE_DRAINING
                                             : v1::AGENT_STATE_CONNECTED);
  return &agent;
}

void AgentRegistry::Disconnect(Agent& agent, const absl::Status& why, absl::Time now) {
  auto conn = conns_.find(agent.conn);
  if (conn != conns_.end()) {
    conn->second.agent.clear();  // its Gone is now a no-op
    if (!why.ok()) conn->second.conn->Close(why);
  }
  if (agent.conn != 0) --connected_;
  ++roster_version_;
  agent.conn = 0;
  agent.disconnected_at = now;
  agent.lose_at = now + timing_.agent_lost_timeout;
  QueueLost(agent.info.name(), agent);
  agent.info.set_state(v1::AGENT_STATE_DISCONNECTED);
  agent.info.set_last_seen_us(ToMicros(agent.last_seen));
}

void AgentRegistry::Send(const std::string& name, v1::CoordinatorMessage msg) {
  Agent* agent = Find(name);
  if (agent == nullptr || agent->conn == 0) return;
  auto conn = conns_.find(agent->conn);
  if (conn != conns_.end()) conn->second.conn->Send(std::move(msg));
}

void AgentRegistry::SetHeartbeatInterval(Agent& agent, absl::Duration interval,
                                         absl::Duration silence_allowed) {
  const bool shorter = silence_allowed < agent.silence_allowed;
  agent.heartbeat_interval = interval;
  agent.silence_allowed = silence_allowed;
  // A longer deadline is found when the queued one comes due; a shorter one
  // needs its own entry.
  if (shorter && agent.conn != 0) QueueSilence(agent.info.name(), agent);
}

void AgentRegistry::QueueSilence(const std::string& name, Agent& agent) {
  silence_due_.push(Due{agent.last_seen + agent.silence_allowed, name, ++agent.due_seq});
}

void AgentRegistry::QueueLost(const std::string& name, const Agent& agent) {
  lost_due_.push(Due{agent.lose_at, name, 0});
}

void AgentRegistry::Hold(Agent& agent, const std::string& task_id, std::vector<int32_t> gpus) {
  // (A disconnected agent given an attempt, as recovery does: its lost timer
  // must see it.)
  if (agent.conn == 0 && agent.held.empty()) QueueLost(agent.info.name(), agent);
  agent.held[task_id] = std::move(gpus);
  agent.info.set_used_slots(static_cast<int32_t>(agent.held.size()));
}

bool AgentRegistry::Release(const std::string& name, const std::string& task_id) {
  Agent* agent = Find(name);
  if (agent == nullptr || agent->held.erase(task_id) == 0) return false;
  agent->info.set_used_slots(static_cast<int32_t>(agent->held.size()));
  return true;
}

AgentRegistry::Agent* AgentRegistry::Find(const std::string& name) {
  auto it = agents_.find(name);
  return it == agents_.end() ? nullptr : &it->second;
}

void AgentRegistry::CloseUnregistered(absl::Time now) {
  while (!unregistered_.empty() && now - unregistered_.front().first > timing_.heartbeat_timeout) {
    auto c = conns_.find(unregistered_.front().second);
    unregistered_.pop();
    if (c != conns_.end() && c->second.agent.empty()) {
      c->second.conn->Close(
          absl::DeadlineExceededError("no 'register' within the heartbeat deadline"));
    }
  }
}

std::vector<AgentRegistry::Agent*> AgentRegistry::Silent(absl::Time now) {
  std::vector<Agent*> out;
  std::vector<Due> again;
  while (!silence_due_.empty() && silence_due_.top().when < now) {
    Due due = silence_due_.top();
    silence_due_.pop();
    auto it = agents_.find(due.agent);
    if (it == agents_.end() || it->second.conn == 0 || it->second.due_seq != due.seq) continue;
    Agent& agent = it->second;
    due.when = agent.last_seen + agent.silence_allowed;
    if (now > due.when) {
      out.push_back(&agent);  // and again next time, unless the caller disconnects it
      again.push_back(std::move(due));
    } else {
      silence_due_.push(std::move(due));  // heard from since: due later
    }
  }
  for (Due& due : again) silence_due_.push(std::move(due));
  return out;
}

std::vector<AgentRegistry::Agent*> AgentRegistry::Lost(absl::Time now) {
  std::vector<Agent*> out;
  std::vector<Due> again;
  while (!lost_due_.empty() && lost_due_.top().when <= now) {
    Due due = lost_due_.top();
    lost_due_.pop();
    auto it = agents_.find(due.agent);
    if (it == agents_.end()) continue;
    Agent& agent = it->second;
    // Back since, holding nothing, or a newer timer of its own is queued.
    if (agent.conn != 0 || agent.held.empty() || agent.lose_at != due.when) continue;
    // (Queued twice, by its disconnection and by an attempt it was given after.)
    if (std::find(out.begin(), out.end(), &agent) != out.end()) continue;
    out.push_back(&agent);
    again.push_back(std::move(due));
  }
  for (Due& due : again) lost_due_.push(std::move(due));
  return out;
}

void AgentRegistry::CloseAll(const absl::Status& why) {
  closing_ = why;
  for (auto& [id, c] : conns_) c.conn->Close(why);
}

}  // namespace musafarm::coordinator
