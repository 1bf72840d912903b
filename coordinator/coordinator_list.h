#pragma once

// The answer to ListCoordinators (issue 20): who the farm's coordinators are,
// from the `leadership` row and the `coordinators` rows (coordinator/
// leadership.h), or, on SQLite, the one coordinator there is. Pure functions:
// the reads are the caller's; no gRPC, no database here.

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "coordinator/leadership.h"
#include "musafarm/v1/user_service.pb.h"

namespace musafarm::coordinator {

// Makes the answer; called off the gRPC threads and the core loop (it may
// read the database).
using CoordinatorLister = std::function<absl::StatusOr<v1::ListCoordinatorsResponse>()>;

// How long a coordinator's row may go unrefreshed before it is listed as
// gone: three --leader-timeout, and never under three refreshes (every
// coordinator refreshes its row every few seconds, so a live one is never
// listed as gone, while a crashed one stops being a "standby" soon after the
// database would have let go of its lock).
absl::Duration StaleAfter(absl::Duration leader_timeout);

// On PostgreSQL. The active one is the lock holder named by `leader` (it is
// listed even without a row of its own); any other row not seen for
// `stale_after` is gone, the rest are standbys. The active first, then the
// standbys, then the gone, each by id. `self`: the answering coordinator's id.
v1::ListCoordinatorsResponse DescribeCoordinators(const LeaderInfo& leader,
                                                  const std::vector<CoordinatorSeen>& seen,
                                                  const std::string& self, absl::Time now,
                                                  absl::Duration stale_after);

// On SQLite: the one coordinator, active (epoch 0) since `since`.
v1::ListCoordinatorsResponse DescribeSoleCoordinator(const std::string& id,
                                                     const std::string& address, absl::Time since,
                                                     absl::Time now);

}  // namespace musafarm::coordinator
