#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace musafarm::agent {

// Removals of the farm's Docker objects that failed, typically because the
// daemon was down when an attempt ended (issue 16, item 3): kept in a file in
// the agent's work dir, one "KIND TARGET" line each, so that they are retried
// when the daemon answers again, also by the next run of the agent. Kinds:
// "container" (a name, `rm -f`), "attempt" (an attempt id: every container
// still labelled with it), "image" (a reference, `image rm`). Thread-safe.
class PendingRemovals {
 public:
  struct Entry {
    std::string kind;
    std::string target;
    bool operator==(const Entry& o) const { return kind == o.kind && target == o.target; }
  };

  // Reads `path` if it exists (a line that is not "KIND TARGET" is dropped).
  explicit PendingRemovals(std::string path);

  // Adds an entry (once) and rewrites the file atomically; a failed write is
  // logged, and the entry is still retried while this process runs.
  void Add(Entry entry) ABSL_LOCKS_EXCLUDED(mu_);
  // Calls `remove` for each entry, in the order added, and keeps those it
  // does not return OkStatus for (which should also be what "no such
  // container" comes to). Returns one line per entry removed, for the log.
  // Concurrent calls may both try an entry: every removal is idempotent.
  std::vector<std::string> Retry(const std::function<absl::Status(const Entry&)>& remove)
      ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<Entry> List() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Save() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  mutable absl::Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace musafarm::agent
