// musafarm-agent: flags or a config file -> Agent -> wait for SIGTERM/SIGINT.
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/agent.h"
#include "agent/cert_renewer.h"
#include "agent/enroll_command.h"
#include "agent/enrollment_client.h"
#include "agent/executor/docker_executor.h"
#include "agent/executor/exec_executor.h"
#include "agent/executor/secret_files.h"
#include "agent/grpc_coordinator_link.h"
#include "content/local_cas.h"
#include "common/address.h"
#include "common/bounded_text.h"
#include "common/limits.h"
#include "agent/host/background_pruner.h"
#include "agent/host/daemon_watcher.h"
#include "agent/host/disk.h"
#include "agent/host/gpu.h"
#include "agent/host/gpu_health.h"
#include "agent/host/musa_arch.h"
#include "agent/host/image_pruner.h"
#include "common/log_formatters.h"
#include "common/logging.h"
#include "common/pki.h"
#include "common/tls_channel.h"
#include "common/version.h"
#include "yaml-cpp/yaml.h"

namespace {

// Reads `name`, `coordinator`, `labels`, `slots`, `work_dir` from a YAML file
// into `o`, and `max_spool_bytes`, `drain_timeout`, `min_free_disk` (as given,
// parsed like their flags) into `more`; flags given on the command line win.
bool LoadConfig(const std::string& path, musafarm::agent::AgentOptions& o,
                std::string& coordinator, std::map<std::string, std::string>& more,
                std::string& error) {
  try {
    YAML::Node root = YAML::LoadFile(path);
    if (!root.IsMap()) {
      error = path + ": expected a mapping";
      return false;
    }
    for (const auto& kv : root) {
      const std::string key = kv.first.as<std::string>();
      const YAML::Node& v = kv.second;
      if (key == "name") {
        if (o.name.empty()) o.name = v.as<std::string>();
      } else if (key == "coordinator") {
        // One address, "a:1,b:1", or a YAML list of addresses (issue 20).
        if (v.IsSequence()) {
          coordinator.clear();
          for (const auto& a : v) {
            if (!coordinator.empty()) coordinator += ",";
            coordinator += a.as<std::string>();
          }
        } else {
          coordinator = v.as<std::string>();
        }
      } else if (key == "labels") {
        for (const auto& l : v) o.labels.push_back(l.as<std::string>());
      } else if (key == "slots") {
        o.slots = v.as<int>();
      } else if (key == "work_dir") {
        o.work_dir = v.as<std::string>();
      } else if (key == "max_spool_bytes" || key == "drain_timeout" || key == "min_free_disk") {
        more[key] = v.as<std::string>();
      } else {
        error = path + ":" + std::to_string(kv.first.Mark().line + 1) + ": unknown field '" + key +
                "' (known: name, coordinator, labels, slots, work_dir, max_spool_bytes, "
                "drain_timeout, min_free_disk)";
        return false;
      }
    }
  } catch (const YAML::Exception& e) {
    error = path + ": " + e.what();
    return false;
  }
  return true;
}

// The agent's TLS material: --ca/--cert/--key, else <work_dir>/pki/{ca.crt,
// agent.crt,agent.key}. A missing file is an error that says how to get one.
absl::StatusOr<musafarm::ChannelTls> LoadAgentTls(const std::string& work_dir, std::string ca,
                                                  std::string cert, std::string key) {
  const std::string dir = work_dir + "/pki";
  if (ca.empty()) ca = dir + "/ca.crt";
  if (cert.empty()) cert = dir + "/agent.crt";
  if (key.empty()) key = dir + "/agent.key";
  // A renewal cut short by a crash leaves <key>.next: finish or drop it first.
  if (absl::Status s = musafarm::agent::RecoverAgentPki({key, cert, ca}); !s.ok()) return s;
  musafarm::ChannelTls tls;
  struct File {
    const std::string& path;
    std::string* pem;
    const char* what;
  };
  for (const File& f : {File{cert, &tls.cert_pem, "agent certificate"},
                        File{key, &tls.key_pem, "agent private key"},
                        File{ca, &tls.ca_pem, "farm CA certificate"}}) {
    absl::StatusOr<std::string> pem = musafarm::ReadPemFile(f.path);
    if (absl::IsNotFound(pem.status())) {
      return absl::InvalidArgumentError(
          absl::StrCat("no ", f.what, " at ", f.path,
                       ": put agent.crt (signed by the farm's CA, naming this "
                       "agent), agent.key and the farm's ca.crt in ",
                       dir,
                       " (or pass --cert, --key, --ca), "
                       "or pass --insecure for plaintext on a trusted network"));
    }
    if (!pem.ok()) return pem.status();
    *f.pem = *std::move(pem);
  }
  return tls;
}

}  // namespace

int main(int argc, char** argv) {
  // As in the coordinator (coordinator/main.cc): Debian's Abseil keeps Mutex
  // deadlock detection on, which costs every lock a walk of a process-wide
  // lock graph (issue 19). The tests keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  musafarm::agent::AgentOptions options;
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  std::string config, log_level = "info", log_format, coordinator, work_dir;
  std::string coordinator_target = "127.0.0.1:7070";  // config, then env, then flag
  std::vector<std::string> labels;
  int slots = 0;
  double kill_grace_s = 5;
  std::string max_spool = "1G", min_free_disk = "5G", drain_timeout = "10m";
  bool docker = false, buildkit = false;
  std::string docker_cli = "/usr/bin/docker", docker_host, farm = "musafarm", secrets_dir;
  musafarm::agent::GpuFlags gpu_flags;
  std::string gpu_probe_command;
  double gpu_recheck_s = 5;
  bool insecure = false;
  std::string tls_ca, tls_cert, tls_key;
  CLI::App app{"musafarm agent: runs tasks from a musafarm coordinator on this host"};
  app.set_version_flag("--version", musafarm::VersionLine());
  app.add_option("--coordinator", coordinator,
                 "coordinator host:port, or a comma-separated list of a farm's coordinators "
                 "(the active one is found and followed) (default: $MUSAFARM_COORDINATOR or "
                 "127.0.0.1:7070)");
  app.add_option("--name", options.name,
                 "agent name, unique in the farm (default: the CN of its certificate; with "
                 "--insecure, the hostname)");
  app.add_option("--label,--labels", labels, "label key[=value]; repeat or comma-separate")
      ->delimiter(',');
  app.add_option("--slots", slots, "tasks run at once (default: number of CPUs)")
      ->check(CLI::PositiveNumber);
  app.add_option("--work-dir", work_dir, "per-task working directories go here");
  app.add_option("--config", config,
                 "YAML file with name, coordinator, labels, slots, work_dir, max_spool_bytes, "
                 "drain_timeout, min_free_disk");
  app.add_option("--kill-grace", kill_grace_s,
                 "seconds between SIGTERM and SIGKILL when a task is cancelled")
      ->capture_default_str();
  app.add_option("--max-spool-bytes", max_spool,
                 "unacknowledged task output kept on disk, all tasks together (e.g. 1G; 0: no "
                 "bound); at the bound the agent stops reading task output, so tasks block on "
                 "write until the coordinator catches up")
      ->capture_default_str();
  app.add_option("--drain-timeout", drain_timeout,
                 "on SIGTERM/SIGINT, how long running tasks may finish before they are stopped "
                 "and handed back to the coordinator (e.g. 10m, 90s; 0: at once; a second signal "
                 "hands back at once)")
      ->capture_default_str();
  app.add_option("--min-free-disk", min_free_disk,
                 "take no new work while the work dir's file system has less free space than "
                 "this (e.g. 5G; 0: no check)")
      ->capture_default_str();
  std::string cas_size = "20G";
  app.add_option("--cas-bytes", cas_size,
                 "size of the cache of job inputs fetched from the coordinator (<work-dir>/cas), "
                 "e.g. 20G; least recently used blobs go first")
      ->capture_default_str();
  app.add_flag("--docker", docker, "run docker_build, docker_run and docker_push stages");
  app.add_option("--docker-cli", docker_cli, "the engine's CLI (podman works too)")
      ->capture_default_str();
  app.add_option("--docker-host", docker_host, "DOCKER_HOST for the CLI (default: inherited)");
  app.add_flag("--buildkit", buildkit, "build with BuildKit (DOCKER_BUILDKIT=1)");
  app.add_option("--farm", farm, "value of the musafarm.farm label on containers and images")
      ->capture_default_str();
  app.add_option("--secrets-dir", secrets_dir,
                 "where docker_run secrets are written for their bind mounts; must be the same "
                 "path on the Docker host (default: /dev/shm, a tmpfs)");
  app.add_option("--gpus", gpu_flags.gpus,
                 "GPUs on this host, overriding detection (0: advertise none)")
      ->check(CLI::Range(0, 4096));
  app.add_option("--gpu-vendor", gpu_flags.vendor,
                 "GPU vendor on this host (mthreads, nvidia), overriding detection");
  app.add_flag("--no-gpu-detect{false}", gpu_flags.detect,
               "do not run mthreads-gmi / nvidia-smi at startup");
  app.add_option("--gpu-probe-command", gpu_probe_command,
                 "checks one GPU at start and after each GPU task: a program and its arguments "
                 "(split at blanks, no shell), {gpu} standing for the GPU's index; a non-zero exit "
                 "or no answer within 5s fences the GPU until it passes again (default: "
                 "`mthreads-gmi -q -i {gpu}` / `nvidia-smi -q -i {gpu}` when detection found that "
                 "tool's GPUs; \"none\": no probe)");
  app.add_option("--gpu-recheck-interval", gpu_recheck_s,
                 "seconds between probes of a fenced GPU")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--insecure", insecure,
               "talk plaintext to a coordinator run with --insecure (a trusted network only)");
  app.add_option("--ca", tls_ca,
                 "the farm CA's certificate, to verify the coordinator (default: "
                 "<work-dir>/pki/ca.crt)");
  app.add_option("--cert", tls_cert,
                 "this agent's certificate, signed by the farm's CA; its CN is the agent's name "
                 "(default: <work-dir>/pki/agent.crt)");
  app.add_option("--key", tls_key, "its private key (default: <work-dir>/pki/agent.key)");
  app.add_option("--log-format", log_format,
                 "text, json (one object per line: time, level, logger, msg) or journald "
                 "(sd-daemon priority prefixes); default: journald when stderr is the journal "
                 "($JOURNAL_STREAM), else text")
      ->check(CLI::IsMember({"text", "json", "journald"}));
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  // `enroll`: trade a join token for this agent's certificate, then exit.
  musafarm::agent::EnrollCommandOptions enroll;
  CLI::App* enroll_cmd = app.add_subcommand(
      "enroll", "Get this agent's certificate from the coordinator with a join token (written to "
                "<work-dir>/pki), then exit");
  enroll_cmd
      ->add_option("--coordinator", enroll.coordinator,
                   "coordinator HOST:PORT, or the farm's coordinators HOST:PORT,HOST:PORT (the "
                   "active one is found among them)")
      ->required();
  enroll_cmd->add_option("--token", enroll.token,
                         "join token (`musafarm-coordinator join-token create` prints it)")
      ->required();
  enroll_cmd->add_option("--ca", enroll.ca_file, "the farm's ca.crt, to verify the coordinator");
  enroll_cmd->add_option("--ca-pin", enroll.ca_pin,
                         "sha256:HEX: trust the CA certificate the coordinator presents whose key "
                         "has this pin (printed with the join token)");
  enroll_cmd->add_option("--name", enroll.name, "agent name to enrol as (default: hostname)");
  enroll_cmd->add_option("--work-dir", enroll.work_dir,
                         "the agent's work dir (default: musafarm-agent)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  // Before anything logs: every line of this process in one format.
  if (absl::StatusOr<musafarm::LogFormat> format = musafarm::ChooseLogFormat(log_format);
      format.ok()) {
    musafarm::SetLogFormat(*format);
  } else {
    std::cerr << "musafarm-agent: " << format.status().message() << "\n";
    return 2;
  }
  musafarm::SetLogLevel(log_level);
  if (enroll_cmd->parsed()) {
    if (enroll.name.empty()) enroll.name = host;
    if (enroll.work_dir.empty()) enroll.work_dir = options.work_dir;
    absl::StatusOr<std::vector<std::string>> list =
        musafarm::ParseAddressList("--coordinator", enroll.coordinator);
    if (!list.ok()) {
      std::cerr << "musafarm-agent: enroll: " << list.status().message() << "\n";
      return 2;
    }
    enroll.coordinators = *std::move(list);
    return musafarm::agent::RunEnrollCommand(enroll, std::cout, std::cerr);
  }
  // Precedence: flag, then $MUSAFARM_COORDINATOR, then the config file.
  if (!config.empty()) {
    std::string error;
    std::map<std::string, std::string> more;
    if (!LoadConfig(config, options, coordinator_target, more, error)) {
      std::cerr << "musafarm-agent: " << error << "\n";
      return 2;
    }
    if (more.count("max_spool_bytes") && app.count("--max-spool-bytes") == 0) {
      max_spool = more["max_spool_bytes"];
    }
    if (more.count("drain_timeout") && app.count("--drain-timeout") == 0) {
      drain_timeout = more["drain_timeout"];
    }
    if (more.count("min_free_disk") && app.count("--min-free-disk") == 0) {
      min_free_disk = more["min_free_disk"];
    }
  }
  int64_t cas_bytes = 0;
  if (absl::StatusOr<uint64_t> cas = musafarm::agent::ParseBytes(cas_size); cas.ok()) {
    cas_bytes = static_cast<int64_t>(*cas);
  } else {
    std::cerr << "musafarm-agent: --cas-bytes: " << cas.status().message() << "\n";
    return 2;
  }
  {
    absl::StatusOr<uint64_t> spool = musafarm::agent::ParseBytes(max_spool);
    absl::StatusOr<uint64_t> disk = musafarm::agent::ParseBytes(min_free_disk);
    absl::Duration drain;
    if (!spool.ok() || !disk.ok()) {
      std::cerr << "musafarm-agent: "
                << (!spool.ok() ? "--max-spool-bytes: " + std::string(spool.status().message())
                                : "--min-free-disk: " + std::string(disk.status().message()))
                << "\n";
      return 2;
    }
    if (drain_timeout == "0") drain_timeout = "0s";
    if (!absl::ParseDuration(drain_timeout, &drain) || drain < absl::ZeroDuration()) {
      std::cerr << "musafarm-agent: --drain-timeout: '" << drain_timeout
                << "' is not a duration (e.g. 10m, 90s, 0)\n";
      return 2;
    }
    options.max_spool_bytes = *spool;
    options.min_free_disk = *disk;
    options.drain_timeout = drain;
  }

  std::string coordinator_from = config.empty() ? "the default" : config + ": coordinator";
  if (const char* env = std::getenv("MUSAFARM_COORDINATOR")) {
    coordinator_target = env;
    coordinator_from = "$MUSAFARM_COORDINATOR";
  }
  if (!coordinator.empty()) {
    coordinator_target = coordinator;
    coordinator_from = "--coordinator";
  }
  absl::StatusOr<std::vector<std::string>> coordinators =
      musafarm::ParseAddressList(coordinator_from, coordinator_target);
  if (!coordinators.ok()) {
    std::cerr << "musafarm-agent: " << coordinators.status().message() << "\n";
    return 2;
  }
  if (!labels.empty()) options.labels = labels;
  if (slots > 0) options.slots = slots;
  if (options.slots <= 0) {
    options.slots = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  if (!work_dir.empty()) options.work_dir = work_dir;
  std::optional<musafarm::ChannelTls> tls;
  if (!insecure) {
    absl::StatusOr<musafarm::ChannelTls> loaded =
        LoadAgentTls(options.work_dir, tls_ca, tls_cert, tls_key);
    if (!loaded.ok()) {
      std::cerr << "musafarm-agent: " << loaded.status().message() << "\n";
      return 2;
    }
    tls = *std::move(loaded);
    // In TLS mode the certificate names the agent: the coordinator accepts no
    // other name from it.
    absl::StatusOr<musafarm::pki::CertInfo> cert = musafarm::pki::ParseCertificate(tls->cert_pem);
    if (!cert.ok()) {
      std::cerr << "musafarm-agent: the agent certificate: " << cert.status().message() << "\n";
      return 2;
    }
    if (options.name.empty()) {
      options.name = cert->common_name;
    } else if (options.name != cert->common_name) {
      std::cerr << "musafarm-agent: --name " << options.name
                << " does not match the name in the agent certificate, '" << cert->common_name
                << "': the coordinator accepts only that name from it (omit --name)\n";
      return 2;
    }
  }
  if (options.name.empty()) options.name = host;
  // What the coordinator would refuse at register (common/limits.h), said
  // here with exit 2 instead of a stream refused at every reconnect.
  if (absl::Status s = musafarm::CheckName("--name", options.name, musafarm::limits::kMaxNameBytes);
      !s.ok()) {
    std::cerr << "musafarm-agent: " << s.message() << "\n";
    return 2;
  }
  if (options.labels.size() > musafarm::limits::kMaxLabels) {
    std::cerr << "musafarm-agent: --label: " << options.labels.size()
              << " labels; the limit is " << musafarm::limits::kMaxLabels << "\n";
    return 2;
  }
  for (const std::string& label : options.labels) {
    if (absl::Status s = musafarm::CheckName("--label", label, musafarm::limits::kMaxLabelBytes);
        !s.ok()) {
      std::cerr << "musafarm-agent: " << s.message() << "\n";
      return 2;
    }
  }
  // GPUs: detect (unless the flags say it all), let the flags win, then
  // advertise them as labels the user has not set themselves.
  std::optional<musafarm::agent::GpuInventory> detected;
  if (musafarm::agent::ShouldDetectGpus(gpu_flags)) {
    detected = musafarm::agent::DetectGpus(musafarm::agent::SpawnGpuProbe());
  }
  absl::StatusOr<musafarm::agent::GpuInventory> gpus =
      musafarm::agent::ResolveGpus(detected, gpu_flags);
  if (!gpus.ok()) {
    std::cerr << "musafarm-agent: " << gpus.status().message() << "\n";
    return 2;
  }
  options.labels = musafarm::agent::MergeLabels(options.labels, musafarm::agent::GpuLabels(*gpus));
  // musa_arch=qy1|qy2|ph1 from the models (a stage's gpu_arch: needs it).
  options.labels =
      musafarm::agent::MergeLabels(options.labels, musafarm::agent::MusaArchLabels(*gpus));
  musafarm::GetLogger("agent")->info("GPUs: {}{}", musafarm::agent::DescribeGpus(*gpus),
                                     detected.has_value() ? "" : " (not probed)");

  musafarm::agent::ExecOptions exec;
  exec.kill_grace = absl::Milliseconds(static_cast<int64_t>(kill_grace_s * 1000));
  exec.extra_env = {{"MUSAFARM_AGENT", options.name}};
  // Every task sees the host's GPU count; the GPUs given to an attempt are
  // named by the variables of agent/task_env.h, by this vendor.
  exec.extra_env.emplace_back("MUSAFARM_GPUS", std::to_string(gpus->count));
  exec.gpu_vendor = gpus->vendor;
  options.gpus = *gpus;
  musafarm::agent::ExecExecutor executor(exec);
  musafarm::agent::DockerOptions docker_options;
  docker_options.cli = docker_cli;
  docker_options.docker_host = docker_host;
  docker_options.farm = farm;
  docker_options.agent = options.name;
  docker_options.kill_grace = exec.kill_grace;
  docker_options.buildkit = buildkit;
  docker_options.gpu_vendor = gpus->vendor;
  docker_options.secrets_owner =
      musafarm::agent::SecretFiles::OwnerFor(farm, options.name, options.work_dir);
  docker_options.secrets_dir = secrets_dir;
  if (docker) {
    // An agent killed mid-run left its attempts' secret files behind.
    const int stale =
        musafarm::agent::SecretFiles::RemoveStale(secrets_dir, docker_options.secrets_owner);
    if (stale > 0) musafarm::GetLogger("agent")->info("removed {} stale secret directories", stale);
  }
  // Removals that fail while the daemon is down are retried when it is back
  // (issue 16, item 3), also by the next run of the agent.
  std::error_code work_dir_ec;
  std::filesystem::create_directories(options.work_dir, work_dir_ec);
  musafarm::agent::PendingRemovals pending_removals(options.work_dir + "/pending-removals");
  docker_options.pending_removals = &pending_removals;
  // Job inputs (issue 17): trees fetched by digest over the coordinator link
  // (made below) into a cache shared by every task, linked into the task's
  // work dir.
  musafarm::content::LocalCas cas(options.work_dir + "/cas", cas_bytes);
  musafarm::content::BlobSource* blob_source = nullptr;  // the link's, once it exists
  docker_options.materialize_tree = [&cas, &blob_source](const musafarm::v1::Digest& tree,
                                                         const std::string& dir) -> absl::Status {
    if (blob_source == nullptr) return absl::UnavailableError("no coordinator link yet");
    absl::StatusOr<musafarm::content::MaterializeStats> made = cas.Materialize(tree, *blob_source, dir);
    if (!made.ok()) return made.status();
    musafarm::GetLogger("agent")->info("input tree sha256:{} in {}: {} files, {} blob(s) ({} bytes) fetched",
                                       tree.sha256().substr(0, 12), dir, made->files,
                                       made->blobs_fetched, made->bytes_fetched);
    return absl::OkStatus();
  };
  musafarm::agent::DockerExecutor docker_executor(docker_options);
  // Low disk on a Docker host: prune the images this agent built, least
  // recently used first, never one the farm's unfinished jobs or this agent's
  // attempts use, until the threshold is met again.
  musafarm::agent::PrunerOptions prune_options;
  prune_options.cli = docker_cli;
  prune_options.docker_host = docker_host;
  prune_options.farm = farm;
  prune_options.agent = options.name;
  std::unique_ptr<musafarm::agent::ImagePruner> pruner;
  std::unique_ptr<musafarm::agent::BackgroundPruner> background_pruner;
  if (docker) {
    std::error_code ec;
    std::filesystem::create_directories(options.work_dir, ec);
    prune_options.lru_file = options.work_dir + "/image-lru.tsv";
    pruner = std::make_unique<musafarm::agent::ImagePruner>(prune_options);
    const std::string dir = options.work_dir;
    const uint64_t target = options.min_free_disk;
    background_pruner = std::make_unique<musafarm::agent::BackgroundPruner>(
        pruner.get(), [dir, target] {
          absl::StatusOr<uint64_t> free = musafarm::agent::FreeDiskBytes(dir);
          return free.ok() && *free >= target;
        });
    options.on_low_disk = [p = background_pruner.get()](std::set<std::string> keep) {
      p->Request(std::move(keep));
    };
    options.on_images_used = [p = pruner.get()](const std::vector<std::string>& images) {
      for (const std::string& image : images) p->Touch(image);
    };
  }
  // The TLS material the link connects with; the renewer replaces it (and the
  // files) before the certificate expires.
  std::unique_ptr<musafarm::agent::TlsMaterialSource> tls_source;
  std::unique_ptr<musafarm::agent::CertRenewer> renewer;
  // The link, once made (below): the renewer asks it which coordinator is
  // the active one. Set before the renewer's thread starts.
  musafarm::agent::CoordinatorLink* link_for_renewal = nullptr;
  if (tls.has_value()) {
    tls_source = std::make_unique<musafarm::agent::TlsMaterialSource>(*tls);
    musafarm::agent::CertRenewer::Options renew;
    renew.coordinator = [&link_for_renewal] { return link_for_renewal->Target(); };
    renew.paths = musafarm::agent::DefaultPkiPaths(options.work_dir);
    if (!tls_cert.empty()) renew.paths.cert = tls_cert;
    if (!tls_key.empty()) renew.paths.key = tls_key;
    if (!tls_ca.empty()) renew.paths.ca = tls_ca;
    renewer = std::make_unique<musafarm::agent::CertRenewer>(renew, tls_source.get());
  }
  // Declared before the agent, so that it outlives it (streams before their channel).
  const std::unique_ptr<musafarm::agent::CoordinatorLink> link =
      musafarm::agent::NewGrpcCoordinatorLink(*coordinators, tls_source.get());
  link_for_renewal = link.get();
  blob_source = link->blobs();
  // Host health (issue 16, item 3): the Docker daemon watched, GPUs probed.
  // Both report to the agent, which is built below (so: through a pointer).
  musafarm::agent::Agent* agent_ptr = nullptr;
  auto health_changed = [&agent_ptr] {
    if (agent_ptr != nullptr) agent_ptr->HostHealthChanged();
  };
  std::unique_ptr<musafarm::agent::DaemonWatcher> docker_watcher;
  if (docker) {
    docker_watcher = std::make_unique<musafarm::agent::DaemonWatcher>(
        [&docker_executor] { return docker_executor.Ping(); },
        musafarm::agent::DaemonWatcher::Options{},
        [health_changed](const absl::Status& s) {
          if (s.ok()) {
            musafarm::GetLogger("agent")->info("docker daemon answers");
          } else {
            musafarm::GetLogger("agent")->warn(
                "docker daemon unreachable: {}; taking no docker work until it answers",
                std::string(s.message()));
          }
          health_changed();
        },
        [&docker_executor] {
          for (const std::string& line : docker_executor.RetryPendingRemovals()) {
            musafarm::GetLogger("agent")->info("{}", line);
          }
        });
    options.docker_unreachable = [w = docker_watcher.get()]() -> std::string {
      const absl::Status s = w->Current();
      if (s.ok()) return "";
      const std::string why(s.message());
      return absl::StartsWith(why, "docker daemon unreachable")
                 ? why
                 : absl::StrCat("docker daemon unreachable: ", why);
    };
    options.on_docker_lost = [w = docker_watcher.get()](const std::string& why) {
      w->MarkDown(why);
    };
  }
  musafarm::agent::SpawnGpuProbe gpu_prober;
  std::vector<std::string> probe_argv;
  if (gpu_probe_command.empty()) {
    // Only a tool that detection found: --gpus on a host without it probes nothing.
    if (detected.has_value() && detected->count > 0 && detected->vendor == gpus->vendor) {
      probe_argv = musafarm::agent::DefaultGpuProbeCommand(gpus->vendor);
    }
  } else if (gpu_probe_command != "none") {
    probe_argv = absl::StrSplit(gpu_probe_command, ' ', absl::SkipWhitespace());
  }
  musafarm::agent::GpuHealth gpu_health(&gpu_prober, probe_argv, gpus->count,
                                        musafarm::agent::kGpuProbeTimeout, health_changed);
  if (!probe_argv.empty() && gpus->count > 0) {
    if (std::string failing = gpu_health.Check(gpu_health.AllGpus()); !failing.empty()) {
      musafarm::GetLogger("agent")->warn("fenced (not handed out until they pass): {}", failing);
    }
    options.fenced_gpus = [&gpu_health] { return gpu_health.Fenced(); };
    options.probe_gpus = [&gpu_health](const std::vector<int32_t>& g) {
      std::string failing = gpu_health.Check(g);
      if (!failing.empty()) {
        musafarm::GetLogger("agent")->warn("fenced (not handed out until they pass): {}", failing);
      }
      return failing;
    };
  }
  musafarm::agent::Agent agent(options, link.get(), &executor, docker ? &docker_executor : nullptr);
  agent_ptr = &agent;
  if (absl::Status s = agent.Start(); !s.ok()) {
    std::cerr << "musafarm-agent: " << s.message() << "\n";
    return 2;
  }
  if (renewer != nullptr) renewer->Start();
  if (docker_watcher != nullptr) docker_watcher->Start();
  if (options.fenced_gpus) {
    gpu_health.Start(absl::Milliseconds(static_cast<int64_t>(gpu_recheck_s * 1000)));
  }
  // Until a signal, or until the coordinator refuses this agent for good.
  const struct timespec poll = {0, 100'000'000};
  int sig = 0;
  while (sig <= 0 && !agent.WaitStopped(absl::ZeroDuration())) {
    sig = sigtimedwait(&stop, nullptr, &poll);
  }
  if (sig > 0) {
    musafarm::GetLogger("agent")->info(
        "signal {}: shutting down (drain timeout {}; a second signal hands back running tasks at "
        "once)",
        sig, drain_timeout);
    agent.Shutdown();
  }
  bool second = false;
  while (!agent.WaitStopped(absl::ZeroDuration())) {
    if (sigtimedwait(&stop, nullptr, &poll) > 0 && !second) {
      second = true;
      musafarm::GetLogger("agent")->info("second signal: handing back running tasks now");
      agent.HandBackNow();
    }
  }
  if (docker_watcher != nullptr) docker_watcher->Stop();
  gpu_health.Stop();
  agent.Stop();
  if (!agent.refusal().ok()) {
    std::cerr << "musafarm-agent: " << agent.refusal().message() << "\n";
    return 1;
  }
  return 0;
}
