#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace musafarm::agent {

// Where an attempt held by the agent is in its life. One value instead of the
// flags (finished, result sent, awaiting an ack, stale, handed back) whose
// combinations used to steer OnExit, OnAck and OnCancel.
//
//                    reconnect                      cancel
//   start --> kRunning ------> kRunningUnconfirmed -------> kStoppingStale
//               |  ^ confirmed   |        |                     |
//               |  +-------------+        | hand back           | exit: dropped
//               |   hand back             v                     |
//               +------------------> kStoppingHandBack ---------+--> kDone
//               | exit                    exit: handed back          ^
//               v            reconnect    |                          |
//   recovered-> kFinished -----------> kFinishedUnconfirmed ---------+ stored,
//               |  ^  ^   confirmed       ^      |                   | log lost,
//   result sent |  |  +-------------------|------+ cancel            | cancel
//               v  | confirmed            | reconnect                |
//             kResultSent ----------------+--------------------------+
//   (also: kRunningUnconfirmed --exit--> kFinishedUnconfirmed;
//          kFinished --stored, log lost--> kDone)
//
// A cancel of kRunning stops the execution and leaves the phase: the attempt
// is reported (cancelled) once it has exited; a cancel of kFinished changes
// nothing (its result is on its way). On every (re)registration the agent
// lists what it holds and sends nothing more of it until the coordinator says
// what it has stored (an Ack with resend: "confirmed"); a cancel instead means
// the coordinator has moved on, so a running attempt is stopped and dropped.
// "confirmed" is also accepted where nothing waits for it (the agent resends
// from the acknowledged offset; the coordinator skips what it has), and the
// stopping phases absorb every event but exit. kDone is terminal: the agent
// forgets the attempt and its files. Every other (phase, event) pair is
// illegal: NextPhase refuses it and AttemptLife stays where it was.
enum class AttemptPhase {
  kRunning,              // its process runs; output flows to the coordinator
  kRunningUnconfirmed,   // runs; after a (re)registration, waiting to be confirmed
  kStoppingStale,        // being stopped; the coordinator has moved on: drop on exit
  kStoppingHandBack,     // being stopped (shutdown, full disk): hand back on exit
  kFinished,             // exited; the rest of the log, artifacts and result go out
  kFinishedUnconfirmed,  // exited; after a (re)registration, waiting to be confirmed
  kResultSent,           // the result is sent; waiting for "result stored"
  kDone,                 // forgotten
};
inline constexpr int kAttemptPhaseCount = 8;

enum class AttemptEvent {
  kReconnect,   // the agent (re)registered, listing the attempt as held
  kConfirmed,   // an Ack with resend: the coordinator said what it stored
  kCancel,      // a CancelAttempt
  kHandBack,    // the agent stops it to hand it back (shutdown, full disk)
  kExit,        // the execution ended (its on_exit)
  kResultSent,  // the result went out on the stream
  kStored,      // an Ack with result_stored
  kLogLost,     // the coordinator lacks log bytes the agent no longer holds
};
inline constexpr int kAttemptEventCount = 8;

absl::string_view PhaseName(AttemptPhase p);
absl::string_view EventName(AttemptEvent e);

// The phase `event` leads to from `from`; FailedPrecondition for an illegal
// pair. Pure.
absl::StatusOr<AttemptPhase> NextPhase(AttemptPhase from, AttemptEvent event);

// An attempt's phase, changed only through legal transitions.
class AttemptLife {
 public:
  explicit AttemptLife(AttemptPhase start = AttemptPhase::kRunning) : phase_(start) {}

  AttemptPhase phase() const { return phase_; }
  // Applies `event`; on an illegal one returns the error and stays put.
  absl::Status Apply(AttemptEvent event);

  // Its execution has not ended yet.
  bool running() const {
    return phase_ == AttemptPhase::kRunning || phase_ == AttemptPhase::kRunningUnconfirmed ||
           phase_ == AttemptPhase::kStoppingStale || phase_ == AttemptPhase::kStoppingHandBack;
  }
  // Waiting for the coordinator to say what it stored: nothing goes out.
  bool unconfirmed() const {
    return phase_ == AttemptPhase::kRunningUnconfirmed ||
           phase_ == AttemptPhase::kFinishedUnconfirmed || phase_ == AttemptPhase::kStoppingStale;
  }
  // Exited, with a result to deliver.
  bool finished() const {
    return phase_ == AttemptPhase::kFinished || phase_ == AttemptPhase::kFinishedUnconfirmed ||
           phase_ == AttemptPhase::kResultSent;
  }

 private:
  AttemptPhase phase_;
};

}  // namespace musafarm::agent
