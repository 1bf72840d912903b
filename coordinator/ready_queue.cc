#include "coordinator/ready_queue.h"

#include <algorithm>

#include "common/stage_kind.h"

namespace musafarm::coordinator {

Requirement RequirementOf(const v1::StageSpec& run) {
  Requirement r;
  r.labels.assign(run.labels().begin(), run.labels().end());
  std::sort(r.labels.begin(), r.labels.end());
  r.labels.erase(std::unique(r.labels.begin(), r.labels.end()), r.labels.end());
  r.kind = StageKindOf(run);
  r.gpus = run.gpus();
  r.needs = TrustNeedsOf(run);
  return r;
}

void ReadyQueue::Add(const std::string& task_id, Order order, const Requirement& requirement) {
  Remove(task_id);
  Class& c = classes_[requirement];
  c.requirement = requirement;
  c.tasks.emplace(order, task_id);
  where_.emplace(task_id, std::make_pair(requirement, order));
  dirty_.insert(requirement);
}

void ReadyQueue::Remove(const std::string& task_id) {
  auto it = where_.find(task_id);
  if (it == where_.end()) return;
  auto c = classes_.find(it->second.first);
  c->second.tasks.erase(it->second.second);
  if (c->second.tasks.empty()) {
    dirty_.erase(c->first);
    classes_.erase(c);
  }
  where_.erase(it);
}

std::set<Requirement> ReadyQueue::TakeDirty() {
  std::set<Requirement> out;
  out.swap(dirty_);
  return out;
}

}  // namespace musafarm::coordinator
