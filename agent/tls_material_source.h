#pragma once

#include <cstdint>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/tls_channel.h"

namespace musafarm::agent {

// The TLS material the next channel to the coordinator uses, with a version
// that changes whenever it is replaced. Thread-safe.
class TlsMaterialSource {
 public:
  explicit TlsMaterialSource(ChannelTls tls) : tls_(std::move(tls)) {}
  ChannelTls Get(uint64_t* version) const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (version != nullptr) *version = version_;
    return tls_;
  }
  void Set(ChannelTls tls) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    tls_ = std::move(tls);
    ++version_;
  }

 private:
  mutable absl::Mutex mu_;
  ChannelTls tls_ ABSL_GUARDED_BY(mu_);
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace musafarm::agent
