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

uint64_t SendLead::Room() {
  absl::MutexLock lock(&mu_);
  if (!sending_) return kMax;
  const uint64_t used = reading_ + unsent_;
  return used < max_ ? max_ - used : 0;
}

}  // namespace musafarm::agent
