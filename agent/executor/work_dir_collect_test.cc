#include "agent/executor/work_dir_collect.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class WorkDirCollectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("mf-collect-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(root_ / "work" / "reports");
    std::filesystem::create_directories(root_ / "outside");
    Write(root_ / "outside" / "secret.txt", "not yours");
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  static void Write(const std::filesystem::path& p, const std::string& text) {
    std::ofstream(p) << text;
  }
  static std::string Read(const std::string& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  std::vector<CollectedFile> Collect(std::vector<std::string> paths) {
    google::protobuf::RepeatedPtrField<std::string> list(paths.begin(), paths.end());
    return CollectFromWorkDir(work(), list, [&](const std::string& line) { said_.push_back(line); });
  }
  std::string work() const { return (root_ / "work").string(); }
  std::filesystem::path root_;
  std::vector<std::string> said_;
};

TEST_F(WorkDirCollectTest, CopiesFilesIntoArtifactsWithUniqueNames) {
  Write(root_ / "work" / "reports" / "junit.xml", "<testsuite/>");
  Write(root_ / "work" / "junit.xml", "second");
  std::vector<CollectedFile> got =
      Collect({"reports/junit.xml", "./junit.xml", work() + "/reports/junit.xml"});
  ASSERT_EQ(got.size(), 3u) << ::testing::PrintToString(said_);
  EXPECT_EQ(got[0].name, "junit.xml");
  EXPECT_EQ(got[0].source, "reports/junit.xml");
  EXPECT_EQ(got[0].host_path, work() + "/artifacts/junit.xml");
  EXPECT_EQ(Read(got[0].host_path), "<testsuite/>");
  EXPECT_EQ(got[1].name, "junit-2.xml");
  EXPECT_EQ(Read(got[1].host_path), "second");
  EXPECT_EQ(got[2].name, "junit-3.xml");
  EXPECT_THAT(said_, IsEmpty());
}

TEST_F(WorkDirCollectTest, NeverLeavesTheWorkDir) {
  std::filesystem::create_symlink(root_ / "outside" / "secret.txt", root_ / "work" / "link.txt");
  std::filesystem::create_directory_symlink(root_ / "outside", root_ / "work" / "out");
  std::filesystem::create_symlink("reports", root_ / "work" / "inner");
  std::vector<CollectedFile> got =
      Collect({"../outside/secret.txt", (root_ / "outside" / "secret.txt").string(), "link.txt",
               "out/secret.txt", "inner/x.xml", "missing.xml", "reports", "."});
  EXPECT_THAT(got, IsEmpty());
  ASSERT_EQ(said_.size(), 8u);
  EXPECT_THAT(said_[0], HasSubstr("leaves the task's work dir ('..')"));
  EXPECT_THAT(said_[1], HasSubstr("outside the task's work dir"));
  EXPECT_THAT(said_[2], HasSubstr("not collecting link.txt: is a symbolic link; collect follows none"));
  EXPECT_THAT(said_[3], HasSubstr("'out' in it is a symbolic link"));
  EXPECT_THAT(said_[4], HasSubstr("'inner' in it is a symbolic link"));
  EXPECT_THAT(said_[5], HasSubstr("missing.xml: not found in the work dir"));
  EXPECT_THAT(said_[6], HasSubstr("reports: not a regular file"));
  EXPECT_THAT(said_[7], HasSubstr("names the work dir itself"));
  EXPECT_FALSE(std::filesystem::exists(root_ / "work" / "artifacts" / "secret.txt"));
}

TEST_F(WorkDirCollectTest, NothingToCollectCreatesNothing) {
  EXPECT_THAT(Collect({}), IsEmpty());
  EXPECT_FALSE(std::filesystem::exists(root_ / "work" / "artifacts"));
}

}  // namespace
}  // namespace musafarm::agent
