#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "coordinator/log_store.h"

namespace musafarm::coordinator {

// The LogStore as files, one per attempt:
//   <root>/<task id>/<attempt>.log
//   <root>/<task id>/<attempt>.artifacts/<name>
// (a task id "7/dev-3.8/base" becomes nested directories). Writes go straight
// to the file descriptor, so a byte acknowledged to an agent survives a
// coordinator crash. Not thread-safe: owned by the core loop.
class FileLogStore final : public LogStore {
 public:
  explicit FileLogStore(std::string root);
  ~FileLogStore() override;
  FileLogStore(const FileLogStore&) = delete;
  FileLogStore& operator=(const FileLogStore&) = delete;

  absl::StatusOr<uint64_t> Append(const std::string& task_id, uint64_t attempt_id, uint64_t offset,
                                  absl::string_view data) override;
  // Every Append went to the file already (a crash of the coordinator keeps
  // it; a power loss may take what CloseAt has not fsynced yet).
  absl::Status Flush() override { return absl::OkStatus(); }
  uint64_t Size(const std::string& task_id, uint64_t attempt_id) override;
  absl::StatusOr<std::string> Read(const std::string& task_id, uint64_t attempt_id, uint64_t offset,
                                   uint64_t limit) override;
  void Close(const std::string& task_id, uint64_t attempt_id) override;
  absl::StatusOr<uint64_t> AppendArtifact(const std::string& task_id, uint64_t attempt_id,
                                          const std::string& name, uint64_t offset,
                                          absl::string_view data) override;
  uint64_t ArtifactSize(const std::string& task_id, uint64_t attempt_id,
                        const std::string& name) override;
  absl::StatusOr<std::string> ReadArtifact(const std::string& task_id, uint64_t attempt_id,
                                           const std::string& name, uint64_t offset,
                                           uint64_t limit) override;
  void CloseAttempt(const std::string& task_id, uint64_t attempt_id) override;
  uint64_t TaskBytes(const std::string& task_id) override;
  absl::Status RemoveTask(const std::string& task_id) override;

 private:
  struct OpenLog {
    int fd = -1;
    uint64_t size = 0;
  };
  // The task's own entries under its directory ("<attempt>.log",
  // "<attempt>.artifacts"): not another task's directory nested below it.
  std::vector<std::string> TaskEntries(const std::string& task_id) const;
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
