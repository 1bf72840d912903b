#pragma once

// Real Docker for the e2e tests that run the fixture matrix
// (tests/fixtures/docker: the shape of pipelines/torch_musa.yaml on tiny
// busybox images): a private registry on loopback and private dockerd
// instances, each given the busybox base image (tests/support/private_dockerd.h),
// as scripts/quickstart.sh starts them.

#include <memory>
#include <string>
#include <vector>

#include "tests/support/private_dockerd.h"

namespace musafarm::e2e {

// The fixture's directory: its Dockerfiles, scripts and pipelines.
std::string FixtureDir();

class DockerRig {
 public:
  // Starts a registry and `daemons` dockerd instances under `dir`. "" on
  // success, else what went wrong (not a skip: scripts/test.sh installs
  // Docker, and a missing engine must not pass for a green run).
  std::string Start(const std::string& dir, int daemons);
  ~DockerRig();  // stops the daemons, then the registry

  const std::string& registry() const { return registry_.address(); }  // 127.0.0.1:PORT
  std::string host(size_t i) const { return daemons_[i]->host(); }     // unix://...
  size_t daemons() const { return daemons_.size(); }

  // The flags of an agent running the fixture's stages on daemon `i`: real
  // Docker with BuildKit, and one declared GPU (no detector here), which each
  // test stage needs, so at most one test runs per agent at a time.
  std::vector<std::string> AgentFlags(size_t i) const;
  // The fixture pipeline (pipeline.yaml.in) pushing to this rig's registry,
  // the fixture directory as its input `fixture`.
  std::string FixturePipeline() const;

 private:
  test_support::PrivateRegistry registry_;
  std::vector<std::unique_ptr<test_support::PrivateDockerd>> daemons_;
};

}  // namespace musafarm::e2e
