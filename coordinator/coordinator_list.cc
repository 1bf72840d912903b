#include "coordinator/coordinator_list.h"

#include <algorithm>
#include <utility>

#include "google/protobuf/util/time_util.h"

namespace musafarm::coordinator {
namespace {

// The refresh period of coordinator/leadership.cc (kSeenInterval) is 2 s.
constexpr absl::Duration kMinStale = absl::Seconds(6);

void SetTime(absl::Time t, google::protobuf::Timestamp* ts) {
  *ts = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}

int Rank(v1::CoordinatorRole role) {
  switch (role) {
    case v1::COORDINATOR_ROLE_ACTIVE:
      return 0;
    case v1::COORDINATOR_ROLE_STANDBY:
      return 1;
    default:
      return 2;
  }
}

}  // namespace

absl::Duration StaleAfter(absl::Duration leader_timeout) {
  return std::max(3 * leader_timeout, kMinStale);
}

v1::ListCoordinatorsResponse DescribeCoordinators(const LeaderInfo& leader,
                                                  const std::vector<CoordinatorSeen>& seen,
                                                  const std::string& self, absl::Time now,
                                                  absl::Duration stale_after) {
  // Without the lock held nobody is active, whatever the row last recorded
  // (the holder died and no standby has won yet).
  const std::string active = leader.held ? leader.coordinator : "";
  std::vector<v1::CoordinatorInfo> out;
  bool active_listed = false;
  for (const CoordinatorSeen& s : seen) {
    v1::CoordinatorInfo c;
    c.set_id(s.id);
    c.set_address(s.address);
    SetTime(s.last_seen, c.mutable_last_seen());
    if (!active.empty() && s.id == active) {
      active_listed = true;
      c.set_role(v1::COORDINATOR_ROLE_ACTIVE);
    } else if (now - s.last_seen > stale_after) {
      c.set_role(v1::COORDINATOR_ROLE_GONE);
    } else {
      c.set_role(v1::COORDINATOR_ROLE_STANDBY);
    }
    out.push_back(std::move(c));
  }
  if (!active.empty() && !active_listed) {
    v1::CoordinatorInfo c;
    c.set_id(active);
    c.set_address(leader.address);
    c.set_role(v1::COORDINATOR_ROLE_ACTIVE);
    out.push_back(std::move(c));
  }
  for (v1::CoordinatorInfo& c : out) {
    if (c.role() != v1::COORDINATOR_ROLE_ACTIVE) continue;
    c.set_epoch(leader.epoch);
    SetTime(leader.since, c.mutable_active_since());
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const v1::CoordinatorInfo& a, const v1::CoordinatorInfo& b) {
                     if (Rank(a.role()) != Rank(b.role())) return Rank(a.role()) < Rank(b.role());
                     return a.id() < b.id();
                   });
  v1::ListCoordinatorsResponse resp;
  resp.set_store("postgresql");
  resp.set_answered_by(self);
  for (v1::CoordinatorInfo& c : out) *resp.add_coordinators() = std::move(c);
  return resp;
}

v1::ListCoordinatorsResponse DescribeSoleCoordinator(const std::string& id,
                                                     const std::string& address, absl::Time since,
                                                     absl::Time now) {
  v1::ListCoordinatorsResponse resp;
  resp.set_store("sqlite");
  resp.set_answered_by(id);
  v1::CoordinatorInfo* c = resp.add_coordinators();
  c->set_id(id);
  c->set_address(address);
  c->set_role(v1::COORDINATOR_ROLE_ACTIVE);
  SetTime(since, c->mutable_active_since());
  SetTime(now, c->mutable_last_seen());
  return resp;
}

}  // namespace musafarm::coordinator
