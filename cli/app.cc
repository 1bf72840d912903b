#include "cli/app.h"

#include <unistd.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <utility>
#include <ostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/commands/commands.h"
#include "cli/config.h"
#include "cli/script_options.h"
#include "pipeline/option_decl.h"
#include "pipeline/spec.h"

namespace musafarm::cli {
namespace {

// `short_o`: also as -o, unless the command uses -o for something else.
void AddOutputOption(CLI::App* cmd, std::string* output, bool short_o = true) {
  cmd->add_option(short_o ? "--output,-o" : "--output", *output,
                  "Output format: table or json (one JSON object a line)")
      ->check(CLI::IsMember({"table", "json"}).description(""))
      ->type_name("FORMAT")
      ->capture_default_str();
}

// Adds the options a pipeline declares to `cmd`, storing what is typed into
// `given->declared` under each option's long name.
void AddPipelineOptions(CLI::App* cmd, const pipeline::PipelineOptions& declared,
                        const std::string& file, GivenOptions* given) {
  const std::string group = absl::StrCat("Options of ", file);
  for (const pipeline::OptionDecl& o : declared.options) {
    std::string names = o.short_name.empty()
                            ? absl::StrCat("--", o.long_name)
                            : absl::StrCat("-", o.short_name, ",--", o.long_name);
    for (const std::string& alias : o.aliases) absl::StrAppend(&names, ",--", alias);
    std::string help =
        absl::StrCat(o.help, o.help.empty() ? "(" : " (", pipeline::OptionBecomes(o));
    if (o.names_job) absl::StrAppend(&help, "; also the job's name");
    if (o.has_default) absl::StrAppend(&help, "; default ", o.default_value);
    absl::StrAppend(&help, ")");
    std::vector<std::string>* values = &given->declared[o.long_name];
    if (o.kind == pipeline::OptionDecl::Kind::kFlag) {
      cmd->add_flag_callback(
             names, [values] { values->emplace_back(); }, help)
          ->group(group);
      continue;
    }
    if (o.list) {
      cmd->add_option(names, *values, help)
          ->allow_extra_args(false)  // one value per use: repeat it, or use commas
          ->type_name("V1,V2")
          ->group(group);
      continue;
    }
    // Repeatable: per-cell values may come one per use (--torch_whl_url
    // 3.8=URL --torch_whl_url 3.9=URL); one that is not is refused later,
    // saying so (script_options.h).
    cmd->add_option(names, *values, help)
        ->allow_extra_args(false)
        ->type_name("VALUE")
        ->group(group);
  }
}

// submit's generic inputs (--param, --axis, --secret, --package-set,
// --job-name): `submit` and `schedule add` take the same.
void AddSubmitInputs(CLI::App* cmd, SubmitOptions* submit) {
  GivenOptions& given = submit->given;
  const char* kGeneric = "Pipeline inputs";
  cmd->add_option("--param,-p", given.params, "Set a pipeline param (repeatable)")
      ->type_name("NAME=VALUE")
      ->group(kGeneric);
  cmd->add_option("--axis", given.axes, "Replace a matrix axis's values (repeatable)")
      ->type_name("AXIS=V1,V2")
      ->group(kGeneric);
  cmd->add_option("--secret", given.secrets,
                  "Pass the value of environment variable NAME as the pipeline secret NAME: "
                  "never shown, logged or stored past the job (repeatable)")
      ->type_name("NAME")
      ->group(kGeneric);
  cmd->add_option("--package-set", given.package_sets,
                  "A MUSA package set file (name, versions, secret URLs, sha256s): its URLs "
                  "become the secrets it names, its name and digest the params package_set and "
                  "download_cache_key; VALUE=FILE,... gives one per cell (e.g. per GPU "
                  "architecture)")
      ->type_name("FILE")
      ->group(kGeneric);
  cmd->add_option("--webhook", submit->webhooks,
                  "Notify URL when the job ends (repeatable); after it ,format=slack (also "
                  "mattermost, feishu, lark; default json) and ,first-failure (also at the first "
                  "failed task). It must fall under the coordinator's --webhook-allow")
      ->type_name("URL[,format=F][,first-failure]")
      ->group(kGeneric);
  cmd->add_option("--job-name", submit->job_name,
                  "Name of the job (default: what the pipeline's options or its 'name' say)")
      ->type_name("NAME")
      ->group(kGeneric);
}

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

}  // namespace

int RunCli(int argc, const char* const* argv, CommandEnv env) {
  CLI::App app("musafarm: submit and follow jobs on a musafarm build farm", "musafarm");
  app.set_version_flag("--version", "musafarm 0.1.0");
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand
  std::string coordinator;
  app.add_option("--coordinator,-c", coordinator,
                 "Coordinator address HOST:PORT (else $MUSAFARM_COORDINATOR, else 'coordinator:' "
                 "in $MUSAFARM_CONFIG or ~/.config/musafarm/config.yaml, else 127.0.0.1:7070)")
      ->type_name("HOST:PORT");
  bool insecure = false;
  app.add_flag("--insecure", insecure,
               "Plaintext, for a coordinator run with --insecure (else 'insecure: true' in the "
               "config file)");
  std::string ca;
  app.add_option("--ca", ca,
                 "The farm CA's certificate, to verify the coordinator with (else $MUSAFARM_CA, "
                 "else 'ca:' in the config file, else ~/.config/musafarm/ca.crt)")
      ->type_name("FILE");
  app.failure_message([](const CLI::App* top, const CLI::Error& e) {
    std::string cmd = top->get_display_name();
    for (const CLI::App* sub : top->get_subcommands()) absl::StrAppend(&cmd, " ", sub->get_name());
    return absl::StrCat("musafarm: ", UnexpectedOptions(top, e).value_or(e.what()), "\nRun '", cmd,
                        " --help' for more information.\n");
  });
  app.footer(
      "Exit codes: 0 ok; 1 job failed or cancelled (results: also any test failed or "
      "errored); 2 bad usage or input (unknown job or task, an output path that cannot be "
      "written); 3 coordinator unreachable.");

  std::string output = "table";
  SubmitOptions submit;
  bool submit_logs = false;
  CLI::App* submit_cmd = app.add_subcommand(
      "submit",
      "Validate a pipeline file and submit it as a job (no file: the built-in torch_musa "
      "pipeline, pipelines/torch_musa.yaml)");
  submit_cmd->add_option("file", submit.file, "Pipeline file");
  submit_cmd->add_flag("--watch,-w", submit.watch, "Watch the job until it ends");
  submit_cmd->add_flag("--logs", submit_logs, "With --watch: print task logs too");
  submit_cmd->add_flag("--strict", submit.strict,
                       "Refuse the job (nothing created) if a task could run on no connected "
                       "agent; without it, those tasks are warnings and wait");
  submit_cmd->add_flag("--dry-run", submit.dry_run,
                       "Print the request and the job it expands to as JSON (secret values "
                       "masked) and submit nothing");
  AddOutputOption(submit_cmd, &output, /*short_o=*/true);
  AddSubmitInputs(submit_cmd, &submit);
  submit_cmd
      ->add_option("--context", submit.contexts,
                   "Upload directory DIR as the job input NAME, which a docker_build names as "
                   "`context: input:NAME`: only files the coordinator lacks are sent; "
                   ".dockerignore and .git/ are left out (repeatable)")
      ->type_name("NAME=DIR")
      ->group("Pipeline inputs");

  // Schedules (issue 14): `schedule add` takes submit's command line.
  CLI::App* schedule_cmd =
      app.add_subcommand("schedule", "Pipelines the coordinator submits on a cron schedule");
  schedule_cmd->require_subcommand(1);
  ScheduleAddOptions schedule_add;
  CLI::App* schedule_add_cmd = schedule_cmd->add_subcommand(
      "add",
      "Add a schedule (admin): NAME --cron EXPR [PIPELINE] [submit's options]; secrets are read "
      "from the environment now and stored encrypted");
  schedule_add_cmd->add_option("name", schedule_add.name, "Schedule name")->required();
  schedule_add_cmd->add_option("file", schedule_add.submit.file,
                               "Pipeline file (none: the built-in torch_musa pipeline)");
  schedule_add_cmd
      ->add_option("--cron", schedule_add.cron,
                   "When: five fields 'minute hour day month weekday' (e.g. \"0 2 * * *\") or "
                   "@daily, @hourly, ...")
      ->required();
  schedule_add_cmd
      ->add_option("--timezone", schedule_add.timezone,
                   "IANA time zone the cron is read in, e.g. Asia/Shanghai (default UTC)")
      ->type_name("ZONE");
  schedule_add_cmd
      ->add_option("--overlap", schedule_add.overlap,
                   "When the previous run still goes: skip this slot, or queue a run anyway")
      ->check(CLI::IsMember({"skip", "queue"}).description(""))
      ->capture_default_str();
  AddSubmitInputs(schedule_add_cmd, &schedule_add.submit);
  AddOutputOption(schedule_add_cmd, &output);
  CLI::App* schedule_list_cmd = schedule_cmd->add_subcommand("list", "List schedules");
  AddOutputOption(schedule_list_cmd, &output);
  std::string schedule_name;
  int schedule_runs = 0;
  CLI::App* schedule_show_cmd =
      schedule_cmd->add_subcommand("show", "Show a schedule and its last runs with their results");
  schedule_show_cmd->add_option("name", schedule_name, "Schedule name")->required();
  schedule_show_cmd->add_option("--runs,-n", schedule_runs, "The last N runs (default 10)")
      ->check(CLI::NonNegativeNumber);
  AddOutputOption(schedule_show_cmd, &output);
  std::map<std::string, CLI::App*> schedule_changes;
  for (const auto& [action, help] : std::vector<std::pair<std::string, std::string>>{
           {"remove", "Remove a schedule (admin); its jobs stay"},
           {"pause", "Pause a schedule (admin): no run until resumed"},
           {"resume", "Resume a schedule (admin) from its next slot"},
           {"run", "Run a schedule now (admin), under its overlap policy"}}) {
    CLI::App* cmd = schedule_cmd->add_subcommand(action, help);
    cmd->add_option("name", schedule_name, "Schedule name")->required();
    AddOutputOption(cmd, &output);
    schedule_changes[action] = cmd;
  }
  // The pipeline's own options, from its `options:`: the file (or the
  // built-in pipeline) must be read before the command line can be parsed.
  const std::optional<std::string> pipeline_arg = PipelineFileArg(argc, argv);
  if (pipeline_arg.has_value()) {
    absl::StatusOr<PipelineSource> source = ReadPipeline(*pipeline_arg);
    absl::StatusOr<pipeline::PipelineOptions> declared =
        source.ok() ? pipeline::DeclaredOptions(source->yaml, source->file)
                    : absl::StatusOr<pipeline::PipelineOptions>(source.status());
    if (!declared.ok()) {
      *env.err << (source.ok() ? "" : "musafarm: ") << declared.status().message() << "\n";
      return kExitUsage;
    }
    AddPipelineOptions(submit_cmd, *declared, source->file, &submit.given);
    AddPipelineOptions(schedule_add_cmd, *declared, source->file, &schedule_add.submit.given);
  }

  int limit = 0;
  CLI::App* jobs_cmd = app.add_subcommand("jobs", "List jobs, newest first");
  jobs_cmd->add_option("--limit,-n", limit, "At most N jobs (0: the coordinator's default, 50)")
      ->check(CLI::NonNegativeNumber);
  bool mine = false;
  std::string jobs_user;
  jobs_cmd->add_flag("--mine", mine, "Only the jobs you submitted");
  jobs_cmd->add_option("--user", jobs_user, "Only the jobs USER submitted")->type_name("USER");
  AddOutputOption(jobs_cmd, &output);

  std::string id;
  CLI::App* status_cmd = app.add_subcommand("status", "Show a job, or one task of it");
  status_cmd->add_option("id", id, "Job id (7) or task id (7/dev-3.8/base)")->required();
  AddOutputOption(status_cmd, &output);

  WatchOptions watch;
  CLI::App* watch_cmd = app.add_subcommand("watch", "Follow a job until it ends");
  watch_cmd->add_option("id", watch.job_id, "Job id")->required();
  watch_cmd->add_flag("--logs", watch.logs, "Print task logs too");
  AddOutputOption(watch_cmd, &output);

  std::string task;
  bool follow = false;
  CLI::App* logs_cmd =
      app.add_subcommand("logs", "Print a task's log (raw bytes; -o json: one LogData a line)");
  logs_cmd->add_option("task", task, "Task id (7/dev-3.8/base)")->required();
  logs_cmd->add_flag("--follow,-f", follow, "Keep printing until the task has ended");
  AddOutputOption(logs_cmd, &output);

  std::string artifacts_dir;
  CLI::App* artifacts_cmd = app.add_subcommand(
      "artifacts", "List a task's artifacts (files collected from its outputs), or download them");
  artifacts_cmd->add_option("task", task, "Task id (7/dev-3.8/test)")->required();
  artifacts_cmd
      ->add_option("-o,--dir", artifacts_dir,
                   "Download every artifact into DIR (created if missing) as DIR/NAME")
      ->type_name("DIR");
  AddOutputOption(artifacts_cmd, &output, /*short_o=*/false);

  std::string junit;
  CLI::App* results_cmd = app.add_subcommand(
      "results", "Show a job's test results per task; exits 1 if a test failed or errored");
  results_cmd->add_option("job", id, "Job id (7)")->required();
  results_cmd
      ->add_option("--junit", junit,
                   "Also write the results as JUnit XML to FILE (one testsuite per task)")
      ->type_name("FILE");
  AddOutputOption(results_cmd, &output);

  CLI::App* cancel_cmd = app.add_subcommand("cancel", "Cancel a job or a task");
  cancel_cmd->add_option("id", id, "Job id or task id")->required();
  AddOutputOption(cancel_cmd, &output);

  CLI::App* agents_cmd = app.add_subcommand("agents", "List agents");
  AddOutputOption(agents_cmd, &output);
  std::string agent;
  CLI::App* revoke_cmd = agents_cmd->add_subcommand(
      "revoke", "Revoke an agent's certificates: its stream ends, and it is refused from now on");
  revoke_cmd->add_option("agent", agent, "Agent name")->required();
  AddOutputOption(revoke_cmd, &output);

  CLI::App* drain_cmd = app.add_subcommand("drain", "Stop giving new work to an agent");
  drain_cmd->add_option("agent", agent, "Agent name")->required();
  AddOutputOption(drain_cmd, &output);
  CLI::App* undrain_cmd = app.add_subcommand("undrain", "Give an agent work again");
  undrain_cmd->add_option("agent", agent, "Agent name")->required();
  AddOutputOption(undrain_cmd, &output);

  // Users (admin): API tokens and the audit log.
  std::string token_user, token_role, token_expires, token_id;
  CLI::App* token_cmd = app.add_subcommand("token", "Make, list and revoke API tokens (admin)");
  token_cmd->require_subcommand(1);
  CLI::App* token_create_cmd = token_cmd->add_subcommand(
      "create", "Make an API token for user NAME and print it once");
  token_create_cmd->add_option("name", token_user, "The user the token stands for")->required();
  token_create_cmd->add_option("--role", token_role, "viewer, submitter or admin")
      ->required()
      ->check(CLI::IsMember({"viewer", "submitter", "admin"}).description(""));
  token_create_cmd->add_option("--expires", token_expires,
                               "Lifetime, e.g. 90d or 12h (default: until revoked)");
  AddOutputOption(token_create_cmd, &output);
  CLI::App* token_list_cmd = token_cmd->add_subcommand("list", "List API tokens (never a secret)");
  AddOutputOption(token_list_cmd, &output);
  CLI::App* token_revoke_cmd = token_cmd->add_subcommand(
      "revoke", "Revoke a token by id, or every token of a user by name");
  token_revoke_cmd->add_option("id", token_id, "Token id, or a user name")->required();
  AddOutputOption(token_revoke_cmd, &output);
  std::string audit_user, audit_since;
  int audit_limit = 0;
  CLI::App* audit_cmd =
      app.add_subcommand("audit", "Show the audit log of state-changing calls (admin)");
  audit_cmd->add_option("--user", audit_user, "Only this user's calls")->type_name("USER");
  audit_cmd->add_option("--since", audit_since, "Only the last DURATION, e.g. 1h or 7d")
      ->type_name("DURATION");
  audit_cmd->add_option("-n,--limit", audit_limit, "The newest N lines (default 100)")
      ->check(CLI::NonNegativeNumber);
  AddOutputOption(audit_cmd, &output, /*short_o=*/true);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with code 0; they print to out.
    const int code = app.exit(e, *env.out, *env.err);
    return code == 0 ? kExitOk : kExitUsage;
  }

  absl::StatusOr<std::string> address = ResolveCoordinator(coordinator);
  if (!address.ok()) {
    *env.err << "musafarm: " << address.status().message() << "\n";
    return kExitUsage;
  }
  env.coordinator = *address;
  absl::StatusOr<std::optional<ChannelTls>> tls = ResolveTls(insecure, ca);
  if (!tls.ok()) {
    *env.err << "musafarm: " << tls.status().message() << "\n";
    return kExitUsage;
  }
  env.tls = *std::move(tls);
  env.output = output == "json" ? OutputFormat::kJson : OutputFormat::kTable;
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
             << env.coordinator << "\n";
  }
  if (const char* user = std::getenv("USER"); user != nullptr && *user != '\0') {
    env.os_user = user;
  } else if (const char* login = getlogin(); login != nullptr) {
    env.os_user = login;
  }

  if (submit_cmd->parsed()) {
    if (submit.file != pipeline_arg.value_or("")) {
      // Read for its options was another file (or none): their options differ.
      *env.err << "musafarm: submit: give the pipeline file before its options: musafarm submit "
                  "[PIPELINE] [OPTIONS]\n";
      return kExitUsage;
    }
    submit.watch_options.logs = submit_logs;
    return RunSubmit(env, submit);
  }
  if (schedule_add_cmd->parsed()) {
    if (schedule_add.submit.file != pipeline_arg.value_or("")) {
      *env.err << "musafarm: schedule add: give the pipeline file before its options: musafarm "
                  "schedule add NAME --cron EXPR [PIPELINE] [OPTIONS]\n";
      return kExitUsage;
    }
    return RunScheduleAdd(env, schedule_add);
  }
  if (schedule_list_cmd->parsed()) return RunScheduleList(env);
  if (schedule_show_cmd->parsed()) return RunScheduleShow(env, schedule_name, schedule_runs);
  for (const auto& [action, cmd] : schedule_changes) {
    if (cmd->parsed()) return RunScheduleChange(env, action, schedule_name);
  }
  if (jobs_cmd->parsed()) return RunJobs(env, limit, mine, jobs_user);
  if (token_create_cmd->parsed()) {
    return RunTokenCreate(env, token_user, token_role, token_expires);
  }
  if (token_list_cmd->parsed()) return RunTokenList(env);
  if (token_revoke_cmd->parsed()) return RunTokenRevoke(env, token_id);
  if (audit_cmd->parsed()) return RunAudit(env, audit_user, audit_since, audit_limit);
  if (status_cmd->parsed()) return RunStatus(env, id);
  if (watch_cmd->parsed()) return RunWatch(env, watch);
  if (logs_cmd->parsed()) return RunLogs(env, task, follow);
  if (artifacts_cmd->parsed()) return RunArtifacts(env, task, artifacts_dir);
  if (results_cmd->parsed()) return RunResults(env, id, junit);
  if (cancel_cmd->parsed()) return RunCancel(env, id);
  if (revoke_cmd->parsed()) return RunRevoke(env, agent);
  if (agents_cmd->parsed()) return RunAgents(env);
  if (drain_cmd->parsed()) return RunDrain(env, agent, /*undrain=*/false);
  if (undrain_cmd->parsed()) return RunDrain(env, agent, /*undrain=*/true);
  return kExitUsage;  // unreachable: require_subcommand(1)
}

}  // namespace musafarm::cli
