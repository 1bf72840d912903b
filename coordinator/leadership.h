#pragma once

// Leadership of coordinators sharing one PostgreSQL database (issue 20).
//
// Coordinators started with the same --store elect one active through a
// session-level advisory lock (pg_try_advisory_lock) held on a libpq session
// of its own: the lock lives exactly as long as that session. The winner
// bumps the leader epoch (the one row of `leadership`, schema version 2) and
// records its address there; every write transaction it makes afterwards is
// fenced by that epoch (pg::Connection::SetFence), so once a successor has
// bumped it, nothing the deposed one sends can land.
//
// States, on the election thread (Start):
//   1. standby: tries the lock every poll_interval; meanwhile reads who is
//      active (active_address()) and refreshes its row in `coordinators`;
//   2. active: on_active(epoch) once; then checks every check_interval that
//      its session still holds the lock, refreshes its own row, and deletes
//      rows not seen for forget_after;
//   3. lost: the session is gone (the server ended it, the network broke, the
//      server restarted): on_lost(why) once, and the thread ends. There is no
//      way back to standby: the caller exits and is restarted as a standby.
//
// What bounds how long the server keeps a dead or frozen holder's lock: the
// session sets idle_session_timeout = session_timeout, so the server ends it
// when the holder sends nothing for that long (the holder's checks keep it
// busy every check_interval). That covers a SIGSTOPped process, whose kernel
// would still answer TCP keepalives, and a cut network. On the holder's side,
// TCP keepalives and tcp_user_timeout (both from session_timeout) make a check
// over a dead network fail in bounded time instead of hanging.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace musafarm::coordinator {

namespace pg {
class Connection;
}

struct LeadershipOptions {
  std::string url;      // the --store URL
  std::string id;       // this coordinator, unique among those running
  std::string address;  // HOST:PORT clients are sent to (--advertise-address)
  // A standby tries the lock this often: a takeover follows the lock's
  // release within this much, for one cheap query per standby each time.
  // 250 ms keeps the takeover well under the session timeout that dominates
  // it, without a standby ever being a noticeable load.
  absl::Duration poll_interval = absl::Milliseconds(250);
  // The active checks its lock session this often. It must stay well under
  // session_timeout, or the server ends a healthy active's session.
  absl::Duration check_interval = absl::Seconds(1);
  // How long the server keeps the lock of a holder that went silent (frozen,
  // cut off), and how long a check may wait on a dead network. It bounds
  // the takeover time after such a failure (a crash closes the socket: the
  // lock goes at once).
  absl::Duration session_timeout = absl::Seconds(10);
  // The active deletes the `coordinators` rows not refreshed for this long
  // (they are listed as gone until then, coordinator/coordinator_list.h):
  // long enough that an operator looking into an incident still finds the
  // one that went, short enough that the table does not grow with every
  // restart (each start is a new id).
  absl::Duration forget_after = absl::Hours(24);
};

// The `leadership` row.
struct LeaderInfo {
  int64_t epoch = 0;        // 0: nobody has led yet
  std::string address;      // the last winner's
  std::string coordinator;  // its id
  absl::Time since = absl::InfinitePast();
  bool held = false;  // someone holds the lock now (the row's coordinator, but for a moment)
};

// A row of `coordinators`: each refreshes its own (standbys every few seconds).
struct CoordinatorSeen {
  std::string id;
  std::string address;
  absl::Time last_seen;
};

class Leadership {
 public:
  // Connects the dedicated session. The schema must be migrated (version 2).
  static absl::StatusOr<std::unique_ptr<Leadership>> Open(LeadershipOptions options);
  ~Leadership();

  // Tries the lock once; on winning, bumps the epoch and records this
  // coordinator as active (true; epoch() is then the fence).
  absl::StatusOr<bool> TryAcquire();
  // The active's check: this session still holds the lock.
  absl::Status CheckHeld();
  absl::StatusOr<LeaderInfo> ReadLeader();
  // ReadLeader, and active_address() from it (the standby loop does this at
  // each poll; a standby does it once before it first serves).
  absl::Status RefreshActive();
  absl::StatusOr<std::vector<CoordinatorSeen>> ReadCoordinators();
  // Upserts this coordinator's `coordinators` row. Not fenced: only this
  // listing reads the table, and each coordinator writes only its own row,
  // so a standby (or a deposed active) writing there changes no farm state.
  absl::Status RecordSeen(absl::Time now);
  // Deletes the `coordinators` rows last seen before `before` (not fenced,
  // like RecordSeen: the listing alone reads them).
  absl::Status ForgetSeenBefore(absl::Time before);

  // The epoch won (0 until then).
  int64_t epoch() const;
  absl::Time since() const;
  bool active() const;
  // HOST:PORT of the active coordinator as last read by the standby loop,
  // "" while nobody holds the lock. Any thread.
  std::string active_address() const;
  const LeadershipOptions& options() const { return options_; }

  struct Callbacks {
    std::function<void(int64_t epoch)> on_active;    // on the election thread
    std::function<void(absl::Status why)> on_lost;  // likewise; the thread ends
  };
  // Runs the election (the states above) on a thread of its own.
  void Start(Callbacks callbacks);
  // Ends the thread; the session (and so the lock) closes with the object.
  void Stop();

  // The libpq keywords of the lock session: keepalives, tcp_user_timeout and
  // idle_session_timeout from `session_timeout` (above).
  static std::vector<std::pair<std::string, std::string>> SessionKeywords(
      absl::Duration session_timeout);

 private:
  explicit Leadership(LeadershipOptions options, std::unique_ptr<pg::Connection> conn);
  void Run(Callbacks callbacks);
  // Whether Stop was called, waiting up to `d` for it.
  bool StopRequested(absl::Duration d);

  const LeadershipOptions options_;
  // The dedicated session: the election thread uses it, and the active's
  // `coordinators` answer reads through it.
  mutable absl::Mutex conn_mu_;
  std::unique_ptr<pg::Connection> conn_ ABSL_GUARDED_BY(conn_mu_);

  mutable absl::Mutex mu_;
  int64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time since_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::string active_address_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace musafarm::coordinator
