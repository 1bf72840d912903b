#pragma once

#include <cstddef>

#include "absl/time/time.h"

namespace musafarm::coordinator {

// How often agents heartbeat, scaled to the farm's size as Nomad scales its
// heartbeat TTL: the base interval while the farm is small, then one long
// enough that all connected agents together send at most `max_rate`
// heartbeats a second. Each heartbeat costs the coordinator tens of
// microseconds of gRPC and kernel time whatever it says (BENCHMARKS.md, issue
// 19): 10,000 agents at 3 s kept a fifth of a core busy with nothing to do.
//
// An agent told interval I is taken for gone after I + grace of silence,
// grace = timeout - base interval (7 s at the defaults): while the farm is
// small that is exactly the configured timeout. Pure; the core asks it at
// every registration and tells the agents.
class HeartbeatPace {
 public:
  struct Options {
    absl::Duration base_interval = absl::Seconds(3);
    absl::Duration timeout = absl::Seconds(10);
    double max_rate = 500;  // heartbeats a second, all agents together; <= 0: no limit
  };

  // What to tell an agent that has just registered.
  struct Decision {
    absl::Duration interval;
    // The farm outgrew the interval the others were given: tell every
    // connected agent with a shorter one `interval` too (HeartbeatPace).
    bool tell_everyone = false;
  };

  explicit HeartbeatPace(Options options);

  // After a registration that leaves `connected` agents connected. The
  // interval grows ahead of the farm (room for a quarter more agents) so that
  // a farm growing to N agents is told again only O(log N) times; it shrinks
  // for newcomers once it is twice what the farm needs (those already told a
  // longer one keep it: they only heartbeat less often).
  Decision OnRegister(size_t connected);

  // How long an agent told `interval` may stay silent.
  absl::Duration SilenceAllowed(absl::Duration interval) const;

  absl::Duration interval() const { return current_; }

 private:
  // The interval that keeps `agents` agents at or under max_rate, rounded up
  // to 100 ms; never below the base interval.
  absl::Duration Needed(size_t agents) const;

  const Options options_;
  absl::Duration current_;  // what the newest agents were told
};

}  // namespace musafarm::coordinator
