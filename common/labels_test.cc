#include "common/labels.h"

#include "gtest/gtest.h"

namespace musafarm {
namespace {

TEST(LabelsTest, PairsMatchExactlyKeysMatchAnyValue) {
  std::vector<std::string> agent = {"os=linux", "gpu=mthreads", "docker"};
  EXPECT_TRUE(LabelsSatisfy(agent, {}));
  EXPECT_TRUE(LabelsSatisfy(agent, {"os=linux"}));
  EXPECT_TRUE(LabelsSatisfy(agent, {"gpu", "docker"}));
  EXPECT_FALSE(LabelsSatisfy(agent, {"gpu=nvidia"}));
  EXPECT_FALSE(LabelsSatisfy(agent, {"docker=yes"}));
  EXPECT_FALSE(LabelsSatisfy(agent, {"os=linux", "arm"}));
}

TEST(LabelsTest, KeyIsWhatComesBeforeTheFirstEquals) {
  EXPECT_EQ(LabelKey("gpu=mthreads"), "gpu");
  EXPECT_EQ(LabelKey("docker"), "docker");
  EXPECT_EQ(LabelKey("a=b=c"), "a");
  EXPECT_EQ(LabelKey(""), "");
}

TEST(LabelsTest, Validation) {
  EXPECT_TRUE(ValidateLabel("gpu=s4000").ok());
  EXPECT_TRUE(ValidateLabel("zone/a").ok());
  EXPECT_FALSE(ValidateLabel("=x").ok());
  EXPECT_FALSE(ValidateLabel("a b").ok());
}

}  // namespace
}  // namespace musafarm
