#include "cli/app.h"

#include <ostream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "cli/commands/commands.h"
#include "cli/config.h"

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
  app.failure_message([](const CLI::App* top, const CLI::Error& e) {
    std::string cmd = top->get_display_name();
    for (const CLI::App* sub : top->get_subcommands()) absl::StrAppend(&cmd, " ", sub->get_name());
    return absl::StrCat("musafarm: ", e.what(), "\nRun '", cmd, " --help' for more information.\n");
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
  AddOutputOption(submit_cmd, &output, /*short_o=*/true);
  ScriptOptions& so = submit.script;
  const char* kScript = "torch_musa script options";
  const char* kGeneric = "Pipeline inputs";
  submit_cmd->add_option("--param,-p", so.params, "Set a pipeline param (repeatable)")
      ->type_name("NAME=VALUE")
      ->group(kGeneric);
  submit_cmd->add_option("--axis", so.axes, "Replace a matrix axis's values (repeatable)")
      ->type_name("AXIS=V1,V2")
      ->group(kGeneric);
  submit_cmd
      ->add_option("--secret", so.secrets,
                   "Pass the value of environment variable NAME as the pipeline secret NAME: "
                   "never shown, logged or stored past the job (repeatable)")
      ->type_name("NAME")
      ->group(kGeneric);
  submit_cmd->add_option("-n,--name", so.name, "Image name (param name); also the job's name")
      ->group(kScript);
  submit_cmd->add_option("-t,--tag", so.tag, "Image tag (param tag)")->group(kScript);
  submit_cmd->add_option("-s,--sys", so.sys, "Base OS image, e.g. ubuntu:20.04 (param sys)")
      ->group(kScript);
  submit_cmd
      ->add_option("-v,--python_version", so.python_versions,
                   "Python versions, comma-separated or repeated (axis python)")
      ->type_name("VERSIONS")
      ->group(kScript);
  submit_cmd
      ->add_option("-b,--base_img", so.base_img,
                   "Dev: build on this base image instead of building one; release: FROM this "
                   "(param base_img)")
      ->group(kScript);
  submit_cmd
      ->add_option("-f,--docker_file", so.docker_file,
                   "Dockerfile of the dev image, or of the release image with -r "
                   "(param dev_dockerfile / release_dockerfile)")
      ->group(kScript);
  submit_cmd->add_flag("-r,--release", so.release, "Build the release images (--variant release)")
      ->group(kScript);
  submit_cmd
      ->add_option("--variant", so.variants, "Variants, comma-separated: dev,release (axis variant)")
      ->type_name("VARIANTS")
      ->group(kScript);
  submit_cmd
      ->add_option("--torch_musa_tag", so.torch_musa_tag,
                   "torch_musa tag for dev images (param torch_musa_tag; pipeline default dev1.5.1)")
      ->group(kScript);
  submit_cmd
      ->add_option("-m,--musa_toolkits_url", so.musa_toolkits_url,
                   "MUSA toolkit download URL (secret MUSA_TOOLKITS_URL)")
      ->type_name("URL")
      ->group(kScript);
  submit_cmd->add_option("--mudnn_url", so.mudnn_url, "muDNN download URL (secret MUDNN_URL)")
      ->type_name("URL")
      ->group(kScript);
  submit_cmd->add_option("--mccl_url", so.mccl_url, "MCCL download URL (secret MCCL_URL)")
      ->type_name("URL")
      ->group(kScript);
  submit_cmd
      ->add_option("--torch_whl_url", so.torch_whl_url,
                   "PyTorch wheel URL for release images (secret TORCH_WHL_URL)")
      ->type_name("URL")
      ->group(kScript);
  submit_cmd
      ->add_option("--torch_musa_whl_url", so.torch_musa_whl_url,
                   "torch_musa wheel URL for release images (secret TORCH_MUSA_WHL_URL)")
      ->type_name("URL")
      ->group(kScript);

  int limit = 0;
  CLI::App* jobs_cmd = app.add_subcommand("jobs", "List jobs, newest first");
  jobs_cmd->add_option("--limit,-n", limit, "At most N jobs (0: the coordinator's default, 50)")
      ->check(CLI::NonNegativeNumber);
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
  CLI::App* drain_cmd = app.add_subcommand("drain", "Stop giving new work to an agent");
  drain_cmd->add_option("agent", agent, "Agent name")->required();
  AddOutputOption(drain_cmd, &output);
  CLI::App* undrain_cmd = app.add_subcommand("undrain", "Give an agent work again");
  undrain_cmd->add_option("agent", agent, "Agent name")->required();
  AddOutputOption(undrain_cmd, &output);

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
  env.output = output == "json" ? OutputFormat::kJson : OutputFormat::kTable;

  if (submit_cmd->parsed()) {
    submit.watch_options.logs = submit_logs;
    return RunSubmit(env, submit);
  }
  if (jobs_cmd->parsed()) return RunJobs(env, limit);
  if (status_cmd->parsed()) return RunStatus(env, id);
  if (watch_cmd->parsed()) return RunWatch(env, watch);
  if (logs_cmd->parsed()) return RunLogs(env, task, follow);
  if (artifacts_cmd->parsed()) return RunArtifacts(env, task, artifacts_dir);
  if (results_cmd->parsed()) return RunResults(env, id, junit);
  if (cancel_cmd->parsed()) return RunCancel(env, id);
  if (agents_cmd->parsed()) return RunAgents(env);
  if (drain_cmd->parsed()) return RunDrain(env, agent, /*undrain=*/false);
  if (undrain_cmd->parsed()) return RunDrain(env, agent, /*undrain=*/true);
  return kExitUsage;  // unreachable: require_subcommand(1)
}

}  // namespace musafarm::cli
