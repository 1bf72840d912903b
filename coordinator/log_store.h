#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace musafarm::coordinator {

// Task logs and artifacts on disk, one file each per attempt:
//   <root>/<task id>/<attempt>.log
//   <root>/<task id>/<attempt>.artifacts/<name>
// (a task id "7/dev-3.8/base" becomes nested directories). Both are written by
// byte offset, so resends after a reconnect are idempotent. Writes go straight
// to the file descriptor, so a byte acknowledged to an agent survives a
// coordinator crash. Not thread-safe: owned by the core loop.
class LogStore {
 public:
  explicit LogStore(std::string root);
  ~LogStore();
  LogStore(const LogStore&) = delete;
  LogStore& operator=(const LogStore&) = delete;

  // Writes `data`, which starts at byte `offset` of the attempt's log. Bytes
  // already stored (a resend after a reconnect) are skipped, so the file is
  // exactly what the process wrote. A chunk that starts past the end (a gap)
  // is refused with FailedPrecondition: the agent must resend from Size().
  // Returns the stored size afterwards.
  absl::StatusOr<uint64_t> Append(const std::string& task_id, uint64_t attempt_id, uint64_t offset,
                                  absl::string_view data);

  // Bytes stored for the attempt (0 when nothing was written).
  uint64_t Size(const std::string& task_id, uint64_t attempt_id);

  // Up to `limit` bytes from `offset`.
  absl::StatusOr<std::string> Read(const std::string& task_id, uint64_t attempt_id, uint64_t offset,
                                   uint64_t limit);

  // Flushes the attempt's log to stable storage and closes its descriptor.
  void Close(const std::string& task_id, uint64_t attempt_id);

  // The same operations for an artifact of the attempt. `name` must be a plain
  // file name (no '/', not "." or ".."); InvalidArgument otherwise.
  absl::StatusOr<uint64_t> AppendArtifact(const std::string& task_id, uint64_t attempt_id,
                                          const std::string& name, uint64_t offset,
                                          absl::string_view data);
  uint64_t ArtifactSize(const std::string& task_id, uint64_t attempt_id, const std::string& name);
  absl::StatusOr<std::string> ReadArtifact(const std::string& task_id, uint64_t attempt_id,
                                           const std::string& name, uint64_t offset,
                                           uint64_t limit);
  // Flushes and closes every open file of the attempt (log and artifacts).
  void CloseAttempt(const std::string& task_id, uint64_t attempt_id);

  static bool ValidArtifactName(const std::string& name);

 private:
  struct OpenLog {
    int fd = -1;
    uint64_t size = 0;
  };
  std::string PathOf(const std::string& task_id, uint64_t attempt_id) const;
  std::string ArtifactPath(const std::string& task_id, uint64_t attempt_id,
                           const std::string& name) const;
  absl::StatusOr<OpenLog*> Open(const std::string& path);
  absl::StatusOr<uint64_t> AppendAt(const std::string& path, uint64_t offset,
                                    absl::string_view data);
  uint64_t SizeAt(const std::string& path);
  absl::StatusOr<std::string> ReadAt(const std::string& path, uint64_t offset, uint64_t limit);
  void CloseAt(const std::string& path);

  std::string root_;
  // Descriptors of attempts still writing. Bounded by the running attempts.
  std::map<std::string, OpenLog> open_;
};

}  // namespace musafarm::coordinator
