#include "pipeline/suites.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pipeline/spec.h"

namespace musafarm::pipeline {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<v1::Job> Parse(absl::string_view yaml) {
  return ParseAndExpand(yaml, "s.yaml", "7");
}

constexpr absl::string_view kTwoSuites = R"yaml(
name: t
matrix: {python: ["3.8"]}
stages:
  - name: test
    docker_run:
      image: img
      collect: [/home/ut_output.txt, /home/other.txt]
    suites:
      - name: unit
        output: /home/ut_output.txt
        exit_status: /home/ut_exit_code.txt
        junit: /home/ut_py${python}.xml
      - {name: integration, output: /home/it_output.txt, exit_status: /home/it_exit_code.txt}
)yaml";

TEST(SuitesTest, SuitesReachTheSpecAndTheirFilesAreCollectedOnce) {
  absl::StatusOr<v1::Job> job = Parse(kTwoSuites);
  ASSERT_TRUE(job.ok()) << job.status();
  const v1::StageSpec& run = job->tasks(0).spec().run();
  ASSERT_EQ(run.suites_size(), 2);
  EXPECT_EQ(run.suites(0).name(), "unit");
  EXPECT_EQ(run.suites(0).output(), "/home/ut_output.txt");
  EXPECT_EQ(run.suites(0).exit_status(), "/home/ut_exit_code.txt");
  EXPECT_EQ(run.suites(0).junit(), "/home/ut_py3.8.xml");
  EXPECT_EQ(run.suites(1).junit(), "");
  EXPECT_THAT(run.docker_run().collect(),
              ElementsAre("/home/ut_output.txt", "/home/other.txt", "/home/ut_exit_code.txt",
                          "/home/ut_py3.8.xml", "/home/it_output.txt", "/home/it_exit_code.txt"));
}

TEST(SuitesTest, BadSuitesAreRefusedWithWhereAndWhy) {
  auto error = [](absl::string_view suites, absl::string_view kind = "docker_run: {image: i}") {
    const std::string yaml = absl::StrCat("name: t\nstages:\n  - name: s\n    ", kind,
                                          "\n    suites: ", suites, "\n");
    absl::StatusOr<v1::Job> job = Parse(yaml);
    return job.ok() ? std::string("parsed") : std::string(job.status().message());
  };
  EXPECT_THAT(error("x"), HasSubstr("stages[0].suites: expected a list of suites"));
  EXPECT_THAT(error("[{name: u, output: /o}]"),
              HasSubstr("stages[0].suites[0]: missing required field 'exit_status'"));
  EXPECT_THAT(error("[{name: u, exit_status: /e}]"),
              HasSubstr("stages[0].suites[0]: missing required field 'output'"));
  EXPECT_THAT(error("[{output: /o, exit_status: /e}]"),
              HasSubstr("missing required field 'name'"));
  EXPECT_THAT(error("[{name: 'a b', output: /o, exit_status: /e}]"),
              HasSubstr("suite name 'a b' must be"));
  EXPECT_THAT(error("[{name: u, output: /o, exit_status: /e, junt: /j}]"),
              HasSubstr("unknown field 'junt'"));
  EXPECT_THAT(error("[{name: u, output: /o, exit_status: /e}, {name: u, output: /p, "
                    "exit_status: /f}]"),
              HasSubstr("suite 'u' is declared twice"));
  EXPECT_THAT(error("[{name: u, output: o.txt, exit_status: /e}]"),
              HasSubstr("'o.txt' is not an absolute path"));
  EXPECT_THAT(error("[{name: u, output: /o, exit_status: /e}]", "exec: [true]"),
              HasSubstr("only a docker_run stage can have"));
  EXPECT_EQ(error("[{name: u, output: /o, exit_status: /e}]"), "parsed");
}

}  // namespace
}  // namespace musafarm::pipeline
