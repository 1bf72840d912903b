#pragma once

// The `musafarm` command line as a CLI11 tree: every command with its options
// and flags, bound to CommandValues. RunCli (cli/app.h) parses argv with it;
// `musafarm completion` and the CLI-tree test walk it.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/string_view.h"
#include "cli/commands/commands.h"
#include "pipeline/option_decl.h"

namespace musafarm::cli {

// Where each option's value lands. One struct, so the tree can be built
// without running anything (tests, completion).
struct CommandValues {
  // Global.
  std::string coordinator;
  bool insecure = false;
  std::string ca;
  std::string color = "auto";  // never, auto, always
  std::string output = "table";

  SubmitOptions submit;
  bool submit_logs = false;
  JobsOptions jobs;
  RerunOptions rerun;
  std::string id;  // a job or task id: status, results, cancel
  WatchOptions watch;
  std::string task;  // logs, artifacts
  bool follow = false;
  std::string artifacts_dir;
  std::string junit;
  std::string agent;
  std::string token_user, token_role, token_expires, token_id;
  std::string audit_user, audit_since;
  int audit_limit = 0;
  std::string completion_shell;
  ScheduleAddOptions schedule_add;
  std::string schedule_name;
  int schedule_runs = 0;
};

// The top-level command of a command line (argv[1...]): the first argument
// that is neither an option nor the value of a global option that takes one
// (--coordinator, -c, --ca, --color); "" if there is none. A guess, for
// CommandTree(only): the parse decides, and an unknown name builds it all.
std::string TopCommandName(int argc, const char* const* argv);

// Whether the command line may talk to a coordinator: it names a command
// other than `completion`, and asks for no --help or --version. A guess too,
// for starting gRPC early (cli/main.cc); the parse decides what runs.
bool MayConnect(int argc, const char* const* argv);

class CommandTree {
 public:
  // The whole tree, or, when `only` names a top-level command (e.g. "jobs"),
  // the tree with that command's options alone: every command is there by
  // name (the usage and `musafarm --help` list them all), but only `only` is
  // filled in, since CLI11 spends ~0.4 ms of each start building the
  // options and help of all of them (issue 19). Its parse of a command line
  // whose command is `only` is the full tree's. The pointers below of
  // commands under another top-level command stay null then.
  explicit CommandTree(absl::string_view only = "");
  CommandTree(const CommandTree&) = delete;
  CommandTree& operator=(const CommandTree&) = delete;

  CLI::App& app() { return app_; }
  const CLI::App& app() const { return app_; }
  CommandValues& values() { return values_; }

  // Adds the options a pipeline declares (`file` names it in --help) to
  // submit and schedule add, storing what is typed in the `given.declared`
  // of values().submit and values().schedule_add.submit.
  void AddPipelineOptions(const pipeline::PipelineOptions& declared, const std::string& file);

  // The values an option takes, when it takes only some (--output: table,
  // json, yaml); nullptr for any value. For completion.
  const std::vector<std::string>* Choices(const CLI::Option* opt) const;

  // The subcommands, to tell which one was parsed.
  CLI::App* submit = nullptr;
  CLI::App* jobs = nullptr;
  CLI::App* status = nullptr;
  CLI::App* watch = nullptr;
  CLI::App* logs = nullptr;
  CLI::App* artifacts = nullptr;
  CLI::App* results = nullptr;
  CLI::App* cancel = nullptr;
  CLI::App* rerun = nullptr;
  CLI::App* agents = nullptr;
  CLI::App* agents_revoke = nullptr;
  CLI::App* coordinators = nullptr;
  CLI::App* drain = nullptr;
  CLI::App* undrain = nullptr;
  CLI::App* token_create = nullptr;
  CLI::App* token_list = nullptr;
  CLI::App* token_revoke = nullptr;
  CLI::App* audit = nullptr;
  CLI::App* completion = nullptr;
  CLI::App* schedule_add = nullptr;
  CLI::App* schedule_list = nullptr;
  CLI::App* schedule_show = nullptr;
  std::map<std::string, CLI::App*> schedule_changes;  // remove, pause, resume, run

 private:
  // An option that takes one of `choices`, refused otherwise.
  CLI::Option* AddChoice(CLI::App* cmd, const std::string& names, std::string* value,
                         const std::string& help, std::vector<std::string> choices);
  void AddOutputOption(CLI::App* cmd);
  // submit's generic inputs (--param, --axis, --secret, --package-set,
  // --job-name): `submit` and `schedule add` take the same.
  void AddSubmitInputs(CLI::App* cmd, SubmitOptions* submit);
  // Whether the options of top-level command `name` are built.
  bool Want(absl::string_view name) const { return only_.empty() || only_ == name; }
  static void AddDeclaredOptions(CLI::App* cmd, const pipeline::PipelineOptions& declared,
                                 const std::string& file, GivenOptions* given);

  CommandValues values_;
  CLI::App app_;
  const std::string only_;  // empty: all
  std::map<const CLI::Option*, std::vector<std::string>> choices_;
};

}  // namespace musafarm::cli
