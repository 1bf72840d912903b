#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::agent {

// Reads pytest output (the dev image's /home/ut_output.txt and the like) and
// adds what it finds to `counts`:
//  - the final summary line, "===== 2 failed, 10 passed, 1 skipped, 1 error in 3.2s =====";
//    when several runs are in one file, each run's summary counts;
//  - node ids from "FAILED tests/x.py::test_y - ..." and "ERROR tests/x.py::..." lines
//    (pytest's short summary) and from verbose lines "tests/x.py::test_y PASSED".
// Returns false if the text holds no pytest summary line at all.
bool ParsePytestOutput(absl::string_view text, v1::TestCounts* counts);

}  // namespace musafarm::agent
