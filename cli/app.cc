#include "cli/app.h"

#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/color.h"
#include "cli/command_tree.h"
#include "cli/commands/commands.h"
#include "cli/completion.h"
#include "cli/config.h"
#include "cli/script_options.h"
#include "pipeline/option_decl.h"
#include "pipeline/spec.h"

namespace musafarm::cli {
namespace {

// For options a command (or the pipeline being submitted) does not take:
// "unknown option -m, -t", without the values after them, which may be
// secrets (a download URL with a token in it).
std::optional<std::string> UnexpectedOptions(const CLI::App* top, const CLI::Error& e) {
  if (dynamic_cast<const CLI::ExtrasError*>(&e) == nullptr) return std::nullopt;
  std::vector<std::string> options;
  for (const CLI::App* app :
       {top, top->get_subcommands().empty() ? top : top->get_subcommands()[0]}) {
    for (const std::string& arg : app->remaining()) {
      if (absl::StartsWith(arg, "-")) options.push_back(arg.substr(0, arg.find('=')));
    }
  }
  if (options.empty()) return std::nullopt;
  return absl::StrCat("unknown option", options.size() > 1 ? "s " : " ",
                      absl::StrJoin(options, ", "));
}

// Whether `cmd` was given; a command left out of a partial tree was not.
bool Parsed(const CLI::App* cmd) { return cmd != nullptr && cmd->parsed(); }

}  // namespace

int RunCli(int argc, const char* const* argv, CommandEnv env) {
  // Only the invoked command's options are built (cli/command_tree.h).
  CommandTree tree(TopCommandName(argc, argv));
  CLI::App& app = tree.app();
  CommandValues& v = tree.values();
  app.failure_message([](const CLI::App* top, const CLI::Error& e) {
    std::string cmd = top->get_display_name();
    for (const CLI::App* sub : top->get_subcommands()) absl::StrAppend(&cmd, " ", sub->get_name());
    return absl::StrCat("musafarm: ", UnexpectedOptions(top, e).value_or(e.what()), "\nRun '", cmd,
                        " --help' for more information.\n");
  });
  // The pipeline's own options, from its `options:`: the file (or the
  // built-in pipeline) must be read before the command line can be parsed.
  const std::optional<std::string> pipeline_arg = PipelineFileArg(argc, argv);
  std::optional<ReadPipelineFile> pipeline_read;  // kept for submit: read and parsed once
  if (pipeline_arg.has_value()) {
    absl::StatusOr<PipelineSource> source = ReadPipeline(*pipeline_arg);
    absl::StatusOr<pipeline::PipelineOptions> declared =
        source.ok() ? pipeline::DeclaredOptions(source->yaml, source->file)
                    : absl::StatusOr<pipeline::PipelineOptions>(source.status());
    if (!declared.ok()) {
      *env.err << (source.ok() ? "" : "musafarm: ") << declared.status().message() << "\n";
      return kExitUsage;
    }
    tree.AddPipelineOptions(*declared, source->file);
    pipeline_read = ReadPipelineFile{*pipeline_arg, *std::move(source), *std::move(declared)};
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with code 0; they print to out.
    const int code = app.exit(e, *env.out, *env.err);
    return code == 0 ? kExitOk : kExitUsage;
  }

  // Commands that need no coordinator.
  if (Parsed(tree.completion)) {
    // Submit with the built-in pipeline's options, which the script then completes too.
    if (absl::StatusOr<PipelineSource> source = ReadPipeline(""); source.ok()) {
      if (absl::StatusOr<pipeline::PipelineOptions> declared =
              pipeline::DeclaredOptions(source->yaml, source->file);
          declared.ok()) {
        tree.AddPipelineOptions(*declared, source->file);
      }
    }
    *env.out << (v.completion_shell == "zsh" ? ZshCompletion(tree) : BashCompletion(tree));
    return kExitOk;
  }

  absl::StatusOr<std::vector<std::string>> addresses = ResolveCoordinator(v.coordinator);
  if (!addresses.ok()) {
    *env.err << "musafarm: " << addresses.status().message() << "\n";
    return kExitUsage;
  }
  env.coordinator = addresses->front();
  env.targets = std::make_shared<CoordinatorTargets>(*std::move(addresses));
  absl::StatusOr<std::optional<ChannelTls>> tls = ResolveTls(v.insecure, v.ca);
  if (!tls.ok()) {
    *env.err << "musafarm: " << tls.status().message() << "\n";
    return kExitUsage;
  }
  env.tls = *std::move(tls);
  env.output = v.output == "json"   ? OutputFormat::kJson
               : v.output == "yaml" ? OutputFormat::kYaml
                                    : OutputFormat::kTable;
  env.color = UseColor(v.color, env.tty, std::getenv("NO_COLOR"));
  // Who we are: the API token (never a flag: it would show in `ps` and shell
  // history), and the OS user, which only an --insecure coordinator heeds.
  absl::StatusOr<ResolvedToken> token = ResolveToken();
  if (!token.ok()) {
    *env.err << "musafarm: " << token.status().message() << "\n";
    return kExitUsage;
  }
  if (!token->warning.empty()) *env.err << "musafarm: " << token->warning << "\n";
  env.token = token->token;
  if (!env.token.empty() && !env.tls.has_value()) {
    *env.err << "musafarm: warning: --insecure: your API token travels in clear text to "
             << absl::StrJoin(env.targets->addresses(), ",") << "\n";
  }
  if (const char* user = std::getenv("USER"); user != nullptr && *user != '\0') {
    env.os_user = user;
  } else if (const char* login = getlogin(); login != nullptr) {
    env.os_user = login;
  }

  // Commands that follow a live stream get channels with a bounded receive
  // window (CommandEnv::follows); the one channel serves all their calls.
  env.follows = Parsed(tree.watch) || (Parsed(tree.logs) && v.follow) ||
                (Parsed(tree.submit) && v.submit.watch) || (Parsed(tree.rerun) && v.rerun.watch);

  if (Parsed(tree.submit)) {
    if (v.submit.file != pipeline_arg.value_or("")) {
      // Read for its options was another file (or none): their options differ.
      *env.err << "musafarm: submit: give the pipeline file before its options: musafarm submit "
                  "[PIPELINE] [OPTIONS]\n";
      return kExitUsage;
    }
    v.submit.watch_options.logs = v.submit_logs;
    v.submit.read = std::move(pipeline_read);
    return RunSubmit(env, v.submit);
  }
  if (Parsed(tree.schedule_add)) {
    if (v.schedule_add.submit.file != pipeline_arg.value_or("")) {
      *env.err << "musafarm: schedule add: give the pipeline file before its options: musafarm "
                  "schedule add NAME --cron EXPR [PIPELINE] [OPTIONS]\n";
      return kExitUsage;
    }
    return RunScheduleAdd(env, v.schedule_add);
  }
  if (Parsed(tree.schedule_list)) return RunScheduleList(env);
  if (Parsed(tree.schedule_show)) return RunScheduleShow(env, v.schedule_name, v.schedule_runs);
  for (const auto& [action, cmd] : tree.schedule_changes) {
    if (Parsed(cmd)) return RunScheduleChange(env, action, v.schedule_name);
  }
  if (Parsed(tree.jobs)) return RunJobs(env, v.jobs);
  if (Parsed(tree.token_create)) {
    return RunTokenCreate(env, v.token_user, v.token_role, v.token_expires);
  }
  if (Parsed(tree.token_list)) return RunTokenList(env);
  if (Parsed(tree.token_revoke)) return RunTokenRevoke(env, v.token_id);
  if (Parsed(tree.audit)) return RunAudit(env, v.audit_user, v.audit_since, v.audit_limit);
  if (Parsed(tree.status)) return RunStatus(env, v.id);
  if (Parsed(tree.watch)) return RunWatch(env, v.watch);
  if (Parsed(tree.logs)) return RunLogs(env, v.task, v.follow);
  if (Parsed(tree.artifacts)) return RunArtifacts(env, v.task, v.artifacts_dir);
  if (Parsed(tree.results)) return RunResults(env, v.id, v.junit);
  if (Parsed(tree.cancel)) return RunCancel(env, v.id);
  if (Parsed(tree.rerun)) return RunRerun(env, v.rerun);
  if (Parsed(tree.agents_revoke)) return RunRevoke(env, v.agent);
  if (Parsed(tree.agents)) return RunAgents(env);
  if (Parsed(tree.coordinators)) return RunCoordinators(env);
  if (Parsed(tree.drain)) return RunDrain(env, v.agent, /*undrain=*/false);
  if (Parsed(tree.undrain)) return RunDrain(env, v.agent, /*undrain=*/true);
  return kExitUsage;  // unreachable: require_subcommand(1)
}

}  // namespace musafarm::cli
