#include "common/peer_compat.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

v1::AttemptResult Exited(int exit_code, int signal = 0) {
  v1::AttemptResult r;
  r.set_exit_code(exit_code);
  r.set_signal(signal);
  return r;
}

// An old agent's result: only the bools, the error and the exit status.
TEST(PeerCompatTest, LegacyOutcomeReadsTheOldFieldsInTheCoordinatorsOrder) {
  EXPECT_EQ(LegacyOutcome(Exited(0)), v1::ATTEMPT_OUTCOME_SUCCEEDED);
  EXPECT_EQ(LegacyOutcome(Exited(1)), v1::ATTEMPT_OUTCOME_FAILED);
  EXPECT_EQ(LegacyOutcome(Exited(-1, 9)), v1::ATTEMPT_OUTCOME_FAILED);
  EXPECT_EQ(LegacyOutcome(Exited(0, 15)), v1::ATTEMPT_OUTCOME_FAILED);
  v1::AttemptResult r = Exited(-1);
  r.set_error("could not start: no such program 'pytest'");
  EXPECT_EQ(LegacyOutcome(r), v1::ATTEMPT_OUTCOME_ERROR);
  r.set_timed_out(true);  // a timeout wins over an error
  EXPECT_EQ(LegacyOutcome(r), v1::ATTEMPT_OUTCOME_TIMED_OUT);
  r.set_cancelled(true);  // and a cancel over both
  EXPECT_EQ(LegacyOutcome(r), v1::ATTEMPT_OUTCOME_CANCELLED);
}

TEST(PeerCompatTest, OutcomeOfPrefersTheEnumAndFallsBackForOldOrUnknownValues) {
  v1::AttemptResult r = Exited(0);
  EXPECT_EQ(OutcomeOf(r), v1::ATTEMPT_OUTCOME_SUCCEEDED);  // old agent: fallback
  r.set_outcome(v1::ATTEMPT_OUTCOME_TIMED_OUT);            // the enum wins over the exit code
  EXPECT_EQ(OutcomeOf(r), v1::ATTEMPT_OUTCOME_TIMED_OUT);
  r.set_cancelled(true);  // ... and over the bools
  EXPECT_EQ(OutcomeOf(r), v1::ATTEMPT_OUTCOME_TIMED_OUT);
  // A value from a newer agent that this build does not know: the old fields.
  r.set_outcome(static_cast<v1::AttemptOutcome>(99));
  EXPECT_EQ(OutcomeOf(r), v1::ATTEMPT_OUTCOME_CANCELLED);
}

TEST(PeerCompatTest, ShuttingDownFromTheFieldOrAnOldAgentsExactText) {
  v1::Heartbeat hb;
  EXPECT_FALSE(ShuttingDown(hb));
  hb.set_unavailable_reason("low disk: 1.2 GiB free in /var/lib/musafarm-agent, below 5.0 GiB");
  EXPECT_FALSE(ShuttingDown(hb));
  hb.set_unavailable_reason("shutting down");  // an old agent
  EXPECT_TRUE(ShuttingDown(hb));
  hb.set_unavailable_reason("agent shutting down soon");  // only the exact text
  EXPECT_FALSE(ShuttingDown(hb));
  hb.set_shutting_down(true);  // a new agent: the field, whatever the text
  EXPECT_TRUE(ShuttingDown(hb));

  v1::Capabilities caps;
  EXPECT_FALSE(ShuttingDown(caps));
  caps.set_unavailable_reason("shutting down");
  EXPECT_TRUE(ShuttingDown(caps));
  caps.clear_unavailable_reason();
  caps.set_shutting_down(true);
  EXPECT_TRUE(ShuttingDown(caps));
}

TEST(PeerCompatTest, ExecutorKindsFromTheEnumOrAnOldAgentsNames) {
  v1::Capabilities caps;
  EXPECT_THAT(ExecutorKinds(caps), IsEmpty());
  // An old agent: names only; a name this build does not know is left out.
  caps.add_executors("exec");
  caps.add_executors("podman_run");
  caps.add_executors("docker_run");
  EXPECT_THAT(ExecutorKinds(caps), ElementsAre(v1::STAGE_KIND_EXEC, v1::STAGE_KIND_DOCKER_RUN));
  // A new agent: the enum is read, not the names.
  caps.add_executor_kinds(v1::STAGE_KIND_DOCKER_PUSH);
  caps.add_executor_kinds(static_cast<v1::StageKind>(42));  // from a newer agent
  EXPECT_THAT(ExecutorKinds(caps), ElementsAre(v1::STAGE_KIND_DOCKER_PUSH));
}

TEST(PeerCompatTest, AnAgentRowStoredBeforeExecutorKindsIsReadByItsNames) {
  v1::Agent agent;
  agent.add_executors("exec");
  agent.add_executors("docker_build");
  EXPECT_THAT(ExecutorKinds(agent), ElementsAre(v1::STAGE_KIND_EXEC, v1::STAGE_KIND_DOCKER_BUILD));
  agent.add_executor_kinds(v1::STAGE_KIND_DOCKER_RUN);
  EXPECT_THAT(ExecutorKinds(agent), ElementsAre(v1::STAGE_KIND_DOCKER_RUN));
}

TEST(PeerCompatTest, SetExecutorKindsFillsTheEnumAndTheNamesOldCoordinatorsRead) {
  v1::Capabilities caps;
  caps.add_executors("stale");
  SetExecutorKinds({v1::STAGE_KIND_EXEC, v1::STAGE_KIND_DOCKER_BUILD}, &caps);
  EXPECT_THAT(caps.executors(), ElementsAre("exec", "docker_build"));
  EXPECT_THAT(caps.executor_kinds(), ElementsAre(v1::STAGE_KIND_EXEC, v1::STAGE_KIND_DOCKER_BUILD));
  EXPECT_THAT(ExecutorKinds(caps), ElementsAre(v1::STAGE_KIND_EXEC, v1::STAGE_KIND_DOCKER_BUILD));
}

}  // namespace
}  // namespace musafarm
