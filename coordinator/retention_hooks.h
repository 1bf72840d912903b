#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

namespace musafarm::coordinator {

// The seam between retention (on the core loop) and the farm's registry:
// deleting a tag is HTTP, which never runs on the loop. The coordinator's
// implementation is RegistryImageDeleter (coordinator/registry_image_deleter.h).
class ImageDeleter {
 public:
  virtual ~ImageDeleter() = default;
  // Starts deleting `images` ("host:port/name:tag", each in a farm registry).
  // `done` runs later, on the core loop, with those that are gone: deleted,
  // absent already, or left because another tag shares their manifest (which
  // deleting would take too). The rest stay queued for a later pass.
  virtual void Delete(std::vector<std::string> images,
                      std::function<void(std::vector<std::string> gone)> done) = 0;
};

// Jobs retention keeps whatever their age or size: e.g. the previous run a
// schedule's next run is compared with (issue 14). Asked at every pass.
class RetentionPins {
 public:
  virtual ~RetentionPins() = default;
  virtual std::set<std::string> PinnedJobs() = 0;
};

}  // namespace musafarm::coordinator
