#include "agent/enrollment_client.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/time/clock.h"
#include "common/pki.h"
#include "gtest/gtest.h"

namespace musafarm::agent {
namespace {

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void Write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// A key and a certificate for it, signed by a throwaway CA.
struct Pair {
  std::string key;
  std::string cert;
};

class AgentPkiFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/agent-pki-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    paths_ = DefaultPkiPaths(dir_);
    const absl::Time now = absl::Now();
    absl::StatusOr<pki::Ca> ca = pki::MakeCa("test CA", now - absl::Hours(1), now + absl::Hours(1));
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = *ca;
  }
  Pair NewPair() {
    Pair p;
    p.key = *pki::GeneratePrivateKey();
    pki::IssueOptions o;
    o.common_name = "a";
    o.client = true;
    o.not_before = absl::Now() - absl::Hours(1);
    o.not_after = absl::Now() + absl::Hours(1);
    absl::StatusOr<std::string> cert = pki::SignCsr(ca_, *pki::MakeCsr(p.key, "a"), o);
    EXPECT_TRUE(cert.ok()) << cert.status();
    p.cert = cert.value_or("");
    return p;
  }
  bool LoadedPairMatches() {
    return pki::KeyMatchesCertificate(Read(paths_.key), Read(paths_.cert)).value_or(false);
  }

  std::string dir_;
  AgentPkiPaths paths_;
  pki::Ca ca_;
};

TEST_F(AgentPkiFilesTest, WritesAMatchingPairWithAPrivateKeyAndNoLeftover) {
  const Pair p = NewPair();
  ASSERT_TRUE(WriteAgentPki(paths_, p.key, p.cert, ca_.cert_pem).ok());
  EXPECT_EQ(Read(paths_.key), p.key);
  EXPECT_EQ(Read(paths_.cert), p.cert);
  EXPECT_EQ(Read(paths_.ca), ca_.cert_pem);
  EXPECT_FALSE(std::filesystem::exists(paths_.key + ".next"));
  struct stat st {};
  ASSERT_EQ(::stat(paths_.key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// A crash after the new certificate was written but before the key was moved
// into place: the recovered pair is the new one.
TEST_F(AgentPkiFilesTest, RecoveryFinishesAPairCutShortAfterTheCertificate) {
  const Pair old_pair = NewPair();
  ASSERT_TRUE(WriteAgentPki(paths_, old_pair.key, old_pair.cert, ca_.cert_pem).ok());
  const Pair renewed = NewPair();
  Write(paths_.key + ".next", renewed.key);
  Write(paths_.cert, renewed.cert);
  ASSERT_FALSE(LoadedPairMatches());

  ASSERT_TRUE(RecoverAgentPki(paths_).ok());
  EXPECT_TRUE(LoadedPairMatches());
  EXPECT_EQ(Read(paths_.key), renewed.key);
  EXPECT_FALSE(std::filesystem::exists(paths_.key + ".next"));
}

// A crash before the new certificate was written: the old pair stands and the
// orphaned key is dropped.
TEST_F(AgentPkiFilesTest, RecoveryDropsAKeyWhoseCertificateNeverCame) {
  const Pair old_pair = NewPair();
  ASSERT_TRUE(WriteAgentPki(paths_, old_pair.key, old_pair.cert, ca_.cert_pem).ok());
  Write(paths_.key + ".next", NewPair().key);

  ASSERT_TRUE(RecoverAgentPki(paths_).ok());
  EXPECT_EQ(Read(paths_.key), old_pair.key);
  EXPECT_TRUE(LoadedPairMatches());
  EXPECT_FALSE(std::filesystem::exists(paths_.key + ".next"));
  // Nothing left to do: a second run changes nothing.
  ASSERT_TRUE(RecoverAgentPki(paths_).ok());
  EXPECT_EQ(Read(paths_.key), old_pair.key);
}

}  // namespace
}  // namespace musafarm::agent
