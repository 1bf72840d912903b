#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace musafarm::coordinator {

// Task logs and artifacts, one byte stream each per attempt, written by byte
// offset, so resends after a reconnect are idempotent. A byte Append accepted
// is durable once Flush() returns OK: the core flushes before it acknowledges
// bytes to the agent, which then forgets them. Reads see every accepted byte.
// Called only from the core loop, so implementations need not be thread-safe.
// The files on disk are the default (FileLogStore, durable at Append); on
// PostgreSQL, appends wait in memory for Flush (PostgresLogStore), so one
// round trip stores what a whole group of agent messages brought. Every
// backend passes the conformance suite in log_store_conformance_test.cc.
class LogStore {
 public:
  virtual ~LogStore() = default;

  // Writes `data`, which starts at byte `offset` of the attempt's log. Bytes
  // already stored (a resend after a reconnect) are skipped, so the log is
  // exactly what the process wrote. A chunk that starts past the end (a gap)
  // is refused with FailedPrecondition: the agent must resend from Size().
  // Returns the stored size afterwards.
  virtual absl::StatusOr<uint64_t> Append(const std::string& task_id, uint64_t attempt_id,
                                          uint64_t offset, absl::string_view data) = 0;

  // Makes every byte accepted so far durable. On an error, bytes accepted
  // since the last Flush may be lost: Size() then says what is stored, and
  // agents resend from there.
  virtual absl::Status Flush() = 0;

  // Bytes stored for the attempt (0 when nothing was written).
  virtual uint64_t Size(const std::string& task_id, uint64_t attempt_id) = 0;

  // Up to `limit` bytes from `offset`.
  virtual absl::StatusOr<std::string> Read(const std::string& task_id, uint64_t attempt_id,
                                           uint64_t offset, uint64_t limit) = 0;

  // The attempt's log is complete: flush it and free what holds it open.
  virtual void Close(const std::string& task_id, uint64_t attempt_id) = 0;

  // The same operations for an artifact of the attempt. `name` must be a plain
  // file name (ValidArtifactName); InvalidArgument otherwise.
  virtual absl::StatusOr<uint64_t> AppendArtifact(const std::string& task_id, uint64_t attempt_id,
                                                  const std::string& name, uint64_t offset,
                                                  absl::string_view data) = 0;
  virtual uint64_t ArtifactSize(const std::string& task_id, uint64_t attempt_id,
                                const std::string& name) = 0;
  virtual absl::StatusOr<std::string> ReadArtifact(const std::string& task_id, uint64_t attempt_id,
                                                   const std::string& name, uint64_t offset,
                                                   uint64_t limit) = 0;
  // Flushes and closes everything of the attempt (log and artifacts).
  virtual void CloseAttempt(const std::string& task_id, uint64_t attempt_id) = 0;

  // Retention (docs/architecture.md, "Retention"): the bytes everything of the
  // task holds (every attempt's log and artifacts), and its removal. Removing
  // what is not there is fine.
  virtual uint64_t TaskBytes(const std::string& task_id) = 0;
  virtual absl::Status RemoveTask(const std::string& task_id) = 0;

  // No '/', not "." or "..", no NUL, at most 255 bytes: usable as one path
  // component by any backend.
  static bool ValidArtifactName(const std::string& name);
};

// Logs and artifacts as files under `root` (see FileLogStore).
std::unique_ptr<LogStore> OpenFileLogStore(std::string root);

}  // namespace musafarm::coordinator
