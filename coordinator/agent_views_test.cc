#include "coordinator/agent_views.h"

#include "gtest/gtest.h"
#include "tests/fakes/fake_agent_connection.h"

namespace musafarm::coordinator {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1000);

AgentRegistry::Agent* Registered(AgentRegistry& reg, const std::string& name, int slots) {
  v1::Register r;
  r.set_name(name);
  r.set_slots(slots);
  r.add_labels("pool=a");
  r.mutable_capabilities()->set_gpus(2);
  const auto id = reg.Connect(std::make_shared<testing::FakeAgentConnection>(), kT0);
  return *reg.Register(id, r, kT0);
}

// A view is built once per pass and keeps what the pass placed on it; only
// the agents asked for get one.
TEST(AgentViewsTest, AViewIsBuiltOnFirstUseAndKeepsThePasssChanges) {
  AgentRegistry reg(AgentRegistry::Timing{});
  AgentRegistry::Agent* a = Registered(reg, "a", 3);
  AgentRegistry::Agent* b = Registered(reg, "b", 1);
  Registered(reg, "c", 1);
  reg.Hold(*a, "1/x", {1});

  AgentViews views;
  AgentSlots& slots = views.Slots(a);
  EXPECT_EQ(slots.free_slots, 2);
  EXPECT_EQ(slots.free_gpus, 1);
  EXPECT_TRUE(slots.accepting);
  EXPECT_EQ(*slots.labels, std::vector<std::string>{"pool=a"});
  EXPECT_EQ(views.UsedGpus(a), (std::set<int32_t>{1}));
  --slots.free_slots;  // the pass placed a task on it
  views.UsedGpus(a).insert(0);

  const std::vector<AgentSlots*> both = views.SlotsOf({b, a});
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[1], &slots) << "the same view again, not a new one";
  EXPECT_EQ(both[1]->free_slots, 1);
  EXPECT_EQ(views.UsedGpus(a), (std::set<int32_t>{0, 1}));
  const std::vector<WaitAgent> wait = views.ForWaitReason({a, b});
  ASSERT_EQ(wait.size(), 2u);
  EXPECT_EQ(wait[0].info, &a->info);
  EXPECT_EQ(wait[0].slots.free_slots, 1);
  EXPECT_TRUE(wait[1].connected);
  EXPECT_EQ(views.size(), 2u) << "c was never asked for";
}

}  // namespace
}  // namespace musafarm::coordinator
