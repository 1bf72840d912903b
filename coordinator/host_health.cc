#include "coordinator/host_health.h"

#include <algorithm>

#include "common/peer_compat.h"

namespace musafarm::coordinator {
namespace {

template <typename Kinds>
std::set<int> KindSet(const Kinds& kinds) {
  return {kinds.begin(), kinds.end()};
}

}  // namespace

void SetHostHealth(const v1::Capabilities& caps, v1::Agent* agent) {
  agent->mutable_unavailable_kinds()->CopyFrom(caps.unavailable_kinds());
  agent->set_kinds_unavailable_reason(caps.kinds_unavailable_reason());
  agent->mutable_fenced_gpus()->CopyFrom(caps.fenced_gpus());
  agent->set_gpu_fence_reason(caps.gpu_fence_reason());
}

HostHealthChange ApplyHostHealth(const v1::Heartbeat& beat, v1::Agent* agent) {
  HostHealthChange c;
  const std::set<int> kinds_before = KindSet(agent->unavailable_kinds());
  const std::set<int> kinds_after = KindSet(beat.unavailable_kinds());
  const std::set<int32_t> gpus_before(agent->fenced_gpus().begin(), agent->fenced_gpus().end());
  const std::set<int32_t> gpus_after(beat.fenced_gpus().begin(), beat.fenced_gpus().end());
  c.changed = kinds_before != kinds_after || gpus_before != gpus_after ||
              agent->kinds_unavailable_reason() != beat.kinds_unavailable_reason() ||
              agent->gpu_fence_reason() != beat.gpu_fence_reason();
  c.freed = !std::includes(kinds_after.begin(), kinds_after.end(), kinds_before.begin(),
                           kinds_before.end()) ||
            !std::includes(gpus_after.begin(), gpus_after.end(), gpus_before.begin(),
                           gpus_before.end());
  agent->mutable_unavailable_kinds()->CopyFrom(beat.unavailable_kinds());
  agent->set_kinds_unavailable_reason(beat.kinds_unavailable_reason());
  agent->mutable_fenced_gpus()->CopyFrom(beat.fenced_gpus());
  agent->set_gpu_fence_reason(beat.gpu_fence_reason());
  return c;
}

std::vector<v1::StageKind> AvailableKinds(const v1::Agent& agent) {
  std::vector<v1::StageKind> kinds = ExecutorKinds(agent);
  const std::set<int> off = KindSet(agent.unavailable_kinds());
  kinds.erase(std::remove_if(kinds.begin(), kinds.end(),
                             [&](v1::StageKind k) { return off.count(k) != 0; }),
              kinds.end());
  return kinds;
}

std::set<int32_t> FencedGpus(const v1::Agent& agent) {
  return {agent.fenced_gpus().begin(), agent.fenced_gpus().end()};
}

}  // namespace musafarm::coordinator
