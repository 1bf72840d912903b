#include "coordinator/metrics.h"

#include "absl/strings/match.h"
#include "coordinator/core_metrics.h"
#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

using Type = MetricsRegistry::Type;

TEST(MetricsRegistryTest, RendersTheTextFormat) {
  MetricsRegistry r;
  r.Declare("x_total", Type::kCounter, "Things.", {"kind"});
  r.Add("x_total", {"a\"b\\c\nd"}, 2);
  r.Declare("y_seconds", Type::kHistogram, "Waits.", {}, {0.1, 1});
  r.Observe("y_seconds", {}, 0.05);
  r.Observe("y_seconds", {}, 0.5);
  r.Observe("y_seconds", {}, 7);
  EXPECT_EQ(r.Render(),
            "# HELP x_total Things.\n# TYPE x_total counter\n"
            "x_total{kind=\"a\\\"b\\\\c\\nd\"} 2\n"
            "# HELP y_seconds Waits.\n# TYPE y_seconds histogram\n"
            "y_seconds_bucket{le=\"0.1\"} 1\ny_seconds_bucket{le=\"1\"} 2\n"
            "y_seconds_bucket{le=\"+Inf\"} 3\ny_seconds_sum 7.55\ny_seconds_count 3\n");
  EXPECT_EQ(r.Value("y_seconds", {}), 3);
  EXPECT_EQ(r.SeriesCount(), 6u);
}

v1::Task TaskOf(const std::string& id, const std::string& stage) {
  v1::Task t;
  t.set_id(id);
  t.mutable_spec()->set_stage(stage);
  return t;
}

TEST(CoreMetricsTest, WaitsAndDurationsAreObservedByStageWithoutTaskIds) {
  CoreMetrics m;
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  v1::Task task = TaskOf("7/dev-3.8/build", "build");
  task.set_state(v1::TASK_STATE_QUEUED);
  m.OnTaskKnown(task, t0);
  m.OnTransition(task, v1::TASK_STATE_QUEUED, v1::TASK_STATE_ASSIGNED, t0 + absl::Seconds(3));
  m.OnTransition(task, v1::TASK_STATE_ASSIGNED, v1::TASK_STATE_RUNNING,
                 t0 + absl::Seconds(3) + absl::Milliseconds(20));
  m.OnTransition(task, v1::TASK_STATE_RUNNING, v1::TASK_STATE_SUCCEEDED, t0 + absl::Seconds(63));
  const MetricsRegistry& r = m.registry();
  EXPECT_EQ(r.Value("musafarm_task_queue_wait_seconds", {"build"}), 1);
  EXPECT_EQ(r.Value("musafarm_dispatch_latency_seconds", {}), 1);
  EXPECT_EQ(r.Value("musafarm_task_duration_seconds", {"build"}), 1);
  EXPECT_EQ(r.Value("musafarm_task_transitions_total", {"succeeded"}), 1);
  const std::string text = m.Render({});
  EXPECT_TRUE(absl::StrContains(text, "musafarm_task_duration_seconds_sum{stage=\"build\"} 59.98\n"))
      << text;
  EXPECT_FALSE(absl::StrContains(text, "dev-3.8")) << text;
}

// A silent exec task's Started may never come (the agent held it and the
// result was ready first): ASSIGNED goes straight to its end, and the start
// the result dated (the task's started_us) still gives the dispatch latency
// and the duration; a held Started's late arrival does not count as dispatch.
TEST(CoreMetricsTest, AStartDatedByTheAgentCountsWhetherItsStartedCameOrNot) {
  CoreMetrics m;
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  v1::Task quick = TaskOf("7/t/a", "test");
  quick.set_state(v1::TASK_STATE_QUEUED);
  m.OnTaskKnown(quick, t0);
  m.OnTransition(quick, v1::TASK_STATE_QUEUED, v1::TASK_STATE_ASSIGNED, t0);
  quick.set_started_us(absl::ToUnixMicros(t0 + absl::Milliseconds(1)));
  m.OnTransition(quick, v1::TASK_STATE_ASSIGNED, v1::TASK_STATE_SUCCEEDED,
                 t0 + absl::Milliseconds(4));
  v1::Task held = TaskOf("7/t/b", "test");
  held.set_state(v1::TASK_STATE_QUEUED);
  m.OnTaskKnown(held, t0);
  m.OnTransition(held, v1::TASK_STATE_QUEUED, v1::TASK_STATE_ASSIGNED, t0);
  held.set_started_us(absl::ToUnixMicros(t0 + absl::Milliseconds(1)));
  // Its Started arrived after the 5 ms hold; it ran 2 s.
  m.OnTransition(held, v1::TASK_STATE_ASSIGNED, v1::TASK_STATE_RUNNING, t0 + absl::Milliseconds(6));
  m.OnTransition(held, v1::TASK_STATE_RUNNING, v1::TASK_STATE_SUCCEEDED,
                 t0 + absl::Milliseconds(2001));
  const MetricsRegistry& r = m.registry();
  EXPECT_EQ(r.Value("musafarm_dispatch_latency_seconds", {}), 2);
  EXPECT_EQ(r.Value("musafarm_task_duration_seconds", {"test"}), 2);
  const std::string text = m.Render({});
  EXPECT_TRUE(absl::StrContains(text, "musafarm_dispatch_latency_seconds_sum 0.002\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "musafarm_task_duration_seconds_sum{stage=\"test\"} 2.003\n"))
      << text;
}

TEST(CoreMetricsTest, StageNamesPastTheCapCountAsOther) {
  CoreMetrics m;
  for (size_t i = 0; i < CoreMetrics::kMaxStages; ++i) {
    EXPECT_EQ(m.StageLabel(TaskOf("t", "s" + std::to_string(i))), "s" + std::to_string(i));
  }
  EXPECT_EQ(m.StageLabel(TaskOf("t", "one-more")), "other");
  EXPECT_EQ(m.StageLabel(TaskOf("t", "s0")), "s0");
}

}  // namespace
}  // namespace musafarm::coordinator
