#include "agent/attempt_phase.h"

#include <map>
#include <utility>

#include "gtest/gtest.h"

namespace musafarm::agent {
namespace {

using P = AttemptPhase;
using E = AttemptEvent;

// The legal transitions, written out independently of NextPhase's switch.
const std::map<std::pair<P, E>, P>& Legal() {
  static const auto* legal = new std::map<std::pair<P, E>, P>{
      {{P::kRunning, E::kReconnect}, P::kRunningUnconfirmed},
      {{P::kRunning, E::kConfirmed}, P::kRunning},
      {{P::kRunning, E::kCancel}, P::kRunning},
      {{P::kRunning, E::kHandBack}, P::kStoppingHandBack},
      {{P::kRunning, E::kExit}, P::kFinished},
      {{P::kRunningUnconfirmed, E::kReconnect}, P::kRunningUnconfirmed},
      {{P::kRunningUnconfirmed, E::kConfirmed}, P::kRunning},
      {{P::kRunningUnconfirmed, E::kCancel}, P::kStoppingStale},
      {{P::kRunningUnconfirmed, E::kHandBack}, P::kStoppingHandBack},
      {{P::kRunningUnconfirmed, E::kExit}, P::kFinishedUnconfirmed},
      {{P::kStoppingStale, E::kReconnect}, P::kStoppingStale},
      {{P::kStoppingStale, E::kConfirmed}, P::kStoppingStale},
      {{P::kStoppingStale, E::kCancel}, P::kStoppingStale},
      {{P::kStoppingStale, E::kHandBack}, P::kStoppingStale},
      {{P::kStoppingStale, E::kExit}, P::kDone},
      {{P::kStoppingHandBack, E::kReconnect}, P::kStoppingHandBack},
      {{P::kStoppingHandBack, E::kConfirmed}, P::kStoppingHandBack},
      {{P::kStoppingHandBack, E::kCancel}, P::kStoppingHandBack},
      {{P::kStoppingHandBack, E::kHandBack}, P::kStoppingHandBack},
      {{P::kStoppingHandBack, E::kExit}, P::kDone},
      {{P::kFinished, E::kReconnect}, P::kFinishedUnconfirmed},
      {{P::kFinished, E::kConfirmed}, P::kFinished},
      {{P::kFinished, E::kCancel}, P::kFinished},
      {{P::kFinished, E::kResultSent}, P::kResultSent},
      {{P::kFinished, E::kStored}, P::kDone},
      {{P::kFinished, E::kLogLost}, P::kDone},
      {{P::kFinishedUnconfirmed, E::kReconnect}, P::kFinishedUnconfirmed},
      {{P::kFinishedUnconfirmed, E::kConfirmed}, P::kFinished},
      {{P::kFinishedUnconfirmed, E::kCancel}, P::kDone},
      {{P::kFinishedUnconfirmed, E::kStored}, P::kDone},
      {{P::kFinishedUnconfirmed, E::kLogLost}, P::kDone},
      {{P::kResultSent, E::kReconnect}, P::kFinishedUnconfirmed},
      {{P::kResultSent, E::kConfirmed}, P::kFinished},
      {{P::kResultSent, E::kCancel}, P::kDone},
      {{P::kResultSent, E::kStored}, P::kDone},
      {{P::kResultSent, E::kLogLost}, P::kDone},
  };
  return *legal;
}

TEST(AttemptPhaseTest, EveryPhaseEventPairIsAppliedOrRefused) {
  int legal = 0;
  int refused = 0;
  for (int p = 0; p < kAttemptPhaseCount; ++p) {
    for (int e = 0; e < kAttemptEventCount; ++e) {
      const P from = static_cast<P>(p);
      const E event = static_cast<E>(e);
      SCOPED_TRACE(std::string(PhaseName(from)) + " + " + std::string(EventName(event)));
      AttemptLife life(from);
      const absl::Status s = life.Apply(event);
      auto it = Legal().find({from, event});
      if (it == Legal().end()) {
        ++refused;
        EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
        EXPECT_NE(s.message().find("not allowed"), absl::string_view::npos) << s;
        EXPECT_EQ(life.phase(), from) << "an illegal event was applied";
      } else {
        ++legal;
        EXPECT_TRUE(s.ok()) << s;
        EXPECT_EQ(life.phase(), it->second)
            << "got " << PhaseName(life.phase()) << ", want " << PhaseName(it->second);
      }
    }
  }
  EXPECT_EQ(legal, static_cast<int>(Legal().size()));
  EXPECT_EQ(legal + refused, kAttemptPhaseCount * kAttemptEventCount);
}

TEST(AttemptPhaseTest, DoneIsTerminal) {
  for (int e = 0; e < kAttemptEventCount; ++e) {
    EXPECT_FALSE(NextPhase(P::kDone, static_cast<E>(e)).ok());
  }
}

TEST(AttemptPhaseTest, ALifeThroughAReconnect) {
  AttemptLife life;
  EXPECT_TRUE(life.running());
  ASSERT_TRUE(life.Apply(E::kReconnect).ok());
  EXPECT_TRUE(life.unconfirmed());
  ASSERT_TRUE(life.Apply(E::kExit).ok());
  EXPECT_TRUE(life.finished());
  EXPECT_TRUE(life.unconfirmed());
  // Nothing goes out before the coordinator confirms: a result cannot be sent.
  EXPECT_FALSE(life.Apply(E::kResultSent).ok());
  ASSERT_TRUE(life.Apply(E::kConfirmed).ok());
  ASSERT_TRUE(life.Apply(E::kResultSent).ok());
  // An exit arrives once: a second one is refused.
  EXPECT_FALSE(life.Apply(E::kExit).ok());
  ASSERT_TRUE(life.Apply(E::kStored).ok());
  EXPECT_EQ(life.phase(), P::kDone);
}

}  // namespace
}  // namespace musafarm::agent
