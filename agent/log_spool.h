#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace musafarm::agent {

// The agent-wide bound on log bytes held for the coordinator: the sum over
// attempts of their unacknowledged spooled bytes, plus bytes an executor has
// read but the agent loop has not spooled yet. Executors ask WaitForRoom()
// after each read and stop reading an attempt's pipe while there is none, so
// the process blocks on its full pipe (backpressure) instead of output being
// dropped or the agent growing. Overshoot is at most one read (1 MiB,
// common/subprocess.cc) per running attempt. Thread-safe.
class SpoolBudget {
 public:
  explicit SpoolBudget(uint64_t max_bytes) : max_(max_bytes) {}  // 0: no bound

  void Add(int64_t delta);
  // Waits up to `timeout` until fewer than max bytes are held; true when so.
  bool WaitForRoom(absl::Duration timeout);
  bool Full() const;
  int64_t used() const;
  uint64_t max() const { return max_; }

 private:
  const uint64_t max_;
  mutable absl::Mutex mu_;
  int64_t used_ ABSL_GUARDED_BY(mu_) = 0;
};

// One attempt's log bytes [base, total) that the coordinator has not
// acknowledged yet, in a file, so that a long coordinator outage costs disk
// (bounded by SpoolBudget) rather than agent memory. Offsets are log offsets.
//
// The file is made by the first append: an attempt that prints nothing (most
// no-op and quiet tasks) creates and removes no file. On a file system that
// scans recently freed inodes on each allocation (ext4 without a journal),
// one create and one unlink per task cost more CPU than the spawn itself.
//
// The file holds [file_start, total) with file_start <= base. Ack() only moves
// base, unless the acknowledged prefix is worth reclaiming: when everything is
// acknowledged the file is truncated to nothing; otherwise, once the prefix is
// at least 1 MiB and at least as long as the unacknowledged rest, the rest is
// copied to the front and the file truncated. Each byte is so copied at most
// about once (amortized O(1)), and the file stays below 2 * (total - base) +
// 1 MiB. A failed compaction leaves the file as it was (source and destination
// never overlap).
//
// Not thread-safe: the agent loop owns it.
class LogSpool {
 public:
  // A spool whose file is `path` (created, truncating, mode 0600, by the
  // first non-empty Append). Fails when the directory of `path` is not one.
  static absl::StatusOr<std::unique_ptr<LogSpool>> Create(const std::string& path);
  // Reopens the file an earlier LogSpool left (see Keep()) for a log that
  // ends at `total` (nothing more is appended to a kept file): the file holds
  // the log's last bytes, so base = file start = total - its size (what was
  // compacted away had been acknowledged). DataLoss when it is longer.
  static absl::StatusOr<std::unique_ptr<LogSpool>> Open(const std::string& path, uint64_t total);
  ~LogSpool();  // closes and removes the file (if made), unless Keep() was called
  LogSpool(const LogSpool&) = delete;
  LogSpool& operator=(const LogSpool&) = delete;

  // Appends at `total`. All or nothing: on error the spool is as before.
  absl::Status Append(absl::string_view data);
  // Up to `max` bytes from `offset`, which must be in [base, total]. Bytes
  // among the last kTailBytes appended come from memory: the agent sends
  // output right after spooling it, so most reads cost no system call.
  absl::StatusOr<std::string> Read(uint64_t offset, size_t max) const;
  // Flushes the file to disk (fdatasync); nothing to do while there is none.
  absl::Status Sync();
  // The destructor leaves the file, for a later Open().
  void Keep() { keep_ = true; }
  // Drops the bytes below `offset` (clamped to [base, total]); returns how
  // many were dropped.
  uint64_t Ack(uint64_t offset);

  uint64_t base() const { return base_; }
  uint64_t total() const { return total_; }
  uint64_t held() const { return total_ - base_; }
  uint64_t file_bytes() const { return total_ - file_start_; }  // the file's size
  const std::string& path() const { return path_; }
  // To sync elsewhere (a duplicate of it); -1 while no byte was appended.
  int fd() const { return fd_; }

  // Below this acknowledged prefix the file is not compacted (unless all of it
  // is acknowledged).
  static constexpr uint64_t kCompactMin = 1 << 20;
  // What the spool keeps in memory of its end: at least this much (of what
  // there is), at most twice it.
  static constexpr size_t kTailBytes = 64 * 1024;

 private:
  LogSpool(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  void Compact();

  int fd_;  // -1 until the first append makes the file
  const std::string path_;
  uint64_t file_start_ = 0;  // log offset of the file's first byte
  uint64_t base_ = 0;
  uint64_t total_ = 0;
  // The log's bytes [total - tail_.size(), total), as appended.
  std::string tail_;
  bool keep_ = false;
};

}  // namespace musafarm::agent
