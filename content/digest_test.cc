#include "content/digest.h"

#include <fstream>

#include "gtest/gtest.h"

namespace musafarm::content {
namespace {

// SHA-256 test vectors from FIPS 180-2.
TEST(DigestTest, KnownVectors) {
  EXPECT_EQ(DigestOf("").sha256(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  v1::Digest abc = DigestOf("abc");
  EXPECT_EQ(abc.sha256(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(abc.size_bytes(), 3);
}

TEST(DigestTest, HasherInPiecesEqualsWhole) {
  Hasher h;
  h.Update("a");
  h.Update("");
  h.Update("bc");
  EXPECT_EQ(h.FinishHex(), DigestOf("abc").sha256());
}

TEST(DigestTest, FileDigestEqualsBytesDigest) {
  const std::string path = ::testing::TempDir() + "/digest_file";
  std::string bytes(3 << 20, 'x');
  bytes[12345] = 'y';
  std::ofstream(path, std::ios::binary) << bytes;
  absl::StatusOr<v1::Digest> d = DigestOfFile(path);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->sha256(), DigestOf(bytes).sha256());
  EXPECT_EQ(d->size_bytes(), static_cast<int64_t>(bytes.size()));
  EXPECT_EQ(DigestOfFile(path + ".missing").status().code(), absl::StatusCode::kNotFound);
}

TEST(DigestTest, CheckDigestNamesWhatIsWrong) {
  EXPECT_TRUE(CheckDigest(DigestOf("x"), "d").ok());
  v1::Digest upper = DigestOf("x");
  upper.set_sha256("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855");
  absl::Status s = CheckDigest(upper, "digest 2");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("digest 2: sha256 must be 64 lowercase hex"), std::string::npos) << s;
  v1::Digest negative = DigestOf("x");
  negative.set_size_bytes(-1);
  EXPECT_NE(CheckDigest(negative, "d").message().find("negative"), std::string::npos);
  EXPECT_EQ(ShortDigest(DigestOf("abc")), "sha256:ba7816bf8f01/3");
}

}  // namespace
}  // namespace musafarm::content
