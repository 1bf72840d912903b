#include "coordinator/rerun.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::Task Task(const std::string& cell, const std::string& stage, v1::TaskState state,
              std::vector<std::string> needs = {}) {
  v1::Task t;
  t.set_id("7/" + cell + "/" + stage);
  t.set_job_id("7");
  t.set_state(state);
  t.set_attempts(2);
  t.set_agent("gpu-1");
  t.set_exit_code(state == v1::TASK_STATE_FAILED ? 3 : 0);
  t.mutable_tests()->set_passed(4);
  t.mutable_spec()->set_stage(stage);
  for (const std::string& v : {std::string(cell)}) {
    v1::MatrixValue* mv = t.mutable_spec()->add_cell();
    mv->set_axis("python");
    mv->set_value(v);
  }
  for (const std::string& n : needs) t.mutable_spec()->add_needs("7/" + cell + "/" + n);
  t.mutable_spec()->mutable_run()->mutable_exec()->add_argv("make");
  return t;
}

// Two cells of build -> test: 3.9's test failed.
v1::Job OldJob() {
  v1::Job j;
  j.set_id("7");
  j.set_name("nightly");
  j.set_state(v1::JOB_STATE_FAILED);
  j.set_pipeline_file("p.yaml");
  j.add_axes("python");
  (*j.mutable_params())["tag"] = "v1";
  j.add_secrets("TOKEN");
  j.set_submitter("ann");
  j.set_retention_seconds(3600);
  j.add_inputs()->set_name("src");
  *j.add_tasks() = Task("3.8", "build", v1::TASK_STATE_SUCCEEDED);
  *j.add_tasks() = Task("3.9", "build", v1::TASK_STATE_SUCCEEDED);
  *j.add_tasks() = Task("3.8", "test", v1::TASK_STATE_SUCCEEDED, {"build"});
  *j.add_tasks() = Task("3.9", "test", v1::TASK_STATE_FAILED, {"build"});
  return j;
}

std::vector<std::string> Ids(const v1::Job& j) {
  std::vector<std::string> ids;
  for (const v1::Task& t : j.tasks()) ids.push_back(t.id());
  return ids;
}

TEST(RerunTest, AllOfTheJobUnderTheNewIdAsSubmitted) {
  absl::StatusOr<v1::Job> job = RerunJob(OldJob(), "12", /*failed_only=*/false);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->id(), "12");
  EXPECT_EQ(job->rerun_of(), "7");
  EXPECT_EQ(job->name(), "nightly");
  EXPECT_EQ(job->pipeline_file(), "p.yaml");
  EXPECT_THAT(job->axes(), ElementsAre("python"));
  EXPECT_EQ(job->params().at("tag"), "v1");
  EXPECT_THAT(job->secrets(), ElementsAre("TOKEN"));
  EXPECT_EQ(job->retention_seconds(), 3600);
  ASSERT_EQ(job->inputs_size(), 1);
  EXPECT_EQ(job->submitter(), "") << "the core sets the caller";
  EXPECT_THAT(Ids(*job), ElementsAre("12/3.8/build", "12/3.9/build", "12/3.8/test", "12/3.9/test"));
  const v1::Task& test = job->tasks(3);
  EXPECT_EQ(test.job_id(), "12");
  EXPECT_THAT(test.spec().needs(), ElementsAre("12/3.9/build"));
  EXPECT_THAT(test.spec().run().exec().argv(), ElementsAre("make"));
  // Nothing of the old run: state, attempts, agent, exit code, tests.
  EXPECT_EQ(test.state(), v1::TASK_STATE_PENDING);
  EXPECT_EQ(test.attempts(), 0);
  EXPECT_EQ(test.agent(), "");
  EXPECT_EQ(test.exit_code(), 0);
  EXPECT_FALSE(test.has_tests());
}

TEST(RerunTest, FailedOnlyKeepsTheCellsWithAFailureWithEveryStage) {
  v1::Job old = OldJob();
  absl::StatusOr<v1::Job> job = RerunJob(old, "12", /*failed_only=*/true);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Ids(*job), ElementsAre("12/3.9/build", "12/3.9/test"));  // the DAG's order
  EXPECT_THAT(job->tasks(1).spec().needs(), ElementsAre("12/3.9/build"));
  // Timed out, cancelled and skipped count as failures too.
  for (v1::TaskState bad :
       {v1::TASK_STATE_TIMED_OUT, v1::TASK_STATE_CANCELLED, v1::TASK_STATE_SKIPPED}) {
    old.mutable_tasks(3)->set_state(v1::TASK_STATE_SUCCEEDED);
    old.mutable_tasks(2)->set_state(bad);
    job = RerunJob(old, "13", /*failed_only=*/true);
    ASSERT_TRUE(job.ok()) << job.status();
    EXPECT_THAT(Ids(*job), ElementsAre("13/3.8/build", "13/3.8/test")) << bad;
  }
}

TEST(RerunTest, FailedOnlyWantsAnEndedJobWithAFailure) {
  v1::Job old = OldJob();
  old.mutable_tasks(3)->set_state(v1::TASK_STATE_SUCCEEDED);
  old.set_state(v1::JOB_STATE_SUCCEEDED);
  absl::StatusOr<v1::Job> job = RerunJob(old, "12", /*failed_only=*/true);
  EXPECT_EQ(job.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(job.status().message(), HasSubstr("job 7 has no failed, timed-out, cancelled or skipped task"));
  EXPECT_TRUE(RerunJob(old, "12", /*failed_only=*/false).ok());
}

TEST(RerunTest, ARunningJobIsRefusedWithOrWithoutFailed) {
  v1::Job old = OldJob();
  old.set_state(v1::JOB_STATE_RUNNING);
  for (bool failed_only : {true, false}) {
    absl::StatusOr<v1::Job> job = RerunJob(old, "12", failed_only);
    EXPECT_EQ(job.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(job.status().message(),
                HasSubstr("job 7 is still running: a rerun needs it ended (wait for it, or cancel "
                          "it first: musafarm cancel 7)"));
  }
}

TEST(RerunTest, KeepsThePriorityButNotTheSchedule) {
  v1::Job old = OldJob();
  old.set_batch(true);
  old.set_schedule("nightly");
  absl::StatusOr<v1::Job> job = RerunJob(old, "12", /*failed_only=*/false);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_TRUE(job->batch());
  EXPECT_EQ(job->schedule(), "");
}

TEST(RerunTest, SecretsMustBeGivenAgainAndOnlyThoseTheJobHad) {
  const v1::Job old = OldJob();
  absl::Status s = CheckRerunSecrets(old, {});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("job 7 was submitted with secret TOKEN, whose values are not "
                                     "kept past a job: give them again (--secret TOKEN)"));
  s = CheckRerunSecrets(old, {{"TOKEN", "s3cr3t"}, {"OTHER", "x"}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("job 7 has no secret OTHER (it has: TOKEN)"));
  EXPECT_THAT(s.message(), ::testing::Not(HasSubstr("s3cr3t")));
  EXPECT_TRUE(CheckRerunSecrets(old, {{"TOKEN", "s3cr3t"}}).ok());
}

}  // namespace
}  // namespace musafarm::coordinator
