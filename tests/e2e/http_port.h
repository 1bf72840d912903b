#pragma once

// The coordinator's HTTP port (--http-listen) in end-to-end tests: the
// observe and dashboard tests share these.

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/e2e/harness.h"

namespace musafarm::e2e {

// A farm with TLS on both ports (the HTTP port serves the gRPC port's certificate).
inline FarmOptions TlsFarm() {
  FarmOptions options;
  options.tls = true;
  return options;
}

// The port a coordinator wrote to its --http-port-file.
inline int HttpPort(const std::string& port_file) {
  int port = 0;
  EXPECT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(port_file)), &port));
  return port;
}

// Starts the farm's coordinator with an HTTP port on 127.0.0.1 (any free port)
// and `extra_flags`; returns that port.
inline int StartCoordinatorWithHttp(Farm& farm, std::vector<std::string> extra_flags = {}) {
  const std::string port_file = farm.dir() + "/http.port";
  std::vector<std::string> flags = {"--http-listen", "127.0.0.1:0", "--http-port-file", port_file};
  flags.insert(flags.end(), extra_flags.begin(), extra_flags.end());
  farm.StartCoordinator(flags);
  return HttpPort(port_file);
}

// Submits a job whose one task `s` prints "hi" and runs until the file `gate`
// exists, and waits until it runs: a live view's subject.
inline std::string SubmitGatedJob(Farm& farm, const std::string& gate) {
  const std::string job = farm.Submit(farm.WritePipeline(
      "gated.yaml", absl::StrCat("stages:\n  - name: s\n    exec: [\"sh\", \"-c\", \"echo hi; "
                                 "while [ ! -e ", gate, " ]; do sleep 0.05; done\"]\n")));
  EXPECT_TRUE(farm.WaitForTaskState(job, "s", v1::TASK_STATE_RUNNING));
  return job;
}

}  // namespace musafarm::e2e
