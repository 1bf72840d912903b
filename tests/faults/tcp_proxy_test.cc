// TcpProxy on its own: forwarding both ways, a blackhole that holds
// connections open and silent and resumes them on Heal, and Sever.
#include "tests/faults/tcp_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace musafarm::faults {
namespace {

int Listen(int* port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(::listen(fd, 8), 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

int Dial(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

// Accepts one connection, waiting at most `ms`; -1 if none came.
int AcceptWithin(int listen_fd, int ms) {
  pollfd p{listen_fd, POLLIN, 0};
  if (::poll(&p, 1, ms) != 1) return -1;
  return ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
}

// Reads exactly n bytes, or what came within `ms` ("" on EOF); "<eof>" when the peer closed first.
std::string ReadWithin(int fd, size_t n, int ms) {
  std::string got;
  while (got.size() < n) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, ms) != 1) break;
    char buf[4096];
    const ssize_t r = ::recv(fd, buf, std::min(sizeof(buf), n - got.size()), 0);
    if (r <= 0) return got + "<eof>";
    got.append(buf, static_cast<size_t>(r));
  }
  return got;
}

// Whether `cond` holds within `ms`: the proxy counts a write just after the
// peer may already have read it.
template <typename Cond>
bool Within(int ms, Cond cond) {
  for (int waited = 0; !cond(); ++waited) {
    if (waited >= ms) return false;
    ::poll(nullptr, 0, 1);
  }
  return true;
}

void Send(int fd, const std::string& s) {
  ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
}

TEST(TcpProxyTest, ForwardsBlackholesResumesAndSevers) {
  int upstream_port = 0;
  const int upstream = Listen(&upstream_port);
  auto proxy = TcpProxy::Start(upstream_port);
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  TcpProxy& p = **proxy;
  EXPECT_EQ(p.address(), "127.0.0.1:" + std::to_string(p.port()));

  const int client = Dial(p.port());
  const int server = AcceptWithin(upstream, 5000);
  ASSERT_GE(server, 0);
  Send(client, "hello");
  EXPECT_EQ(ReadWithin(server, 5, 5000), "hello");
  Send(server, "world");
  EXPECT_EQ(ReadWithin(client, 5, 5000), "world");
  EXPECT_EQ(p.accepted(), 1);
  // Counted once written on: the bytes the peers read.
  EXPECT_TRUE(Within(5000, [&] { return p.bytes_to_upstream() == 5u && p.bytes_to_client() == 5u; }))
      << p.bytes_to_upstream() << " " << p.bytes_to_client();

  // Partition: bytes both ways are held, the connection stays open (no EOF,
  // no reset), and a new connection is not forwarded. 300 ms of silence is
  // what "nothing arrives" can mean here.
  p.Blackhole();
  Send(client, "held-up");
  Send(server, "held-down");
  const int late = Dial(p.port());  // completes in the kernel's backlog
  EXPECT_EQ(ReadWithin(server, 7, 300), "");
  EXPECT_EQ(ReadWithin(client, 9, 300), "");
  EXPECT_EQ(AcceptWithin(upstream, 300), -1);

  // Healed: the held bytes arrive in order and the waiting connection goes through.
  p.Heal();
  EXPECT_EQ(ReadWithin(server, 7, 5000), "held-up");
  EXPECT_EQ(ReadWithin(client, 9, 5000), "held-down");
  const int late_server = AcceptWithin(upstream, 5000);
  ASSERT_GE(late_server, 0);
  Send(late, "late");
  EXPECT_EQ(ReadWithin(late_server, 4, 5000), "late");
  EXPECT_EQ(p.accepted(), 2);
  EXPECT_EQ(p.open(), 2);
  EXPECT_TRUE(Within(5000, [&] { return p.bytes_to_upstream() == 16u && p.bytes_to_client() == 14u; }))
      << p.bytes_to_upstream() << " " << p.bytes_to_client();

  // Severed: every peer sees its connection end.
  p.Sever();
  EXPECT_EQ(p.open(), 0);
  EXPECT_EQ(ReadWithin(client, 1, 5000), "<eof>");
  EXPECT_EQ(ReadWithin(server, 1, 5000), "<eof>");
  EXPECT_EQ(ReadWithin(late, 1, 5000), "<eof>");
  EXPECT_EQ(ReadWithin(late_server, 1, 5000), "<eof>");

  // A client whose upstream is gone is closed, not left hanging.
  ::close(upstream);
  const int orphan = Dial(p.port());
  EXPECT_EQ(ReadWithin(orphan, 1, 5000), "<eof>");
  for (int fd : {client, server, late, late_server, orphan}) ::close(fd);
}

// Issue 20: a Unix-socket upstream (the private PostgreSQL), reached over TCP
// loopback through the proxy, and cut off by a blackhole.
TEST(TcpProxyTest, ForwardsToAUnixSocketAndBlackholesIt) {
  char dir[] = "/tmp/mf-proxy-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/s";
  const int upstream = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  ASSERT_EQ(::bind(upstream, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(upstream, 8), 0);
  absl::StatusOr<std::unique_ptr<TcpProxy>> proxy = TcpProxy::StartToUnix(path);
  ASSERT_TRUE(proxy.ok()) << proxy.status();

  const int client = Dial((*proxy)->port());
  const int server = AcceptWithin(upstream, 10'000);
  ASSERT_GE(server, 0);
  Send(client, "query");
  EXPECT_EQ(ReadWithin(server, 5, 10'000), "query");
  Send(server, "row");
  EXPECT_EQ(ReadWithin(client, 3, 10'000), "row");

  (*proxy)->Blackhole();
  Send(client, "more");
  EXPECT_EQ(ReadWithin(server, 4, 200), "");  // held back, the connection open
  (*proxy)->Sever();
  EXPECT_EQ(ReadWithin(server, 4, 10'000), "<eof>");
  ::close(server);
  ::close(client);
  ::close(upstream);
  ::unlink(path.c_str());
  ::rmdir(dir);
}

}  // namespace
}  // namespace musafarm::faults
