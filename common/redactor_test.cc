#include "common/redactor.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "gtest/gtest.h"

namespace musafarm {
namespace {

using Secrets = std::vector<std::string>;

// The whole text at once, by the definition: leftmost, then longest.
std::string Reference(const std::string& text, Secrets secrets) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    size_t best = 0;
    for (const std::string& s : secrets) {
      if (!s.empty() && s.size() > best && text.compare(i, s.size(), s) == 0) best = s.size();
    }
    if (best == 0) {
      out += text[i++];
    } else {
      out += kRedacted;
      i += best;
    }
  }
  return out;
}

// Feeds `text` in chunks that end at `cuts` (ascending), then finishes.
std::string Chunked(const std::string& text, const Secrets& secrets,
                    const std::vector<size_t>& cuts) {
  Redactor r(secrets);
  std::string out;
  size_t from = 0;
  for (size_t cut : cuts) {
    out += r.Feed(absl::string_view(text).substr(from, cut - from));
    from = cut;
  }
  out += r.Feed(absl::string_view(text).substr(from));
  out += r.Finish();
  return out;
}

TEST(RedactorTest, NoSecretsIsTheIdentity) {
  std::string all_bytes;
  for (int b = 0; b < 256; ++b) all_bytes += static_cast<char>(b);
  Redactor none;
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.Feed(all_bytes), all_bytes);
  EXPECT_EQ(none.Finish(), "");
  // Empty values are ignored: they would otherwise match everywhere.
  Redactor empty({"", ""});
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.Feed("abc"), "abc");
  EXPECT_EQ(RedactString(all_bytes, {""}), all_bytes);
  EXPECT_EQ(RedactString("", {"x"}), "");
}

TEST(RedactorTest, ReplacesEveryOccurrence) {
  EXPECT_EQ(
      RedactString("url=https://tok@host/x and again https://tok@host/x.", {"https://tok@host/x"}),
      "url=*** and again ***.");
  EXPECT_EQ(RedactString("aaaa", {"aa"}), "******");
  EXPECT_EQ(RedactString("one two three", {"one", "three"}), "*** two ***");
  EXPECT_EQ(RedactString("one", {"one", "one"}), "***");  // duplicates count once
}

TEST(RedactorTest, EmitsAtOnceUnlessTheTailCouldStartASecret) {
  Redactor r({"secret"});
  EXPECT_EQ(r.Feed("plain text\n"), "plain text\n");
  EXPECT_EQ(r.pending(), 0u);
  EXPECT_EQ(r.Feed("line with se"), "line with ");  // "se" may start the secret
  EXPECT_EQ(r.pending(), 2u);
  EXPECT_EQ(r.Feed("cr"), "");
  EXPECT_EQ(r.Feed("et!"), "***!");
  EXPECT_EQ(r.Feed("s"), "");
  EXPECT_EQ(r.Feed("x"), "sx");  // not the secret after all: released as it was
  EXPECT_EQ(r.Feed("secre"), "");
  EXPECT_EQ(r.Finish(), "secre");  // the stream ended before the secret did
  // After Finish, a new stream.
  EXPECT_EQ(r.Feed("secret"), "***");
  EXPECT_EQ(r.Finish(), "");
}

TEST(RedactorTest, SecretSplitAcrossChunksAtEveryPosition) {
  const Secrets secrets = {"hunter2", "https://user:pw@example.com/repo.git"};
  const std::string text =
      "clone https://user:pw@example.com/repo.git\npassword hunter2hunter2 hunter\n"
      "hunter2";
  const std::string want =
      "clone ***\npassword ****** hunter\n"
      "***";
  ASSERT_EQ(Reference(text, secrets), want);
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    EXPECT_EQ(Chunked(text, secrets, {cut}), want) << "cut at " << cut;
  }
  for (size_t a = 0; a <= text.size(); ++a) {
    for (size_t b = a; b <= text.size(); ++b) {
      ASSERT_EQ(Chunked(text, secrets, {a, b}), want) << "cuts at " << a << ", " << b;
    }
  }
  std::vector<size_t> every_byte;
  for (size_t i = 1; i < text.size(); ++i) every_byte.push_back(i);
  EXPECT_EQ(Chunked(text, secrets, every_byte), want);
}

TEST(RedactorTest, OverlappingSecretsLeftmostWins) {
  // "abcd" starts first; "cdef" overlaps it and is not matched.
  EXPECT_EQ(RedactString("xabcdefx", {"cdef", "abcd"}), "x***efx");
  // Overlap inside one secret's repetitions.
  EXPECT_EQ(RedactString("abababa", {"aba"}), "***b***");
  // The later secret still matches when it does not overlap the earlier one.
  EXPECT_EQ(RedactString("abcd cdef", {"cdef", "abcd"}), "*** ***");
  const std::string text = "zzabcdefabcdzzcdef";
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    EXPECT_EQ(Chunked(text, {"abcd", "cdef"}, {cut}), "zz***ef***zz***") << cut;
  }
}

TEST(RedactorTest, SecretThatIsAPrefixOfAnotherLongestWins) {
  const Secrets secrets = {"tok", "token123"};
  EXPECT_EQ(RedactString("token123", secrets), "***");
  EXPECT_EQ(RedactString("token12", secrets), "***en12");
  EXPECT_EQ(RedactString("tok", secrets), "***");
  EXPECT_EQ(RedactString("xtoken1234 tokens", secrets), "x***4 ***ens");
  // Streaming: "tok" is a match, but "token123" may still follow, so it waits.
  Redactor r(secrets);
  EXPECT_EQ(r.Feed("a tok"), "a ");
  EXPECT_EQ(r.Feed("en1"), "");
  EXPECT_EQ(r.Feed("23"), "***");
  EXPECT_EQ(r.Feed("tok"), "");
  EXPECT_EQ(r.Feed("!"), "***!");
  EXPECT_EQ(r.Feed("toke"), "");
  EXPECT_EQ(r.Finish(), "***e");  // at the end only full matches count
  const std::string text = "token123 tok token12 toktoken123";
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    EXPECT_EQ(Chunked(text, secrets, {cut}), Reference(text, secrets)) << cut;
  }
}

TEST(RedactorTest, BinaryDataPassesThroughByteExact) {
  std::string data;
  for (int round = 0; round < 4; ++round) {
    for (int b = 0; b < 256; ++b) data += static_cast<char>(b);
  }
  // A secret with a NUL and high bytes, planted in the middle.
  const std::string secret("\x00\xff\xfe-k\x80", 6);
  const std::string text = data + secret + data;
  const std::string want = data + std::string(kRedacted) + data;
  for (size_t cut : {size_t{0}, data.size() - 1, data.size() + 1, data.size() + 3, text.size()}) {
    EXPECT_EQ(Chunked(text, {secret}, {cut}), want) << cut;
  }
  // Secrets that never occur: every byte is kept, including the tail Finish releases.
  const std::string unmatched = data + std::string("\x00\xff", 2);
  EXPECT_EQ(Chunked(unmatched, {secret, "\x01\x02\x04"}, {100, 513}), unmatched);
}

TEST(RedactorTest, RandomChunkingMatchesTheWholeTextDefinition) {
  std::mt19937 rng(20240611);
  const std::string alphabet = "abc";
  auto random_string = [&](size_t min_len, size_t max_len) {
    std::string s(std::uniform_int_distribution<size_t>(min_len, max_len)(rng), ' ');
    for (char& c : s) c = alphabet[std::uniform_int_distribution<size_t>(0, 2)(rng)];
    return s;
  };
  for (int round = 0; round < 2000; ++round) {
    Secrets secrets;
    for (int k = std::uniform_int_distribution<int>(1, 3)(rng); k > 0; --k) {
      secrets.push_back(random_string(1, 5));
    }
    const std::string text = random_string(0, 40);
    std::vector<size_t> cuts;
    for (size_t i = 1; i < text.size(); ++i) {
      if (std::uniform_int_distribution<int>(0, 3)(rng) == 0) cuts.push_back(i);
    }
    ASSERT_EQ(Chunked(text, secrets, cuts), Reference(text, secrets))
        << "text '" << text << "' secrets " << ::testing::PrintToString(secrets);
  }
}

TEST(RedactorTest, RedactsAFileInPlaceAcrossItsReadChunks) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("mf-redact-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "out.txt").string();
  const std::string secret = "https://tok@host/repo";
  // The secret straddles the 64 KiB read boundary.
  const std::string text = std::string(64 * 1024 - 5, 'x') + secret + "\nend " + secret;
  std::ofstream(path, std::ios::binary) << text;
  ASSERT_TRUE(RedactFile(path, {secret}).ok());
  std::ifstream in(path, std::ios::binary);
  std::stringstream got;
  got << in.rdbuf();
  EXPECT_EQ(got.str(), std::string(64 * 1024 - 5, 'x') + "***\nend ***");
  EXPECT_FALSE(std::filesystem::exists(path + ".part"));
  // No secrets: nothing to do, not even a rewrite.
  EXPECT_TRUE(RedactFile((dir / "missing").string(), {}).ok());
  EXPECT_FALSE(RedactFile((dir / "missing").string(), {secret}).ok());
  EXPECT_FALSE(RedactFile(dir.string(), {secret}).ok());  // a directory is not redacted
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace musafarm
