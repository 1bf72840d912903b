#pragma once

// Finding the active coordinator among several (issue 20): shared by the
// agent and the CLI. A standby coordinator answers every call UNAVAILABLE
// "standby coordinator; the active coordinator is at HOST:PORT", with the
// active's address in the trailing metadata kActiveCoordinatorMetadata
// (absent while no coordinator is active). A client keeps a list of
// addresses, talks to the one that last answered, follows a standby's hint
// directly, and tries the next address when one cannot be reached.

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/support/status.h"
#include "grpcpp/support/string_ref.h"

namespace grpc {
class ClientContext;
}  // namespace grpc

namespace musafarm {

// The trailing metadata key in which a standby names the active coordinator.
inline constexpr char kActiveCoordinatorMetadata[] = "musafarm-active-coordinator";

// What the end of one call says about the server it was sent to.
enum class CallReach {
  kAnswered,      // a serving coordinator answered (OK, or an error of its own)
  kStandby,       // a standby refused it: nothing was done
  kUnreached,     // no server was reached (refused, no route, TLS failed): nothing was done
  kMaybeReached,  // sent, then lost (deadline, reset): it may have been done
};

struct CallEnd {
  CallReach reach = CallReach::kAnswered;
  // For kStandby: the active coordinator the standby named; empty while
  // none is active.
  std::string active;
};

// Reads a call's end: its status and the server's trailing metadata.
CallEnd ClassifyCallEnd(const grpc::Status& status,
                        const std::multimap<grpc::string_ref, grpc::string_ref>& trailers);

// The coordinators a client knows and which one it talks to now. The one that
// last answered is tried first; a standby's hint is followed even when it is
// not in the list (a coordinator's advertised address). Thread-safe.
class CoordinatorTargets {
 public:
  // `addresses` must not be empty (ParseAddressList refuses that).
  explicit CoordinatorTargets(std::vector<std::string> addresses);

  const std::vector<std::string>& addresses() const { return addresses_; }
  // The address to try now.
  std::string Current() const;
  // `address` answered: it is tried first from now on.
  void MarkGood(const std::string& address);
  // A try at `address` ended as `end` says (not kAnswered): moves on to the
  // standby's hint when it names one other than `address`, else to the
  // address after `address` in the list. Returns the new current one.
  std::string Failed(const std::string& address, const CallEnd& end);

 private:
  const std::vector<std::string> addresses_;
  mutable absl::Mutex mu_;
  std::string current_ ABSL_GUARDED_BY(mu_);
};

// How CallActive retries.
struct FailoverPolicy {
  // Whether the call may be sent twice (reads, or writes that are safe to
  // repeat). A call that may have reached the active coordinator (a deadline
  // or a reset after it was sent) is retried only when this is true.
  bool idempotent = true;
  // Tries stop when no coordinator answered for this long.
  absl::Duration give_up_after = absl::Seconds(30);
  // Pauses between rounds (every address tried without an answer), with
  // full jitter (common/backoff.h).
  absl::Duration backoff_initial = absl::Milliseconds(200);
  absl::Duration backoff_max = absl::Seconds(2);
  // Prepares each try's context (a deadline, metadata): a context cannot be
  // reused, so every try gets a fresh one.
  std::function<void(grpc::ClientContext*)> prepare;
  // Sleeps; tests replace it. Null: absl::SleepFor.
  std::function<void(absl::Duration)> sleep;
};

// Runs `call` against the active coordinator: on `targets.Current()`, then,
// while the call was refused by a standby or reached no server, on the
// standby's hint or the next address, pausing with jitter after each round,
// until one answers or `policy.give_up_after` passes. `call` makes one RPC to
// `address` with `ctx` and returns its status. The status returned is the
// answering coordinator's; otherwise the last try's code with a message that
// says what was tried ("no coordinator answered: a:1: standby, no active
// coordinator yet; b:1: connection refused ..."). A non-idempotent call that
// may have reached the active is not retried: its status comes back with
// "(it may have been done: it was sent to ADDRESS before the connection was
// lost)" appended.
grpc::Status CallActive(
    CoordinatorTargets& targets, const FailoverPolicy& policy,
    absl::FunctionRef<grpc::Status(const std::string& address, grpc::ClientContext* ctx)> call);

// The "(it may have been done ...)" note, which callers may look for.
inline constexpr char kMayHaveBeenDoneNote[] = "it may have been done";

}  // namespace musafarm
