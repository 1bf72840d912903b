#include "agent/host/musa_arch.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace musafarm::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(MusaArchTest, ModelsMapToTorchMusasArchitectures) {
  EXPECT_EQ(MusaArchOfModel("MTT S80"), "qy1");
  EXPECT_EQ(MusaArchOfModel("MTT S80ES"), "qy1");
  EXPECT_EQ(MusaArchOfModel("mtt s3000"), "qy1");
  EXPECT_EQ(MusaArchOfModel("MTT S4000"), "qy2");
  EXPECT_EQ(MusaArchOfModel("MTT_S4000"), "qy2");  // as a gpu.model label writes it
  EXPECT_EQ(MusaArchOfModel("MTT S5000"), "ph1");
  EXPECT_EQ(MusaArchOfModel("MTT X300"), "");
  EXPECT_EQ(MusaArchOfModel(""), "");
}

TEST(MusaArchTest, OneKnownArchitectureBecomesALabel) {
  EXPECT_THAT(MusaArchLabels({"mthreads", 8, std::vector<std::string>(8, "MTT S4000")}),
              ElementsAre("musa_arch=qy2"));
  EXPECT_THAT(MusaArchLabels({"mthreads", 1, {"MTT S5000"}}), ElementsAre("musa_arch=ph1"));
}

TEST(MusaArchTest, NoLabelWhenTheArchitectureIsNotClear) {
  EXPECT_THAT(MusaArchLabels({"mthreads", 2, {"MTT S80", "MTT S4000"}}), IsEmpty());  // a mix
  EXPECT_THAT(MusaArchLabels({"mthreads", 1, {"MTT X300"}}), IsEmpty());            // unknown
  EXPECT_THAT(MusaArchLabels({"mthreads", 2, {}}), IsEmpty());  // --gpus 2 --gpu-vendor mthreads
  EXPECT_THAT(MusaArchLabels({"nvidia", 1, {"MTT S4000"}}), IsEmpty());
  EXPECT_THAT(MusaArchLabels({"", 0, {}}), IsEmpty());
}

}  // namespace
}  // namespace musafarm::agent
