#include "pipeline/gpu_arch.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pipeline/spec.h"

namespace musafarm::pipeline {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr absl::string_view kArch = R"yaml(
name: t
matrix: {arch: [any]}
stages:
  - name: build
    labels: [role=build]
    gpu_arch: "${arch}"
    exec: [make]
)yaml";

TEST(GpuArchTest, AnArchitectureBecomesAMusaArchLabelAndAnyNone) {
  absl::StatusOr<v1::Job> any = ParseAndExpand(kArch, "a.yaml", "1");
  ASSERT_TRUE(any.ok()) << any.status();
  EXPECT_THAT(any->tasks(0).spec().run().labels(), ElementsAre("role=build"));

  ExpandOptions o;
  o.axes = {{"arch", {"qy2", "ph1"}}};
  absl::StatusOr<v1::Job> two = ParseAndExpand(kArch, "a.yaml", "1", o);
  ASSERT_TRUE(two.ok()) << two.status();
  ASSERT_EQ(two->tasks_size(), 2);
  EXPECT_EQ(two->tasks(0).id(), "1/qy2/build");
  EXPECT_THAT(two->tasks(0).spec().run().labels(), ElementsAre("role=build", "musa_arch=qy2"));
  EXPECT_THAT(two->tasks(1).spec().run().labels(), ElementsAre("role=build", "musa_arch=ph1"));
}

TEST(GpuArchTest, ALiteralOrEmptyArchitecture) {
  absl::StatusOr<v1::Job> qy1 =
      ParseAndExpand("name: t\nstages: [{name: s, gpu_arch: qy1, exec: [x]}]\n", "a.yaml", "1");
  ASSERT_TRUE(qy1.ok()) << qy1.status();
  EXPECT_THAT(qy1->tasks(0).spec().run().labels(), ElementsAre("musa_arch=qy1"));
  absl::StatusOr<v1::Job> none =
      ParseAndExpand("name: t\nstages: [{name: s, gpu_arch: '', exec: [x]}]\n", "a.yaml", "1");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_THAT(none->tasks(0).spec().run().labels(), IsEmpty());
}

TEST(GpuArchTest, ABadArchitectureIsRefusedNamingTheCell) {
  ExpandOptions o;
  o.axes = {{"arch", {"QY2"}}};
  absl::StatusOr<v1::Job> bad = ParseAndExpand(kArch, "a.yaml", "1", o);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("stages[0].gpu_arch: GPU architecture 'QY2' must be 'any' or 1 to 32 "
                        "lower-case letters and digits (qy1, qy2, ph1) (from '${arch}' in cell "
                        "(QY2))"));
}

}  // namespace
}  // namespace musafarm::pipeline
