#include "agent/attempt_phase.h"

#include "absl/strings/str_cat.h"

namespace musafarm::agent {

absl::string_view PhaseName(AttemptPhase p) {
  switch (p) {
    case AttemptPhase::kRunning: return "running";
    case AttemptPhase::kRunningUnconfirmed: return "running-unconfirmed";
    case AttemptPhase::kStoppingStale: return "stopping-stale";
    case AttemptPhase::kStoppingHandBack: return "stopping-hand-back";
    case AttemptPhase::kFinished: return "finished";
    case AttemptPhase::kFinishedUnconfirmed: return "finished-unconfirmed";
    case AttemptPhase::kResultSent: return "result-sent";
    case AttemptPhase::kDone: return "done";
  }
  return "?";
}

absl::string_view EventName(AttemptEvent e) {
  switch (e) {
    case AttemptEvent::kReconnect: return "reconnect";
    case AttemptEvent::kConfirmed: return "confirmed";
    case AttemptEvent::kCancel: return "cancel";
    case AttemptEvent::kHandBack: return "hand-back";
    case AttemptEvent::kExit: return "exit";
    case AttemptEvent::kResultSent: return "result-sent";
    case AttemptEvent::kStored: return "stored";
    case AttemptEvent::kLogLost: return "log-lost";
  }
  return "?";
}

absl::StatusOr<AttemptPhase> NextPhase(AttemptPhase from, AttemptEvent event) {
  using P = AttemptPhase;
  using E = AttemptEvent;
  switch (from) {
    case P::kRunning:
      switch (event) {
        case E::kReconnect: return P::kRunningUnconfirmed;
        case E::kConfirmed: return P::kRunning;
        case E::kCancel: return P::kRunning;  // the execution is cancelled; reported on exit
        case E::kHandBack: return P::kStoppingHandBack;
        case E::kExit: return P::kFinished;
        default: break;
      }
      break;
    case P::kRunningUnconfirmed:
      switch (event) {
        case E::kReconnect: return P::kRunningUnconfirmed;
        case E::kConfirmed: return P::kRunning;
        case E::kCancel: return P::kStoppingStale;
        case E::kHandBack: return P::kStoppingHandBack;
        case E::kExit: return P::kFinishedUnconfirmed;
        default: break;
      }
      break;
    case P::kStoppingStale:
    case P::kStoppingHandBack:
      // Being stopped: every event but the exit leaves it so (a stale one
      // needs no hand-back: nobody waits for it).
      switch (event) {
        case E::kReconnect:
        case E::kConfirmed:
        case E::kCancel:
        case E::kHandBack:
          return from;
        case E::kExit: return P::kDone;
        default: break;
      }
      break;
    case P::kFinished:
      switch (event) {
        case E::kReconnect: return P::kFinishedUnconfirmed;
        case E::kConfirmed: return P::kFinished;
        case E::kCancel: return P::kFinished;  // its result is on its way
        case E::kResultSent: return P::kResultSent;
        case E::kStored:
        case E::kLogLost:
          return P::kDone;
        default: break;
      }
      break;
    case P::kFinishedUnconfirmed:
      switch (event) {
        case E::kReconnect: return P::kFinishedUnconfirmed;
        case E::kConfirmed: return P::kFinished;
        case E::kCancel:  // the coordinator refuses the result
        case E::kStored:
        case E::kLogLost:
          return P::kDone;
        default: break;
      }
      break;
    case P::kResultSent:
      switch (event) {
        case E::kReconnect: return P::kFinishedUnconfirmed;
        case E::kConfirmed: return P::kFinished;  // resend the rest and the result
        case E::kCancel:  // the coordinator has seen the result: nothing more to say
        case E::kStored:
        case E::kLogLost:
          return P::kDone;
        default: break;
      }
      break;
    case P::kDone:
      break;
  }
  return absl::FailedPreconditionError(
      absl::StrCat("attempt ", PhaseName(from), ": ", EventName(event), " not allowed"));
}

absl::Status AttemptLife::Apply(AttemptEvent event) {
  absl::StatusOr<AttemptPhase> next = NextPhase(phase_, event);
  if (!next.ok()) return next.status();
  phase_ = *next;
  return absl::OkStatus();
}

}  // namespace musafarm::agent
