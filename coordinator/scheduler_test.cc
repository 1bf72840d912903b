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

TEST(SchedulerTest, ThePolicyDecidesWhereStagesThatNeedTrustGo) {
  std::vector<std::string> none, gpu = {"gpu"}, labels = {"gpu"}, trusted = {"gpu"}, untrusted;
  const std::vector<v1::StageKind> kinds = {v1::STAGE_KIND_EXEC, v1::STAGE_KIND_DOCKER_RUN};
  Grants granted;
  granted.kinds = kinds;
  granted.secrets = granted.privileged = true;
  Grants defaults;
  defaults.kinds = DefaultKinds();
  // Agent 0 declares gpu but the policy trusts none of its labels and grants
  // nothing; agent 1 declares the same and is trusted and granted.
  AgentSlots stranger = Slots(&labels, 4, true, &kinds);
  stranger.grants = &defaults;
  stranger.trusted_labels = &untrusted;
  AgentSlots known = Slots(&labels, 1, true, &kinds);
  known.grants = &granted;
  known.trusted_labels = &trusted;

  ReadyTask secret = Ready(&none);
  secret.needs.secrets = true;
  ReadyTask privileged = Ready(&none, v1::STAGE_KIND_DOCKER_RUN);
  privileged.needs.privileged = true;
  ReadyTask secret_on_gpu = Ready(&gpu);
  secret_on_gpu.needs.secrets = true;
  ReadyTask plain_on_gpu = Ready(&gpu);
  for (const ReadyTask& t : {secret, privileged, secret_on_gpu}) {
    EXPECT_FALSE(Fits(stranger, t));
    EXPECT_TRUE(Fits(known, t));
  }
  // An ordinary stage is steered by declared labels as before: the stranger,
  // with more free slots, wins it.
  EXPECT_TRUE(Fits(stranger, plain_on_gpu));
  EXPECT_EQ(BestAgent(plain_on_gpu, {stranger, known}), 0u);
  EXPECT_EQ(BestAgent(secret_on_gpu, {stranger, known}), 1u);

  // Granted secrets, but its gpu label is not trusted: a stage that needs
  // trust and the label goes nowhere; one that needs no label still fits.
  known.trusted_labels = &untrusted;
  EXPECT_FALSE(Fits(known, secret_on_gpu));
  EXPECT_TRUE(Fits(known, secret));
  EXPECT_TRUE(Fits(known, plain_on_gpu));
}

TEST(SchedulerTest, TheKindsThePolicyGrantsCountShellApartFromExec) {
  std::vector<std::string> none;
  Grants exec_only;
  exec_only.kinds = {v1::STAGE_KIND_EXEC};
  AgentSlots a = Slots(&none, 1, true);
  a.grants = &exec_only;
  a.trusted_labels = &none;
  ReadyTask shell = Ready(&none);
  shell.needs.shell = true;
  EXPECT_TRUE(Fits(a, Ready(&none)));
  EXPECT_FALSE(Fits(a, shell));
  exec_only.shell = true;
  EXPECT_TRUE(Fits(a, shell));
  // A kind it runs but the policy does not grant.
  const std::vector<v1::StageKind> runs = {v1::STAGE_KIND_EXEC, v1::STAGE_KIND_DOCKER_PUSH};
  a.executors = &runs;
  EXPECT_FALSE(Fits(a, Ready(&none, v1::STAGE_KIND_DOCKER_PUSH)));
  // No policy (null grants): what it runs, as before.
  a.grants = nullptr;
  a.trusted_labels = nullptr;
  EXPECT_TRUE(Fits(a, Ready(&none, v1::STAGE_KIND_DOCKER_PUSH)));
}

}  // namespace
}  // namespace musafarm::coordinator
