#include "agent/host/image_pruner.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/private_dockerd.h"
#include "tests/fakes/fake_clock.h"

namespace musafarm::agent {
namespace {

namespace fs = std::filesystem;
using Argv = std::vector<std::string>;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Id(char c) { return absl::StrCat("sha256:", std::string(64, c)); }

// What the fake daemon holds about one image.
struct FakeImage {
  char id = 'a';  // the id is 64 times this hex digit
  std::string created = "2023-11-01T10:00:00.123456789Z";
  int64_t size = 1000;
  std::vector<std::string> tags;
  std::vector<std::string> digests;
  std::map<std::string, std::string> labels = {{"musafarm.farm", "testfarm"}};
};

FakeImage Img(char id, std::string created, int64_t size, std::vector<std::string> tags,
              std::vector<std::string> digests = {},
              std::map<std::string, std::string> labels = {{"musafarm.farm", "testfarm"}}) {
  FakeImage img;
  img.id = id;
  img.created = std::move(created);
  img.size = size;
  img.tags = std::move(tags);
  img.digests = std::move(digests);
  img.labels = std::move(labels);
  return img;
}

std::string JsonList(const std::vector<std::string>& v) {
  std::vector<std::string> q;
  for (const std::string& s : v) q.push_back(absl::StrCat("\"", s, "\""));
  return absl::StrCat("[", absl::StrJoin(q, ","), "]");
}

// `image inspect --format={{json .}}`'s line for `img` (the fields the pruner
// reads, among others it must ignore).
std::string InspectJson(const FakeImage& img) {
  std::vector<std::string> labels;
  for (const auto& [k, v] : img.labels) labels.push_back(absl::StrCat("\"", k, "\":\"", v, "\""));
  return absl::StrCat(
      "{\"Id\":\"", Id(img.id), "\",\"RepoTags\":", JsonList(img.tags),
      ",\"RepoDigests\":", JsonList(img.digests), ",\"Parent\":\"\",\"Created\":\"", img.created,
      "\",\"ContainerConfig\":{\"Labels\":null},\"Config\":{\"Env\":[\"PATH=/bin\"],"
      "\"Labels\":",
      labels.empty() ? "null" : absl::StrCat("{", absl::StrJoin(labels, ","), "}"),
      "},\"Architecture\":\"amd64\",\"Size\":", img.size, ",\"VirtualSize\":", img.size,
      ",\"Metadata\":{\"LastTagTime\":\"", img.created, "\"}}");
}

// ---------------------------------------------------------------------------
// Unit tests against a fake CLI: a bash script that records each call's argv
// (NUL-separated, one file per call) and DOCKER_HOST, and answers from a fake
// image store in files: $D/img/<hex> (inspect JSON), $D/tags/<hex> (one tag a
// line), $D/rmfail/<ref with /:@ as _> (the daemon's refusal of `image rm REF`),
// $D/ps (`ps` output). `image ls` lists every image, each id once per tag,
// whatever the filter says: the pruner must check labels itself.

class PrunerFakeDockerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           absl::StrCat("mf-prunefake-", ::getpid(), "-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "img");
    fs::create_directories(dir_ / "tags");
    fs::create_directories(dir_ / "rmfail");
    WriteFake({});
  }
  void TearDown() override { fs::remove_all(dir_); }

  void WriteFake(std::map<std::string, std::string> bodies) {
    std::map<std::string, std::string> b = {
        {"image ls",
         "for f in \"$D\"/img/*; do [ -f \"$f\" ] || continue; h=$(basename \"$f\");"
         " echo \"sha256:$h\"; [ -s \"$D/tags/$h\" ] && echo \"sha256:$h\"; done; true"},
        {"image inspect",
         "fmt=$3; shift 3; rc=0\n"
         "    for id in \"$@\"; do h=${id#sha256:}\n"
         "      if [ -f \"$D/img/$h\" ]; then\n"
         "        if [ \"$fmt\" = '--format={{.Id}}' ]; then echo \"sha256:$h\"; else cat "
         "\"$D/img/$h\"; echo; fi\n"
         "      else echo \"Error: No such image: $id\" >&2; rc=1; fi\n"
         "    done; exit $rc"},
        {"image rm",
         "shift 2; rc=0\n"
         "    for ref in \"$@\"; do k=$(printf %s \"${ref#sha256:}\" | tr '/:@' '___')\n"
         "      if [ -f \"$D/rmfail/$k\" ]; then cat \"$D/rmfail/$k\" >&2; rc=1; continue; fi\n"
         "      h=${ref#sha256:}\n"
         "      if [ -f \"$D/img/$h\" ]; then rm -f \"$D/img/$h\" \"$D/tags/$h\"; echo \"Deleted: "
         "$ref\"; continue; fi\n"
         "      f=$(grep -lx -- \"$ref\" \"$D\"/tags/* 2>/dev/null | head -n1)\n"
         "      if [ -z \"$f\" ]; then echo \"Error: No such image: $ref\" >&2; rc=1; continue; "
         "fi\n"
         "      grep -vx -- \"$ref\" \"$f\" > \"$f.new\"; mv \"$f.new\" \"$f\"; echo \"Untagged: "
         "$ref\"\n"
         "      if [ ! -s \"$f\" ]; then h=$(basename \"$f\"); rm -f \"$D/img/$h\" \"$f\"; echo "
         "\"Deleted: sha256:$h\"; fi\n"
         "    done; exit $rc"},
        {"ps", "cat \"$D/ps\" 2>/dev/null; true"},
        {"builder prune", "echo 'ID RECLAIMABLE SIZE'; echo 'Total reclaimed space: 1.5GB'"},
    };
    for (auto& [k, v] : bodies) b[k] = v;
    std::string script = absl::StrCat(
        "#!/bin/bash\n"
        "D='",
        dir_.string(),
        "'\n"
        "n=$(( $(cat \"$D/count\" 2>/dev/null || echo 0) + 1 ))\n"
        "echo \"$n\" > \"$D/count\"\n"
        "printf '%s\\0' \"$@\" > \"$D/call.$n\"\n"
        "printf 'DOCKER_HOST=%s\\n' \"${DOCKER_HOST-unset}\" > \"$D/env.$n\"\n"
        "case \"$1 $2\" in\n");
    for (const auto& [k, v] : b) {
      absl::StrAppend(&script, "  '", k, "'", k.find(' ') == std::string::npos ? "*" : "",
                      ")\n    ", v, "\n    ;;\n");
    }
    absl::StrAppend(&script, "  *) echo \"fake docker: unknown $1 $2\" >&2; exit 99 ;;\nesac\n");
    const fs::path fake = dir_ / "docker";
    std::ofstream(fake) << script;
    fs::permissions(fake, fs::perms::owner_all);
  }

  void Add(const FakeImage& img) {
    const std::string hex(64, img.id);
    std::ofstream(dir_ / "img" / hex) << InspectJson(img);
    std::ofstream tags(dir_ / "tags" / hex);
    for (const std::string& t : img.tags) tags << t << "\n";
  }
  bool Exists(char id) { return fs::exists(dir_ / "img" / std::string(64, id)); }
  int Count() {
    int n = 0;
    for (const auto& e : fs::directory_iterator(dir_ / "img")) n += e.is_regular_file();
    return n;
  }
  // The daemon refuses `image rm REF` with `answer`.
  void Refuse(const std::string& ref, const std::string& answer) {
    std::string key(absl::StripPrefix(ref, "sha256:"));
    for (char& c : key) {
      if (c == '/' || c == ':' || c == '@') c = '_';
    }
    std::ofstream(dir_ / "rmfail" / key) << answer << "\n";
  }

  PrunerOptions Options() {
    PrunerOptions o;
    o.cli = (dir_ / "docker").string();
    o.docker_host = "unix:///fake/docker.sock";
    o.farm = "testfarm";
    o.agent = "agent-1";
    o.helper_timeout = absl::Seconds(10);
    o.clock = &clock_;
    return o;
  }

  std::vector<Argv> Calls() {
    std::vector<Argv> calls;
    for (int n = 1; fs::exists(dir_ / absl::StrCat("call.", n)); ++n) {
      Argv argv = absl::StrSplit(ReadFile(dir_ / absl::StrCat("call.", n)), '\0');
      if (!argv.empty() && argv.back().empty()) argv.pop_back();
      calls.push_back(argv);
    }
    return calls;
  }
  // The `image rm` calls' arguments after "image rm".
  std::vector<std::string> Removals() {
    std::vector<std::string> out;
    for (const Argv& c : Calls()) {
      if (c.size() >= 3 && c[0] == "image" && c[1] == "rm") {
        out.push_back(absl::StrJoin(c.begin() + 2, c.end(), " "));
      }
    }
    return out;
  }

  static std::vector<std::string> RemovedIds(const PruneReport& r) {
    std::vector<std::string> ids;
    for (const PrunedImage& p : r.removed) ids.push_back(p.id);
    return ids;
  }

  static bool Never() { return false; }

  fs::path dir_;
  testing::FakeClock clock_;  // 2023-11-14, after every image's Created
};

TEST_F(PrunerFakeDockerTest, RemovesLeastRecentlyUsedFirstTouchBeforeCreated) {
  Add(Img('a', "2023-11-01T10:00:00Z", 100, {"app/a:1"}));
  Add(Img('b', "2023-11-01T11:00:00Z", 200, {"app/b:1"}));
  Add(Img('c', "2023-11-01T12:00:00.5Z", 300, {}));  // dangling: an older build of a moved tag
  ImagePruner pruner(Options());
  pruner.Touch("app/a:1");  // a was created first but used last
  absl::StatusOr<PruneReport> r = pruner.Prune({}, Never);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(RemovedIds(*r), ElementsAre(Id('b'), Id('c'), Id('a')));
  EXPECT_EQ(r->image_bytes, 600);
  EXPECT_FALSE(r->enough);
  EXPECT_FALSE(r->build_cache_pruned);  // not opted in
  EXPECT_TRUE(r->skipped.empty());
  EXPECT_EQ(r->removed[0].tags, std::vector<std::string>{"app/b:1"});
  EXPECT_EQ(r->removed[2].last_used, clock_.Now());
  EXPECT_EQ(r->removed[0].last_used,
            absl::FromCivil(absl::CivilSecond(2023, 11, 1, 11, 0, 0), absl::UTCTimeZone()));
  const std::vector<Argv> calls = Calls();
  ASSERT_EQ(calls.size(), 5u);
  EXPECT_EQ(calls[0],
            (Argv{"image", "ls", "-q", "--no-trunc", "--filter=label=musafarm.farm=testfarm"}));
  EXPECT_EQ(calls[1], (Argv{"image", "inspect", "--format={{json .}}", Id('a'), Id('b'), Id('c')}));
  EXPECT_EQ(calls[2], (Argv{"image", "rm", Id('b')}));  // by id, never -f
  EXPECT_EQ(calls[3], (Argv{"image", "rm", Id('c')}));
  EXPECT_EQ(calls[4], (Argv{"image", "rm", Id('a')}));
  EXPECT_EQ(ReadFile(dir_ / "env.1"), "DOCKER_HOST=unix:///fake/docker.sock\n");
  EXPECT_THAT(r->Summary(), HasSubstr("removed 3 images"));
}

TEST_F(PrunerFakeDockerTest, TiesByCreatedThenId) {
  Add(Img('e', "2023-11-01T10:00:00Z", 1, {"x/e:1"}));
  Add(Img('d', "2023-11-01T10:00:00Z", 1, {"x/d:1"}));  // same Created as e: id order
  Add(Img('c', "2023-11-01T09:00:00Z", 1, {"x/c:1"}));
  Add(Img('b', "2023-11-01T08:00:00Z", 1, {"x/b:1"}));
  Add(Img('a', "2023-11-01T07:00:00Z", 1, {"x/a:1"}));
  ImagePruner pruner(Options());
  pruner.Touch("x/a:1");
  pruner.Touch("x/b:1");  // same Touch time as a: the older Created goes first
  absl::StatusOr<PruneReport> r = pruner.Prune({}, Never);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(RemovedIds(*r), ElementsAre(Id('c'), Id('d'), Id('e'), Id('a'), Id('b')));
}

TEST_F(PrunerFakeDockerTest, StopsAsSoonAsEnough) {
  Add(Img('a', "2023-11-01T10:00:00Z", 1, {"app/a:1"}));
  Add(Img('b', "2023-11-01T11:00:00Z", 1, {"app/b:1"}));
  Add(Img('c', "2023-11-01T12:00:00Z", 1, {"app/c:1"}));
  ImagePruner pruner(Options());
  absl::StatusOr<PruneReport> r = pruner.Prune({}, [&] { return Count() <= 2; });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->enough);
  EXPECT_THAT(RemovedIds(*r), ElementsAre(Id('a')));
  EXPECT_THAT(Removals(), ElementsAre(Id('a')));
  EXPECT_TRUE(Exists('b') && Exists('c'));
}

TEST_F(PrunerFakeDockerTest, EnoughAlreadyRunsNothing) {
  Add(Img('a', "2023-11-01T10:00:00Z", 1, {"app/a:1"}));
  ImagePruner pruner(Options());
  absl::StatusOr<PruneReport> r = pruner.Prune({}, [] { return true; });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->enough);
  EXPECT_TRUE(r->removed.empty());
  EXPECT_TRUE(Calls().empty());
}

TEST_F(PrunerFakeDockerTest, KeepMatchesAnyTagDigestOrId) {
  Add(Img('a', "2023-11-01T10:00:00Z", 1, {"reg:5000/app:dev", "reg:5000/app:latest"}));
  Add(Img('b', "2023-11-01T10:00:01Z", 1, {"busybox:latest"}));
  Add(Img('c', "2023-11-01T10:00:02Z", 1, {}, {"reg:5000/c@sha256:" + std::string(64, '9')}));
  Add(Img('d', "2023-11-01T10:00:03Z", 1, {"d:1"}));
  Add(Img('e', "2023-11-01T10:00:04Z", 1, {"e:1"}));
  Add(Img('f', "2023-11-01T10:00:05Z", 1, {"f:1"}));
  Add(Img('1', "2023-11-01T10:00:06Z", 1, {"gone:1"}));  // the only one not kept
  ImagePruner pruner(Options());
  const std::set<std::string> keep = {
      "reg:5000/app:latest",                        // any of its tags
      "docker.io/library/busybox",                  // normalized to busybox:latest
      "reg:5000/c@sha256:" + std::string(64, '9'),  // a digest
      Id('d'),                                      // the id
      std::string(64, 'e'),                         // the bare hex id
      std::string(12, 'f'),                         // a short id
      "nothing/here:1",                             // matches nothing
  };
  absl::StatusOr<PruneReport> r = pruner.Prune(keep, Never);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(RemovedIds(*r), ElementsAre(Id('1')));
  EXPECT_THAT(Removals(), ElementsAre(Id('1')));
}

TEST_F(PrunerFakeDockerTest, NeverRemovesAnImageNotLabelledForThisFarmAndAgent) {
  // The fake lists every image whatever the filter: the labels are checked on inspect.
  Add(Img('a', "2023-11-01T10:00:00Z", 1, {"operator/tool:1"}, {}, {}));  // no labels at all
  Add(Img('b', "2023-11-01T10:00:01Z", 1, {"other/farm:1"}, {}, {{"musafarm.farm", "otherfarm"}}));
  Add(Img('c', "2023-11-01T10:00:02Z", 1, {"other/agent:1"}, {},
          {{"musafarm.farm", "testfarm"}, {"musafarm.agent", "agent-2"}}));
  Add(Img('d', "2023-11-01T10:00:03Z", 1, {"near/miss:1"}, {}, {{"musafarm.farmx", "testfarm"}}));
  Add(Img('e', "2023-11-01T10:00:04Z", 1, {"ours/agent:1"}, {},
          {{"musafarm.farm", "testfarm"}, {"musafarm.agent", "agent-1"}}));
  Add(Img('f', "2023-11-01T10:00:05Z", 1, {"ours/legacy:1"}, {}, {{"musafarm.farm", "testfarm"}}));
  ImagePruner pruner(Options());
  absl::StatusOr<PruneReport> r = pruner.Prune({}, Never);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(RemovedIds(*r), ElementsAre(Id('e'), Id('f')));
  EXPECT_THAT(Removals(), ElementsAre(Id('e'), Id('f')));
  EXPECT_TRUE(Exists('a') && Exists('b') && Exists('c') && Exists('d'));
}

TEST_F(PrunerFakeDockerTest, RefusedRemovalIsASkipNotAnError) {
  Add(Img('a', "2023-11-01T10:00:00Z", 1, {"app/a:1"}));
  Add(Img('b', "2023-11-01T11:00:00Z", 1, {"app/b:1"}));
  Add(Img('c', "2023-11-01T12:00:00Z", 1, {"app/c:1"}));
  Refuse(Id('a'),
         "Error response from daemon: conflict: unable to delete aaaaaaaaaaaa (cannot be forced) "
         "- image is being used by running container 6e6a16384c8a");
  Refuse(Id('b'),
         "Error response from daemon: conflict: unable to delete bbbbbbbbbbbb (cannot be forced) "
         "- image has dependent child images");
  ImagePruner pruner(Options());
  absl::StatusOr<PruneReport> r = pruner.Prune({}, Never);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(RemovedIds(*r), ElementsAre(Id('c')));
  ASSERT_EQ(r->skipped.size(), 2u);
  EXPECT_EQ(r->skipped[0].id, Id('a'));
  EXPECT_THAT(r->skipped[0].reason, HasSubstr("used by running container"));
  EXPECT_THAT(r->skipped[1].reason, HasSubstr("dependent child images"));
  EXPECT_TRUE(r->interrupted.empty());
  EXPECT_THAT(Removals(), ElementsAre(Id('a'), Id('b'), Id('c')));  // no -f retry
  EXPECT_THAT(r->Summary(), HasSubstr("skipped 2"));
}

TEST_F(PrunerFakeDockerTest, ImageInSeveralRepositoriesIsUntaggedWhenNoContainerUsesIt) {
  Add(Img('a', "2023-11-01T10:00:00Z", 7, {"reg1/app:x", "reg2/app:x"}));
  Refuse(Id('a'),
         "Error response from daemon: conflict: unable to delete aaaaaaaaaaaa (must be forced) - "
         "image is referenced in multiple repositories");
  ImagePruner pruner(Options());
  absl::StatusOr<PruneReport> r = pruner.Prune({}, Never);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(RemovedIds(*r), ElementsAre(Id('a')));
  EXPECT_FALSE(Exists('a'));
  const std::vector<Argv> calls = Calls();
  ASSERT_EQ(calls.size(), 6u);
  EXPECT_EQ(calls[3], (Argv{"ps", "-a", "-q", "--no-trunc", "--filter=ancestor=" + Id('a')}));
  EXPECT_EQ(calls[4], (Argv{"image", "rm", "reg1/app:x", "reg2/app:x"}));
  EXPECT_EQ(calls[5], (Argv{"image", "inspect", "--format={{.Id}}", Id('a')}));
}

TEST_F(PrunerFakeDockerTest, ImageInSeveralRepositoriesWithAContainerIsSkippedUntagged) {
  Add(Img('a', "2023-11-01T10:00:00Z", 7, {"reg1/app:x", "reg2/app:x"}));
  Refuse(Id('a'),
         "Error response from daemon: conflict: unable to delete aaaaaaaaaaaa (must be forced) - "
         "image is referenced in multiple repositories");
  std::ofstream(dir_ / "ps") << std::string(64, '6') << "\n";
  ImagePruner pruner(Options());
  absl::StatusOr<PruneReport> r = pruner.Prune({}, Never);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->removed.empty());
  ASSERT_EQ(r->skipped.size(), 1u);
  EXPECT_THAT(r->skipped[0].reason, HasSubstr("used by container"));
  EXPECT_THAT(Removals(), ElementsAre(Id('a')));  // its tags stay
  EXPECT_EQ(ReadFile(dir_ / "tags" / std::string(64, 'a')), "reg1/app:x\nreg2/app:x\n");
}

TEST_F(PrunerFakeDockerTest, ImageGoneMeanwhileIsNeitherRemovedNorSkipped) {
  Add(Img('a', "2023-11-01T10:00:00Z", 1, {"app/a:1"}));
  Add(Img('b', "2023-11-01T11:00:00Z", 1, {"app/b:1"}));
  Refuse(Id('a'), "Error: No such image: " + Id('a'));
  ImagePruner pruner(Options());
  absl::StatusOr<PruneReport> r = pruner.Prune({}, Never);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(RemovedIds(*r), ElementsAre(Id('b')));
  EXPECT_TRUE(r->skipped.empty());
}

TEST_F(PrunerFakeDockerTest, ListFailureIsUnavailableAndRemovesNothing) {
  Add(Img('a', "2023-11-01T10:00:00Z", 1, {"app/a:1"}));
  WriteFake({{"image ls",
              "echo 'Cannot connect to the Docker daemon at unix:///x. Is the docker daemon "
              "running?' >&2; exit 1"}});
  ImagePruner pruner(Options());
  absl::StatusOr<PruneReport> r = pruner.Prune({}, Never);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(r.status().message(), HasSubstr("Cannot connect"));
  EXPECT_TRUE(Removals().empty());

  PrunerOptions missing = Options();
  missing.cli = (dir_ / "no-such-docker").string();
  EXPECT_EQ(ImagePruner(missing).Prune({}, Never).status().code(), absl::StatusCode::kUnavailable);

  PrunerOptions no_farm = Options();
  no_farm.farm = "";
  EXPECT_EQ(ImagePruner(no_farm).Prune({}, Never).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PrunerFakeDockerTest, DaemonLostDuringRemovalStopsEarly) {
  Add(Img('a', "2023-11-01T10:00:00Z", 1, {"app/a:1"}));
  Add(Img('b', "2023-11-01T11:00:00Z", 1, {"app/b:1"}));
  Refuse(Id('a'),
         "Cannot connect to the Docker daemon at unix:///x. Is the docker daemon running?");
  ImagePruner pruner(Options());
  absl::StatusOr<PruneReport> r = pruner.Prune({}, Never);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->interrupted, HasSubstr("Cannot connect"));
  EXPECT_THAT(Removals(), ElementsAre(Id('a')));
  EXPECT_TRUE(Exists('b'));
}

TEST_F(PrunerFakeDockerTest, BuildCacheOnlyWhenOptedInAndImagesWereNotEnough) {
  Add(Img('a', "2023-11-01T10:00:00Z", 1, {"app/a:1"}));
  {
    ImagePruner pruner(Options());
    absl::StatusOr<PruneReport> r = pruner.Prune({"app/a:1"}, Never);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_FALSE(r->build_cache_pruned);
    for (const Argv& c : Calls()) EXPECT_NE(c[0], "builder");
  }
  fs::remove(dir_ / "count");
  for (int n = 1; fs::remove(dir_ / absl::StrCat("call.", n)); ++n) {
  }
  PrunerOptions o = Options();
  o.prune_build_cache = true;
  ImagePruner pruner(o);
  int cache_calls = 0;
  absl::StatusOr<PruneReport> r = pruner.Prune({"app/a:1"}, [&] {
    for (const Argv& c : Calls()) cache_calls += c[0] == "builder";
    const bool done = cache_calls >= 2;
    cache_calls = 0;
    return done;
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->build_cache_pruned);
  EXPECT_TRUE(r->enough);
  EXPECT_EQ(r->build_cache_bytes, 3'000'000'000);
  const std::vector<Argv> calls = Calls();
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(calls[2], (Argv{"builder", "prune", "-f"}));        // dangling cache first
  EXPECT_EQ(calls[3], (Argv{"builder", "prune", "-f", "-a"}));  // then all unused
  EXPECT_TRUE(Exists('a'));
}

TEST_F(PrunerFakeDockerTest, TouchTimesSurviveARestartAndGoneImagesAreForgotten) {
  Add(Img('a', "2023-11-01T10:00:00Z", 1, {"app/a:1"}));
  Add(Img('b', "2023-11-01T11:00:00Z", 1, {"app/b:1"}));
  Add(Img('c', "2023-11-01T12:00:00Z", 1, {"app/c:1"}));
  PrunerOptions o = Options();
  o.lru_file = (dir_ / "image-lru.tsv").string();
  {
    ImagePruner first(o);
    first.Touch("app/a:1");
    clock_.Advance(absl::Seconds(1));
    first.Touch("docker.io/library/unlabelled");  // normalized; not ours: forgotten on Prune
    first.Touch(Id('b'));
  }
  const int64_t t0 = absl::ToUnixMicros(absl::FromUnixSeconds(1'700'000'000));
  EXPECT_EQ(ReadFile(o.lru_file),
            absl::StrCat(t0, "\tapp/a:1\n", t0 + 1'000'000, "\tsha256:", std::string(64, 'b'), "\n",
                         t0 + 1'000'000, "\tunlabelled:latest\n"));
  EXPECT_FALSE(fs::exists(o.lru_file + ".part"));
  std::ofstream(o.lru_file, std::ios::app) << "garbage line\n\t\n12x\tapp/c:1\n";

  clock_.Advance(absl::Seconds(1));
  ImagePruner second(o);  // a restart
  EXPECT_EQ(second.TouchTimes().size(), 3u);
  // c (untouched) goes first, then a (touched before b); enough after two.
  absl::StatusOr<PruneReport> r = second.Prune({}, [&] { return Count() <= 1; });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(RemovedIds(*r), ElementsAre(Id('c'), Id('a')));
  EXPECT_TRUE(Exists('b'));
  // a is gone and "unlabelled" is no image of ours: only b's time is kept.
  EXPECT_EQ(ReadFile(o.lru_file),
            absl::StrCat(t0 + 1'000'000, "\tsha256:", std::string(64, 'b'), "\n"));
}

TEST(PrunerTest, TouchNormalizesRefs) {
  testing::FakeClock clock;
  PrunerOptions o;
  o.clock = &clock;
  ImagePruner pruner(o);
  for (const std::string& ref : std::vector<std::string>{
           "docker.io/library/busybox", "docker.io/user/app", "reg:5000/app", "reg:5000/app:v1",
           "app@sha256:0123", std::string(64, 'a'), "0123456789ab", ""}) {
    pruner.Touch(ref);
  }
  std::vector<std::string> refs;
  for (const auto& [ref, t] : pruner.TouchTimes()) refs.push_back(ref);
  EXPECT_THAT(refs,
              UnorderedElementsAre("busybox:latest", "user/app:latest", "reg:5000/app:latest",
                                   "reg:5000/app:v1", "app@sha256:0123", Id('a'), "0123456789ab"));
}

// ---------------------------------------------------------------------------
// Against a real private dockerd (scripts/docker/dockerd.sh) with a busybox
// image (scripts/docker/busybox-image.sh).

constexpr char kCli[] = "/usr/bin/docker";
constexpr char kBaseImage[] = "musafarm/busybox:test";

using test_support::PrivateDockerd;
using test_support::Quote;
using test_support::Sh;

class PrunerRealDockerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    skip_ = PrivateDockerd::MissingTools(MF_SOURCE_DIR);
    if (!skip_.empty()) return;
    error_ = daemon_.Start(MF_SOURCE_DIR, absl::StrCat("/tmp/mf-px-", ::getpid()), kBaseImage);
    daemon_dir_ = daemon_.dir();
    host_ = daemon_.host();
  }
  static void TearDownTestSuite() { daemon_.Stop(); }

  void SetUp() override {
    // Not a skip: scripts/test.sh installs Docker; a missing engine must fail.
    ASSERT_TRUE(skip_.empty()) << skip_ << " (run scripts/docker/install.sh)";
    ASSERT_TRUE(error_.empty()) << error_;
    dir_ = fs::path(daemon_dir_) /
           absl::StrCat("t-", ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }

  // `docker ARGS...` against the private daemon; returns trimmed output.
  std::string Docker(const Argv& args, int* rc = nullptr) {
    std::string cmd = absl::StrCat(kCli, " -H ", Quote(host_));
    for (const std::string& a : args) absl::StrAppend(&cmd, " ", Quote(a));
    std::string out;
    const int r = Sh(cmd, &out);
    if (rc != nullptr) *rc = r;
    return std::string(absl::StripAsciiWhitespace(out));
  }
  bool Present(const std::string& ref) {
    int rc = 0;
    Docker({"image", "inspect", "--format={{.Id}}", ref}, &rc);
    return rc == 0;
  }
  // Builds `tag` FROM the busybox image with one layer of its own, labelled
  // musafarm.farm=<farm> unless `farm` is empty.
  void Build(const std::string& tag, const std::string& farm) {
    const fs::path ctx = dir_ / absl::StrCat("ctx-", ++builds_);
    fs::create_directories(ctx);
    std::ofstream(ctx / "Dockerfile")
        << "FROM " << kBaseImage << "\nRUN echo " << tag << " > /which\n";
    std::string cmd = absl::StrCat("DOCKER_BUILDKIT=0 ", kCli, " -H ", Quote(host_),
                                   " build -q --tag=", Quote(tag));
    if (!farm.empty()) absl::StrAppend(&cmd, " --label=musafarm.farm=", Quote(farm));
    absl::StrAppend(&cmd, " ", Quote(ctx.string()));
    std::string out;
    ASSERT_EQ(Sh(cmd, &out), 0) << out;
  }
  // How many images carry musafarm.farm=<farm>.
  int FarmImages(const std::string& farm) {
    const std::string out =
        Docker({"image", "ls", "-q", "--no-trunc", "--filter=label=musafarm.farm=" + farm});
    return static_cast<int>(
        std::set<std::string>(absl::StrSplit(out, '\n', absl::SkipWhitespace())).size());
  }

  PrunerOptions Options(const std::string& farm) {
    PrunerOptions o;
    o.cli = kCli;
    o.docker_host = host_;
    o.farm = farm;
    o.agent = "agent-1";
    o.lru_file = (dir_ / "image-lru.tsv").string();
    return o;
  }

  static inline PrivateDockerd daemon_;
  static inline std::string skip_, error_, daemon_dir_, host_;
  fs::path dir_;
  int builds_ = 0;
};

TEST_F(PrunerRealDockerTest, RemovesTheLeastRecentlyUsedOfOurImagesOnly) {
  const std::string farm = absl::StrCat("pt", ::getpid());
  // Oldest first: the unlabelled one would go first if labels were not checked.
  ASSERT_NO_FATAL_FAILURE(Build("prune/unlabelled:1", ""));
  ASSERT_NO_FATAL_FAILURE(Build("prune/a:1", farm));
  ASSERT_NO_FATAL_FAILURE(Build("prune/b:1", farm));
  ASSERT_NO_FATAL_FAILURE(Build("prune/c:1", farm));
  ImagePruner pruner(Options(farm));
  pruner.Touch("prune/c:1");
  pruner.Touch("prune/a:1");
  // By use: b (never touched), c, a; b is kept, so c is the one to go.
  ASSERT_EQ(FarmImages(farm), 3);
  absl::StatusOr<PruneReport> r =
      pruner.Prune({"prune/b:1"}, [&] { return FarmImages(farm) <= 2; });  // after 1 removal
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->enough) << r->Summary();
  ASSERT_EQ(r->removed.size(), 1u) << r->Summary();
  EXPECT_EQ(r->removed[0].tags, std::vector<std::string>{"prune/c:1"});
  EXPECT_GT(r->removed[0].size_bytes, 0);
  EXPECT_FALSE(Present("prune/c:1"));
  EXPECT_TRUE(Present("prune/a:1"));
  EXPECT_TRUE(Present("prune/b:1"));
  EXPECT_TRUE(Present("prune/unlabelled:1"));
  EXPECT_TRUE(Present(kBaseImage));  // the shared base layer stays

  // Then everything not kept: a goes, b (kept) and the unlabelled one stay.
  r = pruner.Prune({"prune/b:1"}, [] { return false; });
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->removed.size(), 1u) << r->Summary();
  EXPECT_EQ(r->removed[0].tags, std::vector<std::string>{"prune/a:1"});
  EXPECT_TRUE(Present("prune/b:1"));
  EXPECT_TRUE(Present("prune/unlabelled:1"));
  EXPECT_TRUE(Present(kBaseImage));
}

TEST_F(PrunerRealDockerTest, SkipsAnImageARunningContainerUsesAndUntagsOneInTwoRepositories) {
  const std::string farm = absl::StrCat("pu", ::getpid());
  ASSERT_NO_FATAL_FAILURE(Build("inuse/a:1", farm));
  ASSERT_NO_FATAL_FAILURE(Build("tworepos/one:1", farm));
  Docker({"tag", "tworepos/one:1", "tworepos/two:1"});
  int rc = 0;
  const std::string name = absl::StrCat("mf-prune-", ::getpid());
  const std::string out =
      Docker({"run", "-d", "--name=" + name, "--network=none", "inuse/a:1", "sleep", "300"}, &rc);
  ASSERT_EQ(rc, 0) << out;
  ImagePruner pruner(Options(farm));
  absl::StatusOr<PruneReport> r = pruner.Prune({}, [] { return false; });
  Docker({"rm", "-f", name});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->skipped.size(), 1u) << r->Summary();
  EXPECT_THAT(r->skipped[0].reason, HasSubstr("running container"));
  ASSERT_EQ(r->removed.size(), 1u) << r->Summary();
  EXPECT_THAT(r->removed[0].tags, UnorderedElementsAre("tworepos/one:1", "tworepos/two:1"));
  EXPECT_TRUE(Present("inuse/a:1"));
  EXPECT_FALSE(Present("tworepos/one:1"));
  EXPECT_FALSE(Present("tworepos/two:1"));
}

}  // namespace
}  // namespace musafarm::agent
