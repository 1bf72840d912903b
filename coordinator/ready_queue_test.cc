#include "coordinator/ready_queue.h"

#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

Requirement Req(std::vector<std::string> labels, int gpus = 0) {
  v1::StageSpec run;
  for (const std::string& l : labels) run.add_labels(l);
  run.mutable_exec();
  run.set_gpus(gpus);
  return RequirementOf(run);
}

TEST(ReadyQueueTest, RequirementIgnoresLabelOrderAndRepeats) {
  EXPECT_EQ(Req({"b", "a", "a"}), Req({"a", "b"}));
  EXPECT_FALSE(Req({"a"}) == Req({"a"}, 1));
  EXPECT_EQ(Req({}).kind, v1::STAGE_KIND_EXEC);
}

TEST(ReadyQueueTest, WhatAStageNeedsOfTrustSplitsItsClass) {
  v1::StageSpec plain;
  plain.add_labels("gpu");
  plain.mutable_exec()->add_argv("make");
  v1::StageSpec with_secret = plain;
  with_secret.add_secrets("TOKEN");
  v1::StageSpec shell = plain;
  shell.mutable_exec()->set_shell(true);
  // Same labels and kind, but an agent may take one and not the others.
  EXPECT_FALSE(RequirementOf(plain) == RequirementOf(with_secret));
  EXPECT_FALSE(RequirementOf(plain) == RequirementOf(shell));
  EXPECT_FALSE(RequirementOf(with_secret) == RequirementOf(shell));
  EXPECT_TRUE(RequirementOf(with_secret).needs.secrets);
  EXPECT_TRUE(RequirementOf(shell).needs.shell);
  ReadyQueue q;
  q.Add("1/a", {1, 0}, RequirementOf(plain));
  q.Add("1/b", {1, 1}, RequirementOf(with_secret));
  EXPECT_EQ(q.classes().size(), 2u);
}

TEST(ReadyQueueTest, GroupsByClassInQueueOrder) {
  ReadyQueue q;
  q.Add("2/x", {2, 0}, Req({"pool=a"}));
  q.Add("1/y", {1, 3}, Req({"pool=a"}));
  q.Add("1/z", {1, 4}, Req({"pool=b"}));
  ASSERT_EQ(q.size(), 3u);
  ASSERT_EQ(q.classes().size(), 2u);
  const ReadyQueue::Class& a = q.classes().at(Req({"pool=a"}));
  ASSERT_EQ(a.tasks.size(), 2u);
  EXPECT_EQ(a.tasks.begin()->second, "1/y");  // the older job first
  q.Remove("1/y");
  EXPECT_EQ(q.classes().at(Req({"pool=a"})).tasks.begin()->second, "2/x");
  q.Remove("1/z");
  EXPECT_EQ(q.classes().size(), 1u);  // an empty class goes
  EXPECT_FALSE(q.Contains("1/z"));
  q.Remove("nope");  // absent: no-op
  EXPECT_EQ(q.size(), 1u);
}

TEST(ReadyQueueTest, OnlyClassesThatGainedTasksAreDirty) {
  ReadyQueue q;
  q.Add("1/a", {1, 0}, Req({"pool=a"}));
  q.Add("1/b", {1, 1}, Req({"pool=b"}));
  EXPECT_EQ(q.TakeDirty().size(), 2u);
  EXPECT_FALSE(q.HasDirty());
  q.Remove("1/a");  // leaving makes nothing dirty
  EXPECT_FALSE(q.HasDirty());
  q.Add("2/c", {2, 0}, Req({"pool=b"}));
  const std::set<Requirement> dirty = q.TakeDirty();
  ASSERT_EQ(dirty.size(), 1u);
  EXPECT_EQ(*dirty.begin(), Req({"pool=b"}));
}

}  // namespace
}  // namespace musafarm::coordinator
