#pragma once

// Test results of a job, from its tasks' TestCounts: the `musafarm results`
// table, its JSON, and JUnit XML for CI dashboards. Pure functions, no I/O.

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "cli/json.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::cli {

// The counts of every task of `job` that has them, summed; node ids are left out.
v1::TestCounts SumTests(const v1::Job& job);

// passed + failed + skipped + errors.
int TotalTests(const v1::TestCounts& c);

// Whether `job` has a task with test counts.
bool HasTests(const v1::Job& job);

// `musafarm results`: TASK STATE PASSED FAILED SKIPPED ERRORS for each task
// with test counts and a last row "total" (with the job's state), then the
// job's summary line. Without any test counts: "job 7 has no test results",
// then the summary line.
std::vector<std::string> RenderResults(const v1::Job& job, absl::Time now);

// `musafarm results -o json`, one line: {"id":"7","state":"JOB_STATE_FAILED",
// "tasks":[{"id":"7/dev/test","state":"TASK_STATE_FAILED","tests":{...}}],
// "total":{...}}, with TestCounts in the proto3 JSON mapping (cli/json.h).
// ResultsDocument is the same values, for -o yaml too.
Json ResultsDocument(const v1::Job& job);
std::string ResultsJson(const v1::Job& job);

// `s` with what XML 1.0 cannot carry replaced, ready for an XML library to
// escape: control characters other than tab, newline and carriage return
// become '?', and bytes that are not UTF-8 (or encode no XML character, such
// as U+FFFE) become U+FFFD, one for each such byte.
std::string XmlChars(absl::string_view s);

// The JUnit (classname, name) of a pytest node id: "tests/unit/x.py::test_y[a]"
// gives ("tests.unit.x", "test_y[a]"); "tests/x.py::TestA::test_b" gives
// ("tests.x", "TestA::test_b"). An id without "::" (a collection error of a
// file) gives (its file part, the id).
std::pair<std::string, std::string> JUnitNames(absl::string_view node_id);

// A JUnit XML document (written by pugixml) for the tasks of `job` that have
// test counts:
//
//   <?xml version="1.0" encoding="UTF-8"?>
//   <testsuites tests="13" failures="2" errors="0" skipped="1">
//     <testsuite name="dev-3.8/test" tests="13" failures="2" errors="0" skipped="1">
//       <testcase classname="tests.x" name="test_y">
//         <failure message="failed"/>
//       </testcase>
//       <testcase classname="tests.x" name="test_z"/>
//     </testsuite>
//   </testsuites>
//
// One suite per task (named by the task id without the job), holding a failed
// case per failed node id and a passing case per listed passed node id. The
// attributes carry the full counts, which may exceed the named cases (pytest
// output lists passed tests only when verbose).
std::string JUnitXml(const v1::Job& job);

}  // namespace musafarm::cli
