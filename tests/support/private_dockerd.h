#pragma once

// Test support: a private Docker daemon for a test suite, started with
// scripts/docker/dockerd.sh and given the busybox base image by
// scripts/docker/busybox-image.sh, and a private registry on loopback
// (scripts/docker/registry.sh). Shared by the agent's real-Docker tests and
// the Docker e2e tests.

#include <string>

namespace musafarm::test_support {

// Single-quotes `s` for /bin/sh (test plumbing; the code under test never uses a shell).
std::string Quote(const std::string& s);
// Runs `cmd` with /bin/sh, stdout and stderr into *out; returns its exit status (-1: not run).
int Sh(const std::string& cmd, std::string* out);

class PrivateDockerd {
 public:
  // What is missing for a real daemon (scripts or dockerd), "" when nothing is.
  static std::string MissingTools(const std::string& source_dir);

  // Starts a daemon rooted at `dir` and imports `image`; "" on success, else
  // what went wrong. Stop() is safe after a failed Start().
  std::string Start(const std::string& source_dir, const std::string& dir,
                    const std::string& image);
  // Stops the daemon (reporting a failure on stderr) and removes `dir`.
  void Stop();

  const std::string& host() const { return host_; }  // DOCKER_HOST, unix://...
  const std::string& dir() const { return dir_; }

 private:
  std::string scripts_, dir_, host_;
  bool started_ = false;
};

// Debian's docker-registry on 127.0.0.1, its storage in a directory of its own.
class PrivateRegistry {
 public:
  // Starts it in `dir`. registry.sh cannot listen on port 0 and report the
  // port, so this tries a few ports derived from the pid (it fails fast on a
  // taken one). "" on success, else what went wrong. Stop() is safe after a
  // failed Start().
  std::string Start(const std::string& source_dir, const std::string& dir);
  void Stop();  // its data stays in dir
  ~PrivateRegistry() { Stop(); }

  const std::string& address() const { return address_; }  // 127.0.0.1:PORT

 private:
  std::string script_, dir_, address_;
};

}  // namespace musafarm::test_support
