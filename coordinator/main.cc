// musafarm-coordinator: flags -> Coordinator -> wait for SIGTERM/SIGINT; SIGHUP
// reloads the agent policy.
#include <sys/stat.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <iostream>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/address.h"
#include "common/fd_limit.h"
#include "common/limits.h"
#include "common/log_formatters.h"
#include "common/logging.h"
#include "coordinator/coordinator.h"
#include "coordinator/webhook_targets.h"
#include "coordinator/backup.h"
#include "coordinator/ca_init.h"
#include "coordinator/join_token_command.h"
#include "coordinator/migrate_command.h"
#include "coordinator/pg_connection.h"
#include "coordinator/probe_command.h"
#include "coordinator/token_command.h"
#include "common/duration_text.h"
#include "common/version.h"

namespace {
constexpr char kHostStoreHelp[] =
    "the coordinator's --store (postgres://...); default: SQLite in --data-dir";
}  // namespace

int main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, which leaves Mutex deadlock detection
  // on: every lock then updates a process-wide lock graph under a global lock
  // (18% of the coordinator's CPU with 10,000 idle agents connected, issue 19).
  // The tests keep it, and clang's -Wthread-safety checks lock use at build time.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Everything the coordinator creates (data dir, database, WAL, task logs,
  // secrets key) is its own: no group or other access (issue 12).
  ::umask(077);
  // Block the stop and reload signals in every thread; main waits for them with sigwait.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGHUP);  // reload --agent-policy
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  musafarm::coordinator::CoordinatorOptions options;
  std::string log_level = "info", log_format;
  double heartbeat_timeout_s = 10, lost_timeout_s = 5, restart_grace_s = 30;
  CLI::App app{"musafarm coordinator: accepts jobs and schedules their tasks onto agents"};
  app.set_version_flag("--version", musafarm::VersionLine());
  app.add_option("--listen", options.listen, "host:port to serve gRPC on (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--data-dir", options.data_dir, "directory for the database and task logs")
      ->capture_default_str();
  app.add_option("--store", options.store,
                 "where the farm's state lives: postgres://USER@HOST/DB (or postgresql://, any "
                 "libpq URL), with task logs, artifacts and the content store; default: SQLite in "
                 "<data-dir>/musafarm.db, logs and blobs as files in --data-dir");
  app.add_option("--advertise-address", options.advertise_address,
                 "HOST:PORT recorded when this coordinator is the active one, where standbys "
                 "send clients (coordinators on one PostgreSQL --store; default: the --listen "
                 "host, or this machine's name when it listens on all addresses, and the bound "
                 "port)");
  std::string leader_timeout = "10s";
  app.add_option("--leader-timeout", leader_timeout,
                 "on PostgreSQL: how long the database keeps the leader lock of an active "
                 "coordinator gone silent (frozen, cut off) before a standby takes over")
      ->capture_default_str();
  app.add_option("--port-file", options.port_file, "write the bound port to this file");
  app.add_option("--http-listen", options.http_listen,
                 "host:port to serve HTTP on: /healthz, /readyz, /metrics and the dashboard "
                 "(TLS with the gRPC port's certificate unless --insecure; port 0: any free port)");
  app.add_option("--http-port-file", options.http_port_file,
                 "write the bound HTTP port to this file");
  app.add_flag("--metrics-public", options.metrics_public,
               "serve /metrics without a token (for a Prometheus that cannot send one)");
  bool no_group_commit = false;
  app.add_flag("--no-group-commit", no_group_commit,
               "commit each agent event on its own (one fsync each) instead of one commit for the "
               "events that queue up meanwhile: slower, for measuring (bench/run.sh)");
  app.add_option("--heartbeat-timeout", heartbeat_timeout_s,
                 "seconds of agent silence before its stream is closed (while the farm is "
                 "small; see --max-heartbeats-per-second)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  double max_heartbeat_rate = options.core.max_heartbeat_rate;
  app.add_option("--max-heartbeats-per-second", max_heartbeat_rate,
                 "heartbeats a second from all agents together: past this many x 3 s agents the "
                 "heartbeat interval grows with the farm, and the silence allowed with it "
                 "(interval + heartbeat timeout - 3 s); 0: a fixed interval")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option(
         "--agent-lost-timeout", lost_timeout_s,
         "seconds a disconnected agent may take to come back before its tasks are re-queued")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--restart-grace", restart_grace_s,
                 "seconds agents may take to come back after a coordinator restart before the "
                 "attempts they held are re-queued")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--insecure", options.insecure,
               "serve plaintext gRPC: agents are not authenticated (a trusted network or a "
               "local try-out only)");
  app.add_option("--tls-dir", options.tls.dir,
                 "TLS material: server.crt, server.key, ca.crt (the CA agents' certificates "
                 "chain to) and optionally ca.key (default: <data-dir>/pki; `ca init` makes it)");
  app.add_option("--tls-cert", options.tls.cert,
                 "the coordinator's certificate (default: "
                 "<tls-dir>/server.crt)");
  app.add_option("--tls-key", options.tls.key, "its private key (default: <tls-dir>/server.key)");
  app.add_option("--agent-ca", options.tls.agent_ca,
                 "CA bundle agents' client certificates must chain to (default: <tls-dir>/ca.crt)");
  app.add_option("--ca-key", options.tls.ca_key,
                 "the farm CA's private key, to sign agents' certificates (default: "
                 "<tls-dir>/ca.key if present)");
  app.add_option("--agent-policy", options.agent_policy,
                 "YAML file saying which agents may run stages that need trust (docs/security.md); "
                 "reloaded on SIGHUP");
  app.add_option("--secrets-key-file", options.secrets_key_file,
                 "file holding the key that encrypts job secrets at rest (base64 of 32 bytes); "
                 "else $MUSAFARM_SECRETS_KEY, else <data-dir>/secrets.key, made at first start");
  app.add_option("--max-gpus-per-stage", options.core.max_gpus_per_stage,
                 "GPUs one stage may ask for; more is refused at submit")
      ->capture_default_str()
      ->check(CLI::Range(1, musafarm::limits::kMaxAgentGpus));
  app.add_option("--max-log-bytes", options.core.max_log_bytes,
                 "bytes of a task's log kept (e.g. 1GiB, 500MB); later output is dropped after "
                 "one marker line and the task goes on")
      ->capture_default_str()
      ->transform(CLI::AsSizeValue(/*kb_is_1000=*/false))
      ->check(CLI::Range(uint64_t{1024}, uint64_t{1} << 50));
  // Retention (docs/architecture.md, "Retention").
  std::string retain, retention_interval = "1m";
  app.add_option("--retain", retain,
                 "delete finished jobs (rows, logs, artifacts, registry tags) this long after "
                 "they ended, e.g. 30d, 12h; a pipeline's `retention:` overrides it for its jobs "
                 "(default: keep)");
  app.add_option("--retain-bytes", options.core.retention.max_bytes,
                 "also delete the oldest finished jobs while all of them hold more than this "
                 "(logs, artifacts and rows), e.g. 200G (default: no limit)")
      ->transform(CLI::AsSizeValue(/*kb_is_1000=*/false));
  app.add_option("--registry", options.core.retention.registries,
                 "the farm's image registry (host:port, repeatable): tags pushed there by "
                 "expired jobs, and named by no other job, are deleted through its HTTP API")
      ->type_name("HOST:PORT");
  app.add_option("--blob-store-bytes", options.blob_store_bytes,
                 "size limit of the content store (job inputs uploaded by `submit --context`), "
                 "e.g. 200G; an input larger than this is refused before it is sent")
      ->transform(CLI::AsSizeValue(/*kb_is_1000=*/false))
      ->capture_default_str();
  double blob_gc_grace_s = 3600;
  app.add_option("--blob-gc-grace", blob_gc_grace_s,
                 "seconds an unpinned blob is kept after its last use before GC deletes it")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--retention-interval", retention_interval,
                 "time between retention passes (each deletes at most 50 jobs)")
      ->capture_default_str();
  app.add_option("--log-format", log_format,
                 "text, json (one object per line: time, level, logger, msg) or journald "
                 "(sd-daemon priority prefixes); default: journald when stderr is the journal "
                 "($JOURNAL_STREAM), else text")
      ->check(CLI::IsMember({"text", "json", "journald"}));
  // Notifications (issue 14).
  std::string webhook_retry_max = "5m";
  app.add_option("--webhook-allow", options.core.webhook_allow,
                 "a URL prefix jobs' and schedules' webhooks may go to (repeatable), e.g. "
                 "https://hooks.slack.com/services/; others are refused at submit (default: none)")
      ->type_name("URL");
  app.add_option("--dashboard-url", options.core.dashboard_url,
                 "the dashboard's address as users reach it, for links in notifications")
      ->type_name("URL");
  app.add_option("--webhook-retry-max", webhook_retry_max,
                 "the longest wait between attempts of a notification that failed")
      ->capture_default_str();
  app.add_option("--webhook-ca", options.webhook.ca_file,
                 "CA certificates to verify https webhook receivers with (default: the system's)")
      ->type_name("FILE");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  double cert_days = 30, cert_lifetime_s = 0;
  app.add_option("--cert-days", cert_days,
                 "days the agent certificates this coordinator signs are valid (agents renew "
                 "them after 2/3 of that)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--cert-lifetime", cert_lifetime_s,
                 "seconds instead of --cert-days (for tests of renewal)")
      ->check(CLI::PositiveNumber);
  // ca init: the farm CA and the coordinator's certificate, once.
  musafarm::coordinator::CaInitOptions ca_opts;
  CLI::App* ca_cmd = app.add_subcommand("ca", "The farm's certificate authority");
  ca_cmd->require_subcommand(1);
  CLI::App* ca_init = ca_cmd->add_subcommand(
      "init", "Make the farm CA (ca.key, ca.crt) and this coordinator's certificate (server.key, "
              "server.crt) in <data-dir>/pki; refuses to replace an existing CA");
  ca_init->add_option("--data-dir", ca_opts.data_dir, "the coordinator's data directory")
      ->required();
  ca_init->add_option("--tls-dir", ca_opts.tls_dir, "write here instead of <data-dir>/pki");
  ca_init
      ->add_option("--san", ca_opts.sans,
                   "a host name or IP address agents and users reach the coordinator by "
                   "(repeatable; default: localhost, 127.0.0.1, ::1 and this host's name)")
      ->type_name("NAME|IP");
  ca_init->add_option("--days", ca_opts.days, "validity of the CA and the server certificate")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  // join-token create|list: host commands on the data dir's store.
  musafarm::coordinator::JoinTokenCommandOptions token_opts;
  std::string token_ttl = "1h";
  CLI::App* token_cmd = app.add_subcommand("join-token", "Make and list agent join tokens");
  token_cmd->require_subcommand(1);
  CLI::App* token_create = token_cmd->add_subcommand(
      "create", "Make a join token and print it once with the `musafarm-agent enroll` command");
  CLI::App* token_list = token_cmd->add_subcommand("list", "List join tokens (never a secret)");
  for (CLI::App* sub : {token_create, token_list}) {
    sub->add_option("--data-dir", token_opts.data_dir, "the coordinator's data directory")
        ->capture_default_str();
    sub->add_option("--store", token_opts.store, kHostStoreHelp);
  }
  token_create->add_option("--tls-dir", token_opts.tls_dir,
                           "directory holding the farm's ca.crt (default: <data-dir>/pki)");
  token_create->add_option("--uses", token_opts.uses, "enrolments the token allows")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  token_create->add_option("--ttl", token_ttl, "how long the token is valid (e.g. 1h, 30m, 7d)")
      ->capture_default_str();
  token_create->add_option("--description", token_opts.description, "a note shown by `list`");
  token_create->add_option("--coordinator", token_opts.coordinator,
                           "host:port agents reach the coordinator at, for the printed command "
                           "(default: this host's name, port 7070)");
  // token create|list: users' API tokens, on the data dir's store (the first
  // admin token is made here; docs/security.md, "Users and roles").
  musafarm::coordinator::TokenCommandOptions api_token_opts;
  std::string api_token_expires;
  CLI::App* api_token_cmd = app.add_subcommand("token", "Make and list users' API tokens");
  api_token_cmd->require_subcommand(1);
  CLI::App* api_token_create = api_token_cmd->add_subcommand(
      "create", "Make an API token for user NAME and print it once");
  CLI::App* api_token_list =
      api_token_cmd->add_subcommand("list", "List API tokens (never a secret)");
  api_token_create->add_option("NAME", api_token_opts.user, "the user the token stands for")
      ->required();
  api_token_create->add_option("--role", api_token_opts.role, "viewer, submitter or admin")
      ->required();
  api_token_create->add_option("--expires", api_token_expires,
                               "lifetime (e.g. 90d, 12h); default: until revoked");
  for (CLI::App* sub : {api_token_create, api_token_list}) {
    sub->add_option("--data-dir", api_token_opts.data_dir, "the coordinator's data directory")
        ->capture_default_str();
    sub->add_option("--store", api_token_opts.store, kHostStoreHelp);
  }
  // backup DEST / restore SRC (issue 15; deploy/README.md, "Backups").
  std::string backup_dir, backup_data_dir = options.data_dir;
  CLI::App* backup_cmd = app.add_subcommand(
      "backup", "Copy the data dir (database by SQLite's online backup, task logs and artifacts, "
                "secrets key, pki) into DEST while the coordinator runs");
  backup_cmd->add_option("DEST", backup_dir, "a new or empty directory")->required();
  CLI::App* restore_cmd = app.add_subcommand(
      "restore", "Check a backup against its MANIFEST and copy it into a data dir that holds no "
                 "database; then start the coordinator on it");
  restore_cmd->add_option("SRC", backup_dir, "a directory `backup` wrote")->required();
  std::string backup_store;
  for (CLI::App* sub : {backup_cmd, restore_cmd}) {
    sub->add_option("--data-dir", backup_data_dir, "the coordinator's data directory")
        ->capture_default_str();
    sub->add_option("--store", backup_store,
                    "the coordinator's --store: on PostgreSQL this refuses and says how to back up "
                    "(pg_dump, plus the secrets key and pki)");
  }
  // migrate: a SQLite farm into PostgreSQL (issue 20; docs/scale-out.md).
  musafarm::coordinator::MigrateOptions migrate_opts;
  CLI::App* migrate_cmd = app.add_subcommand(
      "migrate", "Move a farm from SQLite (its --data-dir: store, logs, artifacts, blobs) into an "
                 "empty PostgreSQL database, in one transaction; the coordinator must be stopped");
  migrate_cmd->add_option("--data-dir", migrate_opts.data_dir, "the SQLite farm's data directory")
      ->capture_default_str();
  migrate_cmd->add_option("--to", migrate_opts.to, "postgres://USER@HOST/DB of an empty database")
      ->required();
  migrate_cmd->add_option("--secrets-key-file", migrate_opts.secrets_key_file,
                          "as the coordinator's (default: $MUSAFARM_SECRETS_KEY, else "
                          "<data-dir>/secrets.key)");
  // probe: the readiness check for compose/Docker health checks (no curl in the image).
  musafarm::coordinator::ProbeOptions probe_opts;
  double probe_timeout_s = 5;
  CLI::App* probe_cmd = app.add_subcommand(
      "probe", "GET a coordinator's /readyz (or --url's path): exit 0 on 200, 1 on another "
               "status, 3 when nothing answers");
  probe_cmd->add_option("--url", probe_opts.url, "http(s)://HOST:PORT[/PATH] (PATH: /readyz)")
      ->capture_default_str();
  probe_cmd->add_option("--ca", probe_opts.ca_file,
                        "CA bundle to verify an https coordinator with (default: not verified, "
                        "as Kubernetes' httpGet probes)");
  probe_cmd->add_option("--timeout", probe_timeout_s, "seconds to wait for the answer")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  options.group_commit = !no_group_commit;
  // Before anything logs: every line of this process in one format.
  if (absl::StatusOr<musafarm::LogFormat> format = musafarm::ChooseLogFormat(log_format);
      format.ok()) {
    musafarm::SetLogFormat(*format);
  } else {
    std::cerr << "musafarm-coordinator: " << format.status().message() << "\n";
    return 2;
  }
  if (ca_init->parsed()) {
    musafarm::SetLogLevel("warn");
    if (absl::Status s = musafarm::coordinator::CaInit(ca_opts, std::cout); !s.ok()) {
      std::cerr << "musafarm-coordinator: ca init: " << s.message() << "\n";
      return absl::IsFailedPrecondition(s) || absl::IsInvalidArgument(s) ? 2 : 1;
    }
    return 0;
  }
  if (migrate_cmd->parsed()) {
    musafarm::SetLogLevel("warn");
    return musafarm::coordinator::RunMigrate(migrate_opts, std::cout, std::cerr);
  }
  if (probe_cmd->parsed()) {
    probe_opts.timeout = absl::Seconds(probe_timeout_s);
    return musafarm::coordinator::RunProbe(probe_opts, std::cout, std::cerr);
  }
  if (backup_cmd->parsed() || restore_cmd->parsed()) {
    musafarm::SetLogLevel("warn");
    if (!backup_store.empty()) {
      std::cerr << "musafarm-coordinator: "
                << musafarm::coordinator::PostgresBackupAdvice(
                       backup_cmd->parsed(), musafarm::coordinator::pg::MaskPassword(backup_store),
                       backup_data_dir)
                << "\n";
      return 2;
    }
    const absl::Status s =
        backup_cmd->parsed()
            ? musafarm::coordinator::BackupDataDir(backup_data_dir, backup_dir, std::cout)
            : musafarm::coordinator::RestoreDataDir(backup_dir, backup_data_dir, std::cout);
    if (!s.ok()) {
      std::cerr << "musafarm-coordinator: " << s.message() << "\n";
      return absl::IsInvalidArgument(s) ? 2 : 1;
    }
    return 0;
  }
  if (api_token_create->parsed() || api_token_list->parsed()) {
    musafarm::SetLogLevel("warn");
    if (api_token_list->parsed()) {
      return RunTokenList(api_token_opts, absl::Now(), std::cout, std::cerr);
    }
    if (!api_token_expires.empty() &&
        !musafarm::ParseDurationText(api_token_expires, &api_token_opts.ttl)) {
      std::cerr << "token create: --expires " << api_token_expires
                << ": expected a duration like 90d, 12h, 30m\n";
      return 2;
    }
    const char* user = std::getenv("USER");
    api_token_opts.operator_name = user != nullptr ? user : "";
    return RunTokenCreate(api_token_opts, absl::Now(), std::cout, std::cerr);
  }
  if (token_create->parsed() || token_list->parsed()) {
    musafarm::SetLogLevel("warn");
    if (token_create->parsed()) {
      // absl's duration syntax, plus days, which operators use for tokens.
      if (!musafarm::ParseDurationText(token_ttl, &token_opts.ttl)) {
        std::cerr << "join-token create: --ttl " << token_ttl
                  << ": expected a duration like 1h, 30m, 7d\n";
        return 2;
      }
      return RunJoinTokenCreate(token_opts, absl::Now(), std::cout, std::cerr);
    }
    return RunJoinTokenList(token_opts, absl::Now(), std::cout, std::cerr);
  }
  if (absl::Status s = musafarm::ValidateAddress("--listen", options.listen,
                                                 /*allow_port_zero=*/true);
      !s.ok()) {
    std::cerr << "musafarm-coordinator: " << s.message() << "\n";
    return 2;
  }
  if (!retain.empty() &&
      !musafarm::ParseDurationText(retain, &options.core.retention.max_age)) {
    std::cerr << "musafarm-coordinator: --retain " << retain
              << ": expected a duration like 30d, 12h, 90m\n";
    return 2;
  }
  options.blob_gc_grace = absl::Seconds(blob_gc_grace_s);
  if (!musafarm::ParseDurationText(leader_timeout, &options.leader_session_timeout) ||
      options.leader_session_timeout < absl::Seconds(1)) {
    std::cerr << "musafarm-coordinator: --leader-timeout " << leader_timeout
              << ": expected a duration of at least 1s, like 10s\n";
    return 2;
  }
  if (!options.advertise_address.empty()) {
    if (absl::Status s = musafarm::ValidateAddress("--advertise-address",
                                                   options.advertise_address,
                                                   /*allow_port_zero=*/false);
        !s.ok()) {
      std::cerr << "musafarm-coordinator: " << s.message() << "\n";
      return 2;
    }
  }
  if (!musafarm::ParseDurationText(retention_interval, &options.core.retention.interval)) {
    std::cerr << "musafarm-coordinator: --retention-interval " << retention_interval
              << ": expected a duration like 1m, 10s\n";
    return 2;
  }
  if (!musafarm::ParseDurationText(webhook_retry_max, &options.webhook.max_backoff) ||
      options.webhook.max_backoff <= absl::ZeroDuration()) {
    std::cerr << "musafarm-coordinator: --webhook-retry-max " << webhook_retry_max
              << ": expected a duration like 5m, 30s\n";
    return 2;
  }
  options.webhook.initial_backoff = std::min(options.webhook.initial_backoff,
                                             options.webhook.max_backoff);
  for (const std::string& prefix : options.core.webhook_allow) {
    if (absl::StatusOr<musafarm::coordinator::WebhookUrl> url =
            musafarm::coordinator::ParseWebhookUrl(prefix);
        !url.ok()) {
      std::cerr << "musafarm-coordinator: --webhook-allow " << prefix << ": "
                << url.status().message() << "\n";
      return 2;
    }
  }
  for (const std::string& registry : options.core.retention.registries) {
    if (absl::Status s = musafarm::ValidateAddress("--registry", registry, false); !s.ok()) {
      std::cerr << "musafarm-coordinator: " << s.message() << "\n";
      return 2;
    }
  }
  options.enrollment.cert_lifetime =
      cert_lifetime_s > 0 ? absl::Seconds(cert_lifetime_s) : absl::Hours(24 * cert_days);
  options.core.heartbeat_timeout = absl::Seconds(heartbeat_timeout_s);
  options.core.max_heartbeat_rate = max_heartbeat_rate;
  options.core.restart_grace = absl::Seconds(restart_grace_s);
  options.core.agent_lost_timeout = absl::Seconds(lost_timeout_s);
  options.core.heartbeat_interval =
      std::min(absl::Seconds(3), absl::Seconds(heartbeat_timeout_s) / 3);
  musafarm::SetLogLevel(log_level);
  // One descriptor per agent connection, watcher and open task log.
  if (absl::StatusOr<uint64_t> fds = musafarm::RaiseOpenFileLimit(); !fds.ok()) {
    musafarm::GetLogger("coordinator")->warn("{}", std::string(fds.status().message()));
  } else if (*fds < 4096) {
    musafarm::GetLogger("coordinator")
        ->warn("the open-file limit is {} (hard limit): fewer agents than that can connect; "
               "raise it (systemd LimitNOFILE=, ulimit -Hn)",
               *fds);
  }

  musafarm::coordinator::Coordinator server(options);
  if (absl::Status s = server.Start(); !s.ok()) {
    std::cerr << "musafarm-coordinator: " << s.message() << "\n";
    return absl::IsInvalidArgument(s) ? 2 : 1;
  }
  int sig = 0;
  while (sigwait(&stop, &sig) == 0 && sig == SIGHUP) {
    (void)server.ReloadAgentPolicy();  // a bad file is logged and the old policy kept
  }
  musafarm::GetLogger("coordinator")->info("signal {}: shutting down", sig);
  server.Shutdown();
  return 0;
}
