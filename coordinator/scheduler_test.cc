#include "coordinator/scheduler.h"

#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

using Placement = std::vector<std::pair<size_t, size_t>>;

TEST(SchedulerTest, SpreadsIndependentTasksOverAgents) {
  std::vector<std::string> none, a_labels = {"os=linux"}, b_labels = {"os=linux"};
  std::vector<ReadyTask> tasks(3, ReadyTask{&none});
  std::vector<AgentSlots> agents = {{&a_labels, 2, true}, {&b_labels, 2, true}};
  EXPECT_EQ(PlaceTasks(tasks, agents), (Placement{{0, 0}, {1, 1}, {2, 0}}));
}

TEST(SchedulerTest, RespectsLabelsSlotsAndDrainWithoutHeadOfLineBlocking) {
  std::vector<std::string> gpu = {"gpu=mthreads"}, none, cpu_agent = {"os=linux"},
                           gpu_agent = {"os=linux", "gpu=mthreads"};
  // Task 0 needs a GPU, nobody has one free; task 1 fits the CPU agent.
  std::vector<ReadyTask> tasks = {{&gpu}, {&none}, {&none}};
  std::vector<AgentSlots> agents = {{&cpu_agent, 1, true}, {&gpu_agent, 3, false}};
  EXPECT_EQ(PlaceTasks(tasks, agents), (Placement{{1, 0}}));
  agents[1].accepting = true;  // undrained
  // Task 2 ties (one slot free each): the lower index wins.
  EXPECT_EQ(PlaceTasks(tasks, agents), (Placement{{0, 1}, {1, 1}, {2, 0}}));
}

TEST(SchedulerTest, NothingFreeNothingPlaced) {
  std::vector<std::string> none;
  std::vector<ReadyTask> tasks = {{&none}};
  EXPECT_TRUE(PlaceTasks(tasks, {{&none, 0, true}}).empty());
  EXPECT_TRUE(PlaceTasks(tasks, {}).empty());
}

}  // namespace
}  // namespace musafarm::coordinator

namespace musafarm::coordinator {
namespace {

using Placement = std::vector<std::pair<size_t, size_t>>;

TEST(SchedulerTest, StageKindMustBeOneTheAgentRuns) {
  std::vector<std::string> none, exec_only, docker = {"exec", "docker_build", "docker_run"};
  std::vector<ReadyTask> tasks = {{&none, "docker_build"}, {&none, "exec"}};
  // An agent advertising nothing runs exec stages only.
  EXPECT_EQ(PlaceTasks(tasks, {{&none, 2, true, &exec_only}}), (Placement{{1, 0}}));
  EXPECT_EQ(PlaceTasks(tasks, {{&none, 2, true, &exec_only}, {&none, 1, true, &docker}}),
            (Placement{{0, 1}, {1, 0}}));
}

}  // namespace
}  // namespace musafarm::coordinator
