#include "pipeline/stages.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::pipeline {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A pipeline with axis `variant` (dev, release), param `tag` and secret `TOKEN`.
Pipeline Context() {
  Pipeline p;
  p.axes.push_back({"variant", {"dev", "release"}, {"dev", "release"}, false});
  p.params.push_back({"tag", "latest"});
  p.secrets = {"TOKEN"};
  return p;
}

class StagesTest : public ::testing::Test {
 protected:
  // Parses `yaml`, one stage mapping, as stages[0].
  absl::Status Parse(const std::string& yaml, Stage* s) {
    yaml_ = yaml;
    reader_ = std::make_unique<YamlReader>(yaml_, "st.yaml");
    const YAML::Node node = YAML::Load(yaml_);
    return StageParser(*reader_).ParseStage(node, node.Mark(), 0, p_, s);
  }
  std::string yaml_;
  std::unique_ptr<YamlReader> reader_;
  const Pipeline p_ = Context();
};

TEST_F(StagesTest, ReadsEveryFieldOfADockerRunStage) {
  Stage s;
  ASSERT_TRUE(Parse(R"(name: test
when: {variant: dev, tag: latest}
needs: [build, {stage: base, optional: true}]
secrets: [TOKEN]
gpus: 2
timeout: 1h30m
retries: 1
env: {PY: "3.8"}
docker_run:
  image: "img:${tag}"
  command: [pytest]
  mounts: ["/data:/data:ro"]
  collect: [/out/report.xml]
)",
                    &s)
                  .ok());
  EXPECT_EQ(s.name, "test");
  EXPECT_EQ(s.kind, Kind::kDockerRun);
  ASSERT_EQ(s.when.size(), 2u);
  EXPECT_EQ(s.when[0].axis, 0);
  EXPECT_EQ(s.when[1].param, "tag");
  ASSERT_EQ(s.needs.size(), 2u);
  EXPECT_TRUE(s.needs[1].optional);
  EXPECT_THAT(s.secrets, ElementsAre("TOKEN"));
  EXPECT_EQ(s.gpus.value, "2");
  EXPECT_EQ(s.timeout_seconds, 5400);
  EXPECT_EQ(s.retries, 1);
  EXPECT_EQ(s.docker_run.image.value, "img:${tag}");
}

TEST_F(StagesTest, StageErrorsNameTheField) {
  Stage a;
  EXPECT_EQ(Parse("exec: [make]\n", &a).message(),
            "st.yaml:1:1: stages[0]: missing required field 'name'");
  Stage b;
  EXPECT_EQ(Parse("name: x\nexec: [make]\nshell: make\n", &b).message(),
            "st.yaml:3:1: stages[0]: stage 'x' has both 'exec' and 'shell'; give exactly one of "
            "exec, shell, docker_build, docker_run, docker_push");
  Stage c;
  EXPECT_THAT(std::string(Parse("name: x\nsecrets: [OTHER]\nexec: [make]\n", &c).message()),
              HasSubstr("st.yaml:2:11: stages[0].secrets[0]: secret 'OTHER' is not declared"));
  Stage d;
  EXPECT_EQ(Parse("name: x\ngpus: -1\nexec: [make]\n", &d).message(),
            "st.yaml:2:7: stages[0].gpus: must be 0 or more, got '-1'");
  Stage e;
  EXPECT_THAT(std::string(Parse("name: x\nwhen: {python: '3.8'}\nexec: [make]\n", &e).message()),
              HasSubstr("st.yaml:2:8: stages[0].when.python: "));
}

TEST_F(StagesTest, ExpandStageRunChecksSubstitutedValuesPerCell) {
  Stage s;
  ASSERT_TRUE(Parse(R"(name: run
docker_run:
  image: "img:${tag}"
  shm_size: 8g
  mounts: ["${src}:/src"]
)",
                    &s)
                  .ok());
  const Substituter sub(*reader_, {});
  v1::StageSpec ok;
  ASSERT_TRUE(ExpandStageRun(sub, s, {{"tag", "v1"}, {"src", "/home/src"}}, "", &ok).ok());
  EXPECT_EQ(ok.docker_run().image(), "img:v1");
  ASSERT_EQ(ok.docker_run().mounts_size(), 1);
  EXPECT_EQ(ok.docker_run().mounts(0).source(), "/home/src");
  // A variable may not smuggle in a relative bind-mount source.
  v1::StageSpec bad;
  EXPECT_THAT(
      std::string(ExpandStageRun(sub, s, {{"tag", "v1"}, {"src", "rel"}}, " in cell (dev)", &bad)
                      .message()),
      HasSubstr("st.yaml:5:12: stages[0].docker_run.mounts[0]: "));
  v1::StageSpec empty;
  EXPECT_EQ(ExpandStageRun(sub, s, {{"tag", ""}, {"src", "/s"}}, "", &empty).ok(), true);
}

TEST(GpuCountTest, DigitsWithinInt32Only) {
  int32_t n = 0;
  EXPECT_TRUE(ParseGpuCount("8", &n));
  EXPECT_EQ(n, 8);
  EXPECT_FALSE(ParseGpuCount("+1", &n));
  EXPECT_FALSE(ParseGpuCount("99999999999", &n));
  EXPECT_EQ(GpuCountError("99999999999"), "'99999999999' is too large");
  EXPECT_EQ(GpuCountError("two"), "expected a whole number of GPUs (0 or more), got 'two'");
}

}  // namespace
}  // namespace musafarm::pipeline
