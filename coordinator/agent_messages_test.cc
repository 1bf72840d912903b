#include "coordinator/agent_messages.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

using ::testing::HasSubstr;

v1::AgentMessage Register(const std::string& name) {
  v1::AgentMessage m;
  m.mutable_register_()->set_name(name);
  m.mutable_register_()->set_slots(4);
  m.mutable_register_()->add_labels("os=linux");
  m.mutable_register_()->mutable_capabilities()->add_executors("exec");
  return m;
}

std::string Refusal(const v1::AgentMessage& m) {
  absl::Status s = ValidateAgentMessage(m);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  return std::string(s.message());
}

TEST(ValidateAgentMessageTest, AcceptsAnOrdinaryRegister) {
  EXPECT_TRUE(ValidateAgentMessage(Register("builder-1")).ok());
}

TEST(ValidateAgentMessageTest, RefusesHugeNamesAndTooManyLabels) {
  EXPECT_THAT(Refusal(Register(std::string(15'000'000, 'n'))),
              HasSubstr("register: name: is 15000000 bytes long; the limit is 128"));
  v1::AgentMessage many = Register("a");
  for (int i = 0; i < 100'000; ++i) many.mutable_register_()->add_labels("l");
  EXPECT_THAT(Refusal(many), HasSubstr("register: labels: 100001 given; the limit is 64"));
  v1::AgentMessage long_label = Register("a");
  long_label.mutable_register_()->add_labels(std::string(300, 'x'));
  EXPECT_THAT(Refusal(long_label), HasSubstr("register: label: is 300 bytes long"));
}

TEST(ValidateAgentMessageTest, RefusesControlCharactersAndAbsurdCounts) {
  EXPECT_THAT(Refusal(Register("evil\x1b[2J\nname")), HasSubstr("holds a control character"));
  EXPECT_THAT(Refusal(Register("")), HasSubstr("register: name: empty"));
  v1::AgentMessage gpus = Register("a");
  gpus.mutable_register_()->mutable_capabilities()->set_gpus(1'000'000'000);
  EXPECT_THAT(Refusal(gpus), HasSubstr("register: gpus: 1000000000 is outside 0..1024"));
  v1::AgentMessage slots = Register("a");
  slots.mutable_register_()->set_slots(-1);
  EXPECT_THAT(Refusal(slots), HasSubstr("register: slots: -1"));
  EXPECT_THAT(Refusal(v1::AgentMessage()), HasSubstr("no kind set"));
}

TEST(ValidateAgentMessageTest, BoundsChunksAndArtifacts) {
  v1::AgentMessage log;
  log.mutable_log()->set_task_id("1/s");
  log.mutable_log()->set_data(std::string(64 << 10, 'x'));
  EXPECT_TRUE(ValidateAgentMessage(log).ok());
  log.mutable_log()->set_data(std::string((1 << 20) + 1, 'x'));
  EXPECT_THAT(Refusal(log), HasSubstr("log: data: is 1048577 bytes; the limit is 1048576"));
  v1::AgentMessage art;
  art.mutable_artifact()->set_name("out.txt");
  art.mutable_artifact()->set_offset(uint64_t{1} << 30);
  art.mutable_artifact()->set_data("x");
  EXPECT_THAT(Refusal(art), HasSubstr("artifact: 'out.txt' goes past the limit"));
}

// Issue 16, item 3: host health in heartbeats and registrations is bounded.
TEST(ValidateAgentMessageTest, BoundsHostHealth) {
  v1::AgentMessage beat;
  beat.mutable_heartbeat()->add_unavailable_kinds(v1::STAGE_KIND_DOCKER_RUN);
  beat.mutable_heartbeat()->set_kinds_unavailable_reason("docker daemon unreachable");
  beat.mutable_heartbeat()->add_fenced_gpus(1);
  EXPECT_TRUE(ValidateAgentMessage(beat).ok());
  beat.mutable_heartbeat()->set_gpu_fence_reason(std::string(2000, 'x'));
  EXPECT_THAT(ValidateAgentMessage(beat).message(),
              HasSubstr("heartbeat: gpu_fence_reason: is 2000 bytes; the limit is 1024"));
  v1::AgentMessage reg;
  reg.mutable_register_()->set_name("a");
  for (int i = 0; i < 2000; ++i) reg.mutable_register_()->mutable_capabilities()->add_fenced_gpus(i);
  EXPECT_THAT(ValidateAgentMessage(reg).message(),
              HasSubstr("register: fenced gpus: 2000 given; the limit is 1024"));
}

}  // namespace
}  // namespace musafarm::coordinator
