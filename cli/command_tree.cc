#include "cli/command_tree.h"

#include <utility>

#include "absl/algorithm/container.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/version.h"
#include "pipeline/spec.h"

namespace musafarm::cli {
namespace {

// The top-level commands, as the constructor adds them.
constexpr absl::string_view kTopCommands[] = {
    "submit",    "schedule", "jobs",   "status", "watch",     "logs",
    "artifacts", "results",  "cancel", "rerun",  "agents",    "coordinators",
    "drain",     "undrain",  "token",  "audit",  "completion"};

}  // namespace

std::string TopCommandName(int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") return "";
    if (arg == "--coordinator" || arg == "-c" || arg == "--ca" || arg == "--color") {
      ++i;  // its value
      continue;
    }
    if (absl::StartsWith(arg, "-")) continue;
    return std::string(arg);
  }
  return "";
}

bool MayConnect(int argc, const char* const* argv) {
  const std::string top = TopCommandName(argc, argv);
  if (top.empty() || top == "completion") return false;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == "--help" || arg == "-h" || arg == "--version") return false;
  }
  return true;
}

CLI::Option* CommandTree::AddChoice(CLI::App* cmd, const std::string& names, std::string* value,
                                    const std::string& help, std::vector<std::string> choices) {
  CLI::Option* opt = cmd->add_option(names, *value, help)
                         ->check(CLI::IsMember(choices).description(""))
                         ->type_name(absl::StrJoin(choices, "|"));
  choices_[opt] = std::move(choices);
  return opt;
}

void CommandTree::AddOutputOption(CLI::App* cmd) {
  AddChoice(cmd, "--output,-o", &values_.output,
            "Output format: table, json (one JSON object a line) or yaml (one YAML document "
            "each)",
            {"table", "json", "yaml"})
      ->capture_default_str();
}

const std::vector<std::string>* CommandTree::Choices(const CLI::Option* opt) const {
  auto it = choices_.find(opt);
  return it == choices_.end() ? nullptr : &it->second;
}

void CommandTree::AddPipelineOptions(const pipeline::PipelineOptions& declared,
                                     const std::string& file) {
  if (Want("submit")) AddDeclaredOptions(submit, declared, file, &values_.submit.given);
  if (Want("schedule")) {
    AddDeclaredOptions(schedule_add, declared, file, &values_.schedule_add.submit.given);
  }
}

void CommandTree::AddDeclaredOptions(CLI::App* cmd, const pipeline::PipelineOptions& declared,
                                     const std::string& file, GivenOptions* given) {
  const std::string group = absl::StrCat("Options of ", file);
  for (const pipeline::OptionDecl& o : declared.options) {
    std::string names = o.short_name.empty() ? absl::StrCat("--", o.long_name)
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

void CommandTree::AddSubmitInputs(CLI::App* cmd, SubmitOptions* submit_options) {
  GivenOptions& given = submit_options->given;
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
                  "become the secrets it names, its name, digest and sha256s the params "
                  "package_set, download_cache_key and package_sha256s (each download is "
                  "checked); VALUE=FILE,... gives one per cell (e.g. per GPU "
                  "architecture)")
      ->type_name("FILE")
      ->group(kGeneric);
  cmd->add_option("--webhook", submit_options->webhooks,
                  "Notify URL when the job ends (repeatable); after it ,format=slack (also "
                  "mattermost, feishu, lark; default json) and ,first-failure (also at the first "
                  "failed task). It must fall under the coordinator's --webhook-allow")
      ->type_name("URL[,format=F][,first-failure]")
      ->group(kGeneric);
  cmd->add_option("--job-name", submit_options->job_name,
                  "Name of the job (default: what the pipeline's options or its 'name' say)")
      ->type_name("NAME")
      ->group(kGeneric);
}

// Short flags mean one thing everywhere (cli/cli_tree_test.cc checks it):
// -c coordinator, -o output, -w watch, -p param, -n limit, -f follow, -h help.
// A pipeline's declared options may keep the short flags of the script they
// replace (torch_musa's build.sh: -n name, -f dockerfile, ...) under submit.
CommandTree::CommandTree(absl::string_view only)
    : app_("musafarm: submit and follow jobs on a musafarm build farm", "musafarm"),
      // Completion walks the whole tree; a name that is no command builds it
      // all, so that the parse says what is wrong as it always did.
      only_(only != "completion" && absl::c_linear_search(kTopCommands, only) ? only : "") {
  CommandValues& v = values_;
  app_.set_version_flag("--version", VersionLine());
  app_.require_subcommand(1);
  app_.fallthrough();  // global options may follow the subcommand
  app_.add_option("--coordinator,-c", v.coordinator,
                  "Coordinator address HOST:PORT, or a farm's coordinators HOST:PORT,HOST:PORT "
                  "(calls go to the active one) (else $MUSAFARM_COORDINATOR, else 'coordinator:' "
                  "in $MUSAFARM_CONFIG or ~/.config/musafarm/config.yaml, else 127.0.0.1:7070)")
      ->type_name("HOST:PORT[,...]");
  app_.add_flag("--insecure", v.insecure,
                "Plaintext, for a coordinator run with --insecure (else 'insecure: true' in the "
                "config file)");
  app_.add_option("--ca", v.ca,
                  "The farm CA's certificate, to verify the coordinator with (else $MUSAFARM_CA, "
                  "else 'ca:' in the config file, else ~/.config/musafarm/ca.crt)")
      ->type_name("FILE");
  AddChoice(&app_, "--color", &v.color,
            "Colour job and task states: auto (on a terminal, unless $NO_COLOR is set), always "
            "or never",
            {"auto", "always", "never"})
      ->capture_default_str();
  app_.footer(
      "Exit codes: 0 ok; 1 job failed or cancelled (results: also any test failed or "
      "errored); 2 bad usage or input (unknown job or task, an output path that cannot be "
      "written); 3 coordinator unreachable.");

  submit = app_.add_subcommand(
      "submit",
      "Validate a pipeline file and submit it as a job (no file: the built-in torch_musa "
      "pipeline, pipelines/torch_musa.yaml)");
  if (Want("submit")) {
    submit->add_option("file", v.submit.file, "Pipeline file")->type_name("FILE");
    submit->add_flag("--watch,-w", v.submit.watch, "Watch the job until it ends");
    submit->add_flag("--logs", v.submit_logs, "With --watch: print task logs too");
    submit->add_flag("--strict", v.submit.strict,
                     "Refuse the job (nothing created) if a task could run on no connected "
                     "agent; without it, those tasks are warnings and wait");
    submit->add_flag("--dry-run", v.submit.dry_run,
                     "Print the request and the job it expands to as JSON (secret values "
                     "masked) and submit nothing");
    AddOutputOption(submit);
    AddSubmitInputs(submit, &v.submit);
    submit
        ->add_option("--context", v.submit.contexts,
                     "Upload directory DIR as the job input NAME, which a docker_build names as "
                     "`context: input:NAME`, or a git URL (git+https://...#REF, git://...); "
                     "replaces the pipeline's declared input NAME. Only files the coordinator "
                     "lacks are sent; .dockerignore and .git/ are left out (repeatable)")
        ->type_name("NAME=DIR")
        ->allow_extra_args(false)  // one value each time: the file may follow
        ->group("Pipeline inputs");
  }
  // Schedules (issue 14): `schedule add` takes submit's command line.
  CLI::App* schedule =
      app_.add_subcommand("schedule", "Pipelines the coordinator submits on a cron schedule");
  if (Want("schedule")) {
    schedule->require_subcommand(1);
    schedule_add = schedule->add_subcommand(
        "add",
        "Add a schedule (admin): NAME --cron EXPR [PIPELINE] [submit's options]; secrets are read "
        "from the environment now and stored encrypted");
    schedule_add->add_option("name", v.schedule_add.name, "Schedule name")->required();
    schedule_add
        ->add_option("file", v.schedule_add.submit.file,
                     "Pipeline file (none: the built-in torch_musa pipeline)")
        ->type_name("FILE");
    schedule_add
        ->add_option("--cron", v.schedule_add.cron,
                     "When: five fields 'minute hour day month weekday' (e.g. \"0 2 * * *\") or "
                     "@daily, @hourly, ...")
        ->required();
    schedule_add
        ->add_option("--timezone", v.schedule_add.timezone,
                     "IANA time zone the cron is read in, e.g. Asia/Shanghai (default UTC)")
        ->type_name("ZONE");
    AddChoice(schedule_add, "--overlap", &v.schedule_add.overlap,
              "When the previous run still goes: skip this slot, or queue a run anyway",
              {"skip", "queue"})
        ->capture_default_str();
    AddSubmitInputs(schedule_add, &v.schedule_add.submit);
    schedule_add
        ->add_option("--context", v.schedule_add.submit.contexts,
                     "Job input NAME for every run: a directory DIR, uploaded now and pinned for "
                     "the schedule, or git+URL#REF, resolved to the branch's head at each run "
                     "(repeatable)")
        ->type_name("NAME=DIR|NAME=git+URL#REF")
        ->group("Pipeline inputs");
    AddOutputOption(schedule_add);
    schedule_list = schedule->add_subcommand("list", "List schedules");
    AddOutputOption(schedule_list);
    schedule_show =
        schedule->add_subcommand("show", "Show a schedule and its last runs with their results");
    schedule_show->add_option("name", v.schedule_name, "Schedule name")->required();
    // -n is a limit everywhere; --runs is the name it was given first.
    schedule_show->add_option("--limit,--runs,-n", v.schedule_runs, "The last N runs (default 10)")
        ->check(CLI::NonNegativeNumber);
    AddOutputOption(schedule_show);
    for (const auto& [action, help] : std::vector<std::pair<std::string, std::string>>{
             {"remove", "Remove a schedule (admin); its jobs stay"},
             {"pause", "Pause a schedule (admin): no run until resumed"},
             {"resume", "Resume a schedule (admin) from its next slot"},
             {"run", "Run a schedule now (admin), under its overlap policy"}}) {
      CLI::App* cmd = schedule->add_subcommand(action, help);
      cmd->add_option("name", v.schedule_name, "Schedule name")->required();
      AddOutputOption(cmd);
      schedule_changes[action] = cmd;
    }
  }
  jobs = app_.add_subcommand("jobs", "List jobs, newest first");
  if (Want("jobs")) {
    jobs->add_option("--limit,-n", v.jobs.limit,
                     "At most N jobs (0: the coordinator's default, 50)")
        ->check(CLI::NonNegativeNumber);
    jobs->add_flag("--mine", v.jobs.mine, "Only the jobs you submitted");
    jobs->add_option("--user", v.jobs.user, "Only the jobs USER submitted")->type_name("USER");
    jobs->add_option("--state", v.jobs.states,
                     "Only jobs in these states: running, succeeded, failed, cancelled")
        ->delimiter(',')
        ->allow_extra_args(false)
        ->type_name("S[,S]");
    jobs->add_option("--name", v.jobs.name, "Only jobs whose name contains TEXT")
        ->type_name("TEXT");
    jobs->add_option("--since", v.jobs.since,
                     "Only jobs created in the last DURATION, e.g. 1d or 6h")
        ->type_name("DURATION");
    jobs->add_option("--older-than", v.jobs.older_than,
                     "Only jobs created more than DURATION ago, e.g. 7d")
        ->type_name("DURATION");
    AddOutputOption(jobs);
  }
  status = app_.add_subcommand("status", "Show a job, or one task of it");
  if (Want("status")) {
    status->add_option("id", v.id, "Job id (7) or task id (7/dev-3.8/base)")->required();
    AddOutputOption(status);
  }
  watch = app_.add_subcommand("watch", "Follow a job until it ends");
  if (Want("watch")) {
    watch->add_option("id", v.watch.job_id, "Job id")->required();
    watch->add_flag("--logs", v.watch.logs, "Print task logs too");
    AddOutputOption(watch);
  }
  logs = app_.add_subcommand(
      "logs", "Print a task's log (raw bytes; -o json: one LogData a line, the bytes in base64)");
  if (Want("logs")) {
    logs->add_option("task", v.task, "Task id (7/dev-3.8/base)")->required();
    logs->add_flag("--follow,-f", v.follow, "Keep printing until the task has ended");
    AddOutputOption(logs);
  }
  artifacts = app_.add_subcommand(
      "artifacts", "List a task's artifacts (files collected from its outputs), or download them");
  if (Want("artifacts")) {
    artifacts->add_option("task", v.task, "Task id (7/dev-3.8/test)")->required();
    artifacts
        ->add_option("--dir", v.artifacts_dir,
                     "Download every artifact into DIR (created if missing) as DIR/NAME")
        ->type_name("DIR");
    AddOutputOption(artifacts);
  }
  results = app_.add_subcommand(
      "results", "Show a job's test results per task; exits 1 if a test failed or errored");
  if (Want("results")) {
    results->add_option("job", v.id, "Job id (7)")->required();
    results
        ->add_option("--junit", v.junit,
                     "Also write the results as JUnit XML to FILE (one testsuite per task)")
        ->type_name("FILE");
    AddOutputOption(results);
  }
  cancel = app_.add_subcommand("cancel", "Cancel a job or a task");
  if (Want("cancel")) {
    cancel->add_option("id", v.id, "Job id or task id")->required();
    AddOutputOption(cancel);
  }
  rerun = app_.add_subcommand(
      "rerun",
      "Run an ended job again as a new job of yours: its tasks as expanded at its submit (same "
      "params, matrix, inputs); prints the new job's id");
  if (Want("rerun")) {
    rerun->add_option("job", v.rerun.job_id, "Job id (7)")->required();
    rerun->add_flag("--failed", v.rerun.failed,
                    "Only the matrix cells with a failed, timed-out, cancelled or skipped task, "
                    "each with all its stages (a failed test reruns after its build)");
    rerun
        ->add_option("--secret", v.rerun.secrets,
                     "The job's secret NAME again, from environment variable NAME (secret values "
                     "are not kept past a job; the coordinator names any missing) (repeatable)")
        ->type_name("NAME");
    rerun->add_flag("--watch,-w", v.rerun.watch, "Watch the new job until it ends");
    AddOutputOption(rerun);
  }
  agents = app_.add_subcommand("agents", "List agents");
  if (Want("agents")) {
    AddOutputOption(agents);
    agents_revoke = agents->add_subcommand(
        "revoke", "Revoke an agent's certificates: its stream ends, and it is refused from now on");
    agents_revoke->add_option("agent", v.agent, "Agent name")->required();
    AddOutputOption(agents_revoke);
  }
  coordinators = app_.add_subcommand(
      "coordinators",
      "List the farm's coordinators: which is active since when, the standbys, those gone (a "
      "standby answers this too)");
  if (Want("coordinators")) {
    AddOutputOption(coordinators);
  }
  drain = app_.add_subcommand("drain", "Stop giving new work to an agent");
  if (Want("drain")) {
    drain->add_option("agent", v.agent, "Agent name")->required();
    AddOutputOption(drain);
  }
  undrain = app_.add_subcommand("undrain", "Give an agent work again");
  if (Want("undrain")) {
    undrain->add_option("agent", v.agent, "Agent name")->required();
    AddOutputOption(undrain);
  }
  // Users (admin): API tokens and the audit log.
  CLI::App* token = app_.add_subcommand("token", "Make, list and revoke API tokens (admin)");
  if (Want("token")) {
    token->require_subcommand(1);
    token_create =
        token->add_subcommand("create", "Make an API token for user NAME and print it once");
    token_create->add_option("name", v.token_user, "The user the token stands for")->required();
    AddChoice(token_create, "--role", &v.token_role, "viewer, submitter or admin",
              {"viewer", "submitter", "admin"})
        ->required();
    token_create->add_option("--expires", v.token_expires,
                             "Lifetime, e.g. 90d or 12h (default: until revoked)");
    AddOutputOption(token_create);
    token_list = token->add_subcommand("list", "List API tokens (never a secret)");
    AddOutputOption(token_list);
    token_revoke =
        token->add_subcommand("revoke", "Revoke a token by id, or every token of a user by name");
    token_revoke->add_option("id", v.token_id, "Token id, or a user name")->required();
    AddOutputOption(token_revoke);
  }
  audit = app_.add_subcommand("audit", "Show the audit log of state-changing calls (admin)");
  if (Want("audit")) {
    audit->add_option("--user", v.audit_user, "Only this user's calls")->type_name("USER");
    audit->add_option("--since", v.audit_since, "Only the last DURATION, e.g. 1h or 7d")
        ->type_name("DURATION");
    audit->add_option("--limit,-n", v.audit_limit, "The newest N lines (default 100)")
        ->check(CLI::NonNegativeNumber);
    AddOutputOption(audit);
  }
  completion = app_.add_subcommand(
      "completion",
      "Print a completion script for SHELL, made from this command tree: bash (source <(musafarm "
      "completion bash)) or zsh (source <(musafarm completion zsh), after compinit)");
  if (Want("completion")) {
    AddChoice(completion, "shell", &v.completion_shell, "bash or zsh", {"bash", "zsh"})->required();
  }
}

}  // namespace musafarm::cli
