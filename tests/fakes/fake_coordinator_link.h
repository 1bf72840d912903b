#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/coordinator_link.h"

namespace musafarm::testing {

// A coordinator, in process, behind the agent's CoordinatorLink: no channel.
// It registers the agent, sends what the test gives it, records everything
// and acknowledges logs and results (unless told not to). Held attempts are
// re-attached like the real one does: Ack{log_offset = the log bytes it
// acknowledged, resend}. One session at a time, which is all one agent opens.
// Thread-safe; replies go out through the agent's callbacks, which only post.
class FakeCoordinatorLink final : public agent::CoordinatorLink {
 public:
  using Messages = std::vector<v1::AgentMessage>;

  std::shared_ptr<agent::CoordinatorSession> Open(OnMessage on_message, OnEnd on_end) override {
    auto session = std::make_shared<Session>(this, std::move(on_message), std::move(on_end));
    absl::MutexLock lock(&mu_);
    ++sessions_opened_;
    return session;
  }
  std::string Target() const override {
    absl::MutexLock lock(&mu_);
    return target_;
  }
  // What Target() says from now on, as a real link moves on to the next
  // coordinator address when a stream ends.
  void set_target(std::string target) {
    absl::MutexLock lock(&mu_);
    target_ = std::move(target);
  }

  void set_heartbeat_ms(int64_t ms) {
    absl::MutexLock lock(&mu_);
    heartbeat_ms_ = ms;
  }
  // Tells the connected agent a new heartbeat interval (HeartbeatPace), as the
  // coordinator does when the farm grows. False when none is connected.
  bool Pace(int64_t ms) {
    absl::MutexLock lock(&mu_);
    if (current_ == nullptr) return false;
    v1::CoordinatorMessage out;
    out.mutable_pace()->set_heartbeat_interval_ms(ms);
    current_->Deliver(out);
    return true;
  }
  // What OnMessageMaySend() says (the gRPC link: true). Set before the agent
  // connects. With it on, deliver assignments with DeliverFromReader: the
  // others deliver holding this fake's lock, which the agent's Send takes.
  void set_on_message_may_send(bool on) {
    absl::MutexLock lock(&mu_);
    may_send_ = on;
  }
  bool OnMessageMaySend() const override {
    absl::MutexLock lock(&mu_);
    return may_send_;
  }
  // Delivers `msg` on the calling thread holding no lock, as the gRPC link's
  // reader thread does. False when no agent is connected.
  bool DeliverFromReader(const v1::CoordinatorMessage& msg) {
    OnMessage deliver;
    {
      absl::MutexLock lock(&mu_);
      if (current_ == nullptr) return false;
      deliver = current_->on_message();
    }
    deliver(msg);
    return true;
  }
  // Sends at once when connected, else at the next registration.
  void Assign(const v1::Assignment& a) {
    absl::MutexLock lock(&mu_);
    if (current_ == nullptr) {
      queued_.push_back(a);
      return;
    }
    v1::CoordinatorMessage out;
    *out.mutable_assignment() = a;
    current_->Deliver(out);
  }
  // Turns log acknowledgements on or off; on: acknowledges what came so far.
  void AckLogs(bool on, const std::string& task_id = "", uint64_t attempt_id = 0) {
    absl::MutexLock lock(&mu_);
    ack_logs_ = on;
    if (on && current_ != nullptr && attempt_id != 0) {
      WriteAck(task_id, attempt_id, log_end_[attempt_id], false);
    }
  }
  void AckResults(bool on) {
    absl::MutexLock lock(&mu_);
    ack_results_ = on;
  }
  // Says now that the result of `attempt` is stored (as AckResults does when
  // one arrives). False when no agent is connected.
  bool AckResult(const std::string& task_id, uint64_t attempt_id) {
    absl::MutexLock lock(&mu_);
    if (current_ == nullptr) return false;
    WriteAck(task_id, attempt_id, log_end_[attempt_id], true);
    return true;
  }
  // Breaks the current session, as a lost connection would (UNAVAILABLE).
  void Disconnect() {
    absl::MutexLock lock(&mu_);
    if (current_ != nullptr) current_->End(absl::UnavailableError("connection lost"));
  }
  // Non-OK: every registration is refused with `why` (its stream ended), as
  // the coordinator refuses a second instance of a name; counted in refused().
  void RefuseRegistrations(absl::Status why) {
    absl::MutexLock lock(&mu_);
    refuse_ = std::move(why);
  }
  int refused() {
    absl::MutexLock lock(&mu_);
    return refused_;
  }
  bool WaitFor(const std::function<bool(const Messages&)>& pred,
               absl::Duration timeout = absl::Seconds(20)) {
    absl::MutexLock lock(&mu_);
    auto cond = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return pred(received_); };
    return mu_.AwaitWithTimeout(absl::Condition(&cond), timeout);
  }
  Messages received() {
    absl::MutexLock lock(&mu_);
    return received_;
  }
  // The last registration.
  v1::Register registration() {
    absl::MutexLock lock(&mu_);
    return registration_;
  }
  int sessions_opened() {
    absl::MutexLock lock(&mu_);
    return sessions_opened_;
  }
  int streams_ended() {
    absl::MutexLock lock(&mu_);
    return streams_ended_;
  }

 private:
  class Session final : public agent::CoordinatorSession {
   public:
    Session(FakeCoordinatorLink* link, OnMessage on_message, OnEnd on_end)
        : link_(link), on_message_(std::move(on_message)), on_end_(std::move(on_end)) {}
    // The agent dropped it: nothing is delivered to it any more.
    ~Session() override {
      absl::MutexLock lock(&link_->mu_);
      if (link_->current_ == this) link_->current_ = nullptr;
    }
    void Send(v1::AgentMessage msg) override {
      absl::MutexLock lock(&link_->mu_);
      if (ended_ || half_closed_) return;
      link_->Receive(this, std::move(msg));
    }
    // What the real coordinator does on a half-close: it has read everything
    // before it, and ends the session OK.
    void CloseSend() override {
      absl::MutexLock lock(&link_->mu_);
      if (ended_ || half_closed_) return;
      half_closed_ = true;
      End(absl::OkStatus());
    }
    void Cancel() override {
      absl::MutexLock lock(&link_->mu_);
      End(absl::CancelledError("cancelled by the agent"));
    }

    // Deliver and End need link_->mu_, held by the link that calls them. The
    // analysis cannot tell that a session's link_ is its caller (`s->link_`
    // is `this` there), so they assert the lock at run time instead.
    void Deliver(const v1::CoordinatorMessage& msg) {
      link_->mu_.AssertHeld();
      if (!ended_) on_message_(msg);
    }
    void End(const absl::Status& why) {
      link_->mu_.AssertHeld();
      if (ended_) return;
      ended_ = true;
      if (link_->current_ == this) link_->current_ = nullptr;
      ++link_->streams_ended_;
      on_end_(why);
    }
    bool registered = false;  // guarded by link_->mu_
    const OnMessage& on_message() const { return on_message_; }

   private:
    FakeCoordinatorLink* const link_;
    const OnMessage on_message_;
    const OnEnd on_end_;
    bool ended_ ABSL_GUARDED_BY(link_->mu_) = false;
    bool half_closed_ ABSL_GUARDED_BY(link_->mu_) = false;
  };

  void Receive(Session* s, v1::AgentMessage in) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!s->registered) {
      if (!in.has_register_()) {
        s->End(absl::InvalidArgumentError("register first"));
        return;
      }
      if (!refuse_.ok()) {
        ++refused_;
        s->End(refuse_);
        return;
      }
      s->registered = true;
      received_.push_back(in);
      registration_ = in.register_();
      if (current_ != nullptr) current_->End(absl::AbortedError("replaced by a new session"));
      current_ = s;
      v1::CoordinatorMessage out;
      out.mutable_registered()->set_heartbeat_interval_ms(heartbeat_ms_);
      s->Deliver(out);
      for (const v1::HeldAttempt& h : in.register_().held()) {
        out.Clear();
        out.mutable_ack()->set_task_id(h.task_id());
        out.mutable_ack()->set_attempt_id(h.attempt_id());
        out.mutable_ack()->set_log_offset(stored_[h.attempt_id()]);
        out.mutable_ack()->set_resend(true);
        s->Deliver(out);
      }
      for (const v1::Assignment& a : queued_) {
        out.Clear();
        *out.mutable_assignment() = a;
        s->Deliver(out);
      }
      queued_.clear();
      return;
    }
    received_.push_back(in);
    if (in.has_log()) {
      uint64_t& end = log_end_[in.log().attempt_id()];
      end = std::max<uint64_t>(end, in.log().offset() + in.log().data().size());
      if (ack_logs_) WriteAck(in.log().task_id(), in.log().attempt_id(), end, false);
    } else if (in.has_result() && ack_results_) {
      WriteAck(in.result().task_id(), in.result().attempt_id(), in.result().log_size(), true);
    }
  }

  void WriteAck(const std::string& task, uint64_t attempt, uint64_t offset, bool stored)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!stored) stored_[attempt] = std::max(stored_[attempt], offset);
    v1::CoordinatorMessage out;
    out.mutable_ack()->set_task_id(task);
    out.mutable_ack()->set_attempt_id(attempt);
    out.mutable_ack()->set_log_offset(offset);
    out.mutable_ack()->set_result_stored(stored);
    if (current_ != nullptr) current_->Deliver(out);
  }

  mutable absl::Mutex mu_;
  std::string target_ ABSL_GUARDED_BY(mu_) = "fake-coordinator";
  Session* current_ ABSL_GUARDED_BY(mu_) = nullptr;  // registered and not ended
  int64_t heartbeat_ms_ ABSL_GUARDED_BY(mu_) = 60'000;
  bool ack_logs_ ABSL_GUARDED_BY(mu_) = true;
  bool ack_results_ ABSL_GUARDED_BY(mu_) = true;
  bool may_send_ ABSL_GUARDED_BY(mu_) = false;
  std::map<uint64_t, uint64_t> stored_ ABSL_GUARDED_BY(mu_);  // log bytes acknowledged
  std::vector<v1::Assignment> queued_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, uint64_t> log_end_ ABSL_GUARDED_BY(mu_);
  Messages received_ ABSL_GUARDED_BY(mu_);
  v1::Register registration_ ABSL_GUARDED_BY(mu_);
  absl::Status refuse_ ABSL_GUARDED_BY(mu_) = absl::OkStatus();
  int refused_ ABSL_GUARDED_BY(mu_) = 0;
  int sessions_opened_ ABSL_GUARDED_BY(mu_) = 0;
  int streams_ended_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace musafarm::testing
