#pragma once

// Test support: a private Docker daemon for a test suite, started with
// scripts/docker/dockerd.sh and given the busybox base image by
// scripts/docker/busybox-image.sh. Shared by the agent's real-Docker tests.

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

}  // namespace musafarm::test_support
