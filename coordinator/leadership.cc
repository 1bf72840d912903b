#include "coordinator/leadership.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/pg_connection.h"

namespace musafarm::coordinator {
namespace {

using pg::Params;
using pg::Query;
using pg::Result;

// The advisory lock's key ("musafarn"; the migration lock is "musafarm").
// pg_locks shows a bigint key as classid (high half) and objid (low half).
constexpr int64_t kLeaderLockKey = 0x6d7573616661726e;
constexpr int64_t kKeyHigh = kLeaderLockKey >> 32;
constexpr int64_t kKeyLow = kLeaderLockKey & 0xffffffff;

// A standby refreshes its `coordinators` row this often (a write each).
constexpr absl::Duration kSeenInterval = absl::Seconds(2);

constexpr Query kTryLock{"leader_try_lock", "SELECT pg_try_advisory_lock($1::bigint)"};
// Autocommit. It waits for every transaction of the previous leader holding
// the fence's share lock on the row (pg::Connection::SetFence).
constexpr Query kBump{"leader_bump",
                      "UPDATE leadership SET epoch = epoch + 1, address = $1, coordinator = $2, "
                      "since_us = $3 RETURNING epoch"};
constexpr Query kHeld{"leader_held",
                      "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                      "pid = pg_backend_pid() AND classid::bigint = $1 AND objid::bigint = $2 "
                      "AND objsubid = 1 AND granted"};
constexpr Query kRead{
    "leader_read",
    "SELECT epoch, address, coordinator, since_us, EXISTS (SELECT 1 FROM pg_locks WHERE "
    "locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = "
    "current_database()) AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1 AND "
    "granted) FROM leadership"};
constexpr Query kReadSeen{"leader_read_seen",
                          "SELECT id, address, last_seen_us FROM coordinators ORDER BY id"};
constexpr Query kUpsertSeen{"leader_upsert_seen",
                            "INSERT INTO coordinators(id, address, last_seen_us) VALUES($1, $2, $3) "
                            "ON CONFLICT(id) DO UPDATE SET address = excluded.address, "
                            "last_seen_us = excluded.last_seen_us"};

constexpr Query kForgetSeen{"leader_forget_seen",
                            "DELETE FROM coordinators WHERE last_seen_us < $1"};

std::shared_ptr<spdlog::logger> Log() { return GetLogger("leadership"); }

}  // namespace

std::vector<std::pair<std::string, std::string>> Leadership::SessionKeywords(
    absl::Duration session_timeout) {
  const int64_t ms = absl::ToInt64Milliseconds(session_timeout);
  // Keepalives: idle a third of the timeout, then 3 probes a ninth apart.
  const int64_t idle_s = std::max<int64_t>(1, ms / 3000);
  const int64_t interval_s = std::max<int64_t>(1, ms / 9000);
  return {
      {"keepalives", "1"},
      {"keepalives_idle", absl::StrCat(idle_s)},
      {"keepalives_interval", absl::StrCat(interval_s)},
      {"keepalives_count", "3"},
      {"tcp_user_timeout", absl::StrCat(ms)},
      {"options", absl::StrCat("-c idle_session_timeout=", ms)},
      {"application_name", "musafarm-leadership"},
  };
}

absl::StatusOr<std::unique_ptr<Leadership>> Leadership::Open(LeadershipOptions options) {
  MF_ASSIGN_OR_RETURN(std::unique_ptr<pg::Connection> conn,
                      pg::Connection::Open(options.url, SessionKeywords(options.session_timeout)));
  return std::unique_ptr<Leadership>(new Leadership(std::move(options), std::move(conn)));
}

Leadership::Leadership(LeadershipOptions options, std::unique_ptr<pg::Connection> conn)
    : options_(std::move(options)), conn_(std::move(conn)) {}

Leadership::~Leadership() { Stop(); }

absl::StatusOr<bool> Leadership::TryAcquire() {
  absl::MutexLock conn_lock(&conn_mu_);
  MF_ASSIGN_OR_RETURN(Result got,
                      conn_->Run(kTryLock, Params().Int(kLeaderLockKey), "try the leader lock"));
  if (got.Int(0, 0) == 0) return false;
  const absl::Time now = absl::Now();
  MF_ASSIGN_OR_RETURN(Result bumped,
                      conn_->Run(kBump,
                                 Params().Text(options_.address).Text(options_.id).Int(
                                     absl::ToUnixMicros(now)),
                                 "bump the leader epoch"));
  if (bumped.rows() != 1) {
    return absl::FailedPreconditionError(
        "store: the leadership row is missing (schema version 2 made it)");
  }
  const int64_t epoch = bumped.Int(0, 0);
  (void)conn_->Run(kUpsertSeen,
                   Params().Text(options_.id).Text(options_.address).Int(absl::ToUnixMicros(now)),
                   "record this coordinator");
  absl::MutexLock lock(&mu_);
  epoch_ = epoch;
  since_ = now;
  active_address_ = options_.address;
  return true;
}

absl::Status Leadership::CheckHeld() {
  absl::MutexLock conn_lock(&conn_mu_);
  absl::StatusOr<Result> held =
      conn_->Run(kHeld, Params().Int(kKeyHigh).Int(kKeyLow), "check the leader lock");
  if (!held.ok()) {
    return absl::UnavailableError(
        absl::StrCat("the session holding the leader lock is gone: ", held.status().message()));
  }
  if (held->Int(0, 0) == 0) {
    return absl::UnavailableError(
        "the session holding the leader lock was replaced (the server ended it); the lock is "
        "no longer ours");
  }
  return absl::OkStatus();
}

absl::StatusOr<LeaderInfo> Leadership::ReadLeader() {
  absl::MutexLock conn_lock(&conn_mu_);
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kRead, Params().Int(kKeyHigh).Int(kKeyLow),
                                           "read the leadership"));
  if (r.rows() != 1) {
    return absl::FailedPreconditionError(
        "store: the leadership row is missing (schema version 2 made it)");
  }
  LeaderInfo info;
  info.epoch = r.Int(0, 0);
  info.address = r.String(0, 1);
  info.coordinator = r.String(0, 2);
  info.since = absl::FromUnixMicros(r.Int(0, 3));
  info.held = r.Int(0, 4) != 0;
  return info;
}

absl::Status Leadership::RefreshActive() {
  absl::StatusOr<LeaderInfo> leader = ReadLeader();
  if (!leader.ok()) return leader.status();
  absl::MutexLock lock(&mu_);
  if (epoch_ == 0) active_address_ = leader->held ? leader->address : "";
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CoordinatorSeen>> Leadership::ReadCoordinators() {
  absl::MutexLock conn_lock(&conn_mu_);
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kReadSeen, Params(), "read the coordinators"));
  std::vector<CoordinatorSeen> out;
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back({r.String(i, 0), r.String(i, 1), absl::FromUnixMicros(r.Int(i, 2))});
  }
  return out;
}

absl::Status Leadership::RecordSeen(absl::Time now) {
  absl::MutexLock conn_lock(&conn_mu_);
  return conn_
      ->Run(kUpsertSeen,
            Params().Text(options_.id).Text(options_.address).Int(absl::ToUnixMicros(now)),
            "record this coordinator")
      .status();
}

absl::Status Leadership::ForgetSeenBefore(absl::Time before) {
  absl::MutexLock conn_lock(&conn_mu_);
  return conn_
      ->Run(kForgetSeen, Params().Int(absl::ToUnixMicros(before)), "drop coordinators long gone")
      .status();
}

int64_t Leadership::epoch() const {
  absl::MutexLock lock(&mu_);
  return epoch_;
}

absl::Time Leadership::since() const {
  absl::MutexLock lock(&mu_);
  return since_;
}

bool Leadership::active() const { return epoch() != 0; }

std::string Leadership::active_address() const {
  absl::MutexLock lock(&mu_);
  return active_address_;
}

void Leadership::Start(Callbacks callbacks) {
  thread_ = std::thread([this, callbacks = std::move(callbacks)] { Run(callbacks); });
}

void Leadership::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

bool Leadership::StopRequested(absl::Duration d) {
  mu_.LockWhenWithTimeout(absl::Condition(&stop_), d);
  const bool stop = stop_;
  mu_.Unlock();
  return stop;
}

void Leadership::Run(Callbacks callbacks) {
  std::string last_error;  // logged once, not every poll
  absl::Time next_seen = absl::InfinitePast();
  while (!StopRequested(absl::ZeroDuration())) {
    if (active()) {
      if (absl::Status held = CheckHeld(); !held.ok()) {
        callbacks.on_lost(held);
        return;
      }
      // The active's row stays fresh too (`musafarm coordinators` shows when
      // each was last seen), and it drops the rows of those long gone.
      const absl::Time now = absl::Now();
      if (now >= next_seen) {
        absl::Status seen = RecordSeen(now);
        if (seen.ok()) seen = ForgetSeenBefore(now - options_.forget_after);
        if (!seen.ok()) Log()->warn("active: {}", std::string(seen.message()));
        next_seen = now + kSeenInterval;
      }
      if (StopRequested(options_.check_interval)) return;
      continue;
    }
    absl::StatusOr<bool> won = TryAcquire();
    if (won.ok() && *won) {
      Log()->info("active: won the leader lock, epoch {} (address {})", epoch(),
                  options_.address);
      callbacks.on_active(epoch());
      continue;
    }
    absl::Status status = won.status();
    if (status.ok()) {
      status = RefreshActive();
      const absl::Time now = absl::Now();
      if (status.ok() && now >= next_seen) {
        status = RecordSeen(now);
        next_seen = now + kSeenInterval;
      }
    }
    if (!status.ok() && std::string(status.message()) != last_error) {
      last_error = std::string(status.message());
      Log()->warn("standby: {} (retrying every {})", last_error,
                  absl::FormatDuration(options_.poll_interval));
    } else if (status.ok()) {
      last_error.clear();
    }
    if (StopRequested(options_.poll_interval)) return;
  }
}

}  // namespace musafarm::coordinator
