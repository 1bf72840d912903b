#pragma once

// The web dashboard on the HTTP port: embedded pages (coordinator/web/), a JSON
// API over the same UserApi as gRPC, live updates by server-sent events through
// the WatchHub (as WatchJob), a token login kept in an HttpOnly cookie, and a
// CSRF token on every POST. Every route checks AccessControl (http_auth.h).
// Handlers run on HTTP pool threads and never touch core state: each call
// hops to the core loop and waits for the copy it returns.

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "common/event_loop.h"
#include "coordinator/access_control.h"
#include "coordinator/user_admin.h"
#include "coordinator/user_api.h"
#include "httplib.h"
#include "musafarm/v1/user_service.pb.h"

namespace musafarm::coordinator {

struct DashboardOptions {
  bool tls = false;        // the session cookie is Secure
  int max_streams = 8;     // concurrent event streams (each holds a pool thread)
  uint64_t log_tail = 256 << 10;  // a task page first shows at most this much of its log
  // On a standby coordinator (issue 20): what its 503s say instead of
  // "recovering" ("standby coordinator; the active coordinator is at ..."),
  // so the page names where to go. Returns "" on the active one. Any thread.
  std::function<std::string()> standby;
  // Who the farm's coordinators are (ListCoordinators' answer, issue 20), for
  // the read-only coordinators view. May block; any thread. Unset: none listed.
  std::function<absl::StatusOr<v1::ListCoordinatorsResponse>()> coordinators;
};

class Dashboard {
 public:
  explicit Dashboard(DashboardOptions options);

  // Registers every route. Before Attach() they answer 503.
  void AddRoutes(httplib::Server& routes);
  // Called once, on the thread that then sets the coordinator ready (none owned).
  // `admin` writes the audit lines of state-changing routes (may be null).
  void Attach(EventLoop* loop, UserApi* api, const AccessControl* access, UserAdmin* admin);
  // The coordinator is stopping: routes answer 503 and open event streams end
  // at their next wake-up, so the HTTP server's Stop() never waits on a tab.
  void Stop() { stopping_.store(true, std::memory_order_release); }

  // The CSRF token of a session: SHA-256 over a per-process key and the token.
  std::string CsrfFor(const std::string& bearer) const;

 private:
  template <typename Fn>
  auto OnLoop(Fn fn);
  bool Attached() const {
    return attached_.load(std::memory_order_acquire) && !stopping_.load(std::memory_order_acquire);
  }
  // What a route says before Attach: the standby's note, else `otherwise`.
  std::string NotAttachedReason(const std::string& otherwise) const {
    const std::string note = options_.standby ? options_.standby() : std::string();
    return note.empty() ? otherwise : note;
  }

  const DashboardOptions options_;
  std::string csrf_key_;
  EventLoop* loop_ = nullptr;
  UserApi* api_ = nullptr;
  const AccessControl* access_ = nullptr;
  UserAdmin* admin_ = nullptr;
  std::atomic<bool> attached_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<int> streams_{0};
  std::atomic<uint64_t> next_watch_{uint64_t{1} << 62};  // apart from gRPC's watch ids
};

}  // namespace musafarm::coordinator
