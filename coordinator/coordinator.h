#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/event_loop.h"
#include "coordinator/access_control.h"
#include "coordinator/core.h"
#include "coordinator/enrollment.h"
#include "coordinator/schedule_runner.h"
#include "coordinator/secret_cipher.h"
#include "coordinator/tls_material.h"
#include "coordinator/user_admin.h"
#include "coordinator/webhook_sender.h"
#include "musafarm/v1/user_service.pb.h"

namespace musafarm::coordinator {

class AccessControl;
class GitImporter;
class Dashboard;
class HttpServer;
class Leadership;
class Server;
class StandbyServer;

struct CoordinatorOptions {
  std::string listen = "127.0.0.1:7070";   // host:port; port 0 picks a free one
  std::string data_dir = "musafarm-data";  // musafarm.db and logs/
  // Where the farm's state lives (--store): "" = SQLite in <data_dir>/musafarm.db;
  // postgres://... or postgresql://... = that PostgreSQL database (issue 20;
  // logs and blobs stay under data_dir, docs/scale-out.md).
  std::string store;
  // Coordinators on one PostgreSQL database elect one active (issue 20,
  // leadership.h). The HOST:PORT recorded when this one leads, which
  // standbys send clients to (--advertise-address). "": the --listen host and
  // the bound port, or this machine's host name when --listen is a wildcard
  // (0.0.0.0, [::]).
  std::string advertise_address;
  // How long the database keeps the leader lock of a coordinator gone silent
  // (frozen, cut off): bounds the takeover (--leader-timeout).
  absl::Duration leader_session_timeout = absl::Seconds(10);
  std::string port_file;                   // if set, the bound port is written here
  // Plaintext, agents not authenticated (--insecure). Otherwise TLS with the
  // material `tls` names (its dir defaults to <data_dir>/pki).
  bool insecure = false;
  TlsPaths tls;
  std::string agent_policy;                // --agent-policy FILE; "" = none (CoreOptions.insecure)
  std::string secrets_key_file;            // "": $MUSAFARM_SECRETS_KEY or <data_dir>/secrets.key
  // The HTTP port (probes, /metrics, dashboard): "" = none. TLS with the
  // gRPC port's certificate unless insecure.
  std::string http_listen;
  std::string http_port_file;  // if set, the bound HTTP port is written here
  bool metrics_public = false;  // /metrics without a token (--metrics-public)
  // Agent events that queue up share one commit (Core::BeginGroup); false
  // (--no-group-commit): one commit each, for measuring what grouping buys.
  bool group_commit = true;
  // The content store (issue 17): its size limit (--blob-store-bytes), and how
  // long an unpinned blob is kept after its last use (an upload waiting for
  // its submit, a tree a finished job no longer pins).
  int64_t blob_store_bytes = int64_t{100} << 30;
  absl::Duration blob_gc_grace = absl::Hours(1);
  CoreOptions core;
  // How notifications are delivered (webhook_allow is in core).
  WebhookSenderOptions webhook;
  // Enrolment and revocation; its CA comes from the TLS material.
  EnrollmentOptions enrollment;
};

// The coordinator process, wired: SQLite store, log store, the core on its
// loop, and the gRPC server delivering to the core through its two seams.
// Start() recovers, binds and serves; Shutdown() closes streams cleanly.
class Coordinator {
 public:
  explicit Coordinator(CoordinatorOptions options);
  ~Coordinator();

  // Fails with InvalidArgument when TLS material is missing or unreadable
  // (before anything is created), with FailedPrecondition while another
  // coordinator holds the data directory, and with Unavailable when the
  // address cannot be bound.
  absl::Status Start();
  int port() const { return port_; }
  int http_port() const { return http_port_; }
  // Reads --agent-policy again (SIGHUP) and places under it. A file that does
  // not parse keeps the policy in force and is returned (and logged at ERROR).
  absl::Status ReloadAgentPolicy();
  void Shutdown();

 private:
  // Everything from opening the store on: what a standby does not do until
  // it wins. `fence_epoch`: the leader epoch its PostgreSQL writes carry (0
  // on SQLite).
  absl::Status StartActive(int64_t fence_epoch);
  // On PostgreSQL: binds the port, tries the leader lock, and either goes on
  // as active or serves as a standby until the election thread wins.
  absl::Status StartElection();
  // The standby won (on a thread of its own): closes the standby port and
  // starts as active. A failure exits the process.
  void Activate(int64_t epoch);
  // The Prometheus lines about leadership ("" on SQLite).
  std::string LeadershipMetrics() const;
  // On PostgreSQL, until this coordinator wins. Any thread.
  bool StandingBy() const;
  // ListCoordinators' answer, on listing_io_ (issue 20).
  absl::StatusOr<v1::ListCoordinatorsResponse> ListCoordinators() const;
  // HOST:PORT clients are sent to: --advertise-address, else the --listen
  // host (this host's name for a wildcard) and the bound port.
  std::string AdvertisedAddress() const;
  absl::Status WritePortFile();

  CoordinatorOptions options_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<LogStore> logs_;
  EventLoop loop_;
  std::unique_ptr<Core> core_;
  std::unique_ptr<Enrollment> enrollment_;  // used on loop_ only
  std::unique_ptr<ScheduleRunner> schedules_;  // used on loop_ only
  std::unique_ptr<WebhookSender> webhooks_;     // its own thread and store connection
  // Token making and the audit log, on a store connection of its own (called
  // from gRPC threads as well as the loop; the Store is not thread-safe).
  std::unique_ptr<UserAdmin> user_admin_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<GitImporter> git_;  // git inputs, on content_io_
  // ContentService's disk work and blob GC: never on a gRPC thread or loop_.
  EventLoop content_io_;
  std::unique_ptr<Server> server_;
  // Deletes expired jobs' registry tags (--registry); core_ calls it on loop_.
  std::unique_ptr<ImageDeleter> image_deleter_;
  // Set once the state is recovered and the gRPC port serves (/readyz).
  std::atomic<bool> ready_{false};
  // Tokens and roles for the gRPC user API and the HTTP routes (a store
  // connection of its own).
  std::unique_ptr<AccessControl> access_;
  std::unique_ptr<Dashboard> dashboard_;  // its routes wait for Attach (before ready_)
  // Serves from before the store is opened, so probes answer during recovery.
  std::unique_ptr<HttpServer> http_;
  int http_port_ = 0;
  // From Start, for StartActive (which a standby runs later).
  std::optional<TlsMaterial> tls_;
  std::optional<SecretCipher> cipher_;
  // On PostgreSQL: the election, and the port a standby serves meanwhile.
  std::unique_ptr<Leadership> leadership_;
  std::atomic<Leadership*> leadership_view_{nullptr};  // for gRPC and HTTP threads
  std::unique_ptr<StandbyServer> standby_;
  // ListCoordinators, on a standby and on the active one: it reads the
  // database, so on neither a gRPC thread nor loop_. Stopped after both
  // servers.
  EventLoop listing_io_;
  const absl::Time started_ = absl::Now();
  // This coordinator among those of the farm: HOST/PID/START_US.
  std::string id_;
  // On SQLite, what ListCoordinators lists as this one's address, once the
  // port is bound (set on the starting thread, read on listing_io_).
  mutable absl::Mutex listing_mu_;
  std::string advertised_ ABSL_GUARDED_BY(listing_mu_);
  std::thread activation_;
  // Held by Activate and Shutdown: a takeover and a SIGTERM do not cross.
  absl::Mutex activation_mu_;
  int64_t takeovers_ = 0;  // became active after another coordinator had led
  int lock_fd_ = -1;  // <data-dir>/lock, flock'ed while this coordinator runs
  int port_ = 0;
  bool shut_down_ ABSL_GUARDED_BY(activation_mu_) = false;
};

}  // namespace musafarm::coordinator
