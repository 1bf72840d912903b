#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "coordinator/agent_policy.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::coordinator {

// What placement looks at in a task: two tasks with equal requirements fit
// exactly the same agents, so once one of them finds no agent, neither does
// the other (until an agent changes).
struct Requirement {
  std::vector<std::string> labels;           // sorted, unique
  v1::StageKind kind = v1::STAGE_KIND_EXEC;  // StageKindOf
  int gpus = 0;
  TrustNeeds needs;  // what the agent policy must grant (TrustNeedsOf)
  bool operator<(const Requirement& o) const {
    return std::tie(labels, kind, gpus, needs) < std::tie(o.labels, o.kind, o.gpus, o.needs);
  }
  bool operator==(const Requirement& o) const {
    return labels == o.labels && kind == o.kind && gpus == o.gpus && needs == o.needs;
  }
};
Requirement RequirementOf(const v1::StageSpec& run);

// The QUEUED tasks, grouped by requirement class, each class in queue order
// (oldest job first, then the task's position in its job). It also remembers
// which classes gained a task since the scheduler last looked, so a pass
// examines only what can have changed. Not thread-safe: core loop only.
class ReadyQueue {
 public:
  // (job sequence number, task position): smaller is older.
  using Order = std::pair<uint64_t, size_t>;
  struct Class {
    Requirement requirement;
    std::map<Order, std::string> tasks;  // order -> task id
  };

  // Adds a task that became QUEUED and marks its class dirty. Adding a task
  // already present moves it (its class or order may have changed).
  void Add(const std::string& task_id, Order order, const Requirement& requirement);
  // Removes a task that left QUEUED; no-op if absent.
  void Remove(const std::string& task_id);

  size_t size() const { return where_.size(); }
  bool Contains(const std::string& task_id) const { return where_.count(task_id) != 0; }
  const std::map<Requirement, Class>& classes() const { return classes_; }

  // The classes that gained tasks since the last call, and forgets them.
  std::set<Requirement> TakeDirty();
  bool HasDirty() const { return !dirty_.empty(); }

 private:
  std::map<Requirement, Class> classes_;
  std::map<std::string, std::pair<Requirement, Order>> where_;  // task id -> its entry
  std::set<Requirement> dirty_;
};

}  // namespace musafarm::coordinator
