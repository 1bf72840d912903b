#pragma once

#include <cstddef>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::agent {

// Bounds on a JUnit XML report (issue 16, item 7). A report is a file a task
// wrote, so it may be huge or hostile: pugixml expands no entities (no DTDs),
// and these keep its tree (about 50 bytes a node) and the result small.
inline constexpr size_t kMaxJUnitBytes = 32 << 20;
// Elements, counted as '<' before parsing: pytest writes about 3 per test.
inline constexpr size_t kMaxJUnitElements = 2'000'000;
// testsuites > testsuite (nested, as some tools write) > testcase > failure.
inline constexpr int kMaxJUnitDepth = 32;
// Test ids kept per list (failed, passed): the counts stay exact past it.
inline constexpr size_t kMaxJUnitIdBytes = 1 << 20;
inline constexpr size_t kMaxJUnitIdLength = 1024;

// Reads a JUnit XML report (pytest's --junitxml, and the Ant/Surefire schema
// most tools write) into TestCounts. Root <testsuites> or <testsuite>; every
// <testcase> below it, at any depth of nested suites, counts once as passed,
// or as failed (a <failure> child), errored (<error>) or skipped (<skipped>).
// A case with both a failure and an error (pytest: failed, then its teardown
// failed) counts in both, as pytest's own summary does. A suite with no
// <testcase> below it counts from its tests/failures/errors/skipped attributes.
//
// Test ids are pytest's node ids where the report allows: a case with a
// `file` attribute (pytest's xunit1 family) is "FILE::REST::name", REST being
// what its classname adds to the file's module path (a test class);
// otherwise "classname::name" ("tests.unit.test_ops::test_add[int]"), the
// inverse of what `musafarm results --junit` writes. A case with no classname
// is its name alone. Failed and errored cases go to failed_tests, the others
// that ran to passed_tests, each list sorted and cut at kMaxJUnitIdBytes.
//
// InvalidArgument, saying what is wrong: not XML (with pugixml's message and
// the byte offset), not a JUnit root, or past a bound above.
absl::StatusOr<v1::TestCounts> ParseJUnitXml(absl::string_view xml);

// Whether `text` starts like an XML document (a declaration or an element,
// after a BOM and whitespace) that names a testsuite: what the agent tries
// ParseJUnitXml on among collected files.
bool LooksLikeJUnitXml(absl::string_view text);

}  // namespace musafarm::agent
