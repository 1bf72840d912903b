#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace musafarm::agent {

// Empty task work directories kept for the next attempts (issue 19). A new
// directory is an inode allocation and a removed one an inode freed; on ext4
// without a journal each allocation steps over every inode of its group freed
// in the last minute, and at hundreds of no-op tasks a second that walk was
// the largest part of the agent's CPU per task. A directory that its attempt
// left empty is renamed into the pool (`<tasks>/.free-N`; a task's directory
// name starts with its job number, never a dot) and renamed to the next
// attempt's name, so a steady stream of tasks allocates and frees no inode.
//
// Only what the caller vouches for comes back: an attempt none of whose
// processes can still be in it (Agent: an exec attempt whose output reached
// its end, see docs/architecture.md "Current limits"). Kept only when empty and
// with the owner and mode a fresh directory gets. What the pool holds when
// the agent stops is removed with the rest of `tasks/` at its next start.
// Not thread-safe: the agent's loop owns it.
class WorkDirPool {
 public:
  // `tasks_dir`: where task directories live; at most `capacity` kept.
  WorkDirPool(std::string tasks_dir, size_t capacity);

  // Makes `path` (inside tasks_dir) an empty directory: a kept one renamed
  // there, else mkdir. False (errno set) when neither could; the caller then
  // takes the long way (a leftover of the same name, a missing parent).
  bool Make(const std::string& path);
  // Takes `path` into the pool if it is an empty directory as Make makes them
  // and there is room; false otherwise (the caller removes it).
  bool Keep(const std::string& path);

  size_t size() const { return free_.size(); }
  // Directories made with mkdir and taken from the pool, since construction.
  uint64_t made() const { return made_; }
  uint64_t reused() const { return reused_; }

 private:
  const std::string tasks_dir_;
  const size_t capacity_;
  std::vector<std::string> free_;  // paths under tasks_dir_, each an empty directory
  uint64_t next_name_ = 0;
  uint64_t made_ = 0, reused_ = 0;
  // What a directory this agent made looks like (learned at the first
  // mkdir): a kept one must look the same, whatever its task did to it.
  bool known_ = false;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  mode_t mode_ = 0;
};

}  // namespace musafarm::agent
