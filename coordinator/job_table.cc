#include "coordinator/job_table.h"

#include <algorithm>

#include "absl/strings/numbers.h"

namespace musafarm::coordinator {

JobTable::Entry& JobTable::Add(v1::Job job, std::map<std::string, std::string> secrets) {
  int64_t number = 0;
  if (absl::SimpleAtoi(job.id(), &number)) {
    next_job_number_ = std::max(next_job_number_, number + 1);
  }
  const std::string id = job.id();
  Entry& entry = jobs_[id];
  entry.job = std::move(job);
  entry.seq = next_seq_++;
  entry.secrets = std::move(secrets);
  for (size_t i = 0; i < static_cast<size_t>(entry.job.tasks_size()); ++i) {
    const v1::Task& task = entry.job.tasks(static_cast<int>(i));
    entry.index[task.id()] = i;
    task_index_[task.id()] = TaskRef{id, i};
    for (const std::string& need : task.spec().needs()) entry.dependants[need].push_back(i);
  }
  order_.emplace(entry.seq, id);
  return entry;
}

void JobTable::Remove(const std::string& job_id) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  for (const v1::Task& task : it->second.job.tasks()) task_index_.erase(task.id());
  order_.erase(it->second.seq);
  jobs_.erase(it);
}

JobTable::Entry* JobTable::Find(const std::string& job_id) {
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : &it->second;
}

const JobTable::Entry* JobTable::Find(const std::string& job_id) const {
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : &it->second;
}

v1::Task* JobTable::FindTask(const std::string& task_id) {
  auto it = task_index_.find(task_id);
  if (it == task_index_.end()) return nullptr;
  return jobs_.at(it->second.job_id).job.mutable_tasks(static_cast<int>(it->second.index));
}

const v1::Task* JobTable::FindTask(const std::string& task_id) const {
  auto it = task_index_.find(task_id);
  if (it == task_index_.end()) return nullptr;
  return &jobs_.at(it->second.job_id).job.tasks(static_cast<int>(it->second.index));
}

std::pair<uint64_t, size_t> JobTable::QueueOrder(const std::string& task_id) const {
  const TaskRef& ref = task_index_.at(task_id);
  return {jobs_.at(ref.job_id).seq, ref.index};
}

std::vector<v1::Job> JobTable::List(int limit, const std::string& submitter) const {
  if (limit <= 0) limit = 50;
  std::vector<v1::Job> out;
  for (auto it = order_.rbegin(); it != order_.rend() && static_cast<int>(out.size()) < limit;
       ++it) {
    const v1::Job& stored = jobs_.at(it->second).job;
    if (!submitter.empty() && stored.submitter() != submitter) continue;
    v1::Job job = stored;
    job.clear_tasks();
    out.push_back(std::move(job));
  }
  return out;
}

bool JobTable::DropSecrets(Entry& entry) {
  if (entry.secrets.empty()) return false;
  entry.secrets.clear();
  return true;
}

std::set<std::string> JobTable::ImagesInUse() const {
  std::set<std::string> images;
  for (const auto& [id, entry] : jobs_) {
    if (entry.job.state() != v1::JOB_STATE_RUNNING) continue;
    for (const v1::Task& task : entry.job.tasks()) {
      const v1::StageSpec& run = task.spec().run();
      switch (run.kind_case()) {
        case v1::StageSpec::kDockerRun:
          images.insert(run.docker_run().image());
          break;
        case v1::StageSpec::kDockerBuild:
          images.insert(run.docker_build().tags().begin(), run.docker_build().tags().end());
          // A base image comes in as a build arg (BASE_IMG, SYS); keeping every
          // value errs on the side of keeping.
          for (const auto& [k, v] : run.docker_build().build_args()) images.insert(v);
          break;
        case v1::StageSpec::kDockerPush:
          images.insert(run.docker_push().images().begin(), run.docker_push().images().end());
          break;
        default:
          break;
      }
    }
  }
  images.erase("");
  return images;
}

std::vector<const JobTable::Entry*> JobTable::InOrder() const {
  std::vector<const Entry*> out;
  out.reserve(order_.size());
  for (const auto& [seq, id] : order_) out.push_back(&jobs_.at(id));
  return out;
}

}  // namespace musafarm::coordinator
