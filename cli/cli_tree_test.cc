// The `musafarm` command tree as a whole (issue 16, item 4): every short flag
// means one thing, every read command prints JSON and YAML with -o, and the
// completion scripts made from the tree load and complete in bash and zsh.
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/app.h"
#include "cli/command_tree.h"
#include "cli/fake_user_service.h"
#include "cli/json.h"
#include "common/subprocess.h"
#include "gmock/gmock.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_clock.h"
#include "yaml-cpp/yaml.h"

namespace musafarm::cli {
namespace {

using ::testing::HasSubstr;

// Every command of the tree with its path from the top ("agents revoke").
void Walk(const CLI::App* app, const std::string& path,
          std::vector<std::pair<std::string, const CLI::App*>>* out) {
  out->emplace_back(path, app);
  for (const CLI::App* sub : app->get_subcommands([](const CLI::App*) { return true; })) {
    Walk(sub, path.empty() ? sub->get_name() : absl::StrCat(path, " ", sub->get_name()), out);
  }
}

std::vector<std::pair<std::string, const CLI::App*>> Commands(const CommandTree& tree) {
  std::vector<std::pair<std::string, const CLI::App*>> all;
  Walk(&tree.app(), "", &all);
  return all;
}

// Each command with the help text of every option, as `musafarm CMD --help` shows it.
std::map<std::string, std::string> OptionsByCommand(const CommandTree& tree) {
  std::map<std::string, std::string> out;
  for (const auto& [path, app] : Commands(tree)) {
    std::string& text = out[path];
    absl::StrAppend(&text, app->get_description(), "\n");
    for (const CLI::Option* opt : app->get_options()) {
      absl::StrAppend(&text, opt->get_name(), " ", opt->get_description(), "\n");
    }
  }
  return out;
}

// A tree built for one command (issue 19: start-up) holds every command by
// name and that command's options exactly as the whole tree does.
TEST(CliTreeTest, PartialTreeHoldsTheInvokedCommandWhole) {
  const CommandTree full;
  const std::map<std::string, std::string> want = OptionsByCommand(full);
  for (const CLI::App* top : full.app().get_subcommands([](const CLI::App*) { return true; })) {
    const std::string name = top->get_name();
    const CommandTree partial(name);
    const std::map<std::string, std::string> got = OptionsByCommand(partial);
    for (const CLI::App* sub :
         partial.app().get_subcommands([](const CLI::App*) { return true; })) {
      EXPECT_EQ(want.count(sub->get_name()), 1u) << sub->get_name();
    }
    EXPECT_EQ(partial.app().get_subcommands([](const CLI::App*) { return true; }).size(),
              full.app().get_subcommands([](const CLI::App*) { return true; }).size());
    for (const auto& [path, text] : want) {
      if (path != name && !absl::StartsWith(path, name + " ")) continue;
      auto it = got.find(path);
      ASSERT_NE(it, got.end()) << "musafarm " << path << " missing from CommandTree(" << name
                               << ")";
      EXPECT_EQ(it->second, text) << "musafarm " << path;
    }
  }
  // The root's options are always whole.
  EXPECT_EQ(OptionsByCommand(CommandTree("jobs")).at(""), want.at(""));
  // A partial tree is smaller: another command's options are not built.
  EXPECT_LT(OptionsByCommand(CommandTree("jobs")).at("submit").size(), want.at("submit").size());
}

TEST(CliTreeTest, TopCommandNameSkipsGlobalOptionValues) {
  auto name = [](std::vector<const char*> args) {
    args.insert(args.begin(), "musafarm");
    return TopCommandName(static_cast<int>(args.size()), args.data());
  };
  EXPECT_EQ(name({"jobs", "-n", "3"}), "jobs");
  EXPECT_EQ(name({"--insecure", "-c", "h:1", "--ca", "x.crt", "--color", "never", "status", "7"}),
            "status");
  EXPECT_EQ(name({"--coordinator=h:1", "agents", "revoke", "a"}), "agents");
  EXPECT_EQ(name({"--version"}), "");
  EXPECT_EQ(name({"--", "jobs"}), "");
  // Not a command (an option of one given before it): the whole tree parses it.
  EXPECT_EQ(name({"-o", "json", "jobs"}), "json");
  EXPECT_EQ(OptionsByCommand(CommandTree("json")), OptionsByCommand(CommandTree()));
}

TEST(CliTreeTest, MayConnectLeavesOutHelpVersionAndCompletion) {
  auto may = [](std::vector<const char*> args) {
    args.insert(args.begin(), "musafarm");
    return MayConnect(static_cast<int>(args.size()), args.data());
  };
  EXPECT_TRUE(may({"jobs"}));
  EXPECT_TRUE(may({"-c", "h:1", "submit", "p.yaml", "--watch"}));
  EXPECT_FALSE(may({}));
  EXPECT_FALSE(may({"--version"}));
  EXPECT_FALSE(may({"submit", "--help"}));
  EXPECT_FALSE(may({"jobs", "-h"}));
  EXPECT_FALSE(may({"completion", "bash"}));
  // After "--" a "--help" is an argument, not the flag.
  EXPECT_TRUE(may({"submit", "p.yaml", "--", "--help"}));
}

TEST(CliTreeTest, EveryShortFlagHasOneMeaning) {
  CommandTree tree;
  // -x -> its long name, and the first command where it was seen.
  std::map<std::string, std::pair<std::string, std::string>> meaning;
  for (const auto& [path, app] : Commands(tree)) {
    for (const CLI::Option* opt : app->get_options()) {
      const std::string name = opt->get_lnames().empty() ? "" : opt->get_lnames()[0];
      for (const std::string& s : opt->get_snames()) {
        auto [it, fresh] = meaning.emplace("-" + s, std::make_pair(name, path));
        EXPECT_TRUE(fresh || it->second.first == name)
            << "-" << s << " is --" << name << " in 'musafarm " << path << "' but --"
            << it->second.first << " in 'musafarm " << it->second.second << "'";
      }
    }
  }
  // The ones the README documents, as they are meant.
  EXPECT_EQ(meaning["-o"].first, "output");
  EXPECT_EQ(meaning["-c"].first, "coordinator");
  EXPECT_EQ(meaning["-n"].first, "limit");
  EXPECT_EQ(meaning["-w"].first, "watch");
  EXPECT_EQ(meaning["-f"].first, "follow");
}

// Commands that change something; every other command only reads.
const char* const kWriters[] = {
    "submit",          "cancel",         "rerun",           "drain",       "undrain",
    "agents revoke",   "token create",   "token revoke",    "completion",  "schedule add",
    "schedule remove", "schedule pause", "schedule resume", "schedule run"};

bool IsWriter(const std::string& path) {
  for (const char* w : kWriters) {
    if (path == w) return true;
  }
  return false;
}

class ReadCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = fakes::ServeOnLoopback({&service_, &schedules_}, &port_);
    ASSERT_NE(server_, nullptr);
    v1::Task t = fakes::MakeTask("7/a", v1::TASK_STATE_SUCCEEDED, 1, "h1");
    t.mutable_tests()->set_passed(3);
    v1::Artifact* a = t.add_artifacts();
    a->set_name("o.txt");
    a->set_size(2);
    service_.job = fakes::MakeJob(v1::JOB_STATE_SUCCEEDED, {t});
    service_.log = "a log line\n";
    service_.log_complete = true;
  }
  void TearDown() override { server_->Shutdown(); }

  // Runs `musafarm ARGS... -o FORMAT`; returns the exit code, output in out_.
  int Run(const std::vector<std::string>& args, const std::string& format) {
    if (args.size() > 0 && args[0] == "watch") {
      fakes::WatchScript s;
      s.events = {fakes::SnapshotEv(service_.job), fakes::FinishedEv(service_.job)};
      service_.scripts.push_back(s);
    }
    const std::string addr = absl::StrCat("127.0.0.1:", port_);
    std::vector<const char*> argv = {"musafarm", "--insecure", "-c", addr.c_str()};
    for (const std::string& a : args) argv.push_back(a.c_str());
    argv.push_back("-o");
    argv.push_back(format.c_str());
    out_.str("");
    err_.str("");
    CommandEnv env;
    env.out = &out_;
    env.err = &err_;
    env.clock = &clock_;
    return RunCli(static_cast<int>(argv.size()), argv.data(), env);
  }

  fakes::FakeUserService service_;
  fakes::FakeScheduleService schedules_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  musafarm::testing::FakeClock clock_;
  std::ostringstream out_, err_;
};

TEST_F(ReadCommandsTest, EveryReadCommandPrintsJsonAndYaml) {
  // The arguments each read command needs; a new read command must be added here.
  const std::map<std::string, std::vector<std::string>> kArgs = {
      {"jobs", {"jobs"}},
      {"status", {"status", "7"}},
      {"watch", {"watch", "7"}},
      {"logs", {"logs", "7/a"}},
      {"artifacts", {"artifacts", "7/a"}},
      {"results", {"results", "7"}},
      {"agents", {"agents"}},
      {"coordinators", {"coordinators"}},
      {"token list", {"token", "list"}},
      {"audit", {"audit"}},
      {"schedule list", {"schedule", "list"}},
      {"schedule show", {"schedule", "show", "nightly"}}};
  CommandTree tree;
  int checked = 0;
  for (const auto& [path, app] : Commands(tree)) {
    // The top and groups like `token` are no commands of their own.
    if (path.empty() || app->get_require_subcommand_min() > 0 || IsWriter(path)) continue;
    SCOPED_TRACE("musafarm " + path);
    const CLI::Option* output = app->get_option_no_throw("--output");
    ASSERT_NE(output, nullptr) << "a read command without --output";
    ASSERT_NE(tree.Choices(output), nullptr);
    EXPECT_THAT(*tree.Choices(output), ::testing::ElementsAre("table", "json", "yaml"));
    auto args = kArgs.find(path);
    ASSERT_NE(args, kArgs.end()) << "add the arguments of 'musafarm " << path << "' to kArgs";

    ASSERT_EQ(Run(args->second, "json"), 0) << err_.str();
    std::vector<std::string> lines = absl::StrSplit(out_.str(), '\n', absl::SkipEmpty());
    ASSERT_FALSE(lines.empty());
    for (const std::string& line : lines) {
      EXPECT_FALSE(Json::parse(line, nullptr, /*allow_exceptions=*/false).is_discarded())
          << "not one JSON value: " << line;
    }

    ASSERT_EQ(Run(args->second, "yaml"), 0) << err_.str();
    std::vector<YAML::Node> docs;
    EXPECT_NO_THROW(docs = YAML::LoadAll(out_.str())) << out_.str();
    EXPECT_EQ(docs.size(), lines.size()) << "one YAML document per JSON line:\n" << out_.str();
    for (const YAML::Node& d : docs) EXPECT_TRUE(d.IsMap()) << out_.str();
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(kArgs.size()));
}

TEST_F(ReadCommandsTest, YamlSaysWhatJsonSays) {
  ASSERT_EQ(Run({"status", "7"}, "json"), 0) << err_.str();
  const Json json = Json::parse(out_.str());
  ASSERT_EQ(Run({"status", "7"}, "yaml"), 0) << err_.str();
  const YAML::Node yaml = YAML::Load(out_.str());
  EXPECT_EQ(yaml["id"].as<std::string>(), json["id"].get<std::string>());
  EXPECT_EQ(yaml["state"].as<std::string>(), "JOB_STATE_SUCCEEDED");
  EXPECT_EQ(yaml["createdTime"].as<std::string>(), json["createdTime"].get<std::string>());
  EXPECT_EQ(yaml["tasks"][0]["tests"]["passed"].as<int>(), 3);
  // A 64-bit integer is a string in proto3 JSON, and stays one (quoted) in YAML.
  EXPECT_EQ(yaml["createdUs"].Tag(), "!");
  EXPECT_EQ(yaml["createdUs"].as<std::string>(), json["createdUs"].get<std::string>());
}

// Runs `bash -c script` or `zsh -f -c script`; returns the exit code and the
// output (stdout and stderr together).
int Shell(const std::string& shell, const std::string& script, std::string* output) {
  std::vector<std::string> argv = {shell};
  if (shell == "zsh") argv.push_back("-f");  // no user's startup files
  argv.push_back("-c");
  argv.push_back(script);
  EnvMap env = InheritedEnv();
  env["MF_CLI"] = MF_CLI_BIN;
  Child child = Spawn(argv, env, ::testing::TempDir());
  EXPECT_TRUE(child.error.empty()) << child.error;
  output->clear();
  bool complete = false;
  const int status = Supervise(
      child, [&](std::string s) { *output += s; }, [] {}, absl::Seconds(5), &complete);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(CompletionTest, BashLoadsAndCompletesCommandsFlagsAndValues) {
  std::string out;
  ASSERT_EQ(Shell("bash", R"(
source <("$MF_CLI" completion bash)
complete -p musafarm
try() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _musafarm; echo "${COMP_WORDS[*]} => ${COMPREPLY[*]}"; }
try musafarm jo
try musafarm --insecure jo
try musafarm jobs -o ''
try musafarm agents re
try musafarm logs --fo
try musafarm -c host:1 results 7 --ju
try musafarm submit --python_v
try musafarm --color a
)",
                  &out),
            0)
      << out;
  EXPECT_THAT(out, HasSubstr("complete -o default -F _musafarm musafarm\n"));
  EXPECT_THAT(out, HasSubstr("musafarm jo => jobs\n"));
  EXPECT_THAT(out, HasSubstr("musafarm --insecure jo => jobs\n")) << "a flag takes no value";
  EXPECT_THAT(out, HasSubstr("musafarm jobs -o  => table json yaml\n"));
  EXPECT_THAT(out, HasSubstr("musafarm agents re => revoke\n"));
  EXPECT_THAT(out, HasSubstr("musafarm logs --fo => --follow\n"));
  EXPECT_THAT(out, HasSubstr("musafarm -c host:1 results 7 --ju => --junit\n"));
  // The built-in pipeline's own options complete under submit.
  EXPECT_THAT(out, HasSubstr("musafarm submit --python_v => --python_version --python_verison\n"));
  EXPECT_THAT(out, HasSubstr("musafarm --color a => auto always\n"));
}

TEST(CompletionTest, ZshLoadsAfterCompinit) {
  std::string out;
  if (Shell("zsh", "true", &out) != 0) GTEST_SKIP() << "no zsh here: " << out;
  ASSERT_EQ(Shell("zsh", R"(
autoload -U compinit && compinit -u -D
source <("$MF_CLI" completion zsh)
print -r -- "registered: ${_comps[musafarm]}"
whence -w _musafarm
)",
                  &out),
            0)
      << out;
  EXPECT_EQ(out, "registered: _musafarm\n_musafarm: function\n");
}

}  // namespace
}  // namespace musafarm::cli
