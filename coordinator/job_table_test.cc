#include "coordinator/job_table.h"

#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

v1::Job MakeJob(const std::string& id, std::vector<std::pair<std::string, std::vector<std::string>>>
                                           tasks) {
  v1::Job job;
  job.set_id(id);
  job.set_state(v1::JOB_STATE_RUNNING);
  for (const auto& [name, needs] : tasks) {
    v1::Task* t = job.add_tasks();
    t->set_id(id + "/" + name);
    t->set_job_id(id);
    for (const std::string& n : needs) t->mutable_spec()->add_needs(id + "/" + n);
  }
  return job;
}

TEST(JobTableTest, IndexesTasksAndDependants) {
  JobTable table;
  JobTable::Entry& e = table.Add(MakeJob("3", {{"a", {}}, {"b", {"a"}}, {"c", {"a", "b"}}}), {});
  EXPECT_EQ(e.seq, 0u);
  EXPECT_EQ(e.index.at("3/c"), 2u);
  EXPECT_EQ(e.dependants.at("3/a"), (std::vector<size_t>{1, 2}));
  EXPECT_EQ(e.dependants.at("3/b"), (std::vector<size_t>{2}));
  ASSERT_NE(table.FindTask("3/b"), nullptr);
  EXPECT_EQ(table.FindTask("3/b")->id(), "3/b");
  EXPECT_EQ(table.FindTask("9/x"), nullptr);
  EXPECT_EQ(&table.JobOf(*table.FindTask("3/b")), &e);
  EXPECT_EQ(table.Find("4"), nullptr);
  EXPECT_EQ(table.next_job_number(), 4);  // past the highest id seen
}

TEST(JobTableTest, QueueOrderIsSubmissionThenPosition) {
  JobTable table;
  table.Add(MakeJob("1", {{"a", {}}, {"b", {}}}), {});
  table.Add(MakeJob("2", {{"a", {}}}), {});
  EXPECT_LT(table.QueueOrder("1/b"), table.QueueOrder("2/a"));
  EXPECT_LT(table.QueueOrder("1/a"), table.QueueOrder("1/b"));
}

TEST(JobTableTest, ListIsNewestFirstWithoutTasks) {
  JobTable table;
  for (const char* id : {"1", "2", "3"}) table.Add(MakeJob(id, {{"a", {}}}), {});
  const std::vector<v1::Job> two = table.List(2);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0].id(), "3");
  EXPECT_EQ(two[1].id(), "2");
  EXPECT_EQ(two[0].tasks_size(), 0);
  EXPECT_EQ(table.List(0).size(), 3u);
  ASSERT_EQ(table.InOrder().size(), 3u);
  EXPECT_EQ(table.InOrder()[0]->job.id(), "1");
}

TEST(JobTableTest, SecretsAreHeldUntilDropped) {
  JobTable table;
  JobTable::Entry& e = table.Add(MakeJob("1", {{"a", {}}}), {{"TOKEN", "s3cr3t"}});
  EXPECT_EQ(e.secrets.at("TOKEN"), "s3cr3t");
  EXPECT_TRUE(table.DropSecrets(e));
  EXPECT_TRUE(e.secrets.empty());
  EXPECT_FALSE(table.DropSecrets(e));  // nothing left: nothing to overwrite
}

TEST(JobTableTest, ImagesInUseComeFromUnfinishedJobsOnly) {
  JobTable table;
  v1::Job running = MakeJob("1", {{"run", {}}, {"build", {}}, {"push", {}}});
  running.mutable_tasks(0)->mutable_spec()->mutable_run()->mutable_docker_run()->set_image("r:1");
  auto* build = running.mutable_tasks(1)->mutable_spec()->mutable_run()->mutable_docker_build();
  build->add_tags("b:1");
  (*build->mutable_build_args())["BASE_IMG"] = "base:1";
  running.mutable_tasks(2)->mutable_spec()->mutable_run()->mutable_docker_push()->add_images("p:1");
  table.Add(running, {});
  v1::Job done = MakeJob("2", {{"run", {}}});
  done.set_state(v1::JOB_STATE_SUCCEEDED);
  done.mutable_tasks(0)->mutable_spec()->mutable_run()->mutable_docker_run()->set_image("old:1");
  table.Add(done, {});
  EXPECT_EQ(table.ImagesInUse(), (std::set<std::string>{"r:1", "b:1", "base:1", "p:1"}));
}

}  // namespace
}  // namespace musafarm::coordinator
