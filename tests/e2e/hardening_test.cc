// End-to-end tests of issue 12's hardening through the real binaries: params
// that are data in shell scripts, secrets masked in every encoding and kept
// out of files, file modes.
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/harness.h"

namespace musafarm::e2e {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class HardeningTest : public ::testing::Test {
 protected:
  void StartFarm(const std::vector<std::string>& coordinator_flags = {}) {
    farm_.StartCoordinator(coordinator_flags);
    farm_.StartAgent("agent-1", {"os=linux"}, 2);
    ASSERT_TRUE(WaitFor([&] { return farm_.Agents().size() == 1; })) << "agent did not register";
  }
  // Every path under `root` whose file name is one of `names`.
  static std::vector<std::string> FindNamed(const std::string& root,
                                            const std::vector<std::string>& names) {
    std::vector<std::string> found;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec); it != fs::end(it); it.increment(ec)) {
      for (const std::string& n : names) {
        if (it->path().filename() == n) found.push_back(it->path());
      }
    }
    return found;
  }
  Farm farm_;
};

// Issue 12 acceptance: a param with $(...), ';' and backquotes reaches the
// shell as text. The script cds to a directory of the test's choosing first,
// so a relative `touch` would land in a known place; the agent's work dir
// (where tasks start) is searched too.
TEST_F(HardeningTest, ParamWithShellSyntaxIsPrintedNotRun) {
  StartFarm();
  const std::string cwd = farm_.dir() + "/cwd";
  fs::create_directories(cwd);
  const std::string param = "x$(touch F); touch G `touch H`";
  const std::string file = farm_.WritePipeline("p.yaml", absl::StrCat(R"yaml(params: {P: plain}
stages:
  - name: echo
    shell: |
      cd ')yaml", cwd, R"yaml(' && echo ${P}
      echo "in double quotes: ${P}"
      echo 'in single quotes: ${P}'
)yaml"));
  CliResult r = farm_.Cli({"submit", file, "-p", "P=" + param, "--watch"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  CliResult log = farm_.Cli({"logs", "1/echo"});
  ASSERT_EQ(log.exit_code, 0) << log.err;
  EXPECT_EQ(log.out, absl::StrCat(param, "\nin double quotes: ", param,
                                  "\nin single quotes: ", param, "\n"));
  for (const char* name : {"F", "G", "H"}) {
    EXPECT_FALSE(fs::exists(fs::path(cwd) / name)) << cwd << "/" << name;
  }
  EXPECT_THAT(FindNamed(farm_.dir(), {"F", "G", "H"}), ::testing::IsEmpty());
}

// Percent-encoding of every byte outside [A-Za-z0-9-._~], as curl and
// Python's quote(v, safe="") write it; the test's own, not the farm's.
std::string UrlEncode(const std::string& v, bool upper) {
  std::string out;
  for (unsigned char c : v) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += upper ? absl::StrFormat("%%%02X", c) : absl::StrFormat("%%%02x", c);
    }
  }
  return out;
}

// Every file under `root` that holds one of `needles`: "path: needle #i".
std::vector<std::string> FilesHolding(const std::string& root,
                                      const std::vector<std::string>& needles) {
  std::vector<std::string> found;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); it != fs::end(it); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const std::string content = ReadFile(it->path());
    for (size_t i = 0; i < needles.size(); ++i) {
      if (content.find(needles[i]) != std::string::npos) {
        found.push_back(absl::StrCat(it->path().string(), ": form #", i));
      }
    }
  }
  return found;
}

// A task's output carrying a secret URL, and what its stored log must be.
struct SecretOutput {
  std::vector<std::string> forms;  // plain, URL-encoded (upper, lower), password, password encoded
  std::string perl;                // the program that prints it, holding no secret
  std::string redacted;            // the output with each form as ***
};

// 100 forms at random places in random filler, cut into chunks at random
// offsets (inside forms too), each chunk to stdout or stderr at random. The
// program gets the URL from the environment and computes the forms itself, so
// no file of the test holds a secret. Seeded: a failure replays.
SecretOutput PlanSecretOutput(const std::string& url, const std::string& env_name,
                              const std::string& go_file, uint32_t seed) {
  SecretOutput s;
  const size_t colon = url.find(':', url.find("://") + 3);
  const std::string password_encoded = url.substr(colon + 1, url.find('@') - colon - 1);
  std::string password;
  for (size_t i = 0; i < password_encoded.size(); ++i) {
    if (password_encoded[i] == '%') {
      password += static_cast<char>(std::stoi(password_encoded.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      password += password_encoded[i];
    }
  }
  s.forms = {url, UrlEncode(url, true), UrlEncode(url, false), password, password_encoded};
  std::mt19937 rng(seed);
  auto below = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  std::vector<std::string> parts;  // filler text, or "\x01<k>" for form k
  std::string text;
  for (int i = 0; i < 100; ++i) {
    std::string filler;
    for (size_t n = 1 + below(40); n > 0; --n) filler += "abcdefghij klmnop\n"[below(18)];
    const size_t k = below(s.forms.size());
    parts.push_back(filler);
    parts.push_back(absl::StrCat("\x01", k));
    text += filler + s.forms[k];
    s.redacted += filler + "***";
  }
  parts.push_back("\nend\n");
  text += "\nend\n";
  s.redacted += "\nend\n";
  std::vector<size_t> cuts;
  for (size_t at = 1 + below(60); at < text.size(); at += 1 + below(60)) cuts.push_back(at);
  cuts.push_back(text.size());
  std::vector<std::string> streams;
  for (size_t i = 0; i < cuts.size(); ++i) streams.push_back(below(2) ? "1" : "2");

  std::vector<std::string> quoted;
  for (const std::string& p : parts) {
    quoted.push_back(p[0] == '\x01' ? p.substr(1)
                                     : absl::StrCat("'", absl::StrReplaceAll(p, {{"'", ""}}), "'"));
  }
  s.perl = absl::StrCat(R"perl(use strict; use IO::Handle;
my $url = $ENV{')perl", env_name, R"perl('};
sub enc { my ($v, $fmt) = @_; join '', map { /[A-Za-z0-9._~-]/ ? $_ : sprintf($fmt, ord) } split //, $v }
my ($pe) = $url =~ m{://[^:/@]*:([^@/]*)@};
(my $pd = $pe) =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
my @forms = ($url, enc($url, '%%%02X'), enc($url, '%%%02x'), $pd, $pe);
my $text = join '', map { /^\d+$/ ? $forms[$_] : $_ } ()perl",
                        absl::StrJoin(quoted, ", "), R"perl();
my @cuts = ()perl", absl::StrJoin(cuts, ", "), R"perl();
my @streams = ()perl", absl::StrJoin(streams, ", "), R"perl();
STDOUT->autoflush(1); STDERR->autoflush(1);
my $from = 0;
for my $i (0 .. $#cuts) {
  my $fh = $streams[$i] == 1 ? \*STDOUT : \*STDERR;
  syswrite($fh, substr($text, $from, $cuts[$i] - $from));
  $from = $cuts[$i];
  select(undef, undef, undef, 0.002);  # separate reads of the pipe, most of the time
}
# Held while the test looks at the coordinator's files.
until (-e ')perl", go_file, R"perl(') { select(undef, undef, undef, 0.05); }
)perl");
  return s;
}

// Issue 12 acceptance: a URL secret printed at 100 random places, as itself,
// URL-encoded and as its password, split at random across chunks and across
// stdout and stderr, reaches no log, CLI output or file of the farm.
TEST_F(HardeningTest, SecretInEveryEncodingNeverLeavesTheTask) {
  StartFarm();
  const std::string env_name = "MF_E2E_REGISTRY_URL";
  const std::string url = "https://bot:s3cr3t%2F9f3c1d%40z%20y@registry.example.com/v2/";
  const std::string go = farm_.dir() + "/go";
  const SecretOutput out = PlanSecretOutput(url, env_name, go, /*seed=*/1207);
  const std::string program = farm_.dir() + "/print.pl";
  WriteFile(program, out.perl);
  const std::string file = farm_.WritePipeline(
      "s.yaml", absl::StrCat("secrets: [", env_name, "]\nstages:\n  - name: t\n    secrets: [",
                             env_name, "]\n    exec: [perl, '", program, "']\n"));
  // Only the CLI gets the value (the agents started before it was set).
  ::setenv(env_name.c_str(), url.c_str(), 1);
  CliResult submit = farm_.Cli({"submit", file, "--secret", env_name});
  ::unsetenv(env_name.c_str());
  ASSERT_EQ(submit.exit_code, 0) << submit.out << submit.err;
  ASSERT_TRUE(farm_.WaitForTaskState("1", "t", v1::TASK_STATE_RUNNING));
  ASSERT_TRUE(WaitFor([&] { return farm_.Cli({"logs", "1/t"}).out == out.redacted; }))
      << farm_.Cli({"logs", "1/t"}).out;
  // While the job holds the secret: not in clear in the database, its WAL or
  // anything else in the data dir (the values are sealed, AES-256-GCM).
  EXPECT_THAT(FilesHolding(farm_.data_dir(), out.forms), ::testing::IsEmpty());
  WriteFile(go, "");
  ASSERT_TRUE(farm_.WaitForJobEnd("1"));

  std::vector<std::pair<std::string, CliResult>> shown = {
      {"logs", farm_.Cli({"logs", "1/t"})},
      {"logs -f", farm_.Cli({"logs", "-f", "1/t"})},
      {"watch --logs", farm_.Cli({"watch", "1", "--logs"})},
      {"status", farm_.Cli({"status", "1"})},
      {"status task", farm_.Cli({"status", "1/t"})},
      {"status -o json", farm_.Cli({"status", "1", "-o", "json"})},
      {"watch -o json", farm_.Cli({"watch", "1", "--logs", "-o", "json"})},
      {"jobs -o json", farm_.Cli({"jobs", "-o", "json"})},
  };
  EXPECT_EQ(shown[0].second.out, out.redacted);
  EXPECT_EQ(shown[1].second.out, out.redacted);
  EXPECT_THAT(shown[2].second.out, HasSubstr("***"));
  for (const auto& [what, r] : shown) {
    EXPECT_EQ(r.exit_code, 0) << what << ": " << r.err;
    for (size_t i = 0; i < out.forms.size(); ++i) {
      EXPECT_EQ(r.out.find(out.forms[i]), std::string::npos) << what << " shows form #" << i;
      EXPECT_EQ(r.err.find(out.forms[i]), std::string::npos) << what << " shows form #" << i;
    }
  }
  // Every file of the farm: the coordinator's data dir (database, WAL, logs),
  // the agent's work dir and spool, the processes' logs, the CLI's outputs.
  EXPECT_THAT(FilesHolding(farm_.dir(), out.forms), ::testing::IsEmpty());
}

unsigned ModeOf(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

// Issue 12: the data and work dirs are 0700; the database, its WAL and
// shared-memory files, the secrets key, task logs and spooled output 0600;
// nothing the coordinator makes is open to group or others. Checked while a
// task runs (its spool file exists) and after.
TEST_F(HardeningTest, DataAndWorkDirsAndTheirFilesAreOwnerOnly) {
  StartFarm();
  const std::string go = farm_.dir() + "/go";
  const std::string file = farm_.WritePipeline(
      "m.yaml", absl::StrCat("stages:\n  - name: t\n    shell: \"echo out; until [ -e '", go,
                             "' ]; do sleep 0.05; done\"\n"));
  ASSERT_EQ(farm_.Cli({"submit", file}).exit_code, 0);
  ASSERT_TRUE(farm_.WaitForTaskState("1", "t", v1::TASK_STATE_RUNNING));
  ASSERT_TRUE(WaitFor([&] { return farm_.Cli({"logs", "1/t"}).out == "out\n"; }));
  const std::string data = farm_.data_dir();
  const std::string work = farm_.dir() + "/agent-agent-1";
  std::vector<std::string> spools;
  for (const auto& e : fs::directory_iterator(work + "/spool")) spools.push_back(e.path());
  ASSERT_FALSE(spools.empty());
  for (const std::string& f : spools) EXPECT_EQ(ModeOf(f), 0600u) << f;
  WriteFile(go, "");
  ASSERT_TRUE(farm_.WaitForJobEnd("1"));

  for (const std::string& d : {data, data + "/logs", work, work + "/tasks", work + "/spool"}) {
    EXPECT_EQ(ModeOf(d), 0700u) << d;
  }
  for (const std::string& f : {data + "/musafarm.db", data + "/musafarm.db-wal",
                               data + "/musafarm.db-shm", data + "/secrets.key"}) {
    EXPECT_EQ(ModeOf(f), 0600u) << f;
  }
  int task_logs = 0;
  for (const auto& e : fs::recursive_directory_iterator(data)) {
    EXPECT_EQ(ModeOf(e.path()) & 077, 0u) << e.path();
    if (e.is_regular_file() && absl::StrContains(e.path().string(), "/logs/")) {
      ++task_logs;
      EXPECT_EQ(ModeOf(e.path()), 0600u) << e.path();
    }
  }
  EXPECT_GT(task_logs, 0);
  // The coordinator said where the key it made is.
  EXPECT_THAT(farm_.coordinator()->Output(),
              HasSubstr("generated the key that encrypts job secrets at rest: " + data +
                        "/secrets.key"));
}

}  // namespace
}  // namespace musafarm::e2e
