#include "tests/faults/tcp_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <list>
#include <vector>

#include "absl/strings/str_cat.h"

namespace musafarm::faults {
namespace {

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

// One proxied connection: the accepted client socket and our socket to the upstream.
struct Conn {
  int client = -1;
  int upstream = -1;
  bool connecting = true;  // upstream connect() still in progress
  std::string to_upstream, to_client;
  bool client_eof = false, upstream_eof = false;
  bool dead = false;

  ~Conn() {
    if (client >= 0) ::close(client);
    if (upstream >= 0) ::close(upstream);
  }
};

// Reads what fits into `buf`; false when the socket failed. Sets `eof` on an orderly close.
bool ReadInto(int fd, std::string& buf, bool& eof) {
  char chunk[64 * 1024];
  while (buf.size() < TcpProxy::kMaxBuffered) {
    const size_t want = std::min(sizeof(chunk), TcpProxy::kMaxBuffered - buf.size());
    const ssize_t n = ::recv(fd, chunk, want, 0);
    if (n > 0) {
      buf.append(chunk, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) {
      eof = true;
      return true;
    }
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
  return true;
}

// Writes what the socket takes from the front of `buf`, adding it to `sent`;
// false when the socket failed.
bool WriteFrom(int fd, std::string& buf, std::atomic<uint64_t>& sent) {
  while (!buf.empty()) {
    const ssize_t n = ::send(fd, buf.data(), buf.size(), MSG_NOSIGNAL);
    if (n > 0) {
      buf.erase(0, static_cast<size_t>(n));
      sent.fetch_add(static_cast<uint64_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TcpProxy>> TcpProxy::Start(int upstream_port) {
  return Listen(upstream_port, "");
}

absl::StatusOr<std::unique_ptr<TcpProxy>> TcpProxy::StartToUnix(std::string upstream_path) {
  if (upstream_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path too long: ", upstream_path));
  }
  return Listen(0, std::move(upstream_path));
}

absl::StatusOr<std::unique_ptr<TcpProxy>> TcpProxy::Listen(int upstream_port,
                                                           std::string upstream_path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  sockaddr_in addr = Loopback(0);
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 64) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    absl::Status s = Errno("listen on 127.0.0.1:0");
    ::close(fd);
    return s;
  }
  const int wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake < 0) {
    absl::Status s = Errno("eventfd");
    ::close(fd);
    return s;
  }
  std::unique_ptr<TcpProxy> proxy(
      new TcpProxy(fd, wake, ntohs(addr.sin_port), upstream_port, std::move(upstream_path)));
  proxy->thread_ = std::thread([p = proxy.get()] { p->Run(); });
  return proxy;
}

TcpProxy::TcpProxy(int listen_fd, int wake_fd, int port, int upstream_port,
                   std::string upstream_path)
    : listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      port_(port),
      upstream_port_(upstream_port),
      upstream_path_(std::move(upstream_path)) {}

int TcpProxy::DialUpstream(bool* connecting) const {
  *connecting = false;
  const int one = 1;
  if (!upstream_path_.empty()) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_un up{};
    up.sun_family = AF_UNIX;
    std::memcpy(up.sun_path, upstream_path_.data(), upstream_path_.size());
    // A Unix socket connects at once or not at all.
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&up), sizeof(up)) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  const sockaddr_in up = Loopback(upstream_port_);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&up), sizeof(up)) == 0) return fd;
  if (errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  *connecting = true;
  return fd;
}

TcpProxy::~TcpProxy() {
  Apply(Command::kStop);
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_fd_);
}

std::string TcpProxy::address() const { return absl::StrCat("127.0.0.1:", port_); }

void TcpProxy::Blackhole() { Apply(Command::kBlackhole); }
void TcpProxy::Heal() { Apply(Command::kHeal); }
void TcpProxy::Sever() { Apply(Command::kSever); }

int TcpProxy::accepted() const {
  absl::MutexLock lock(&mu_);
  return accepted_;
}

int TcpProxy::open() const {
  absl::MutexLock lock(&mu_);
  return open_;
}

void TcpProxy::Apply(Command c) {
  uint64_t seq = 0;
  {
    absl::MutexLock lock(&mu_);
    // One command in flight: `command_` holds one, so a second caller waits
    // until the loop has applied the first.
    mu_.Await(absl::Condition(this, &TcpProxy::AllApplied));
    command_ = c;
    seq = ++posted_;
  }
  const uint64_t one_event = 1;
  while (::write(wake_fd_, &one_event, sizeof(one_event)) < 0 && errno == EINTR) {
  }
  if (c == Command::kStop) return;  // the destructor joins
  struct Wait {
    const TcpProxy* proxy;
    uint64_t seq;
  } wait{this, seq};
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](Wait* w) {
        w->proxy->mu_.AssertHeld();  // Await evaluates the condition under mu_
        return w->proxy->applied_ >= w->seq;
      },
      &wait));
}

void TcpProxy::Run() {
  std::list<Conn> conns;
  bool blackholed = false;
  std::vector<pollfd> fds;
  std::vector<Conn*> owners;  // owners[i] for fds[i], nullptr for the wake and listen fds
  for (;;) {
    fds.clear();
    owners.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    owners.push_back(nullptr);
    // While blackholed nothing is polled but the wake fd: fd -1 is skipped by
    // poll(), so not even a peer's hang-up is noticed.
    fds.push_back({blackholed ? -1 : listen_fd_, POLLIN, 0});
    owners.push_back(nullptr);
    for (Conn& c : conns) {
      short client_ev = 0, upstream_ev = 0;
      if (!c.connecting) {
        if (!c.client_eof && c.to_upstream.size() < kMaxBuffered) client_ev |= POLLIN;
        if (!c.to_client.empty()) client_ev |= POLLOUT;
        if (!c.upstream_eof && c.to_client.size() < kMaxBuffered) upstream_ev |= POLLIN;
        if (!c.to_upstream.empty()) upstream_ev |= POLLOUT;
      } else {
        upstream_ev = POLLOUT;
      }
      fds.push_back({blackholed ? -1 : c.client, client_ev, 0});
      owners.push_back(&c);
      fds.push_back({blackholed ? -1 : c.upstream, upstream_ev, 0});
      owners.push_back(&c);
    }
    const int n = ::poll(fds.data(), fds.size(), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::abort();  // a bug in the fd list: nothing sensible to do in a test helper
    }

    if (fds[0].revents != 0) {
      uint64_t ignored = 0;
      while (::read(wake_fd_, &ignored, sizeof(ignored)) > 0) {
      }
      Command c;
      uint64_t seq;
      {
        absl::MutexLock lock(&mu_);
        c = command_;
        seq = posted_;
      }
      switch (c) {
        case Command::kStop: {
          conns.clear();
          absl::MutexLock lock(&mu_);
          open_ = 0;
          applied_ = seq;
          return;
        }
        case Command::kBlackhole:
          blackholed = true;
          break;
        case Command::kHeal:
          blackholed = false;
          break;
        case Command::kSever:
          conns.clear();
          break;
        case Command::kNone:
          break;
      }
      absl::MutexLock lock(&mu_);
      open_ = static_cast<int>(conns.size());
      applied_ = seq;
      continue;  // the fd list may be stale: rebuild it
    }

    if (fds[1].revents & POLLIN) {
      for (;;) {
        const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (client < 0) break;
        conns.emplace_back();
        Conn& c = conns.back();
        c.client = client;
        const int one = 1;
        ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c.upstream = DialUpstream(&c.connecting);
        if (c.upstream < 0) c.dead = true;
        absl::MutexLock lock(&mu_);
        ++accepted_;
      }
    }

    for (size_t i = 2; i < fds.size(); ++i) {
      Conn& c = *owners[i];
      const short rev = fds[i].revents;
      if (rev == 0 || c.dead) continue;
      const bool is_client = fds[i].fd == c.client;
      if (!is_client && c.connecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        ::getsockopt(c.upstream, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          c.dead = true;  // upstream not listening: the client sees its connection close
        } else {
          c.connecting = false;
        }
        continue;
      }
      std::string& inbox = is_client ? c.to_upstream : c.to_client;
      std::string& outbox = is_client ? c.to_client : c.to_upstream;
      bool& eof = is_client ? c.client_eof : c.upstream_eof;
      const int fd = is_client ? c.client : c.upstream;
      if ((rev & (POLLIN | POLLHUP | POLLERR)) && !eof && !ReadInto(fd, inbox, eof)) c.dead = true;
      if ((rev & POLLOUT) && !WriteFrom(fd, outbox, is_client ? to_client_ : to_upstream_)) {
        c.dead = true;
      }
      if ((rev & POLLERR) && !(rev & POLLIN)) c.dead = true;
    }

    // Push what was just read straight on (saves a poll round), then drop
    // connections that are done: an error, or one side closed and everything
    // it sent was passed on.
    for (auto it = conns.begin(); it != conns.end();) {
      Conn& c = *it;
      if (!c.dead && !c.connecting) {
        if (!WriteFrom(c.upstream, c.to_upstream, to_upstream_)) c.dead = true;
        if (!WriteFrom(c.client, c.to_client, to_client_)) c.dead = true;
      }
      const bool drained =
          (c.client_eof && c.to_upstream.empty()) || (c.upstream_eof && c.to_client.empty());
      if (c.dead || drained) {
        it = conns.erase(it);
      } else {
        ++it;
      }
    }
    absl::MutexLock lock(&mu_);
    open_ = static_cast<int>(conns.size());
  }
}

}  // namespace musafarm::faults
