#include "pipeline/shell_quote.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::pipeline {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

// Values that run code if pasted into a script unquoted, inside "..." or '...'.
const std::vector<std::string>& HostileValues() {
  static const auto* values = new std::vector<std::string>{
      "x$(touch F); touch G `touch H`",
      "it's",
      "a\"b",
      "back\\slash\\",
      "$HOME ${HOME}",
      "two\nlines; touch L",
      "*",
      "~",
      "-n",
      "' ; touch Q ; '",
      "\" ; touch D ; \"",
      "",
  };
  return *values;
}

// A script made of literal text with one value written at `marker`.
std::string Script(absl::string_view before, absl::string_view value, absl::string_view after,
                   absl::Status* status = nullptr) {
  ShellQuoter q;
  q.Literal(before);
  absl::StatusOr<std::string> v = q.Quote(value);
  if (status != nullptr) *status = v.status();
  if (!v.ok()) return "";
  q.Literal(after);
  return absl::StrCat(before, *v, after);
}

class ShellQuoteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(testing::TempDir()) /
           absl::StrCat("shell_quote_", testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  // Runs `script` with /bin/sh in an empty directory; returns its stdout.
  std::string Run(const std::string& script) {
    const fs::path file = dir_.parent_path() / (dir_.filename().string() + ".sh");
    std::ofstream(file) << script;
    const std::string cmd = absl::StrCat("cd '", dir_.string(), "' && /bin/sh '", file.string(), "'");
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
    return out;
  }
  // Nothing the values name was created: no command of theirs ran.
  std::vector<std::string> Created() {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename());
    return names;
  }
  // For each hostile value v, the script before + v + after prints exactly
  // prefix + v + suffix, and creates nothing.
  void ExpectEachReadsBack(absl::string_view before, absl::string_view after,
                           absl::string_view prefix, absl::string_view suffix) {
    for (const std::string& v : HostileValues()) {
      EXPECT_EQ(Run(Script(before, v, after)), absl::StrCat(prefix, v, suffix)) << v;
    }
    EXPECT_THAT(Created(), ::testing::IsEmpty());
  }
  fs::path dir_;
};

TEST_F(ShellQuoteTest, UnquotedValueIsOneWordOfExactlyItsBytes) {
  ExpectEachReadsBack("printf '[%s]\\n' ", "\n", "[", "]\n");
}

TEST_F(ShellQuoteTest, ValueInsideDoubleQuotesKeepsTheSurroundingText) {
  ExpectEachReadsBack("printf '%s\\n' \"a $$ ", " b\" | sed 's/^a [0-9]*/a/'\n", "a ", " b\n");
}

TEST_F(ShellQuoteTest, ValueInsideSingleQuotesComesOutRight) {
  ExpectEachReadsBack("printf '%s\\n' 'a $HOME ", " b'\n", "a $HOME ", " b\n");
}

TEST_F(ShellQuoteTest, ValueInsideCommandSubstitutionInDoubleQuotes) {
  ExpectEachReadsBack("printf '%s\\n' \"<$(printf '%s' \"(\"", "\")\")>\"\n", "<(", ")>\n");
}

TEST_F(ShellQuoteTest, CommentCannotBeEndedByAValue) {
  for (const std::string& v : HostileValues()) {
    EXPECT_EQ(Run(Script("# about ", v, "\necho ok\n")), "ok\n") << v;
  }
  EXPECT_THAT(Created(), ::testing::IsEmpty());
}

TEST_F(ShellQuoteTest, HereDocumentsTakeValuesOnOneLine) {
  for (const std::string& v : HostileValues()) {
    if (v.find('\n') != std::string::npos) continue;
    EXPECT_EQ(Run(Script("cat <<EOF | sed 's/^[0-9]* //'\n$$ <", v, ">\nEOF\n")),
              absl::StrCat("<", v, ">\n"))
        << v;
    EXPECT_EQ(Run(Script("cat <<-'END'\n\t$HOME <", v, ">\n\tEND\necho after\n")),
              absl::StrCat("$HOME <", v, ">\nafter\n"))
        << v;
  }
  EXPECT_THAT(Created(), ::testing::IsEmpty());
}

TEST_F(ShellQuoteTest, HereDocumentRefusesLineBreaksAndItsDelimiter) {
  absl::Status s;
  Script("cat <<EOF\n", "a\ntouch X", "\nEOF\n", &s);
  EXPECT_THAT(s.message(), HasSubstr("line break cannot be written into the here-document <<EOF"));
  Script("cat <<EOF\n", "EOF", "\nEOF\n", &s);
  EXPECT_THAT(s.message(), HasSubstr("could end the here-document <<EOF early"));
  // The same value after the here-document ended is an ordinary word.
  EXPECT_EQ(Run(Script("cat <<EOF\nx\nEOF\nprintf '%s\\n' ", "EOF", "\n")), "x\nEOF\n");
}

TEST_F(ShellQuoteTest, PlainValuesAreWrittenAsTheyAre) {
  EXPECT_TRUE(IsPlainShellWord("3.8"));
  EXPECT_TRUE(IsPlainShellWord("registry.example.com:5000/img-base:py3.8_x@sha256=a,b%c+d"));
  EXPECT_TRUE(IsPlainShellWord(""));
  EXPECT_FALSE(IsPlainShellWord("a b"));
  EXPECT_FALSE(IsPlainShellWord("~"));
  EXPECT_EQ(Script("echo \"base ", "3.8", " done\""), "echo \"base 3.8 done\"");
  EXPECT_EQ(Script("echo ", "3.8", ""), "echo 3.8");
  EXPECT_EQ(Script("echo $((", "3", " + 1))"), "echo $((3 + 1))");
  EXPECT_EQ(Script("echo `echo ", "3", "`"), "echo `echo 3`");
}

TEST_F(ShellQuoteTest, RefusesWhereQuotingCannotHold) {
  const std::string v = "x$(touch F)";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"echo `echo ", "inside `...`"},
      {"echo $((1 + ", "inside $((...))"},
      {"echo ${HOME:-", "inside a shell ${...}"},
      {"echo \\", "right after a backslash"},
      {"echo \"\\", "right after a backslash"},
      {"cat <<", "in a here-document's delimiter"},
  };
  for (const auto& [before, where] : cases) {
    absl::Status s;
    Script(before, v, "", &s);
    EXPECT_THAT(s.message(), HasSubstr(where)) << before;
  }
}

TEST_F(ShellQuoteTest, TracksQuotesAcrossEscapesAndNesting) {
  // An escaped quote does not open a quote; "$(" nests a new unquoted level,
  // "'" inside double quotes is literal; after all of them the value is
  // unquoted again.
  const std::string before =
      "printf '%s|' \\' \"it's $(echo \")\") \\\" \" '\"' $(( (1+2) )) ${HOME:+h} # \n"
      "printf '%s\\n' ";
  for (const std::string& v : HostileValues()) {
    const std::string out = Run(Script(before, v, "\n"));
    EXPECT_THAT(out, ::testing::EndsWith(absl::StrCat("|", v, "\n"))) << v;
  }
  EXPECT_THAT(Created(), ::testing::IsEmpty());
}

}  // namespace
}  // namespace musafarm::pipeline
