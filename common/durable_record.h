#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace musafarm {

// One record (bytes) kept durable in two files, `base`.0 and `base`.1, each
// overwritten in place (issue 19). A write goes over the slot that does not
// hold the newest record, framed with a generation and a checksum, and is
// fdatasync'd. A file replaced through a rename (atomic_file.h) costs an
// fsync of the new file and one of its directory, two journal commits on
// ext4; an overwrite of blocks already written, at the same size, costs a
// flush of the data alone. A crash during a write tears at most the slot
// being written; the other keeps the previous record whole, and the checksum
// tells the two apart. Slots grow (to a power of two, zero-filled, so that
// later writes find their blocks allocated) only when a record outgrows them.
//
// Not thread-safe. Meant for one writer; a reader (Read) when the writer is
// gone, e.g. at the next start.
class DurableRecord {
 public:
  explicit DurableRecord(std::string base_path);
  ~DurableRecord();
  DurableRecord(const DurableRecord&) = delete;
  DurableRecord& operator=(const DurableRecord&) = delete;

  // Whether a write waits for the disk (fdatasync). kVisible: the record
  // survives a crash of the writing process, not one of the machine (as a
  // file renamed into place without fsync would, for a fraction of the cost:
  // ext4 starts writing a file out whenever it replaces another by rename).
  enum class Sync { kDurable, kVisible };

  // Replaces the record. Once it returns OK, Read returns `bytes` (or what a
  // later Write wrote) after any crash (kVisible: of the process). On an error
  // the previous record is still what Read returns. The first call opens (and
  // creates) the slots.
  absl::Status Write(absl::string_view bytes, Sync sync = Sync::kDurable);

  // The newest intact record at `base_path`. NotFound when no write of one
  // ever completed there (no slots, empty ones, or only a torn first write).
  static absl::StatusOr<std::string> Read(const std::string& base_path);

 private:
  absl::Status Open();

  const std::string base_path_;
  bool open_ = false;
  int fds_[2] = {-1, -1};
  uint64_t capacity_[2] = {0, 0};  // bytes of each slot file, all written
  uint64_t generation_ = 0;        // of the newest intact record; 0: none
  int newest_ = -1;                // the slot that holds it; -1: none
};

}  // namespace musafarm
