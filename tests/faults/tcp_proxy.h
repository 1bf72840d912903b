#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace musafarm::faults {

// A TCP proxy on 127.0.0.1:<any free port> in front of one upstream port on
// 127.0.0.1, for network faults between agents and the coordinator: agents
// dial port() instead of the coordinator. One thread runs a poll() loop over
// every connection (no thread per connection). Each accepted connection gets
// its own upstream connection; bytes are copied both ways with at most
// kMaxBuffered bytes buffered per direction (then the proxy stops reading
// that side, and TCP flow control pushes back on the sender).
//
// Faults:
//  - Blackhole(): a network partition. Nothing more is read, written or
//    accepted: connections stay open and silent in both directions, with no
//    RST or FIN. What the peers write meanwhile waits in kernel socket buffers
//    (and the proxy's own), as unacknowledged segments would wait in a real
//    partition. A connection attempt made meanwhile completes in the kernel's
//    backlog but is not forwarded.
//  - Heal(): ends the partition. Blackholed connections RESUME: the bytes held
//    back are delivered in order, as TCP retransmission would deliver them,
//    and queued connection attempts are accepted and forwarded. So a peer that
//    gave up on a connection during the partition (the coordinator closing a
//    silent agent's stream at its heartbeat deadline) is heard from once the
//    partition heals, and the other side learns it then (the agent sees its
//    stream end and reconnects).
//  - Sever(): closes every connection now (the peers see FIN, or RST when
//    unread bytes were pending); the proxy keeps accepting new ones.
//
// Thread-safe: every method may be called from any thread. Blackhole, Heal
// and Sever return once the proxy's thread has applied them.
class TcpProxy {
 public:
  static constexpr size_t kMaxBuffered = 1 << 20;

  // Listens on 127.0.0.1:0 and forwards to 127.0.0.1:upstream_port. The
  // upstream need not be listening yet (or may restart on the same port):
  // each accepted connection dials it afresh, and is closed if that fails.
  static absl::StatusOr<std::unique_ptr<TcpProxy>> Start(int upstream_port);
  // The same in front of a Unix socket (issue 20: a private PostgreSQL, which
  // listens on one only, reached over TCP loopback through the proxy).
  static absl::StatusOr<std::unique_ptr<TcpProxy>> StartToUnix(std::string upstream_path);
  ~TcpProxy();  // stops the thread and closes every socket

  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  int port() const { return port_; }
  std::string address() const;  // "127.0.0.1:<port>"

  void Blackhole();
  void Heal();
  void Sever();

  // Connections accepted so far, and open now.
  int accepted() const;
  int open() const;

  // Bytes passed on so far, over every connection: from clients to the
  // upstream, and back. What a peer sent that the proxy has not yet written
  // on is not counted.
  uint64_t bytes_to_upstream() const { return to_upstream_.load(); }
  uint64_t bytes_to_client() const { return to_client_.load(); }

 private:
  enum class Command { kNone, kBlackhole, kHeal, kSever, kStop };
  TcpProxy(int listen_fd, int wake_fd, int port, int upstream_port, std::string upstream_path);
  static absl::StatusOr<std::unique_ptr<TcpProxy>> Listen(int upstream_port,
                                                          std::string upstream_path);
  // A non-blocking socket connecting to the upstream; -1 when that failed.
  int DialUpstream(bool* connecting) const;
  // Posts `c` and waits until the loop has applied it.
  void Apply(Command c) ABSL_LOCKS_EXCLUDED(mu_);
  bool AllApplied() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return applied_ == posted_; }
  void Run();

  const int listen_fd_;
  const int wake_fd_;  // eventfd: a command is waiting
  const int port_;
  const int upstream_port_;
  const std::string upstream_path_;  // non-empty: a Unix socket instead of the port

  mutable absl::Mutex mu_;
  Command command_ ABSL_GUARDED_BY(mu_) = Command::kNone;
  uint64_t posted_ ABSL_GUARDED_BY(mu_) = 0;   // commands posted
  uint64_t applied_ ABSL_GUARDED_BY(mu_) = 0;  // commands the loop has applied
  int accepted_ ABSL_GUARDED_BY(mu_) = 0;
  int open_ ABSL_GUARDED_BY(mu_) = 0;

  std::atomic<uint64_t> to_upstream_{0};
  std::atomic<uint64_t> to_client_{0};

  std::thread thread_;
};

}  // namespace musafarm::faults
