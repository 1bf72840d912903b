#include "coordinator/secret_cipher.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

using ::testing::HasSubstr;

const std::string kKey(SecretCipher::kKeySize, '\x42');

TEST(SecretCipherTest, SealsWithAFreshNonceAndOpensOnlyInItsContext) {
  auto cipher = SecretCipher::Create(kKey);
  ASSERT_TRUE(cipher.ok()) << cipher.status();
  const std::string context = SecretContext("7", "URL");
  auto a = cipher->Seal("value-1234", context);
  auto b = cipher->Seal("value-1234", context);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(SecretCipher::IsSealed(*a));
  EXPECT_NE(*a, *b);  // random nonce per value
  EXPECT_EQ(a->find("value-1234"), std::string::npos);
  EXPECT_EQ(*cipher->Open(*a, context), "value-1234");
  // Moved to another row, changed by one bit, or opened with another key: refused.
  EXPECT_EQ(cipher->Open(*a, SecretContext("8", "URL")).status().code(),
            absl::StatusCode::kDataLoss);
  std::string flipped = *a;
  flipped[flipped.size() / 2] ^= 1;
  EXPECT_EQ(cipher->Open(flipped, context).status().code(), absl::StatusCode::kDataLoss);
  auto other = SecretCipher::Create(std::string(SecretCipher::kKeySize, 'x'));
  EXPECT_THAT(other->Open(*a, context).status().message(), HasSubstr("does not decrypt"));
  // The empty value seals too.
  EXPECT_EQ(*cipher->Open(*cipher->Seal("", context), context), "");
}

TEST(SecretCipherTest, ClearValuesAndBadKeysAreTold) {
  EXPECT_FALSE(SecretCipher::IsSealed("https://u:p@h/"));
  EXPECT_FALSE(SecretCipher::IsSealed(std::string(SecretCipher::kSealedMagic)));
  EXPECT_THAT(SecretCipher::Create("short").status().message(),
              HasSubstr("secrets key must be 32 bytes, got 5"));
}

}  // namespace
}  // namespace musafarm::coordinator
