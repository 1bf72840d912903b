#include "coordinator/wait_reason.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/labels.h"
#include "common/peer_compat.h"
#include "common/stage_kind.h"
#include "coordinator/host_health.h"

namespace musafarm::coordinator {
namespace {

bool Declares(const v1::Agent& agent, v1::StageKind kind) {
  const std::vector<v1::StageKind> kinds = ExecutorKinds(agent);
  if (kinds.empty()) return kind == v1::STAGE_KIND_EXEC;  // as placement reads an old agent
  return std::find(kinds.begin(), kinds.end(), kind) != kinds.end();
}

std::vector<std::string> Labels(const v1::Agent& agent) {
  return {agent.labels().begin(), agent.labels().end()};
}

std::string Plural(int n, const char* one, const char* many) {
  return absl::StrCat(n, " ", n == 1 ? one : many);
}

// What keeps `agent`, which would run `task`, from taking it now; "" when
// nothing does. Most lasting first: a busy agent that is also draining is
// draining.
std::string Holdup(const WaitAgent& agent, const ReadyTask& task) {
  const v1::Agent& info = *agent.info;
  const AgentSlots& slots = agent.slots;
  if (slots.grants != nullptr && !Permits(*slots.grants, task.kind, task.needs)) {
    return "not granted by the agent policy";
  }
  if (task.needs.any() && slots.trusted_labels != nullptr &&
      !LabelsSatisfy(*slots.trusted_labels, *task.labels)) {
    return "not granted by the agent policy";  // its labels are only claimed
  }
  if (info.shutting_down()) return "shutting down";
  if (info.draining()) return "draining";
  if (!info.unavailable_reason().empty()) {
    // The agent's own text is "low disk: 1.2 GiB free in /work, below 5 GiB".
    if (absl::StartsWith(info.unavailable_reason(), "low disk")) return "low on disk";
    return absl::StrCat("unavailable: ", info.unavailable_reason());
  }
  for (int k : info.unavailable_kinds()) {
    if (k != task.kind) continue;
    return absl::StrCat("unavailable: ", info.kinds_unavailable_reason().empty()
                                             ? absl::StrCat(StageKindName(task.kind), " off")
                                             : info.kinds_unavailable_reason());
  }
  if (task.gpus > 0) {
    int healthy = info.gpus();
    for (int32_t g : FencedGpus(info)) healthy -= (g >= 0 && g < info.gpus()) ? 1 : 0;
    if (healthy < task.gpus) {
      return absl::StrCat("unavailable: ", info.gpu_fence_reason().empty()
                                               ? std::string("GPUs fenced")
                                               : info.gpu_fence_reason());
    }
  }
  return Fits(slots, task) ? "" : "busy";
}

}  // namespace

bool WouldRun(const v1::Agent& info, bool connected, const ReadyTask& task) {
  static const std::vector<std::string> kNoLabels;
  // The filters WaitReason applies before it asks an agent's Holdup.
  return connected && Declares(info, task.kind) &&
         LabelsSatisfy(Labels(info), task.labels != nullptr ? *task.labels : kNoLabels) &&
         info.gpus() >= task.gpus;
}

bool SlotsCountInWaitReason(const WaitAgent& agent, const ReadyTask& task) {
  return agent.info != nullptr && WouldRun(*agent.info, agent.connected, task);
}

WaitVerdict WaitReason(const ReadyTask& task, const std::vector<WaitAgent>& agents) {
  static const std::vector<std::string> kNoLabels;
  const std::vector<std::string>& labels = task.labels != nullptr ? *task.labels : kNoLabels;
  ReadyTask view = task;
  view.labels = &labels;

  std::vector<const WaitAgent*> connected, of_kind, labelled, matching;
  for (const WaitAgent& a : agents) {
    if (a.connected && a.info != nullptr) connected.push_back(&a);
  }
  if (connected.empty()) return {"no connected agent", false};
  for (const WaitAgent* a : connected) {
    if (Declares(*a->info, task.kind)) of_kind.push_back(a);
  }
  if (of_kind.empty()) {
    return {absl::StrCat("no connected agent runs ", StageKindName(task.kind)), false};
  }
  for (const WaitAgent* a : of_kind) {
    if (LabelsSatisfy(Labels(*a->info), labels)) labelled.push_back(a);
  }
  if (labelled.empty()) {
    // Name the labels no such agent has; if each has some agent, the
    // combination is what is missing.
    std::vector<std::string> missing;
    for (const std::string& l : labels) {
      const bool somewhere = std::any_of(of_kind.begin(), of_kind.end(), [&](const WaitAgent* a) {
        return LabelsSatisfy(Labels(*a->info), {l});
      });
      if (!somewhere) missing.push_back(l);
    }
    const bool together = missing.empty();
    if (together) missing = labels;
    std::string what = absl::StrCat(missing.size() == 1 ? "label " : "labels ",
                                    absl::StrJoin(missing, ", "), together ? " together" : "");
    const std::string kind =
        task.kind == v1::STAGE_KIND_EXEC ? "" : absl::StrCat(StageKindName(task.kind), " ");
    return {absl::StrCat("no connected ", kind, "agent with ", what), false};
  }
  int most_gpus = 0;
  for (const WaitAgent* a : labelled) {
    most_gpus = std::max(most_gpus, a->info->gpus());
    if (a->info->gpus() >= task.gpus) matching.push_back(a);
  }
  if (matching.empty()) {
    return {absl::StrCat("needs ", Plural(task.gpus, "GPU", "GPUs"), "; ",
                         most_gpus == 0 ? std::string("agents have none")
                                        : absl::StrCat("agents have at most ", most_gpus)),
            false};
  }

  std::vector<std::pair<std::string, int>> holdups;  // in order of first appearance
  for (const WaitAgent* a : matching) {
    const std::string why = Holdup(*a, view);
    if (why.empty()) return {"", true};
    auto it = std::find_if(holdups.begin(), holdups.end(),
                           [&](const auto& h) { return h.first == why; });
    if (it == holdups.end()) {
      holdups.emplace_back(why, 1);
    } else {
      ++it->second;
    }
  }
  const std::string agents_text =
      Plural(static_cast<int>(matching.size()), "matching agent", "matching agents");
  if (holdups.size() == 1) return {absl::StrCat(agents_text, " ", holdups[0].first), true};
  std::vector<std::string> parts;
  for (const auto& [why, n] : holdups) parts.push_back(absl::StrCat(n, " ", why));
  return {absl::StrCat(agents_text, ": ", absl::StrJoin(parts, ", ")), true};
}

}  // namespace musafarm::coordinator
