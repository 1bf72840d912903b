#include "coordinator/coordinator.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/file_modes.h"
#include "common/logging.h"
#include "coordinator/access_control.h"
#include "coordinator/coordinator_list.h"
#include "coordinator/dashboard.h"
#include "coordinator/data_dir_lock.h"
#include "coordinator/git_inputs.h"
#include "coordinator/http_auth.h"
#include "coordinator/http_server.h"
#include "coordinator/joined_inputs.h"
#include "coordinator/leadership.h"
#include "coordinator/local_blob_store.h"
#include "coordinator/metrics_route.h"
#include "coordinator/pg_connection.h"
#include "coordinator/postgres_blob_store.h"
#include "coordinator/postgres_log_store.h"
#include "coordinator/postgres_store.h"
#include "coordinator/probes.h"
#include "coordinator/registry_image_deleter.h"
#include "coordinator/secret_cipher.h"
#include "coordinator/secrets_key.h"
#include "coordinator/server.h"
#include "coordinator/standby_server.h"

namespace musafarm::coordinator {
namespace {
constexpr absl::Duration kTickInterval = absl::Milliseconds(500);

// Retention passes, one batch each, on the loop between other events.
void ScheduleRetention(EventLoop* loop, Core* core, absl::Duration interval) {
  loop->PostAfter(interval, [loop, core, interval] {
    core->RunRetention();
    ScheduleRetention(loop, core, interval);
  });
}

// Schedules are looked at every second: a slot fires within a second of its
// minute, and a look at a few schedules costs nothing.
void ScheduleRunnerTick(EventLoop* loop, ScheduleRunner* runner) {
  loop->PostAfter(absl::Seconds(1), [loop, runner] {
    runner->Tick();
    ScheduleRunnerTick(loop, runner);
  });
}

// Content-store GC on its own loop: it walks pinned trees and deletes files.
void ScheduleBlobGc(EventLoop* io, BlobStore* blobs, absl::Duration grace) {
  const absl::Duration every = std::min(grace, absl::Minutes(10));
  io->PostAfter(every, [io, blobs, grace] {
    absl::StatusOr<BlobGcStats> gc = blobs->CollectGarbage(absl::Now(), grace);
    if (!gc.ok()) {
      GetLogger("blob_store")->error("garbage collection: {}", gc.status().ToString());
    } else if (gc->deleted > 0) {
      GetLogger("blob_store")->info("garbage collection: {} blob(s), {} bytes deleted; {} kept ({} bytes)",
                                    gc->deleted, gc->freed_bytes, gc->kept, gc->kept_bytes);
    }
    ScheduleBlobGc(io, blobs, grace);
  });
}

// "host" of "host:port" (IPv6 in brackets stays bracketed).
std::string ListenHost(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  return colon == std::string::npos ? listen : listen.substr(0, colon);
}

bool IsWildcardHost(const std::string& host) {
  return host.empty() || host == "0.0.0.0" || host == "[::]" || host == "::";
}

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

void ScheduleTick(EventLoop* loop, Core* core) {
  loop->PostAfter(kTickInterval, [loop, core] {
    core->Tick();
    ScheduleTick(loop, core);
  });
}
}  // namespace

Coordinator::Coordinator(CoordinatorOptions options) : options_(std::move(options)) {}

Coordinator::~Coordinator() {
  Shutdown();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

absl::Status Coordinator::Start() {
  auto log = GetLogger("coordinator");
  // TLS material first: a coordinator that cannot serve securely creates
  // nothing on disk.
  std::optional<TlsMaterial> tls;
  if (!options_.insecure) {
    TlsPaths paths = options_.tls;
    if (paths.dir.empty()) paths.dir = absl::StrCat(options_.data_dir, "/pki");
    absl::StatusOr<TlsMaterial> loaded = LoadTlsMaterial(std::move(paths), options_.data_dir);
    if (!loaded.ok()) return loaded.status();
    tls = *std::move(loaded);
  }
  // What no policy file means follows the port: everything in --insecure
  // mode, nothing that needs trust with TLS.
  options_.core.insecure = options_.insecure;
  if (!options_.agent_policy.empty()) {
    absl::StatusOr<AgentPolicy> policy = AgentPolicy::Load(options_.agent_policy);
    if (!policy.ok()) return policy.status();  // InvalidArgument: main exits 2
    options_.core.agent_policy = *std::move(policy);
  } else if (!options_.core.insecure) {
    log->warn(
        "no --agent-policy: no agent gets stages that need secrets, privilege, host mounts, "
        "shell or trusted labels");
  }
  // Only the coordinator's user may look inside: the database holds job
  // secrets (sealed) and the task logs are the tasks' output.
  if (absl::Status s = MakePrivateDir(options_.data_dir); !s.ok()) return s;
  absl::StatusOr<int> lock = LockDataDir(options_.data_dir);
  if (!lock.ok()) return lock.status();
  lock_fd_ = *lock;
  // The HTTP port comes up before the store is opened: /healthz answers and
  // /readyz says 503 while recovery runs (a large store, or a backup holding
  // the database's lock).
  if (!options_.http_listen.empty()) {
    HttpServerOptions http;
    http.listen = options_.http_listen;
    if (tls.has_value()) {
      http.cert_pem = tls->cert_pem;
      http.key_pem = tls->key_pem;
    }
    http_ = std::make_unique<HttpServer>(std::move(http));
    auto standby_note = [this]() -> std::string {
      if (!StandingBy()) return "";
      const Leadership* l = leadership_view_.load(std::memory_order_acquire);
      const std::string active = l->active_address();
      return absl::StrCat("standby coordinator; the active coordinator is ",
                          active.empty() ? "not known yet" : absl::StrCat("at ", active));
    };
    AddProbeRoutes(http_->routes(), &ready_, standby_note);
    DashboardOptions dash;
    dash.tls = tls.has_value();
    dash.standby = standby_note;
    dash.coordinators = [this] {
      // On listing_io_, as the gRPC call: it reads through the leadership
      // session. The HTTP server stops before listing_io_ does.
      absl::StatusOr<v1::ListCoordinatorsResponse> out = absl::UnknownError("not listed");
      listing_io_.RunSync([this, &out] { out = ListCoordinators(); });
      return out;
    };
    dashboard_ = std::make_unique<Dashboard>(dash);
    dashboard_->AddRoutes(http_->routes());
    // The routes below read core_ and access_, which exist once ready_ is set.
    AddMetricsRoute(
        http_->routes(),
        [this](const httplib::Request& req) -> absl::Status {
          if (options_.metrics_public) return absl::OkStatus();
          if (!ready_.load(std::memory_order_acquire) && !StandingBy()) {
            return absl::UnavailableError("recovering; try again shortly");
          }
          return Check(*access_, req, Action::kRead).status();
        },
        [this]() -> absl::StatusOr<std::string> {
          if (!ready_.load(std::memory_order_acquire)) {
            // A standby has only its leadership to report.
            if (StandingBy()) return LeadershipMetrics();
            return absl::UnavailableError("recovering; no metrics yet");
          }
          std::string text;
          loop_.RunSync([&] { text = core_->RenderMetrics(); });
          return text + LeadershipMetrics();
        });
    absl::StatusOr<int> http_port = http_->Start();
    if (!http_port.ok()) return http_port.status();
    http_port_ = *http_port;
    if (!options_.http_port_file.empty()) {
      if (absl::Status s = WriteFileAtomically(options_.http_port_file,
                                               absl::StrCat(http_port_, "\n"));
          !s.ok()) {
        return absl::InternalError(absl::StrCat("cannot write HTTP port file: ", s.message()));
      }
    }
    log->info("HTTP (probes, metrics, dashboard) on port {}{}", http_port_,
              tls.has_value() ? " with TLS" : " in PLAINTEXT (--insecure)");
  }
  absl::StatusOr<SecretsKey> key =
      LoadSecretsKey(options_.secrets_key_file, std::getenv(kSecretsKeyEnv), options_.data_dir);
  if (!key.ok()) return key.status();
  if (key->created) {
    log->info("generated the key that encrypts job secrets at rest: {} (keep it with the data dir; "
              "without it a restart cannot hand running jobs their secrets)",
              key->source);
  } else {
    log->info("job secrets are encrypted at rest with the key from {}", key->source);
  }
  absl::StatusOr<SecretCipher> cipher = SecretCipher::Create(key->key);
  if (!cipher.ok()) return cipher.status();
  cipher_ = *std::move(cipher);
  tls_ = std::move(tls);
  id_ = absl::StrCat(HostName(), "/", ::getpid(), "/", absl::ToUnixMicros(started_));
  listing_io_.Start();
  if (!options_.store.empty() && !IsPostgresUrl(options_.store)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--store: \"", options_.store, "\" is not a postgres:// or postgresql:// URL (leave "
        "it out for SQLite in the data dir)"));
  }
  if (IsPostgresUrl(options_.store)) return StartElection();
  return StartActive(/*fence_epoch=*/0);
}

absl::Status Coordinator::StartElection() {
  auto log = GetLogger("coordinator");
  // The schema first: the leadership tables are in it. Migrations are not
  // fenced; an advisory lock of their own serialises them.
  {
    absl::StatusOr<std::unique_ptr<Store>> migrated = OpenPostgresStore(options_.store, *cipher_);
    if (!migrated.ok()) return migrated.status();
  }
  // Tokens are read (never written) through their own connection: a standby
  // checks them too, for /metrics and ListCoordinators.
  {
    absl::StatusOr<std::unique_ptr<Store>> tokens = OpenPostgresStore(options_.store, *cipher_);
    if (!tokens.ok()) return tokens.status();
    access_ = std::make_unique<AccessControl>(*std::move(tokens), options_.insecure);
  }
  // Bound first, so that the address recorded on winning names the port
  // (--listen may say port 0).
  standby_ = std::make_unique<StandbyServer>(tls_, [this] {
    Leadership* l = leadership_view_.load(std::memory_order_acquire);
    return l != nullptr ? l->active_address() : std::string();
  });
  standby_->ServeCoordinators(access_.get(), &listing_io_, [this] { return ListCoordinators(); });
  absl::StatusOr<int> port = standby_->Start(options_.listen);
  if (!port.ok()) return port.status();
  port_ = *port;
  // The active server binds the same port.
  options_.listen = absl::StrCat(ListenHost(options_.listen), ":", port_);
  LeadershipOptions election;
  election.url = options_.store;
  election.address = AdvertisedAddress();
  election.id = id_;
  election.session_timeout = options_.leader_session_timeout;
  election.check_interval = std::min(absl::Seconds(1), options_.leader_session_timeout / 4);
  absl::StatusOr<std::unique_ptr<Leadership>> leadership = Leadership::Open(election);
  if (!leadership.ok()) return leadership.status();
  leadership_ = *std::move(leadership);
  leadership_view_.store(leadership_.get(), std::memory_order_release);
  absl::StatusOr<bool> won = leadership_->TryAcquire();
  if (!won.ok()) return won.status();
  // A standby names the active one from its first answer on.
  if (!*won) {
    if (absl::Status s = leadership_->RefreshActive(); !s.ok()) return s;
  }
  Leadership::Callbacks callbacks;
  callbacks.on_active = [this](int64_t epoch) {
    activation_ = std::thread([this, epoch] { Activate(epoch); });
  };
  callbacks.on_lost = [](absl::Status why) {
    // Another coordinator may hold the lock by now and bump the epoch: stop
    // acting at once. A supervisor (systemd Restart=, Kubernetes) starts
    // this one again, as a standby.
    auto log = GetLogger("coordinator");
    if (std::getenv("MUSAFARM_TEST_IGNORE_LOST_LEADERSHIP") != nullptr) {
      // Tests only (tests/e2e/leadership_test.cc): carry on as if this went
      // unnoticed, to show that the epoch fence alone refuses the writes.
      log->error("lost the leadership: {}; carrying on (MUSAFARM_TEST_IGNORE_LOST_LEADERSHIP)",
                 std::string(why.message()));
      return;
    }
    log->error("lost the leadership: {}; exiting (restart this coordinator: it comes back as a "
               "standby)",
               std::string(why.message()));
    log->flush();
    std::_Exit(3);
  };
  // A fenced write that finds a successor's epoch: stop at once, as for a
  // lost lock session (the check would notice within check_interval).
  pg::SetDeposedHandler([](const absl::Status& why) {
    auto log = GetLogger("coordinator");
    log->error("{}; exiting (another coordinator took over; restart this one: it comes back as "
               "a standby)",
               std::string(why.message()));
    log->flush();
    std::_Exit(3);
  });
  // The checks run from here on, also while a long recovery runs.
  leadership_->Start(std::move(callbacks));
  if (*won) {
    standby_->Shutdown();
    standby_.reset();
    log->info("active coordinator (epoch {}, address {})", leadership_->epoch(),
              election.address);
    return StartActive(leadership_->epoch());
  }
  log->info("standby coordinator (address {}): {} is active; taking over when it goes",
            election.address,
            leadership_->active_address().empty() ? "nobody" : leadership_->active_address());
  return WritePortFile();
}

void Coordinator::Activate(int64_t epoch) {
  absl::MutexLock lock(&activation_mu_);
  if (shut_down_) return;
  auto log = GetLogger("coordinator");
  const absl::Time t0 = absl::Now();
  if (epoch > 1) ++takeovers_;
  standby_->Shutdown();
  if (absl::Status s = StartActive(epoch); !s.ok()) {
    log->error("cannot take over as the active coordinator: {}; exiting", s.ToString());
    log->flush();
    std::_Exit(1);
  }
  log->info("took over as the active coordinator (epoch {}) in {}", epoch,
            absl::FormatDuration(absl::Now() - t0));
}

std::string Coordinator::AdvertisedAddress() const {
  if (!options_.advertise_address.empty()) return options_.advertise_address;
  const std::string host = ListenHost(options_.listen);
  return absl::StrCat(IsWildcardHost(host) ? HostName() : host, ":", port_);
}

absl::StatusOr<v1::ListCoordinatorsResponse> Coordinator::ListCoordinators() const {
  Leadership* l = leadership_view_.load(std::memory_order_acquire);
  if (l == nullptr) {
    absl::MutexLock lock(&listing_mu_);
    if (IsPostgresUrl(options_.store) || advertised_.empty()) {
      return absl::UnavailableError("this coordinator is starting; ask again in a moment");
    }
    return DescribeSoleCoordinator(id_, advertised_, started_, absl::Now());
  }
  absl::StatusOr<LeaderInfo> leader = l->ReadLeader();
  if (!leader.ok()) return leader.status();
  absl::StatusOr<std::vector<CoordinatorSeen>> seen = l->ReadCoordinators();
  if (!seen.ok()) return seen.status();
  return DescribeCoordinators(*leader, *seen, id_, absl::Now(),
                              StaleAfter(options_.leader_session_timeout));
}

absl::Status Coordinator::WritePortFile() {
  if (options_.port_file.empty()) return absl::OkStatus();
  // Atomically, so a reader never sees half a number.
  if (absl::Status s = WriteFileAtomically(options_.port_file, absl::StrCat(port_, "\n"));
      !s.ok()) {
    return absl::InternalError(absl::StrCat("cannot write port file: ", s.message()));
  }
  return absl::OkStatus();
}

std::string Coordinator::LeadershipMetrics() const {
  const Leadership* l = leadership_view_.load(std::memory_order_acquire);
  if (l == nullptr) return "";
  const bool active = l->active();
  const absl::Time since = l->since();
  return absl::StrCat(
      "# HELP musafarm_coordinator_leader 1 on the active coordinator, 0 on a standby.\n"
      "# TYPE musafarm_coordinator_leader gauge\n"
      "musafarm_coordinator_leader ", active ? 1 : 0, "\n",
      "# HELP musafarm_coordinator_leader_epoch The leader epoch this coordinator won (0 on a "
      "standby).\n"
      "# TYPE musafarm_coordinator_leader_epoch gauge\n"
      "musafarm_coordinator_leader_epoch ", l->epoch(), "\n",
      "# HELP musafarm_coordinator_leader_since_seconds When this coordinator became active "
      "(Unix time; 0 on a standby).\n"
      "# TYPE musafarm_coordinator_leader_since_seconds gauge\n"
      "musafarm_coordinator_leader_since_seconds ",
      active ? absl::ToUnixSeconds(since) : 0, "\n",
      "# HELP musafarm_coordinator_takeovers_total Times this coordinator became active after "
      "another had led.\n"
      "# TYPE musafarm_coordinator_takeovers_total counter\n"
      "musafarm_coordinator_takeovers_total ", active && l->epoch() > 1 ? 1 : 0, "\n");
}

absl::Status Coordinator::StartActive(int64_t fence_epoch) {
  auto log = GetLogger("coordinator");
  const std::string db_path = absl::StrCat(options_.data_dir, "/musafarm.db");
  const bool on_postgres = IsPostgresUrl(options_.store);
  // Each user of the store has its own connection (SQLite's, or PostgreSQL's,
  // each fenced by the leader epoch).
  auto open_store = [&]() -> absl::StatusOr<std::unique_ptr<Store>> {
    if (on_postgres) return OpenPostgresStore(options_.store, *cipher_, fence_epoch);
    return OpenSqliteStore(db_path, *cipher_);
  };
  absl::StatusOr<std::unique_ptr<Store>> store = open_store();
  if (!store.ok()) return store.status();
  store_ = *std::move(store);
  if (on_postgres) log->info("farm state in PostgreSQL at {}", pg::MaskPassword(options_.store));
  // SQLite gives the WAL and shared-memory files the database's mode; a
  // database made by an older coordinator under a looser umask is narrowed.
  for (const char* suffix : {"", "-wal", "-shm"}) {
    if (on_postgres) break;
    if (absl::Status s = MakePrivateFile(db_path + suffix); !s.ok()) return s;
  }
  if (access_ == nullptr) {  // a standby made it already
    absl::StatusOr<std::unique_ptr<Store>> tokens = open_store();
    if (!tokens.ok()) return tokens.status();
    access_ = std::make_unique<AccessControl>(*std::move(tokens), options_.insecure);
  }
  if (on_postgres) {
    // Logs and artifacts in the database too: a standby on another host has
    // every byte this one acknowledged.
    absl::StatusOr<std::unique_ptr<LogStore>> logs =
        OpenPostgresLogStore(options_.store, fence_epoch);
    if (!logs.ok()) return logs.status();
    logs_ = *std::move(logs);
  } else {
    logs_ = OpenFileLogStore(absl::StrCat(options_.data_dir, "/logs"));
  }
  core_ = std::make_unique<Core>(store_.get(), logs_.get(), RealClock::Get(), options_.core);
  if (absl::Status s = core_->Recover(); !s.ok()) return s;
  // The farm CA signs enrolments and renewals when its key is here (`ca
  // init`); with an operator's own CA only revocation works.
  EnrollmentOptions enrollment = options_.enrollment;
  if (tls_.has_value()) {
    enrollment.trusted_pem = tls_->agent_ca_pem;
    if (!tls_->ca_key_pem.empty()) enrollment.ca = pki::Ca{tls_->agent_ca_pem, tls_->ca_key_pem};
  }
  enrollment_ = std::make_unique<Enrollment>(store_.get(), RealClock::Get(), enrollment);
  if (absl::Status s = enrollment_->Load(); !s.ok()) return s;
  core_->set_enrollment(enrollment_.get());
  schedules_ = std::make_unique<ScheduleRunner>(core_.get(), &store_->schedules(), RealClock::Get());
  if (absl::Status s = schedules_->Load(); !s.ok()) return s;
  // A schedule's last runs outlive --retain: the next run is compared with them.
  core_->set_retention_pins(schedules_.get());
  {
    // Notifications go out from the outbox on a thread of their own, so a
    // slow receiver never holds the loop; what a killed coordinator left
    // there goes now.
    absl::StatusOr<std::unique_ptr<Store>> outbox = open_store();
    if (!outbox.ok()) return outbox.status();
    webhooks_ = std::make_unique<WebhookSender>(*std::move(outbox), options_.webhook);
    core_->set_on_notifications([sender = webhooks_.get()] { sender->Wake(); });
    webhooks_->Start();
  }

  // API tokens and the audit log (no secrets there; the cipher is unused).
  absl::StatusOr<std::unique_ptr<Store>> admin_store = open_store();
  if (!admin_store.ok()) return admin_store.status();
  user_admin_ = std::make_unique<UserAdmin>(*std::move(admin_store));

  // The content store (issue 17): job inputs' blobs under <data-dir>/blobs,
  // indexed in the database (migrated above), or all of it in PostgreSQL;
  // its work on content_io_.
  if (on_postgres) {
    PostgresBlobStoreOptions blob_options;
    blob_options.url = options_.store;
    blob_options.max_bytes = options_.blob_store_bytes;
    blob_options.fence_epoch = fence_epoch;
    absl::StatusOr<std::unique_ptr<PostgresBlobStore>> blobs =
        PostgresBlobStore::Open(std::move(blob_options));
    if (!blobs.ok()) return blobs.status();
    blobs_ = *std::move(blobs);
  } else {
    LocalBlobStoreOptions blob_options;
    blob_options.dir = absl::StrCat(options_.data_dir, "/blobs");
    blob_options.db_path = db_path;
    blob_options.max_bytes = options_.blob_store_bytes;
    absl::StatusOr<std::unique_ptr<LocalBlobStore>> blobs = LocalBlobStore::Open(blob_options);
    if (!blobs.ok()) return blobs.status();
    blobs_ = *std::move(blobs);
  }
  core_->set_blob_store(blobs_.get());

  const bool serves_tls = tls_.has_value();
  server_ = std::make_unique<Server>(&loop_, core_.get(), core_.get(), tls_,
                                    enrollment_.get(), access_.get(), user_admin_.get());
  server_->ServeSchedules(schedules_.get());
  server_->ServeCoordinators(&listing_io_, [this] { return ListCoordinators(); });
  git_ = std::make_unique<GitImporter>(absl::StrCat(options_.data_dir, "/git"), blobs_.get());
  // A submission's inputs: git first, then the joins that may name them.
  auto resolve_inputs = [git = git_.get(), blobs = blobs_.get()](v1::SubmitRequest* req) {
    absl::Status git_done = ResolveGitInputs(*git, req);
    if (!git_done.ok()) return git_done;
    return ResolveJoinedInputs(*blobs, req);
  };
  server_->ServeContent(&content_io_, blobs_.get(), resolve_inputs);
  // A schedule's are resolved the same way at each run: on the content loop,
  // the run submitted back on the core loop.
  schedules_->set_blob_store(blobs_.get());
  schedules_->set_input_resolver([this, resolve_inputs](v1::SubmitRequest request, auto done) {
    content_io_.Post([this, resolve_inputs, request = std::move(request),
                      done = std::move(done)]() mutable {
      absl::Status resolved = resolve_inputs(&request);
      loop_.Post([resolved, request = std::move(request), done = std::move(done)]() mutable {
        if (resolved.ok()) {
          done(std::move(request));
        } else {
          done(resolved);
        }
      });
    });
  });
  content_io_.Start();
  ScheduleBlobGc(&content_io_, blobs_.get(), options_.blob_gc_grace);
  // Group commit: agent stream events that queue up while the loop works
  // (typically behind a commit's fsync) are committed together.
  if (options_.group_commit) {
    loop_.SetGroupHooks([core = core_.get()] { core->BeginGroup(); },
                        [core = core_.get()] { core->EndGroup(); });
  }
  loop_.Start();
  absl::StatusOr<int> port = server_->Start(options_.listen);
  if (!port.ok()) {
    loop_.Stop();
    return port.status();
  }
  port_ = *port;
  {
    absl::MutexLock lock(&listing_mu_);
    advertised_ = AdvertisedAddress();
  }
  ScheduleTick(&loop_, core_.get());
  ScheduleRunnerTick(&loop_, schedules_.get());
  if (!options_.core.retention.registries.empty()) {
    image_deleter_ = std::make_unique<RegistryImageDeleter>(
        [this](std::function<void()> fn) { loop_.Post(std::move(fn)); });
    loop_.RunSync([this] { core_->set_image_deleter(image_deleter_.get()); });
  }
  ScheduleRetention(&loop_, core_.get(), options_.core.retention.interval);
  if (dashboard_ != nullptr) {
    dashboard_->Attach(&loop_, core_.get(), access_.get(), user_admin_.get());
  }
  // Before the port file: whoever waits for it finds the coordinator ready.
  ready_.store(true, std::memory_order_release);
  if (absl::Status s = WritePortFile(); !s.ok()) return s;
  if (serves_tls) {
    log->info("listening on port {} with TLS (data in {})", port_, options_.data_dir);
  } else {
    log->warn(
        "listening on port {} in PLAINTEXT (--insecure): agents are not authenticated, anyone "
        "who can reach the port can register as any agent and receive its work (data in {})",
        port_, options_.data_dir);
  }
  return absl::OkStatus();
}

absl::Status Coordinator::ReloadAgentPolicy() {
  auto log = GetLogger("coordinator");
  if (options_.agent_policy.empty()) {
    log->info("no --agent-policy file to reload");
    return absl::OkStatus();
  }
  absl::StatusOr<AgentPolicy> policy = AgentPolicy::Load(options_.agent_policy);
  if (!policy.ok()) {
    log->error("agent policy not reloaded, the one in force stays: {}",
               std::string(policy.status().message()));
    return policy.status();
  }
  log->info("agent policy reloaded from {}", options_.agent_policy);
  loop_.Post([core = core_.get(), p = *std::move(policy)]() mutable {
    core->SetAgentPolicy(std::move(p));
  });
  return absl::OkStatus();
}

bool Coordinator::StandingBy() const {
  const Leadership* l = leadership_view_.load(std::memory_order_acquire);
  return l != nullptr && !l->active();
}

void Coordinator::Shutdown() {
  // No takeover starts from here on; one under way ends first.
  if (leadership_ != nullptr) leadership_->Stop();
  if (activation_.joinable()) activation_.join();
  absl::MutexLock lock(&activation_mu_);
  if (standby_ != nullptr) standby_->Shutdown();
  if (shut_down_ || core_ == nullptr) {
    if (!shut_down_ && http_ != nullptr) http_->Stop();
    shut_down_ = true;
    return;
  }
  shut_down_ = true;
  ready_ = false;
  if (dashboard_ != nullptr) dashboard_->Stop();
  if (port_ != 0) {
    // Finish every stream from the core, then let gRPC drain them.
    loop_.RunSync([this] { core_->Shutdown(); });
    server_->Shutdown(absl::Seconds(2));
  }
  // HTTP handlers wait on the loop: stop them while it still runs.
  if (http_ != nullptr) http_->Stop();
  // Its last batch posts to the loop, so it goes while the loop still runs.
  image_deleter_.reset();
  content_io_.Stop();
  // What it has not delivered stays in the outbox for the next start.
  if (webhooks_ != nullptr) webhooks_->Stop();
  loop_.Stop();
  listing_io_.Stop();  // after both gRPC servers: their listings finish on it
  GetLogger("coordinator")->info("stopped");
}

}  // namespace musafarm::coordinator
