#include "coordinator/wait_reason.h"

#include <deque>

#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

// A farm of agents for WaitReason; each agent's AgentSlots point into it, so
// its storage never moves (deques).
class Farm {
 public:
  // A connected agent with free room running `kinds` (their names, as agents send them).
  v1::Agent& Add(const std::string& name, std::vector<std::string> kinds = {"exec"},
                 std::vector<std::string> labels = {}, int gpus = 0) {
    v1::Agent& a = infos_.emplace_back();
    a.set_name(name);
    for (const std::string& k : kinds) a.add_executors(k);
    for (const std::string& l : labels) a.add_labels(l);
    a.set_gpus(gpus);
    a.set_slots(2);
    labels_.emplace_back(labels);
    kinds_.emplace_back();
    for (const std::string& k : kinds) {
      kinds_.back().push_back(k == "exec"           ? v1::STAGE_KIND_EXEC
                              : k == "docker_build" ? v1::STAGE_KIND_DOCKER_BUILD
                                                    : v1::STAGE_KIND_DOCKER_RUN);
    }
    WaitAgent w;
    w.info = &a;
    w.connected = true;
    w.slots.labels = &labels_.back();
    w.slots.executors = &kinds_.back();
    w.slots.free_slots = 2;
    w.slots.accepting = true;
    w.slots.free_gpus = gpus;
    agents_.push_back(w);
    return a;
  }
  WaitAgent& agent(size_t i) { return agents_[i]; }
  // Busy: no free slot.
  void Fill(size_t i) { agents_[i].slots.free_slots = 0; }
  // As the core sees a draining or unavailable agent: not accepting.
  void Draining(size_t i) {
    infos_[i].set_draining(true);
    agents_[i].slots.accepting = false;
  }
  void Unavailable(size_t i, const std::string& why) {
    infos_[i].set_unavailable_reason(why);
    agents_[i].slots.accepting = false;
  }
  void ShuttingDown(size_t i) {
    Unavailable(i, "shutting down");
    infos_[i].set_shutting_down(true);
  }
  std::vector<WaitAgent> agents() const { return {agents_.begin(), agents_.end()}; }

 private:
  std::deque<v1::Agent> infos_;
  std::deque<std::vector<std::string>> labels_;
  std::deque<std::vector<v1::StageKind>> kinds_;
  std::deque<WaitAgent> agents_;
};

ReadyTask Task(const std::vector<std::string>* labels, v1::StageKind kind = v1::STAGE_KIND_EXEC,
               int gpus = 0) {
  ReadyTask t;
  t.labels = labels;
  t.kind = kind;
  t.gpus = gpus;
  return t;
}

const std::vector<std::string> kNone;

TEST(WaitReasonTest, NoConnectedAgent) {
  Farm farm;
  farm.Add("a1");
  farm.agent(0).connected = false;
  const WaitVerdict v = WaitReason(Task(&kNone), farm.agents());
  EXPECT_EQ(v.reason, "no connected agent");
  EXPECT_FALSE(v.runnable);
  EXPECT_FALSE(WaitReason(Task(&kNone), {}).runnable);
}

TEST(WaitReasonTest, NoAgentRunsTheStageKind) {
  Farm farm;
  farm.Add("a1");
  farm.Add("a2");
  const WaitVerdict v = WaitReason(Task(&kNone, v1::STAGE_KIND_DOCKER_BUILD), farm.agents());
  EXPECT_EQ(v.reason, "no connected agent runs docker_build");
  EXPECT_FALSE(v.runnable);
  // An agent that declares no kinds (from before them) runs exec stages.
  Farm old;
  old.Add("o1", {});
  EXPECT_EQ(WaitReason(Task(&kNone), old.agents()).reason, "");
}

TEST(WaitReasonTest, NamesTheLabelNoAgentHas) {
  Farm farm;
  farm.Add("a1", {"exec"}, {"role=ci", "os=linux"});
  farm.Add("a2", {"exec", "docker_build"}, {"role=test"});
  const std::vector<std::string> dev = {"os=linux", "role=dev"};
  EXPECT_EQ(WaitReason(Task(&dev), farm.agents()).reason, "no connected agent with label role=dev");
  // Each label is somewhere, never both on one agent.
  const std::vector<std::string> both = {"os=linux", "role=test"};
  EXPECT_EQ(WaitReason(Task(&both), farm.agents()).reason,
            "no connected agent with labels os=linux, role=test together");
  // Only the agents that run the kind count.
  const std::vector<std::string> ci = {"role=ci"};
  const WaitVerdict v = WaitReason(Task(&ci, v1::STAGE_KIND_DOCKER_BUILD), farm.agents());
  EXPECT_EQ(v.reason, "no connected docker_build agent with label role=ci");
  EXPECT_FALSE(v.runnable);
}

TEST(WaitReasonTest, MoreGpusThanAnyAgentHas) {
  Farm farm;
  farm.Add("a1", {"exec"}, {}, 1);
  farm.Add("a2", {"exec"}, {}, 1);
  WaitVerdict v = WaitReason(Task(&kNone, v1::STAGE_KIND_EXEC, 2), farm.agents());
  EXPECT_EQ(v.reason, "needs 2 GPUs; agents have at most 1");
  EXPECT_FALSE(v.runnable);
  Farm cpu_only;
  cpu_only.Add("c1");
  v = WaitReason(Task(&kNone, v1::STAGE_KIND_EXEC, 1), cpu_only.agents());
  EXPECT_EQ(v.reason, "needs 1 GPU; agents have none");
}

TEST(WaitReasonTest, FitsSomewhereNow) {
  Farm farm;
  farm.Add("a1");
  farm.Add("a2");
  farm.Fill(0);
  const WaitVerdict v = WaitReason(Task(&kNone), farm.agents());
  EXPECT_EQ(v.reason, "");
  EXPECT_TRUE(v.runnable);
}

TEST(WaitReasonTest, CountsBusyMatchingAgents) {
  Farm farm;
  farm.Add("a1");
  farm.Add("a2");
  farm.Add("d1", {"docker_build"});  // does not match an exec task
  farm.Fill(0);
  farm.Fill(1);
  farm.Fill(2);
  const WaitVerdict v = WaitReason(Task(&kNone), farm.agents());
  EXPECT_EQ(v.reason, "2 matching agents busy");
  EXPECT_TRUE(v.runnable);
}

TEST(WaitReasonTest, GpusInUseAreBusy) {
  Farm farm;
  farm.Add("g1", {"exec"}, {}, 2);
  farm.agent(0).slots.free_gpus = 1;
  EXPECT_EQ(WaitReason(Task(&kNone, v1::STAGE_KIND_EXEC, 2), farm.agents()).reason,
            "1 matching agent busy");
}

TEST(WaitReasonTest, MixesWhatEachMatchingAgentDoes) {
  Farm farm;
  farm.Add("a1");
  farm.Add("a2");
  farm.Add("a3");
  farm.Add("a4");
  farm.Add("a5");
  farm.Fill(0);
  farm.Draining(1);
  farm.Fill(1);  // draining wins over busy: it will not come back by finishing
  farm.Unavailable(2, "low disk: 1.2 GiB free in /work, below 5 GiB");
  farm.ShuttingDown(3);
  farm.Unavailable(4, "GPU driver reloading");
  const WaitVerdict v = WaitReason(Task(&kNone), farm.agents());
  EXPECT_EQ(v.reason,
            "5 matching agents: 1 busy, 1 draining, 1 low on disk, 1 shutting down, "
            "1 unavailable: GPU driver reloading");
  EXPECT_TRUE(v.runnable);
}

TEST(WaitReasonTest, HostHealthSaysWhy) {
  Farm farm;
  v1::Agent& docker = farm.Add("d1", {"exec", "docker_build"});
  docker.add_unavailable_kinds(v1::STAGE_KIND_DOCKER_BUILD);
  docker.set_kinds_unavailable_reason("docker daemon not answering");
  farm.agent(0).slots.executors = nullptr;  // placement sees exec only now
  EXPECT_EQ(WaitReason(Task(&kNone, v1::STAGE_KIND_DOCKER_BUILD), farm.agents()).reason,
            "1 matching agent unavailable: docker daemon not answering");

  Farm gpus;
  v1::Agent& g = gpus.Add("g1", {"exec"}, {}, 2);
  g.add_fenced_gpus(1);
  g.set_gpu_fence_reason("GPU 1 failed its probe");
  gpus.agent(0).slots.free_gpus = 1;
  EXPECT_EQ(WaitReason(Task(&kNone, v1::STAGE_KIND_EXEC, 2), gpus.agents()).reason,
            "1 matching agent unavailable: GPU 1 failed its probe");
}

TEST(WaitReasonTest, AgentPolicyRefusal) {
  Farm farm;
  farm.Add("a1", {"exec"}, {"role=dev"});
  Grants none;  // grants nothing
  farm.agent(0).slots.grants = &none;
  const std::vector<std::string> dev = {"role=dev"};
  WaitVerdict v = WaitReason(Task(&dev), farm.agents());
  EXPECT_EQ(v.reason, "1 matching agent not granted by the agent policy");
  EXPECT_TRUE(v.runnable);

  // Granted, but a stage with secrets may use only trusted labels.
  Grants all;
  all.kinds = {v1::STAGE_KIND_EXEC};
  all.secrets = true;
  const std::vector<std::string> trusted;  // role=dev is only claimed
  farm.agent(0).slots.grants = &all;
  farm.agent(0).slots.trusted_labels = &trusted;
  ReadyTask secret = Task(&dev);
  secret.needs.secrets = true;
  EXPECT_EQ(WaitReason(secret, farm.agents()).reason,
            "1 matching agent not granted by the agent policy");
  EXPECT_EQ(WaitReason(Task(&dev), farm.agents()).reason, "");
}

}  // namespace
}  // namespace musafarm::coordinator
