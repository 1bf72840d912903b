#include "coordinator/scheduler.h"

#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

using Placement = std::vector<std::pair<size_t, size_t>>;

// Builders: aggregate initialisation with some fields left out trips
// -Wmissing-field-initializers.
ReadyTask Ready(const std::vector<std::string>* labels, v1::StageKind kind = v1::STAGE_KIND_EXEC) {
  ReadyTask t;
  t.labels = labels;
  t.kind = kind;
  return t;
}
AgentSlots Slots(const std::vector<std::string>* labels, int free_slots, bool accepting,
                 const std::vector<v1::StageKind>* executors = nullptr) {
  AgentSlots a;
  a.labels = labels;
  a.free_slots = free_slots;
  a.accepting = accepting;
  a.executors = executors;
  return a;
}

TEST(SchedulerTest, SpreadsIndependentTasksOverAgents) {
  std::vector<std::string> none, a_labels = {"os=linux"}, b_labels = {"os=linux"};
  std::vector<ReadyTask> tasks(3, Ready(&none));
  std::vector<AgentSlots> agents = {Slots(&a_labels, 2, true), Slots(&b_labels, 2, true)};
  EXPECT_EQ(PlaceTasks(tasks, agents), (Placement{{0, 0}, {1, 1}, {2, 0}}));
}

TEST(SchedulerTest, RespectsLabelsSlotsAndDrainWithoutHeadOfLineBlocking) {
  std::vector<std::string> gpu = {"gpu=mthreads"}, none, cpu_agent = {"os=linux"},
                           gpu_agent = {"os=linux", "gpu=mthreads"};
  // Task 0 needs a GPU, nobody has one free; task 1 fits the CPU agent.
  std::vector<ReadyTask> tasks = {Ready(&gpu), Ready(&none), Ready(&none)};
  std::vector<AgentSlots> agents = {Slots(&cpu_agent, 1, true), Slots(&gpu_agent, 3, false)};
  EXPECT_EQ(PlaceTasks(tasks, agents), (Placement{{1, 0}}));
  agents[1].accepting = true;  // undrained
  // Task 2 ties (one slot free each): the lower index wins.
  EXPECT_EQ(PlaceTasks(tasks, agents), (Placement{{0, 1}, {1, 1}, {2, 0}}));
}

TEST(SchedulerTest, NothingFreeNothingPlaced) {
  std::vector<std::string> none;
  std::vector<ReadyTask> tasks = {Ready(&none)};
  EXPECT_TRUE(PlaceTasks(tasks, {Slots(&none, 0, true)}).empty());
  EXPECT_TRUE(PlaceTasks(tasks, {}).empty());
}

}  // namespace
}  // namespace musafarm::coordinator

namespace musafarm::coordinator {
namespace {

using Placement = std::vector<std::pair<size_t, size_t>>;

TEST(SchedulerTest, StageKindMustBeOneTheAgentRuns) {
  std::vector<std::string> none;
  std::vector<v1::StageKind> exec_only,
      docker = {v1::STAGE_KIND_EXEC, v1::STAGE_KIND_DOCKER_BUILD, v1::STAGE_KIND_DOCKER_RUN};
  std::vector<ReadyTask> tasks = {Ready(&none, v1::STAGE_KIND_DOCKER_BUILD),
                                  Ready(&none, v1::STAGE_KIND_EXEC)};
  // An agent advertising nothing runs exec stages only.
  EXPECT_EQ(PlaceTasks(tasks, {Slots(&none, 2, true, &exec_only)}), (Placement{{1, 0}}));
  EXPECT_EQ(PlaceTasks(tasks, {Slots(&none, 2, true, &exec_only), Slots(&none, 1, true, &docker)}),
            (Placement{{0, 1}, {1, 0}}));
}

}  // namespace
}  // namespace musafarm::coordinator

namespace musafarm::coordinator {
namespace {

using Placement = std::vector<std::pair<size_t, size_t>>;

TEST(SchedulerTest, GpuTasksNeedFreeGpusAndDoNotBlockOthers) {
  std::vector<std::string> none;
  ReadyTask gpu_task = Ready(&none);
  gpu_task.gpus = 1;
  ReadyTask two_gpus = Ready(&none);
  two_gpus.gpus = 2;
  // One GPU on agent 1, many slots: a second GPU task waits, a CPU task goes on.
  std::vector<ReadyTask> tasks = {gpu_task, gpu_task, Ready(&none), two_gpus};
  std::vector<AgentSlots> agents = {Slots(&none, 1, true), Slots(&none, 4, true)};
  agents[1].free_gpus = 1;
  EXPECT_EQ(PlaceTasks(tasks, agents), (Placement{{0, 1}, {2, 1}}));
  agents[0].free_gpus = 2;
  EXPECT_EQ(PlaceTasks(tasks, agents), (Placement{{0, 1}, {1, 0}, {2, 1}}));
}

TEST(SchedulerTest, PrefersTheAgentThatRanTheDependencies) {
  std::vector<std::string> none;
  ReadyTask dev = Ready(&none);
  dev.warm_agents = {1};
  // Agent 0 has more free slots, but agent 1 built the base image.
  std::vector<AgentSlots> agents = {Slots(&none, 4, true), Slots(&none, 1, true)};
  EXPECT_EQ(PlaceTasks({dev, dev}, agents), (Placement{{0, 1}, {1, 0}}));
  // A warm agent that cannot take it (draining) does not stop placement elsewhere.
  agents[1].accepting = false;
  EXPECT_EQ(PlaceTasks({dev}, agents), (Placement{{0, 0}}));
}

}  // namespace
}  // namespace musafarm::coordinator
