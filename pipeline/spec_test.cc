#include "pipeline/spec.h"

#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::pipeline {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr absl::string_view kFile = "pipes/p.yaml";

absl::StatusOr<v1::Job> Parse(absl::string_view yaml) { return ParseAndExpand(yaml, kFile, "7"); }

std::vector<std::string> Ids(const v1::Job& job) {
  std::vector<std::string> ids;
  for (const v1::Task& t : job.tasks()) ids.push_back(t.id());
  return ids;
}

// The task with id `id`; a failure and an empty task when there is none.
const v1::Task& Find(const v1::Job& job, absl::string_view id) {
  for (const v1::Task& t : job.tasks()) {
    if (t.id() == id) return t;
  }
  ADD_FAILURE() << "no task " << id;
  return v1::Task::default_instance();
}

std::vector<std::string> Argv(const v1::Task& t) {
  return {t.spec().run().exec().argv().begin(), t.spec().run().exec().argv().end()};
}

std::vector<std::string> Needs(const v1::Task& t) {
  return {t.spec().needs().begin(), t.spec().needs().end()};
}

std::map<std::string, std::string> Env(const v1::Task& t) {
  return {t.spec().run().env().begin(), t.spec().run().env().end()};
}

// The error message as a std::string, which gMock's string matchers need.
std::string Message(const absl::StatusOr<v1::Job>& r) { return std::string(r.status().message()); }

// Checks that `r` is InvalidArgument "pipes/p.yaml:LINE:COL: FIELD: ..." with
// the given line, field path and message fragment (and column, unless -1).
::testing::AssertionResult IsError(const absl::StatusOr<v1::Job>& r, int line,
                                   absl::string_view field, absl::string_view what, int col = -1) {
  if (r.ok()) return ::testing::AssertionFailure() << "parsed fine; wanted an error";
  const absl::Status& s = r.status();
  if (s.code() != absl::StatusCode::kInvalidArgument) {
    return ::testing::AssertionFailure() << "code is not InvalidArgument: " << s;
  }
  const std::string msg(s.message());
  std::vector<std::string> parts = absl::StrSplit(msg, absl::MaxSplits(": ", 2));
  std::vector<std::string> where = absl::StrSplit(parts[0], ':');
  int got_line = 0;
  int got_col = 0;
  if (parts.size() != 3 || where.size() != 3 || where[0] != kFile ||
      !absl::SimpleAtoi(where[1], &got_line) || !absl::SimpleAtoi(where[2], &got_col)) {
    return ::testing::AssertionFailure() << "not 'FILE:LINE:COL: FIELD: what': " << msg;
  }
  if (got_line != line) {
    return ::testing::AssertionFailure() << "line " << got_line << ", want " << line << ": " << msg;
  }
  if (col >= 0 && got_col != col) {
    return ::testing::AssertionFailure() << "column " << got_col << ", want " << col << ": " << msg;
  }
  if (parts[1] != field) {
    return ::testing::AssertionFailure()
           << "field '" << parts[1] << "', want '" << field << "': " << msg;
  }
  if (parts[2].find(std::string(what)) == std::string::npos) {
    return ::testing::AssertionFailure() << "message lacks '" << what << "': " << msg;
  }
  return ::testing::AssertionSuccess() << msg;
}

// The torch_musa layout: dev cells build base -> dev -> test, release cells
// release -> test, and `test` picks its dependency through ${variant}.
constexpr absl::string_view kTorchMusa = R"yaml(name: torch-musa
matrix:
  variant: [dev, release]
  python: ["3.8", "3.9", "3.10"]
env: {GLOBAL: "g"}
stages:
  - name: base
    when: {variant: dev}
    exec: ["sh", "-c", "build-base ${python}"]
  - name: dev
    when: {variant: dev}
    needs: [base]
    exec: [make, dev]
  - name: release
    when: {variant: release}
    exec: [make, release]
  - name: test
    needs: ["${variant}"]
    labels: [docker, "gpu=mthreads"]
    exec: [pytest, "-k", "py${matrix.python}"]
    env: {PY: "${python}"}
    timeout: 30m
    retries: 1
)yaml";

TEST(ParseAndExpandTest, TorchMusaMatrixExpandsToFifteenTasksInTopologicalOrder) {
  absl::StatusOr<v1::Job> job = Parse(kTorchMusa);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->id(), "7");
  EXPECT_EQ(job->name(), "torch-musa");
  EXPECT_EQ(job->pipeline_file(), kFile);
  EXPECT_THAT(job->axes(), ElementsAre("variant", "python"));
  EXPECT_THAT(Ids(*job),
              ElementsAre("7/dev-3.8/base", "7/dev-3.8/dev", "7/dev-3.8/test", "7/dev-3.9/base",
                          "7/dev-3.9/dev", "7/dev-3.9/test", "7/dev-3.10/base", "7/dev-3.10/dev",
                          "7/dev-3.10/test", "7/release-3.8/release", "7/release-3.8/test",
                          "7/release-3.9/release", "7/release-3.9/test", "7/release-3.10/release",
                          "7/release-3.10/test"));

  const v1::Task& dev_test = Find(*job, "7/dev-3.9/test");
  EXPECT_THAT(Needs(dev_test), ElementsAre("7/dev-3.9/dev"));
  EXPECT_THAT(Needs(Find(*job, "7/dev-3.9/dev")), ElementsAre("7/dev-3.9/base"));
  EXPECT_THAT(Needs(Find(*job, "7/dev-3.9/base")), IsEmpty());
  EXPECT_THAT(Needs(Find(*job, "7/release-3.10/test")), ElementsAre("7/release-3.10/release"));
  EXPECT_THAT(Needs(Find(*job, "7/release-3.10/release")), IsEmpty());

  EXPECT_EQ(dev_test.job_id(), "7");
  EXPECT_EQ(dev_test.state(), v1::TASK_STATE_PENDING);
  EXPECT_EQ(dev_test.spec().stage(), "test");
  EXPECT_EQ(dev_test.spec().display_name(), "test (dev, 3.9)");
  ASSERT_EQ(dev_test.spec().cell_size(), 2);
  EXPECT_EQ(dev_test.spec().cell(0).axis(), "variant");
  EXPECT_EQ(dev_test.spec().cell(0).value(), "dev");
  EXPECT_EQ(dev_test.spec().cell(1).axis(), "python");
  EXPECT_EQ(dev_test.spec().cell(1).value(), "3.9");
  EXPECT_THAT(Argv(dev_test), ElementsAre("pytest", "-k", "py3.9"));
  EXPECT_FALSE(dev_test.spec().run().exec().shell());
  EXPECT_THAT(Env(dev_test), UnorderedElementsAre(Pair("GLOBAL", "g"), Pair("PY", "3.9")));
  EXPECT_EQ(dev_test.spec().run().timeout_seconds(), 1800);
  EXPECT_EQ(dev_test.spec().run().retries(), 1);
  EXPECT_THAT(dev_test.spec().run().labels(), ElementsAre("docker", "gpu=mthreads"));
  EXPECT_THAT(Argv(Find(*job, "7/dev-3.10/base")), ElementsAre("sh", "-c", "build-base 3.10"));

  // Every dependency comes before its dependant.
  std::map<std::string, int> pos;
  for (const v1::Task& t : job->tasks()) {
    for (const std::string& need : t.spec().needs()) {
      EXPECT_TRUE(pos.count(need)) << t.id() << " before its dependency " << need;
    }
    pos[t.id()] = static_cast<int>(pos.size());
  }
}

TEST(ParseAndExpandTest, DependencyWrittenLaterStillComesFirst) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(stages:
  - name: test
    needs: [build]
    exec: [t]
  - name: lint
    exec: [l]
  - name: build
    exec: [b]
  - name: docs
    exec: [d]
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  // File order wherever the dependencies allow it: test waits for build only.
  EXPECT_THAT(Ids(*job), ElementsAre("7/lint", "7/build", "7/test", "7/docs"));
}

TEST(ParseAndExpandTest, NoMatrixGivesOneTaskPerStage) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(stages:
  - name: build
    shell: "make -j8 && make install"
  - name: check
    needs: [build]
    exec: [make, check]
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(job->axes(), IsEmpty());
  EXPECT_THAT(Ids(*job), ElementsAre("7/build", "7/check"));
  const v1::Task& build = job->tasks(0);
  EXPECT_EQ(build.spec().display_name(), "build");
  EXPECT_THAT(build.spec().cell(), IsEmpty());
  EXPECT_THAT(Argv(build), ElementsAre("make -j8 && make install"));
  EXPECT_TRUE(build.spec().run().exec().shell());
  EXPECT_THAT(Needs(job->tasks(1)), ElementsAre("7/build"));
}

TEST(ParseAndExpandTest, Defaults) {
  absl::StatusOr<v1::Job> job = Parse("stages:\n  - {name: a, exec: [x]}\n");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->name(), "p");  // basename of pipes/p.yaml without extension
  ASSERT_EQ(job->tasks_size(), 1);
  const v1::StageSpec& run = job->tasks(0).spec().run();
  EXPECT_EQ(run.timeout_seconds(), 0);
  EXPECT_EQ(run.retries(), 0);
  EXPECT_THAT(run.env(), IsEmpty());
  EXPECT_THAT(run.labels(), IsEmpty());
  EXPECT_FALSE(run.exec().shell());
  EXPECT_THAT(job->tasks(0).spec().needs(), IsEmpty());
}

// Issue 16, retention: a pipeline may keep its finished jobs longer or
// shorter than the coordinator's --retain.
TEST(ParseAndExpandTest, RetentionIsAnAgeInSecondsAndBadOnesNameTheLine) {
  absl::StatusOr<v1::Job> job = Parse("retention: 7d\nstages:\n  - {name: a, exec: [x]}\n");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->retention_seconds(), 7 * 24 * 3600);
  job = Parse("stages:\n  - {name: a, exec: [x]}\n");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->retention_seconds(), 0) << "none: the coordinator's";
  for (const char* bad : {"forever", "0s", "-3d", "500ms"}) {
    job = Parse(absl::StrCat("stages:\n  - {name: a, exec: [x]}\nretention: ", bad, "\n"));
    ASSERT_FALSE(job.ok()) << bad;
    EXPECT_THAT(Message(job), HasSubstr("pipes/p.yaml:3:")) << Message(job);
    EXPECT_THAT(Message(job), HasSubstr("retention")) << Message(job);
    EXPECT_THAT(Message(job), HasSubstr("is not a retention age")) << Message(job);
  }
}

TEST(ParseAndExpandTest, NameOverrideWinsOverNameField) {
  constexpr absl::string_view kYaml = "name: from-file\nstages: [{name: a, exec: [x]}]\n";
  absl::StatusOr<v1::Job> named = ParseAndExpand(kYaml, kFile, "1");
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(named->name(), "from-file");
  absl::StatusOr<v1::Job> overridden = ParseAndExpand(kYaml, kFile, "1", "from-cli");
  ASSERT_TRUE(overridden.ok()) << overridden.status();
  EXPECT_EQ(overridden->name(), "from-cli");
}

TEST(ParseAndExpandTest, TimeoutAndRetriesForms) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(stages:
  - {name: a, exec: [x], timeout: 90s}
  - {name: b, exec: [x], timeout: 1h30m, retries: 3}
  - {name: c, exec: [x], timeout: 45, retries: 0}
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->tasks(0).spec().run().timeout_seconds(), 90);
  EXPECT_EQ(job->tasks(1).spec().run().timeout_seconds(), 5400);
  EXPECT_EQ(job->tasks(1).spec().run().retries(), 3);
  EXPECT_EQ(job->tasks(2).spec().run().timeout_seconds(), 45);
  EXPECT_EQ(job->tasks(2).spec().run().retries(), 0);
}

TEST(ParseAndExpandTest, SubstitutesArgvShellEnvLabelsAndNeeds) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(matrix:
  gpu: [s4000, s80]
  os: ["ubuntu:22.04"]
env: {TARGET: "${gpu}-${os}", KEEP: plain}
stages:
  - name: prep-s4000
    exec: [true]
  - name: prep-s80
    exec: [true]
  - name: run
    needs: ["prep-${gpu}"]
    labels: ["gpu=${matrix.gpu}", docker]
    shell: "echo ${gpu} on ${os}"
    env: {KEEP: "stage-${gpu}"}
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  const v1::Task& run = Find(*job, "7/s80-ubuntu:22.04/run");
  EXPECT_THAT(Needs(run), ElementsAre("7/s80-ubuntu:22.04/prep-s80"));
  EXPECT_THAT(run.spec().run().labels(), ElementsAre("gpu=s80", "docker"));
  EXPECT_THAT(Argv(run), ElementsAre("echo s80 on ubuntu:22.04"));
  EXPECT_TRUE(run.spec().run().exec().shell());
  // Pipeline env is substituted too; the stage overrides KEEP and keeps TARGET.
  EXPECT_THAT(Env(run),
              UnorderedElementsAre(Pair("TARGET", "s80-ubuntu:22.04"), Pair("KEEP", "stage-s80")));
  EXPECT_THAT(Env(Find(*job, "7/s80-ubuntu:22.04/prep-s80")),
              UnorderedElementsAre(Pair("TARGET", "s80-ubuntu:22.04"), Pair("KEEP", "plain")));
}

TEST(ParseAndExpandTest, DollarDollarBraceIsALiteralDollarBrace) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(matrix:
  py: ["3.10"]
stages:
  - name: a
    shell: "echo $${HOME} ${py} $$ $PATH $${py}"
    env: {X: "$${py}"}
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Argv(job->tasks(0)), ElementsAre("echo ${HOME} 3.10 $$ $PATH ${py}"));
  EXPECT_THAT(Env(job->tasks(0)), UnorderedElementsAre(Pair("X", "${py}")));
}

TEST(ParseAndExpandTest, WhenTakesAValueOrAList) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(matrix:
  variant: [dev, release]
  python: ["3.8", "3.9", "3.10"]
stages:
  - name: old
    when: {python: ["3.8", "3.9"], variant: dev}
    exec: [x]
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Ids(*job), ElementsAre("7/dev-3.8/old", "7/dev-3.9/old"));
}

TEST(ParseAndExpandTest, ExcludeRemovesEveryCellMatchingAllGivenValues) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(matrix:
  variant: [dev, release]
  python: ["3.8", "3.9"]
  exclude:
    - {variant: release, python: "3.8"}
    - {python: "3.9", variant: dev}
stages:
  - {name: a, exec: [x]}
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Ids(*job), ElementsAre("7/dev-3.8/a", "7/release-3.9/a"));
}

TEST(ParseAndExpandTest, PartialExcludeRemovesAllCellsWithThatValue) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(matrix:
  variant: [dev, release]
  python: ["3.8", "3.9"]
  exclude: [{python: "3.8"}]
stages:
  - {name: a, exec: [x]}
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Ids(*job), ElementsAre("7/dev-3.9/a", "7/release-3.9/a"));
}

TEST(ParseAndExpandTest, IncludeMatchingCellsAddsVariables) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(matrix:
  variant: [dev, release]
  python: ["3.8", "3.10"]
  include:
    - {python: "3.10", torch: "2.2"}
    - {runner: big}
stages:
  - name: a
    when: {python: "3.10"}
    exec: [build, "${torch}", "${runner}"]
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  // No new cells: both entries matched existing ones.
  EXPECT_THAT(Ids(*job), ElementsAre("7/dev-3.10/a", "7/release-3.10/a"));
  EXPECT_THAT(Argv(job->tasks(0)), ElementsAre("build", "2.2", "big"));
  EXPECT_THAT(Argv(job->tasks(1)), ElementsAre("build", "2.2", "big"));
}

TEST(ParseAndExpandTest, IncludeVariableExistsOnlyInMatchingCells) {
  auto job = Parse(R"yaml(matrix:
  python: ["3.8", "3.10"]
  include:
    - {python: "3.10", torch: "2.2"}
stages:
  - name: a
    exec: [build, "${torch}"]
)yaml");
  // The 3.8 cell has no `torch`; the error names the cell and what is known there.
  EXPECT_TRUE(IsError(job, 7, "stages[0].exec[1]", "unknown variable 'torch' in cell (3.8)"));
  EXPECT_THAT(Message(job), HasSubstr("known: python;"));
}

TEST(ParseAndExpandTest, IncludeNotMatchingAddsANewCellAfterTheProduct) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(matrix:
  variant: [dev, release]
  python: ["3.8"]
  exclude: [{variant: release}]
  include:
    - {variant: dev, python: "3.11", extra: "yes"}
    - {variant: release, python: "3.8"}
stages:
  - name: a
    when: {python: "3.11"}
    exec: [x, "${extra}"]
  - name: b
    exec: [y]
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  // Product cells first, then included ones in include order; an include may
  // bring back an excluded cell.
  EXPECT_THAT(Ids(*job),
              ElementsAre("7/dev-3.8/b", "7/dev-3.11/a", "7/dev-3.11/b", "7/release-3.8/b"));
  EXPECT_THAT(Argv(Find(*job, "7/dev-3.11/a")), ElementsAre("x", "yes"));
  EXPECT_EQ(Find(*job, "7/dev-3.11/b").spec().display_name(), "b (dev, 3.11)");
}

TEST(ParseAndExpandTest, RepeatedNeedIsListedOnce) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(matrix:
  v: [a]
stages:
  - {name: a, exec: [x]}
  - {name: b, exec: [x], needs: [a, "${v}"]}
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Needs(job->tasks(1)), ElementsAre("7/a/a"));
}

TEST(ParseAndExpandTest, UnquotedNumbersKeepTheirText) {
  // yaml-cpp keeps scalars verbatim, so 3.10 stays "3.10", not 3.1.
  absl::StatusOr<v1::Job> job = Parse("matrix: {python: [3.10]}\nstages: [{name: a, exec: [x]}]\n");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Ids(*job), ElementsAre("7/3.10/a"));
}

// ---- Docker stage kinds.

TEST(ParseAndExpandDockerTest, DockerBuildSubstitutesEveryFieldPerCell) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(matrix:
  python: ["3.9", "3.10"]
  include:
    - {source_dir: /src/torch_musa}
stages:
  - name: base
    labels: [docker]
    env: {PY: "${python}"}
    timeout: 2h
    retries: 2
    docker_build:
      context: ${source_dir}/dockerfiles
      dockerfile: ubuntu/dockerfile.py${python}
      build_args: {PYTHON_VERSION: "${python}", PLAIN: x}
      tags: ["127.0.0.1:5000/torch_musa-base:py${python}", "base:latest"]
      push: true
      target: stage-${python}
      network: net-${python}
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Ids(*job), ElementsAre("7/3.9/base", "7/3.10/base"));
  for (const auto& [id, py] : std::vector<std::pair<std::string, std::string>>{
           {"7/3.9/base", "3.9"}, {"7/3.10/base", "3.10"}}) {
    SCOPED_TRACE(id);
    const v1::StageSpec& run = Find(*job, id).spec().run();
    ASSERT_EQ(run.kind_case(), v1::StageSpec::kDockerBuild);
    const v1::DockerBuildStage& b = run.docker_build();
    EXPECT_EQ(b.context(), "/src/torch_musa/dockerfiles");
    EXPECT_EQ(b.dockerfile(), "ubuntu/dockerfile.py" + py);
    EXPECT_THAT(b.build_args(),
                UnorderedElementsAre(Pair("PYTHON_VERSION", py), Pair("PLAIN", "x")));
    EXPECT_THAT(b.tags(), ElementsAre("127.0.0.1:5000/torch_musa-base:py" + py, "base:latest"));
    EXPECT_TRUE(b.push());
    EXPECT_EQ(b.target(), "stage-" + py);
    EXPECT_EQ(b.network(), "net-" + py);
    // Stage-level fields work as for exec.
    EXPECT_THAT(run.env(), UnorderedElementsAre(Pair("PY", py)));
    EXPECT_THAT(run.labels(), ElementsAre("docker"));
    EXPECT_EQ(run.timeout_seconds(), 7200);
    EXPECT_EQ(run.retries(), 2);
  }
}

TEST(ParseAndExpandDockerTest, DockerBuildContextInputNamesAJobInput) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(params: {context: "input:torch_musa"}
stages:
  - name: base
    docker_build: {context: "${context}", dockerfile: docker/Dockerfile, tags: [t]}
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  const v1::DockerBuildStage& b = job->tasks(0).spec().run().docker_build();
  EXPECT_EQ(b.context(), "");
  EXPECT_EQ(b.context_input(), "torch_musa");
  EXPECT_EQ(b.dockerfile(), "docker/Dockerfile");
  absl::StatusOr<v1::Job> bad = Parse(R"yaml(stages:
  - name: base
    docker_build: {context: "input:../etc", tags: [t]}
)yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("input name '../etc' must be"));
}

TEST(ParseAndExpandDockerTest, DockerRunSubstitutesEveryFieldPerCell) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(matrix:
  python: ["3.9", "3.10"]
  gpu: [mtgpu0]
  include:
    - {python: "3.9", shm: 80g}
    - {python: "3.10", shm: 64G}
stages:
  - name: test
    labels: ["gpu=mthreads"]
    env: {PYTHONUNBUFFERED: "1", PY: "${python}"}
    docker_run:
      image: "127.0.0.1:5000/x:py${python}"
      command: ["sh", "-c", "pytest -k py${python} > /home/ut_output.txt"]
      privileged: true
      shm_size: ${shm}
      devices: ["/dev/${gpu}", /dev/dri]
      mounts: ["/data/py${python}:/data", "/a:/b:ro", "/c:/d:rw"]
      network: none
      collect: ["/home/integration_test_output.txt", "/home/py${python}/ut_output.txt"]
      user: "1000"
      workdir: /home/${python}
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Ids(*job), ElementsAre("7/3.9-mtgpu0/test", "7/3.10-mtgpu0/test"));
  for (const auto& [id, py, shm] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"7/3.9-mtgpu0/test", "3.9", "80g"}, {"7/3.10-mtgpu0/test", "3.10", "64G"}}) {
    SCOPED_TRACE(id);
    const v1::StageSpec& run = Find(*job, id).spec().run();
    ASSERT_EQ(run.kind_case(), v1::StageSpec::kDockerRun);
    const v1::DockerRunStage& r = run.docker_run();
    EXPECT_EQ(r.image(), "127.0.0.1:5000/x:py" + py);
    EXPECT_THAT(r.command(),
                ElementsAre("sh", "-c", "pytest -k py" + py + " > /home/ut_output.txt"));
    EXPECT_TRUE(r.privileged());
    EXPECT_EQ(r.shm_size(), shm);
    EXPECT_THAT(r.devices(), ElementsAre("/dev/mtgpu0", "/dev/dri"));
    ASSERT_EQ(r.mounts_size(), 3);
    EXPECT_EQ(r.mounts(0).source(), "/data/py" + py);
    EXPECT_EQ(r.mounts(0).target(), "/data");
    EXPECT_FALSE(r.mounts(0).read_only());
    EXPECT_EQ(r.mounts(1).source(), "/a");
    EXPECT_EQ(r.mounts(1).target(), "/b");
    EXPECT_TRUE(r.mounts(1).read_only());
    EXPECT_EQ(r.mounts(2).source(), "/c");
    EXPECT_EQ(r.mounts(2).target(), "/d");
    EXPECT_FALSE(r.mounts(2).read_only());
    EXPECT_EQ(r.network(), "none");
    EXPECT_THAT(r.collect(), ElementsAre("/home/integration_test_output.txt",
                                         "/home/py" + py + "/ut_output.txt"));
    EXPECT_EQ(r.user(), "1000");
    EXPECT_EQ(r.workdir(), "/home/" + py);
    // The stage env is the container's env; the agent passes it on.
    EXPECT_THAT(run.env(), UnorderedElementsAre(Pair("PYTHONUNBUFFERED", "1"), Pair("PY", py)));
    EXPECT_THAT(run.labels(), ElementsAre("gpu=mthreads"));
  }
}

TEST(ParseAndExpandDockerTest, BuildRunPushChainWithNeedsAndWhen) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(matrix:
  variant: [dev, release]
  python: ["3.10"]
stages:
  - name: base
    docker_build:
      context: /ctx
      tags: ["reg/x:${variant}-py${python}"]
  - name: test
    needs: [base]
    docker_run: {image: "reg/x:${variant}-py${python}"}
  - name: push
    when: {variant: release}
    needs: [test]
    docker_push:
      images: ["reg/x:${variant}-py${python}", "reg/x:latest"]
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Ids(*job), ElementsAre("7/dev-3.10/base", "7/dev-3.10/test", "7/release-3.10/base",
                                     "7/release-3.10/test", "7/release-3.10/push"));
  const v1::Task& push = Find(*job, "7/release-3.10/push");
  EXPECT_THAT(Needs(push), ElementsAre("7/release-3.10/test"));
  EXPECT_THAT(Needs(Find(*job, "7/release-3.10/test")), ElementsAre("7/release-3.10/base"));
  ASSERT_EQ(push.spec().run().kind_case(), v1::StageSpec::kDockerPush);
  EXPECT_THAT(push.spec().run().docker_push().images(),
              ElementsAre("reg/x:release-py3.10", "reg/x:latest"));
  EXPECT_EQ(Find(*job, "7/dev-3.10/test").spec().run().docker_run().image(), "reg/x:dev-py3.10");
  EXPECT_THAT(Find(*job, "7/dev-3.10/base").spec().run().docker_build().tags(),
              ElementsAre("reg/x:dev-py3.10"));
}

TEST(ParseAndExpandDockerTest, Defaults) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(stages:
  - name: b
    docker_build: {context: ., tags: [t]}
  - name: r
    docker_run: {image: img}
  - name: p
    docker_push: {images: [img]}
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_EQ(job->tasks_size(), 3);
  const v1::StageSpec& b_run = job->tasks(0).spec().run();
  ASSERT_EQ(b_run.kind_case(), v1::StageSpec::kDockerBuild);
  const v1::DockerBuildStage& b = b_run.docker_build();
  EXPECT_EQ(b.context(), ".");
  EXPECT_EQ(b.dockerfile(), "");
  EXPECT_THAT(b.build_args(), IsEmpty());
  EXPECT_THAT(b.tags(), ElementsAre("t"));
  EXPECT_FALSE(b.push());
  EXPECT_EQ(b.target(), "");
  EXPECT_EQ(b.network(), "");
  EXPECT_THAT(b_run.env(), IsEmpty());
  EXPECT_EQ(b_run.timeout_seconds(), 0);
  EXPECT_EQ(b_run.retries(), 0);

  const v1::StageSpec& r_run = job->tasks(1).spec().run();
  ASSERT_EQ(r_run.kind_case(), v1::StageSpec::kDockerRun);
  const v1::DockerRunStage& r = r_run.docker_run();
  EXPECT_EQ(r.image(), "img");
  EXPECT_THAT(r.command(), IsEmpty());
  EXPECT_FALSE(r.privileged());
  EXPECT_EQ(r.shm_size(), "");
  EXPECT_THAT(r.devices(), IsEmpty());
  EXPECT_THAT(r.mounts(), IsEmpty());
  EXPECT_EQ(r.network(), "");
  EXPECT_THAT(r.collect(), IsEmpty());
  EXPECT_EQ(r.user(), "");
  EXPECT_EQ(r.workdir(), "");

  ASSERT_EQ(job->tasks(2).spec().run().kind_case(), v1::StageSpec::kDockerPush);
  EXPECT_THAT(job->tasks(2).spec().run().docker_push().images(), ElementsAre("img"));
}

TEST(ParseAndExpandDockerTest, BoolSpellingsAndShmSizeForms) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(stages:
  - {name: a, docker_build: {context: c, tags: [t], push: True}}
  - {name: b, docker_build: {context: c, tags: [t], push: false}}
  - {name: c, docker_run: {image: i, privileged: TRUE, shm_size: 512M}}
  - {name: d, docker_run: {image: i, privileged: False, shm_size: "1024"}}
  - {name: e, docker_run: {image: i, shm_size: 64k}}
  - {name: f, docker_run: {image: i, shm_size: 100B}}
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_TRUE(job->tasks(0).spec().run().docker_build().push());
  EXPECT_FALSE(job->tasks(1).spec().run().docker_build().push());
  EXPECT_TRUE(job->tasks(2).spec().run().docker_run().privileged());
  EXPECT_FALSE(job->tasks(3).spec().run().docker_run().privileged());
  // Sizes go to the agent as written.
  EXPECT_EQ(job->tasks(2).spec().run().docker_run().shm_size(), "512M");
  EXPECT_EQ(job->tasks(3).spec().run().docker_run().shm_size(), "1024");
  EXPECT_EQ(job->tasks(4).spec().run().docker_run().shm_size(), "64k");
  EXPECT_EQ(job->tasks(5).spec().run().docker_run().shm_size(), "100B");
}

TEST(ParseAndExpandDockerTest, DollarDollarBraceInDockerFields) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(matrix:
  py: ["3.10"]
stages:
  - name: a
    docker_build:
      context: /c
      build_args: {HOME_REF: "$${HOME}"}
      tags: ["x:${py}"]
  - name: b
    docker_run:
      image: "x:${py}"
      command: [sh, -c, "echo $${HOME} ${py}"]
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(job->tasks(0).spec().run().docker_build().build_args(),
              UnorderedElementsAre(Pair("HOME_REF", "${HOME}")));
  EXPECT_THAT(job->tasks(1).spec().run().docker_run().command(),
              ElementsAre("sh", "-c", "echo ${HOME} 3.10"));
}

// ---- Errors. Each names the file, the line (and where useful the column) and
// ---- the field path.

TEST(ParseAndExpandErrorTest, YamlSyntax) {
  constexpr absl::string_view kYaml = "stages:\n  - name: a\n    exec: [x\n";
  EXPECT_TRUE(IsError(Parse(kYaml), 4, "yaml", "syntax error"));
  EXPECT_TRUE(IsError(Parse("name: a: b\n"), 1, "yaml", "syntax error"));
}

TEST(ParseAndExpandErrorTest, UnquotedVariableInFlowListGetsAHint) {
  auto r = Parse("stages:\n  - name: a\n    exec: [echo ${x}]\n");
  EXPECT_TRUE(IsError(r, 3, "yaml", "quote strings that hold '${...}'"));
}

TEST(ParseAndExpandErrorTest, TopLevelMustBeAMapping) {
  EXPECT_TRUE(IsError(Parse("- name: a\n"), 1, "pipeline", "expected a mapping"));
  EXPECT_TRUE(IsError(Parse(""), 1, "pipeline", "empty"));
}

TEST(ParseAndExpandErrorTest, UnknownTopLevelField) {
  auto r = Parse("stages: [{name: a, exec: [x]}]\nmatrixx: {}\n");
  EXPECT_TRUE(
      IsError(r, 2, "matrixx",
              "unknown field 'matrixx' (allowed: name, matrix, params, secrets, env, stages, "
              "options, retention, inputs)",
              1));
}

TEST(ParseAndExpandErrorTest, UnknownStageField) {
  constexpr absl::string_view kYaml = R"yaml(stages:
  - name: a
    exec: [x]
    timout: 5
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 4, "stages[0].timout",
                      "unknown field 'timout' (allowed: name, when, needs, labels, exec, shell, "
                      "docker_build, docker_run, docker_push, env, timeout, retries, secrets, "
                      "gpus, collect, suites, gpu_arch)",
                      5));
}

TEST(ParseAndExpandErrorTest, DuplicateKey) {
  constexpr absl::string_view kYaml = "stages:\n  - name: a\n    exec: [x]\n    exec: [y]\n";
  EXPECT_TRUE(
      IsError(Parse(kYaml), 4, "stages[0].exec", "duplicate key 'exec' (first given on line 3)"));
}

TEST(ParseAndExpandErrorTest, ExecMustBeAList) {
  constexpr absl::string_view kYaml = "stages:\n  - name: a\n    exec: make all\n";
  EXPECT_TRUE(IsError(Parse(kYaml), 3, "stages[0].exec", "expected an argv list (use 'shell'", 11));
}

TEST(ParseAndExpandErrorTest, WrongTypes) {
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, exec: [x], retries: x}\n"), 2,
                      "stages[0].retries", "expected a whole number, got 'x'"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, exec: [x], timeout: soon}\n"), 2,
                      "stages[0].timeout", "'soon' is not a duration"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, exec: [x], needs: a}\n"), 2, "stages[0].needs",
                      "expected a list of stage names, got a string"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, exec: [x], env: [A]}\n"), 2, "stages[0].env",
                      "expected a mapping, got a list"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, exec: [x, [y]]}\n"), 2, "stages[0].exec[1]",
                      "expected a string, got a list"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, exec: [x], labels: {a: b}}\n"), 2,
                      "stages[0].labels", "expected a list of labels, got a mapping"));
  EXPECT_TRUE(
      IsError(Parse("stages:\n  - name: a\n    exec:\n"), 3, "stages[0].exec", "got nothing"));
  EXPECT_TRUE(IsError(Parse("matrix: {python: \"3.8\"}\nstages: [{name: a, exec: [x]}]\n"), 1,
                      "matrix.python", "expected a list of values, got a string"));
}

TEST(ParseAndExpandErrorTest, BadEnvName) {
  auto r = Parse("env: {\"A B\": x}\nstages: [{name: a, exec: [x]}]\n");
  EXPECT_TRUE(IsError(r, 1, "env.A B", "not a valid environment variable name"));
}

TEST(ParseAndExpandErrorTest, MissingStages) {
  EXPECT_TRUE(IsError(Parse("name: x\n"), 1, "stages", "missing"));
}

TEST(ParseAndExpandErrorTest, EmptyStages) {
  EXPECT_TRUE(IsError(Parse("name: x\nstages: []\n"), 2, "stages", "at least one stage"));
}

TEST(ParseAndExpandErrorTest, DuplicateStageName) {
  constexpr absl::string_view kYaml = R"yaml(stages:
  - name: a
    exec: [x]
  - name: b
    exec: [x]
  - name: a
    exec: [y]
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 6, "stages[2].name",
                      "duplicate stage name 'a' (first defined on line 2)"));
}

TEST(ParseAndExpandErrorTest, BadStageName) {
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: build step\n    exec: [x]\n"), 2, "stages[0].name",
                      "stage name 'build step'", 11));
  EXPECT_TRUE(
      IsError(Parse("stages:\n  - exec: [x]\n"), 2, "stages[0]", "missing required field 'name'"));
}

TEST(ParseAndExpandErrorTest, NeedsUnknownStage) {
  constexpr absl::string_view kYaml = R"yaml(stages:
  - name: base
    exec: [x]
  - name: dev
    exec: [x]
  - name: test
    needs: [base, dve]
    exec: [x]
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 7, "stages[2].needs[1]",
                      "unknown stage 'dve' (stages are: base, dev, test)", 19));
}

TEST(ParseAndExpandErrorTest, NeedsUnknownStageThroughVariable) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  variant: [dev, release]
stages:
  - name: dev
    exec: [x]
  - name: test
    needs: ["${variant}"]
    exec: [x]
)yaml";
  auto r = Parse(kYaml);
  EXPECT_TRUE(IsError(r, 7, "stages[1].needs[0]", "unknown stage 'release'"));
  EXPECT_THAT(Message(r), HasSubstr("from '${variant}' in cell (release)"));
}

TEST(ParseAndExpandErrorTest, NeedsStageThatDoesNotRunInTheCell) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  variant: [dev, release]
  python: ["3.8"]
stages:
  - name: base
    when: {variant: dev}
    exec: [x]
  - name: test
    needs: [base]
    exec: [x]
)yaml";
  auto r = Parse(kYaml);
  EXPECT_TRUE(
      IsError(r, 9, "stages[1].needs[0]", "stage 'base' does not run in cell (release, 3.8)"));
  EXPECT_THAT(Message(r), HasSubstr("'when'"));
  EXPECT_THAT(Message(r), HasSubstr("${variant}"));
}

TEST(ParseAndExpandErrorTest, StageNeedsItself) {
  constexpr absl::string_view kYaml = "stages:\n  - name: a\n    needs: [a]\n    exec: [x]\n";
  EXPECT_TRUE(IsError(Parse(kYaml), 3, "stages[0].needs[0]", "stage 'a' needs itself"));
}

TEST(ParseAndExpandErrorTest, TwoStageCycle) {
  constexpr absl::string_view kYaml = R"yaml(stages:
  - name: a
    needs: [b]
    exec: [x]
  - name: b
    needs: [a]
    exec: [x]
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 3, "stages[0].needs[0]", "dependency cycle: a -> b -> a"));
}

TEST(ParseAndExpandErrorTest, CycleBehindOtherStagesIsNamedFromItsFirstStage) {
  // `entry` leads into the cycle but is not on it; the message names only the
  // cycle, starting at its first stage in the file (c), at c's needs entry.
  constexpr absl::string_view kYaml = R"yaml(stages:
  - name: entry
    needs: [e]
    exec: [x]
  - name: ok
    exec: [x]
  - name: c
    needs: [ok, d]
    exec: [x]
  - name: d
    needs: [e]
    exec: [x]
  - name: e
    needs: [c]
    exec: [x]
)yaml";
  EXPECT_TRUE(
      IsError(Parse(kYaml), 8, "stages[2].needs[1]", "dependency cycle: c -> d -> e -> c", 17));
}

TEST(ParseAndExpandErrorTest, CycleOnlyInSomeCellsNamesTheCell) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  v: [b, c]
stages:
  - name: a
    needs: ["${v}"]
    exec: [x]
  - name: b
    exec: [x]
  - name: c
    needs: [a]
    exec: [x]
)yaml";
  // In cell (b), a needs b: fine. In cell (c), a needs c, which needs a.
  EXPECT_TRUE(
      IsError(Parse(kYaml), 5, "stages[0].needs[0]", "dependency cycle: a -> c -> a in cell (c)"));
}

TEST(ParseAndExpandErrorTest, StageNeedsItselfThroughAVariable) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  v: [a, b]
stages:
  - name: a
    exec: [x]
  - name: b
    needs: ["${v}"]
    exec: [x]
)yaml";
  // In cell (a), b needs a: fine. In cell (b), b needs itself.
  EXPECT_TRUE(IsError(Parse(kYaml), 7, "stages[1].needs[0]",
                      "stage 'b' needs itself (from '${v}' in cell (b))"));
}

TEST(ParseAndExpandErrorTest, EmptyAxis) {
  constexpr absl::string_view kYaml =
      "matrix:\n  variant: [dev]\n  python: []\nstages: [{name: a, exec: [x]}]\n";
  EXPECT_TRUE(
      IsError(Parse(kYaml), 3, "matrix.python", "has no values, so the matrix has no cells"));
}

TEST(ParseAndExpandErrorTest, EveryCellExcluded) {
  constexpr absl::string_view kYaml = R"yaml(stages: [{name: a, exec: [x]}]
matrix:
  variant: [dev, release]
  exclude: [{variant: dev}, {variant: release}]
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 2, "matrix", "matrix has no cells"));
}

TEST(ParseAndExpandErrorTest, StageRunsInNoCell) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  variant: [dev, release]
  python: ["3.8", "3.9"]
  exclude: [{variant: release, python: "3.9"}]
stages:
  - name: a
    exec: [x]
  - name: b
    when: {variant: release, python: "3.9"}
    exec: [x]
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 9, "stages[1].when",
                      "stage 'b' runs in no matrix cell: check its 'when'"));
}

TEST(ParseAndExpandErrorTest, WhenKeyIsNotAnAxis) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  variant: [dev]
stages:
  - name: a
    when: {varaint: dev}
    exec: [x]
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 5, "stages[0].when.varaint",
                      "'varaint' is not a matrix axis (axes: variant)", 12));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, when: {v: x}, exec: [x]}\n"), 2,
                      "stages[0].when.v", "the pipeline has no matrix axes"));
}

TEST(ParseAndExpandErrorTest, WhenValueIsNotOnTheAxis) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  python: ["3.8", "3.9"]
stages:
  - name: a
    when: {python: ["3.9", "3.12"]}
    exec: [x]
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 5, "stages[0].when.python[1]",
                      "'3.12' is not a value of axis 'python' (values: 3.8, 3.9)"));
}

TEST(ParseAndExpandErrorTest, ExcludeKeyIsNotAnAxis) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  variant: [dev, release]
  exclude:
    - {variant: dev, pyhton: "3.8"}
stages: [{name: a, exec: [x]}]
)yaml";
  EXPECT_TRUE(
      IsError(Parse(kYaml), 4, "matrix.exclude[0].pyhton", "'pyhton' is not a matrix axis"));
}

TEST(ParseAndExpandErrorTest, ExcludeValueIsNotOnTheAxis) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  variant: [dev, release]
  exclude:
    - {variant: relase}
stages: [{name: a, exec: [x]}]
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 4, "matrix.exclude[0].variant",
                      "'relase' is not a value of axis 'variant' (values: dev, release)"));
}

TEST(ParseAndExpandErrorTest, IncludeNewCellMustGiveEveryAxis) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  variant: [dev, release]
  python: ["3.8"]
  include:
    - {python: "3.8", torch: "2.0"}
    - {python: "3.11", torch: "2.2"}
stages: [{name: a, exec: [x]}]
)yaml";
  EXPECT_TRUE(
      IsError(Parse(kYaml), 6, "matrix.include[1]",
              "entry matches no matrix cell, so it would add a new cell, which needs a value "
              "for every axis (missing: variant)"));
}

TEST(ParseAndExpandErrorTest, BadCellValue) {
  EXPECT_TRUE(
      IsError(Parse("matrix:\n  os: [ubuntu, \"deb ian\"]\nstages: [{name: a, exec: [x]}]\n"), 2,
              "matrix.os[1]", "matrix value 'deb ian' may hold only", 16));
  constexpr absl::string_view kInclude = R"yaml(matrix:
  os: [ubuntu]
  include: [{os: "a/b"}]
stages: [{name: a, exec: [x]}]
)yaml";
  EXPECT_TRUE(IsError(Parse(kInclude), 3, "matrix.include[0].os", "matrix value 'a/b'"));
}

TEST(ParseAndExpandErrorTest, CellsWithTheSameTaskId) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  a: [x-y, x]
  b: [z, y-z]
stages: [{name: a, exec: [x]}]
)yaml";
  EXPECT_TRUE(
      IsError(Parse(kYaml), 1, "matrix", "cells (x-y, z) and (x, y-z) have the same task id"));
}

TEST(ParseAndExpandErrorTest, BothExecAndShell) {
  constexpr absl::string_view kYaml = "stages:\n  - name: a\n    exec: [x]\n    shell: y\n";
  EXPECT_TRUE(IsError(Parse(kYaml), 4, "stages[0]", "has both 'exec' and 'shell'"));
}

TEST(ParseAndExpandErrorTest, NoKind) {
  constexpr absl::string_view kYaml = "stages:\n  - name: a\n    retries: 1\n";
  EXPECT_TRUE(IsError(Parse(kYaml), 2, "stages[0]",
                      "stage 'a' needs one of 'exec' (an argv list), 'shell' (a /bin/sh script), "
                      "'docker_build', 'docker_run' or 'docker_push'"));
}

TEST(ParseAndExpandErrorTest, EmptyExecAndEmptyShell) {
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    exec: []\n"), 3, "stages[0].exec",
                      "argv list is empty"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    shell: \" \"\n"), 3, "stages[0].shell",
                      "script is empty"));
}

TEST(ParseAndExpandErrorTest, NegativeRetries) {
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    exec: [x]\n    retries: -1\n"), 4,
                      "stages[0].retries", "must be 0 or more", 14));
}

TEST(ParseAndExpandErrorTest, NonPositiveTimeout) {
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    exec: [x]\n    timeout: 0\n"), 4,
                      "stages[0].timeout", "must be positive"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    exec: [x]\n    timeout: -5m\n"), 4,
                      "stages[0].timeout", "must be positive"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    exec: [x]\n    timeout: 1500ms\n"), 4,
                      "stages[0].timeout", "whole number of seconds"));
}

TEST(ParseAndExpandErrorTest, InvalidLabel) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  gpu: [s4000]
stages:
  - name: a
    labels: [docker, "=${gpu}"]
    exec: [x]
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 5, "stages[0].labels[1]", "label '=s4000' has an empty key"));
}

TEST(ParseAndExpandErrorTest, UnknownVariable) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  variant: [dev]
  python: ["3.8"]
stages:
  - name: a
    exec: [sh, -c, "echo ${pyton}"]
)yaml";
  auto r = Parse(kYaml);
  // Column of the '${' itself, inside the quoted scalar.
  EXPECT_TRUE(IsError(r, 6, "stages[0].exec[2]", "unknown variable 'pyton'", 26));
  EXPECT_THAT(Message(r), HasSubstr("known: variant, python"));
}

TEST(ParseAndExpandErrorTest, UnknownVariableWithoutMatrix) {
  auto r = Parse("env:\n  A: \"${x}\"\nstages: [{name: a, exec: [x]}]\n");
  EXPECT_TRUE(IsError(r, 2, "env.A", "unknown variable 'x' (known: none"));
}

TEST(ParseAndExpandErrorTest, UnknownVariableInsideLiteralBlockPointsAtItsLine) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  python: ["3.8"]
stages:
  - name: a
    shell: |
      set -e
      echo ${python}
      make PY=${pyhton}
      echo done
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 8, "stages[0].shell", "unknown variable 'pyhton'", 15));
}

TEST(ParseAndExpandErrorTest, UnterminatedVariable) {
  auto r = Parse("stages:\n  - name: a\n    exec: [echo, \"${oops\"]\n");
  EXPECT_TRUE(IsError(r, 3, "stages[0].exec[1]", "unterminated '${'"));
}

TEST(ParseAndExpandErrorTest, MoreThanOneDocument) {
  auto r = Parse("stages: [{name: a, exec: [x]}]\n---\nstages: [{name: b, exec: [x]}]\n");
  EXPECT_TRUE(IsError(r, 3, "pipeline", "2 YAML documents"));
}

TEST(ParseAndExpandErrorTest, ErrorsCarryTheGivenFileName) {
  absl::StatusOr<v1::Job> r = ParseAndExpand("stages: []\n", "other/dir/x.yml", "1");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(Message(r), ::testing::StartsWith("other/dir/x.yml:1:9: stages: "));
}

// ---- Docker stage errors.

TEST(ParseAndExpandDockerErrorTest, MissingRequiredFields) {
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    docker_build:\n      tags: [t]\n"), 3,
                      "stages[0].docker_build", "missing required field 'context'", 5));
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    docker_build:\n      context: .\n"), 3,
                      "stages[0].docker_build", "missing required field 'tags'", 5));
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    docker_run:\n      privileged: true\n"), 3,
                      "stages[0].docker_run", "missing required field 'image'", 5));
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    docker_push: {}\n"), 3,
                      "stages[0].docker_push", "missing required field 'images'", 5));
}

TEST(ParseAndExpandDockerErrorTest, EmptyRequiredLists) {
  constexpr absl::string_view kTags = R"yaml(stages:
  - name: a
    docker_build:
      context: .
      tags: []
)yaml";
  EXPECT_TRUE(
      IsError(Parse(kTags), 5, "stages[0].docker_build.tags", "must list at least one tag", 13));
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    docker_push:\n      images: []\n"), 4,
                      "stages[0].docker_push.images", "must list at least one image", 15));
}

TEST(ParseAndExpandDockerErrorTest, EmptyValues) {
  constexpr absl::string_view kTag = R"yaml(stages:
  - name: a
    docker_build:
      context: .
      tags: [ok, ""]
)yaml";
  EXPECT_TRUE(IsError(Parse(kTag), 5, "stages[0].docker_build.tags[1]", "must not be empty", 18));
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    docker_build: {context: \"\", tags: [t]}\n"),
                      3, "stages[0].docker_build.context", "must not be empty"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    docker_push: {images: [\"\"]}\n"), 3,
                      "stages[0].docker_push.images[0]", "must not be empty"));
  EXPECT_TRUE(
      IsError(Parse("stages:\n  - name: a\n    docker_run: {image: i, devices: [/dev/a, \"\"]}\n"),
              3, "stages[0].docker_run.devices[1]", "must not be empty"));
  // A variable that expands to nothing is caught too, and the message names the cell.
  constexpr absl::string_view kImage = R"yaml(matrix:
  v: [a]
  include: [{img: ""}]
stages:
  - name: a
    docker_run:
      image: "${img}"
)yaml";
  EXPECT_TRUE(IsError(Parse(kImage), 7, "stages[0].docker_run.image",
                      "must not be empty (from '${img}' in cell (a))"));
}

TEST(ParseAndExpandDockerErrorTest, BadBool) {
  constexpr absl::string_view kYaml = R"yaml(stages:
  - name: a
    docker_build:
      context: .
      tags: [t]
      push: yes please
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 6, "stages[0].docker_build.push",
                      "expected true or false, got 'yes please'", 13));
  // YAML 1.1 spellings that yaml-cpp would take as bools are refused.
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, docker_run: {image: i, privileged: yes}}\n"), 2,
                      "stages[0].docker_run.privileged", "expected true or false, got 'yes'"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, docker_run: {image: i, privileged: [true]}}\n"),
                      2, "stages[0].docker_run.privileged", "expected true or false, got a list"));
}

TEST(ParseAndExpandDockerErrorTest, BadShmSize) {
  auto shm = [](absl::string_view size) {
    return Parse(absl::StrCat("stages:\n  - name: a\n    docker_run:\n      image: i\n",
                              "      shm_size: \"", size, "\"\n"));
  };
  EXPECT_TRUE(IsError(shm("80x"), 5, "stages[0].docker_run.shm_size",
                      "'80x' is not a size (write digits with an optional unit b, k, m or g", 17));
  EXPECT_TRUE(IsError(shm("g"), 5, "stages[0].docker_run.shm_size", "'g' is not a size"));
  EXPECT_TRUE(IsError(shm("1.5g"), 5, "stages[0].docker_run.shm_size", "'1.5g' is not a size"));
  EXPECT_TRUE(IsError(shm("-1g"), 5, "stages[0].docker_run.shm_size", "'-1g' is not a size"));
  EXPECT_TRUE(IsError(shm("0"), 5, "stages[0].docker_run.shm_size",
                      "size must be greater than 0, got '0'"));
  EXPECT_TRUE(
      IsError(shm("99999999999999999999"), 5, "stages[0].docker_run.shm_size", "is too large"));
  EXPECT_TRUE(IsError(shm("9000000000g"), 5, "stages[0].docker_run.shm_size", "is too large"));
}

TEST(ParseAndExpandDockerErrorTest, BadMount) {
  auto mount = [](absl::string_view m) {
    return Parse(absl::StrCat("stages:\n  - name: a\n    docker_run:\n      image: i\n",
                              "      mounts: [\"/ok:/ok\", \"", m, "\"]\n"));
  };
  constexpr absl::string_view kField = "stages[0].docker_run.mounts[1]";
  EXPECT_TRUE(IsError(mount("/a"), 5, kField, "mount '/a' is not SRC:DST or SRC:DST:ro|rw", 27));
  EXPECT_TRUE(IsError(mount("/a:/b:ro:x"), 5, kField, "is not SRC:DST or SRC:DST:ro|rw"));
  EXPECT_TRUE(IsError(mount("/a:/b:rx"), 5, kField,
                      "mount '/a:/b:rx': mode must be 'ro' or 'rw', got 'rx'"));
  EXPECT_TRUE(IsError(mount("data:/b"), 5, kField,
                      "mount 'data:/b': host path 'data' is not an absolute path"));
  EXPECT_TRUE(IsError(mount("/a:b"), 5, kField,
                      "mount '/a:b': container path 'b' is not an absolute path"));
  EXPECT_TRUE(IsError(mount(":/b"), 5, kField, "host path '' is not an absolute path"));
  EXPECT_TRUE(IsError(
      Parse("stages:\n  - name: a\n    docker_run:\n      image: i\n      mounts: /a:/b\n"), 5,
      "stages[0].docker_run.mounts", "expected a list of SRC:DST[:ro|rw] mounts, got a string"));
}

TEST(ParseAndExpandDockerErrorTest, RelativeMountThroughAVariableNamesTheCell) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  v: [a, b]
  include:
    - {v: a, dir: /src}
    - {v: b, dir: src}
stages:
  - name: a
    docker_run:
      image: i
      mounts: ["${dir}:/src"]
)yaml";
  // Cell (a) is fine; cell (b) makes the host path relative.
  EXPECT_TRUE(IsError(Parse(kYaml), 10, "stages[0].docker_run.mounts[0]",
                      "host path 'src' is not an absolute path (from '${dir}:/src' in cell (b))"));
}

TEST(ParseAndExpandDockerErrorTest, RelativeCollectAndWorkdir) {
  constexpr absl::string_view kCollect = R"yaml(stages:
  - name: a
    docker_run:
      image: i
      collect: [/home/ut_output.txt, ut_output.txt]
)yaml";
  EXPECT_TRUE(IsError(Parse(kCollect), 5, "stages[0].docker_run.collect[1]",
                      "'ut_output.txt' is not an absolute path", 38));
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    docker_run: {image: i, collect: [\"\"]}\n"),
                      3, "stages[0].docker_run.collect[0]", "'' is not an absolute path"));
  EXPECT_TRUE(
      IsError(Parse("stages:\n  - name: a\n    docker_run:\n      image: i\n      workdir: home\n"),
              5, "stages[0].docker_run.workdir", "'home' is not an absolute path", 16));
}

TEST(ParseAndExpandDockerErrorTest, UnknownFieldsInsideDockerKinds) {
  constexpr absl::string_view kRun = R"yaml(stages:
  - name: a
    docker_run:
      image: i
      priviledged: true
)yaml";
  EXPECT_TRUE(IsError(Parse(kRun), 5, "stages[0].docker_run.priviledged",
                      "unknown field 'priviledged' (allowed: image, command, privileged, shm_size, "
                      "devices, mounts, network, collect, user, workdir)",
                      7));
  EXPECT_TRUE(
      IsError(Parse("stages:\n  - name: a\n    docker_build: {context: ., tags: [t], args: {}}\n"),
              3, "stages[0].docker_build.args",
              "unknown field 'args' (allowed: context, dockerfile, build_args, tags, push, target, "
              "network)"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    docker_push: {images: [i], tags: [t]}\n"), 3,
                      "stages[0].docker_push.tags",
                      "unknown field 'tags' (allowed: images, registry_auth)"));
}

TEST(ParseAndExpandDockerErrorTest, TwoKindsInOneStage) {
  constexpr absl::string_view kYaml = R"yaml(stages:
  - name: a
    exec: [x]
    docker_run:
      image: i
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 4, "stages[0]",
                      "stage 'a' has both 'exec' and 'docker_run'; give exactly one of exec, "
                      "shell, docker_build, docker_run, docker_push",
                      5));
  constexpr absl::string_view kBuildPush = R"yaml(stages:
  - name: b
    docker_build: {context: ., tags: [t]}
    docker_push: {images: [t]}
)yaml";
  EXPECT_TRUE(IsError(Parse(kBuildPush), 4, "stages[0]",
                      "stage 'b' has both 'docker_build' and 'docker_push'"));
}

TEST(ParseAndExpandDockerErrorTest, WrongTypes) {
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    docker_run: \"ubuntu:22.04\"\n"), 3,
                      "stages[0].docker_run", "expected a mapping, got a string", 17));
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    docker_build:\n"), 3,
                      "stages[0].docker_build", "expected a mapping, got nothing"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, docker_run: {image: i, command: \"make\"}}\n"),
                      2, "stages[0].docker_run.command", "expected an argv list, got a string"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, docker_run: {image: [i]}}\n"), 2,
                      "stages[0].docker_run.image", "expected a string, got a list"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, docker_push: {images: i}}\n"), 2,
                      "stages[0].docker_push.images", "expected a list of images, got a string"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, docker_build: {context: ., tags: t}}\n"), 2,
                      "stages[0].docker_build.tags", "expected a list of tags, got a string"));
}

TEST(ParseAndExpandDockerErrorTest, EmptyCommand) {
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    docker_run: {image: i, command: []}\n"), 3,
                      "stages[0].docker_run.command",
                      "argv list is empty (leave 'command' out to run the image's CMD)"));
}

TEST(ParseAndExpandDockerErrorTest, BadBuildArgName) {
  constexpr absl::string_view kYaml = R"yaml(stages:
  - name: a
    docker_build:
      context: .
      tags: [t]
      build_args: {OK: x, 1BAD: y}
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 6, "stages[0].docker_build.build_args.1BAD",
                      "'1BAD' is not a valid build argument name", 27));
}

TEST(ParseAndExpandDockerErrorTest, UnknownVariableInDockerField) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  python: ["3.8"]
stages:
  - name: a
    docker_run:
      image: "reg/x:py${pyton}"
)yaml";
  auto r = Parse(kYaml);
  EXPECT_TRUE(IsError(r, 6, "stages[0].docker_run.image", "unknown variable 'pyton'", 23));
  EXPECT_THAT(Message(r), HasSubstr("known: python"));
}

}  // namespace
}  // namespace musafarm::pipeline
