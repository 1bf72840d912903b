// Core, part 5: retention (docs/architecture.md, "Retention"). Finished jobs
// live only in the store; a pass deletes a bounded batch of them (their log
// and artifact files first, then their rows in one short transaction) and the
// registry tags nobody names any more.
#include <utility>

#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "coordinator/core.h"

namespace musafarm::coordinator {
namespace {

std::shared_ptr<spdlog::logger> Log() {
  static auto log = GetLogger("retention");
  return log;
}

}  // namespace

void Core::RunRetention() {
  ++retention_stats_.passes;
  // Always: a pipeline's `retention:` applies without a farm-wide limit.
  ExpireJobs();
  DeleteQueuedImages();
}

void Core::ExpireJobs() {
  const RetentionOptions& r = options_.retention;
  JobArchive& archive = store_->archive();
  const std::set<std::string> pinned =
      retention_pins_ != nullptr ? retention_pins_->PinnedJobs() : std::set<std::string>();
  absl::StatusOr<std::vector<FinishedJob>> by_age =
      archive.ExpiredByAge(clock_->Now(), r.max_age, r.batch);
  if (!by_age.ok()) {
    Log()->error("expired jobs: {}", by_age.status().ToString());
    return;
  }
  uint64_t bytes = 0;
  std::vector<FinishedJob> oldest;
  if (r.max_bytes > 0) {
    absl::StatusOr<uint64_t> held = archive.FinishedBytes();
    if (!held.ok()) {
      Log()->error("finished jobs' bytes: {}", held.status().ToString());
      return;
    }
    bytes = *held;
    if (bytes > r.max_bytes) {
      absl::StatusOr<std::vector<FinishedJob>> list =
          archive.OldestFinished(r.batch + static_cast<int>(pinned.size()));
      if (!list.ok()) {
        Log()->error("oldest jobs: {}", list.status().ToString());
        return;
      }
      oldest = *std::move(list);
    }
  }
  const std::vector<std::string> ids =
      ChooseExpired(*by_age, oldest, bytes, r.max_bytes, pinned, r.batch);
  std::vector<std::string> deletable;
  uint64_t freed = 0;
  for (const std::string& id : ids) {
    absl::StatusOr<v1::Job> job = archive.LoadJob(id);
    if (!job.ok()) {
      Log()->error("job={}: {}", id, job.status().ToString());
      continue;
    }
    // Files before rows: a crash in between leaves rows whose files are gone,
    // which the next pass deletes; the other order would leak the files.
    bool removed = true;
    for (const v1::Task& task : job->tasks()) {
      if (absl::Status s = logs_->RemoveTask(task.id()); !s.ok()) {
        Log()->error("job={}: {}; its rows stay until its files can go", id, s.ToString());
        removed = false;
        break;
      }
    }
    if (!removed) continue;
    deletable.push_back(id);
    freed += job->stored_bytes();
  }
  if (deletable.empty()) return;
  if (absl::Status s = archive.DeleteFinishedJobs(deletable); !s.ok()) {
    Log()->error("deleting jobs {}: {}", absl::StrJoin(deletable, ","), s.ToString());
    return;
  }
  // Their inputs' trees are now unreferenced by them; GC takes what no other
  // job pins once its grace period has passed.
  if (blobs_ != nullptr) {
    for (const std::string& id : deletable) {
      if (absl::Status s = blobs_->Unpin(id); !s.ok()) {
        Log()->error("job={}: unpinning its inputs: {}", id, s.ToString());
      }
    }
  }
  retention_stats_.jobs_deleted += deletable.size();
  retention_stats_.bytes_freed += freed;
  Log()->info("expired {} finished job(s) ({} bytes): {}", deletable.size(), freed,
              absl::StrJoin(deletable, ","));
}

void Core::DeleteQueuedImages() {
  if (deleting_images_) return;  // one batch at a time
  const RetentionOptions& r = options_.retention;
  JobArchive& archive = store_->archive();
  absl::StatusOr<std::vector<std::string>> queued = archive.PendingImageDeletions(r.batch);
  if (!queued.ok()) {
    Log()->error("queued image deletions: {}", queued.status().ToString());
    return;
  }
  std::vector<std::string> ours, not_ours;
  for (std::string& image : *queued) {
    if (image_deleter_ == nullptr || !InRegistry(image, r.registries)) {
      not_ours.push_back(std::move(image));  // another registry's: never touched
    } else if (keep_images_.count(image) == 0) {
      ours.push_back(std::move(image));
    }  // else a running job uses it: it waits in the queue
  }
  if (!not_ours.empty()) {
    Log()->info("leaving {} image(s) outside the farm's registries: {}", not_ours.size(),
                absl::StrJoin(not_ours, ", "));
    if (absl::Status s = archive.ImagesDeleted(not_ours); !s.ok()) {
      Log()->error("{}", s.ToString());
    }
  }
  if (ours.empty()) return;
  deleting_images_ = true;
  image_deleter_->Delete(std::move(ours), [this](std::vector<std::string> gone) {
    deleting_images_ = false;
    if (gone.empty()) return;
    if (absl::Status s = store_->archive().ImagesDeleted(gone); !s.ok()) {
      Log()->error("{}", s.ToString());
      return;
    }
    retention_stats_.images_deleted += gone.size();
    Log()->info("deleted {} registry image(s): {}", gone.size(), absl::StrJoin(gone, ", "));
  });
}

}  // namespace musafarm::coordinator
