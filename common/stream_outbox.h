#pragma once

#include <cstddef>
#include <deque>
#include <utility>

namespace musafarm {

// The write side of one gRPC stream, which allows one write in flight: a
// queue, whether a write is in flight, and whether the stream is closing. One
// copy for every stream reactor (the coordinator's agent and watch streams, the
// agent's coordinator stream); each acts on what it returns: starts the write
// it hands back, or ends the stream (Finish, WritesDone) when told to.
//
// Not thread-safe: the owner guards it with the mutex its reactor already
// holds, and calls StartWrite/Finish after releasing that mutex. The message a
// returned pointer names stays put until the OnWriteDone after it.
template <typename Msg>
class StreamOutbox {
 public:
  enum class CloseMode {
    kDrain,  // what is queued is written first, then the stream ends
    kDrop,   // what is queued is dropped; only the write in flight completes
  };
  struct AfterWrite {
    const Msg* write = nullptr;  // start writing this next
    bool end = false;            // closed and drained: end the stream now
    // `write` is the last message of a stream closed with kDrain: its owner
    // may send it with the stream's end in one step (StartWriteAndFinish),
    // after which no OnWriteDone follows, and so no further AfterWrite.
    bool last = false;
  };

  // Queues `msg`. Returns it when the caller must start writing it now (no
  // write was in flight), else null. Dropped once closed.
  const Msg* Push(Msg msg) {
    if (closed_) return nullptr;
    queue_.push_back(std::move(msg));
    if (writing_) return nullptr;
    writing_ = true;
    return &queue_.front();
  }

  // Queues `msg` as the stream's last message and closes it (kDrain). Returns
  // it when the caller must send it, with the stream's end, now (nothing in
  // flight); otherwise a later OnWriteDone hands it back marked `last`.
  const Msg* PushLast(Msg msg) {
    if (closed_) return nullptr;
    closed_ = true;
    queue_.push_back(std::move(msg));
    if (writing_) return nullptr;
    writing_ = true;
    return &queue_.front();
  }

  // Asks for the end of the stream. Returns true when the caller must end it
  // now (no write in flight); otherwise a later OnWriteDone reports `end`.
  // False also when already closed: the end is reported exactly once.
  bool Close(CloseMode mode) {
    if (closed_) return false;
    closed_ = true;
    if (mode == CloseMode::kDrop) {
      // gRPC reads the message of a write in flight until OnWriteDone: keep it.
      while (queue_.size() > (writing_ ? 1u : 0u)) queue_.pop_back();
    }
    return !writing_;
  }

  // The write in flight completed. A failed write means a broken stream: the
  // rest is dropped and the stream closes.
  AfterWrite OnWriteDone(bool ok) {
    queue_.pop_front();
    if (!ok) {
      queue_.clear();
      closed_ = true;
    }
    if (queue_.empty()) {
      writing_ = false;
      return {nullptr, closed_};
    }
    return {&queue_.front(), false, closed_ && queue_.size() == 1};
  }

  bool closed() const { return closed_; }
  bool writing() const { return writing_; }
  size_t queued() const { return queue_.size(); }  // the write in flight included

 private:
  std::deque<Msg> queue_;
  bool writing_ = false;
  bool closed_ = false;
};

}  // namespace musafarm
