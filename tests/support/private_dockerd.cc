#include "tests/support/private_dockerd.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace musafarm::test_support {

namespace fs = std::filesystem;

std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

int Sh(const std::string& cmd, std::string* out) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  out->clear();
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
  const int st = ::pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string PrivateDockerd::MissingTools(const std::string& source_dir) {
  const fs::path scripts = fs::path(source_dir) / "scripts" / "docker";
  for (const char* s : {"dockerd.sh", "busybox-image.sh"}) {
    if (!fs::exists(scripts / s)) return absl::StrCat("no ", (scripts / s).string());
  }
  if (!fs::exists("/usr/sbin/dockerd") && !fs::exists("/usr/bin/dockerd")) return "no dockerd";
  return "";
}

std::string PrivateDockerd::Start(const std::string& source_dir, const std::string& dir,
                                  const std::string& image) {
  scripts_ = (fs::path(source_dir) / "scripts" / "docker").string();
  dir_ = dir;
  std::string out;
  if (Sh(absl::StrCat(Quote(scripts_ + "/dockerd.sh"), " start ", Quote(dir_)), &out) != 0) {
    return "dockerd.sh start failed: " + out;
  }
  started_ = true;
  // DIR/docker-host holds "DOCKER_HOST=unix://...".
  std::ifstream in(fs::path(dir_) / "docker-host");
  std::stringstream ss;
  ss << in.rdbuf();
  host_ = std::string(absl::StripPrefix(absl::StripAsciiWhitespace(ss.str()), "DOCKER_HOST="));
  if (host_.empty()) return "dockerd.sh wrote no DOCKER_HOST";
  if (Sh(absl::StrCat(Quote(scripts_ + "/busybox-image.sh"), " ", Quote(host_), " ", Quote(image)),
         &out) != 0) {
    return "busybox-image.sh failed: " + out;
  }
  return "";
}

void PrivateDockerd::Stop() {
  if (!started_) return;
  std::string out;
  if (Sh(absl::StrCat(Quote(scripts_ + "/dockerd.sh"), " stop ", Quote(dir_)), &out) != 0) {
    std::cerr << "dockerd.sh stop: " << out;
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
  started_ = false;
}

std::string PrivateRegistry::Start(const std::string& source_dir, const std::string& dir) {
  script_ = (fs::path(source_dir) / "scripts" / "docker" / "registry.sh").string();
  dir_ = dir;
  std::string out;
  for (int i = 0; i < 20; ++i) {
    const int port = 20000 + (::getpid() * 7 + i * 1009) % 30000;
    if (Sh(absl::StrCat(Quote(script_), " start ", Quote(dir_), " ", port), &out) == 0) {
      address_ = absl::StrCat("127.0.0.1:", port);
      return "";
    }
  }
  return "registry.sh start failed: " + out;
}

void PrivateRegistry::Stop() {
  if (address_.empty()) return;
  std::string out;
  if (Sh(absl::StrCat(Quote(script_), " stop ", Quote(dir_)), &out) != 0) {
    std::cerr << "registry.sh stop: " << out;
  }
  address_.clear();
}

}  // namespace musafarm::test_support
