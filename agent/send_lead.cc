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

void SendLead::Update(uint64_t unsent, bool sending) {
  absl::MutexLock lock(&mu_);
  unsent_ = unsent;
  sending_ = sending;
}

bool SendLead::WaitForRoom(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !sending_ || reading_ + unsent_ < kMax;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&room), timeout);
}

}  // namespace musafarm::agent
