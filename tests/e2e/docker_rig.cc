#include "tests/e2e/docker_rig.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "tests/e2e/harness.h"

namespace musafarm::e2e {

std::string FixtureDir() { return std::string(MF_SOURCE_DIR) + "/tests/fixtures/docker"; }

std::string DockerRig::Start(const std::string& dir, int daemons) {
  for (const char* tool : {"/usr/sbin/dockerd", "/usr/bin/docker-registry", "/usr/bin/docker"}) {
    if (!std::filesystem::exists(tool)) {
      return absl::StrCat("Docker Engine not installed (no ", tool,
                          "): run scripts/docker/install.sh");
    }
  }
  std::string error = registry_.Start(MF_SOURCE_DIR, dir + "/registry");
  if (!error.empty()) return error;
  for (int i = 0; i < daemons; ++i) {
    daemons_.push_back(std::make_unique<test_support::PrivateDockerd>());
    error = daemons_.back()->Start(MF_SOURCE_DIR, absl::StrCat(dir, "/dockerd-", i),
                                   "musafarm/busybox:test");
    if (!error.empty()) return error;
  }
  return "";
}

DockerRig::~DockerRig() {
  for (auto& d : daemons_) d->Stop();
  registry_.Stop();
}

std::vector<std::string> DockerRig::AgentFlags(size_t i) const {
  return {"--docker", "--buildkit", "--docker-host", host(i), "--gpus", "1",
          "--gpu-vendor", "mthreads"};
}

std::string DockerRig::FixturePipeline() const {
  return absl::StrReplaceAll(ReadFile(FixtureDir() + "/pipeline.yaml.in"),
                             {{"@REGISTRY@", registry()}, {"@CONTEXT@", FixtureDir()}});
}

}  // namespace musafarm::e2e
