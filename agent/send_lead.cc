#include "agent/send_lead.h"

#include <algorithm>

namespace musafarm::agent {

void SendLead::Read(uint64_t bytes) {
  absl::MutexLock lock(&mu_);
  reading_ += bytes;
}

void SendLead::Spooled(uint64_t bytes) {
  absl::MutexLock lock(&mu_);
  reading_ -= std::min(reading_, bytes);
}

void SendLead::Update(uint64_t unsent, bool sending, uint64_t max) {
  absl::MutexLock lock(&mu_);
  unsent_ = unsent;
  sending_ = sending;
  max_ = max;
}

bool SendLead::WaitForRoom(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !sending_ || reading_ + unsent_ < max_;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&room), timeout);
}

}  // namespace musafarm::agent
