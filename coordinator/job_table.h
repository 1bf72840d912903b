#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "musafarm/v1/farm.pb.h"

namespace musafarm::coordinator {

// Every job the coordinator holds (the unfinished ones: a job is removed when
// it ends and read from the store after that), in submission order, with the
// indexes the core needs: a task by id, the tasks that need a task, a job's place in the
// queue, and the job's secret values until it ends. Holds state only; it
// decides nothing and stores nothing. Not thread-safe: core loop only.
class JobTable {
 public:
  struct Entry {
    v1::Job job;
    uint64_t seq = 0;  // submission order: grows with every Add, never reused
    std::map<std::string, size_t> index;                    // task id -> position in job.tasks
    std::map<std::string, std::vector<size_t>> dependants;  // task id -> tasks needing it
    // Secret values (name -> value) until the job ends; never in `job`.
    std::map<std::string, std::string> secrets;
  };

  // Adds a job after those added before (a new submission, or one loaded at
  // recovery in stored order). Its id must be new. A numeric id moves
  // next_job_number() past it.
  Entry& Add(v1::Job job, std::map<std::string, std::string> secrets);

  // Forgets a job (it ended and is in the store). Its id stays used.
  void Remove(const std::string& job_id);

  // Job numbers up to `number` are taken (by jobs not held here).
  void ReserveJobNumbers(int64_t number) {
    next_job_number_ = std::max(next_job_number_, number + 1);
  }

  Entry* Find(const std::string& job_id);
  const Entry* Find(const std::string& job_id) const;
  v1::Task* FindTask(const std::string& task_id);
  const v1::Task* FindTask(const std::string& task_id) const;
  // The job a task of the table belongs to.
  Entry& JobOf(const v1::Task& task) { return jobs_.at(task.job_id()); }

  // (job seq, task position): the ready queue's order, oldest first.
  std::pair<uint64_t, size_t> QueueOrder(const std::string& task_id) const;

  // Up to `limit` (50 when <= 0) jobs, newest first, without their tasks;
  // with `submitter`, only the jobs that user submitted.
  std::vector<v1::Job> List(int limit, const std::string& submitter = "") const;

  // The number the next submitted job gets.
  int64_t next_job_number() const { return next_job_number_; }

  // Forgets the job's secrets (it ended: nothing of it runs any more).
  // Returns whether it had any.
  bool DropSecrets(Entry& entry);

  // Images that unfinished jobs refer to (run images, build tags and build
  // args, pushed images), which no agent may prune.
  std::set<std::string> ImagesInUse() const;

  size_t size() const { return jobs_.size(); }
  // Entries in submission order.
  std::vector<const Entry*> InOrder() const;

 private:
  struct TaskRef {
    std::string job_id;
    size_t index = 0;
  };
  std::map<std::string, Entry> jobs_;  // by id
  std::map<uint64_t, std::string> order_;  // seq -> id
  uint64_t next_seq_ = 0;
  std::map<std::string, TaskRef> task_index_;
  int64_t next_job_number_ = 1;
};

}  // namespace musafarm::coordinator
