#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::agent {

struct PrunerOptions {
  // The engine's CLI, run as an argv vector (never through a shell).
  std::string cli = "/usr/bin/docker";
  // DOCKER_HOST for the CLI; "" = inherit the agent's.
  std::string docker_host;
  // Only images labelled musafarm.farm=<farm> are ever removed. Must not be empty.
  std::string farm = "musafarm";
  // This agent's name. An image labelled musafarm.agent=<another name> belongs to
  // another agent on the same daemon and is never removed; one without that
  // label (built before agents set it) counts as ours when its farm matches.
  std::string agent;
  // Where Touch times are kept across restarts, e.g. <work_dir>/image-lru.tsv;
  // "" = in memory only. Lines "<unix micros>\t<image ref>", replaced atomically
  // (temporary file, fsync, rename) on every Touch and when Prune has listed the
  // images. Its directory must exist.
  std::string lru_file;
  // Opt-in, for a daemon that serves this agent only (a private dockerd, or
  // one per host with one agent): when removing images was not enough, run
  // `builder prune -f` and then `builder prune -f -a`. Off by default because
  // BuildKit's cache records carry no labels (`builder prune --filter` knows
  // only until/id/parent/type/description/inuse/shared/private), so on a
  // shared daemon nothing tells our cache from an operator's or another farm's;
  // there it is left to the operator (`docker builder prune`, or BuildKit's
  // own gc policy in daemon.json). The executor's legacy-builder cache (the
  // intermediate images of a build) goes with the images themselves.
  bool prune_build_cache = false;
  // Bound on each CLI call; the CLI is SIGKILLed after this.
  absl::Duration helper_timeout = absl::Seconds(60);
  // Source of Touch times; nullptr = the real clock. Not owned.
  const Clock* clock = nullptr;
};

struct PrunedImage {
  std::string id;                 // "sha256:<64 hex>"
  std::vector<std::string> tags;  // its RepoTags before removal (none when dangling)
  // docker's Size: counts layers shared with images that stay, so it is at
  // most what the removal freed.
  int64_t size_bytes = 0;
  absl::Time last_used;  // what it was ordered by: latest Touch, else Created
};

struct SkippedImage {
  std::string id;
  std::vector<std::string> tags;
  std::string
      reason;  // the daemon's answer, e.g. "... image is being used by running container ..."
};

struct PruneReport {
  std::vector<PrunedImage> removed;  // in removal order (least recently used first)
  std::vector<SkippedImage>
      skipped;                    // ours and not kept, but the daemon refused (in use, children)
  int64_t image_bytes = 0;        // sum of removed[].size_bytes
  int64_t build_cache_bytes = 0;  // "Total reclaimed space" of builder prune, when it ran
  bool build_cache_pruned = false;
  bool enough = false;  // enough() returned true before Prune returned
  // Why Prune stopped early although not enough: the CLI could not be run, hung
  // past helper_timeout or lost the daemon. "" otherwise.
  std::string interrupted;
  // One line for the log: counts, refs and sizes.
  std::string Summary() const;
};

// Frees disk by removing the images this agent created, least recently used
// first. Only images labelled musafarm.farm=<farm> (and not labelled for
// another agent) are candidates; the label is checked on `image inspect`'s
// answer, not only through the daemon's filter, so an operator's or another
// farm's image is never removed even by a daemon that ignores filters.
//
//   image ls -q --no-trunc --filter=label=musafarm.farm=<farm>
//   image inspect --format={{json .}} ID...        (ids in batches)
//   image rm ID                                    (never -f: see below)
//
// `image rm` of the id without -f removes the image's tags and the layers no
// other image uses, and the daemon refuses an image that a container (running
// or stopped) uses or that has child images: such a refusal is a skip, listed
// in the report, not an error. An image tagged in several repositories
// (reg1/app:x and reg2/app:x) is refused by id without -f ("referenced in
// multiple repositories"); it is then untagged tag by tag (`image rm TAG...`,
// the last removing it) when `ps -a --filter=ancestor=ID` shows no container,
// and skipped otherwise.
//
// Refs (Touch, keep) are tags ("reg/app:dev"; no tag means ":latest";
// "docker.io/library/" and "docker.io/" are dropped as docker does),
// digests ("reg/app@sha256:..."), full ids ("sha256:<hex>" or the bare hex)
// or id prefixes of at least 12 hex digits. A ref matches an image when it
// names any of its tags or digests or its id.
//
// Thread-safe. Touch only updates a map and rewrites lru_file; Prune runs the
// CLI and blocks for seconds to minutes, so call it off the agent's event
// loop. Concurrent Prune calls run one after the other (`pruning_`).
class ImagePruner {
 public:
  // Reads lru_file when it exists (a bad line is skipped, an unreadable file
  // is logged and treated as empty).
  explicit ImagePruner(PrunerOptions options);

  // Records that `image` (a ref as above) was used now: built, pulled for a
  // run, run or pushed.
  void Touch(const std::string& image) ABSL_LOCKS_EXCLUDED(mu_);

  // Removes our images that no ref in `keep` matches, least recently used
  // first (latest Touch, or the image's Created time when it is later or it
  // was never touched; ties by Created, then id), checking `enough()` before
  // listing and before each removal and stopping as soon as it returns true.
  // Then, if still not enough and options.prune_build_cache, prunes the build
  // cache. Touch entries that match no image that remains are dropped.
  // Errors: InvalidArgument for an empty farm; Unavailable when the images
  // cannot be listed (no CLI, no daemon, timeout). A refused removal is not
  // an error.
  absl::StatusOr<PruneReport> Prune(const std::set<std::string>& keep,
                                    const std::function<bool()>& enough) ABSL_LOCKS_EXCLUDED(mu_);

  // The Touch times, by normalized ref (for tests and the log).
  std::map<std::string, absl::Time> TouchTimes() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void SaveLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool NotPruning() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !pruning_; }

  const PrunerOptions options_;
  const Clock* const clock_;
  const std::map<std::string, std::string> env_;  // the CLI's: ours plus DOCKER_HOST
  mutable absl::Mutex mu_;
  bool pruning_ ABSL_GUARDED_BY(mu_) = false;  // one Prune at a time: the next waits
  std::map<std::string, absl::Time> touched_ ABSL_GUARDED_BY(mu_);
  bool save_failed_ ABSL_GUARDED_BY(mu_) = false;  // log a failing lru_file once
};

}  // namespace musafarm::agent
