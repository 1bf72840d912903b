#include "agent/junit_report.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <set>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/utf8.h"
#include "pugixml.hpp"

namespace musafarm::agent {
namespace {

// Counts as int64 while reading (attributes may say anything), saturated to
// int32 at the end as the pytest summary reader does.
struct Tally {
  int64_t passed = 0, failed = 0, skipped = 0, errors = 0;
  std::set<std::string> failed_ids, passed_ids;
};

int64_t SaturatingAdd(int64_t a, int64_t b) {
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  return std::min(a + std::min(b, kMax), kMax);
}

int32_t Clamp(int64_t n) { return static_cast<int32_t>(std::min<int64_t>(n, INT32_MAX)); }

// A count attribute: a non-negative integer, else 0 (tools write "" or omit it).
int64_t CountAttribute(const pugi::xml_node& suite, const char* name) {
  int64_t n = 0;
  if (!absl::SimpleAtoi(suite.attribute(name).value(), &n) || n < 0) return 0;
  return n;
}

// An id as a proto string: UTF-8 and at most kMaxJUnitIdLength bytes. Coerced
// first (each bad byte becomes a 3-byte U+FFFD, so a cut before it could
// triple; found by tests/fuzz), then cut at a character boundary.
std::string BoundedId(absl::string_view id) {
  std::string s = CoerceUtf8(id.substr(0, 4 * kMaxJUnitIdLength));
  if (s.size() > kMaxJUnitIdLength) {
    size_t n = kMaxJUnitIdLength;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;  // not mid-character
    s.resize(n);
  }
  return s;
}

// See the header: pytest's node id where the `file` attribute allows, else
// classname::name.
std::string TestId(const pugi::xml_node& tc) {
  const absl::string_view name = tc.attribute("name").value();
  const absl::string_view classname = tc.attribute("classname").value();
  const absl::string_view file = tc.attribute("file").value();
  if (classname.empty()) return BoundedId(name);
  if (absl::EndsWith(file, ".py")) {
    const std::string module =
        absl::StrReplaceAll(absl::StripSuffix(file, ".py"), {{"/", "."}});
    absl::string_view rest = classname;
    if (absl::ConsumePrefix(&rest, module) && (rest.empty() || absl::ConsumePrefix(&rest, "."))) {
      return BoundedId(rest.empty() ? absl::StrCat(file, "::", name)
                                    : absl::StrCat(file, "::", rest, "::", name));
    }
  }
  return BoundedId(absl::StrCat(classname, "::", name));
}

void CountCase(const pugi::xml_node& tc, Tally* t) {
  const bool failed = static_cast<bool>(tc.child("failure"));
  const bool errored = static_cast<bool>(tc.child("error"));
  if (failed) t->failed = SaturatingAdd(t->failed, 1);
  if (errored) t->errors = SaturatingAdd(t->errors, 1);
  if (failed || errored) {
    t->failed_ids.insert(TestId(tc));
  } else if (tc.child("skipped")) {
    t->skipped = SaturatingAdd(t->skipped, 1);
  } else {
    t->passed = SaturatingAdd(t->passed, 1);
    t->passed_ids.insert(TestId(tc));
  }
}

bool IsSuite(const pugi::xml_node& n) {
  return n.type() == pugi::node_element &&
         (absl::string_view(n.name()) == "testsuite" || absl::string_view(n.name()) == "testsuites");
}

// A suite with no testsuite element inside: where counts from attributes are read.
bool IsInnermostSuite(const pugi::xml_node& n) {
  if (absl::string_view(n.name()) != "testsuite") return false;
  for (const pugi::xml_node& c : n.children()) {
    if (IsSuite(c)) return false;
  }
  return true;
}

void AddIds(const std::set<std::string>& ids, google::protobuf::RepeatedPtrField<std::string>* out) {
  size_t bytes = 0;
  for (const std::string& id : ids) {
    bytes += id.size();
    if (bytes > kMaxJUnitIdBytes) break;
    out->Add(std::string(id));
  }
}

}  // namespace

absl::StatusOr<v1::TestCounts> ParseJUnitXml(absl::string_view xml) {
  if (xml.size() > kMaxJUnitBytes) {
    return absl::InvalidArgumentError(absl::StrCat("JUnit XML report is ", xml.size(),
                                                   " bytes; the limit is ", kMaxJUnitBytes));
  }
  // Counted before parsing: pugixml would allocate a node for each.
  const size_t elements = static_cast<size_t>(std::count(xml.begin(), xml.end(), '<'));
  if (elements > kMaxJUnitElements) {
    return absl::InvalidArgumentError(absl::StrCat("JUnit XML report has ", elements,
                                                   " '<'; the limit is ", kMaxJUnitElements,
                                                   " elements"));
  }
  pugi::xml_document doc;
  // No DOCTYPE: pugixml never expands entities beyond XML's five, but a
  // report has no use for one either.
  const pugi::xml_parse_result parsed =
      doc.load_buffer(xml.data(), xml.size(), pugi::parse_default & ~pugi::parse_doctype);
  if (!parsed) {
    return absl::InvalidArgumentError(absl::StrCat("not a JUnit XML report: ",
                                                   parsed.description(), " at byte ",
                                                   parsed.offset));
  }
  const pugi::xml_node root = doc.document_element();
  if (!IsSuite(root)) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a JUnit XML report: the root element is <",
                     CoerceUtf8(absl::string_view(root.name()).substr(0, 64)),
                     ">, not <testsuites> or <testsuite>"));
  }

  // Depth-first over suites and cases without recursion (the depth is the
  // report's, so checked, not trusted).
  Tally tally;
  bool any_case = false;
  std::vector<pugi::xml_node> innermost;
  pugi::xml_node n = root;
  int depth = 1;
  while (n) {
    if (depth > kMaxJUnitDepth) {
      return absl::InvalidArgumentError(absl::StrCat(
          "JUnit XML report nests deeper than ", kMaxJUnitDepth, " elements"));
    }
    const bool suite = IsSuite(n);
    if (suite && IsInnermostSuite(n)) innermost.push_back(n);
    if (n.type() == pugi::node_element && absl::string_view(n.name()) == "testcase") {
      any_case = true;
      CountCase(n, &tally);
    }
    // Only suites are descended into: a case's children are read by CountCase.
    if (suite && n.first_child()) {
      n = n.first_child();
      ++depth;
      continue;
    }
    while (n != root && !n.next_sibling()) {
      n = n.parent();
      --depth;
    }
    if (n == root) break;
    n = n.next_sibling();
  }
  if (!any_case) {
    for (const pugi::xml_node& s : innermost) {
      const int64_t tests = CountAttribute(s, "tests");
      const int64_t failed = CountAttribute(s, "failures");
      const int64_t errors = CountAttribute(s, "errors");
      const int64_t skipped = CountAttribute(s, "skipped") + CountAttribute(s, "disabled");
      tally.failed = SaturatingAdd(tally.failed, failed);
      tally.errors = SaturatingAdd(tally.errors, errors);
      tally.skipped = SaturatingAdd(tally.skipped, skipped);
      tally.passed = SaturatingAdd(tally.passed, std::max<int64_t>(0, tests - failed - errors - skipped));
    }
  }

  v1::TestCounts counts;
  counts.set_passed(Clamp(tally.passed));
  counts.set_failed(Clamp(tally.failed));
  counts.set_skipped(Clamp(tally.skipped));
  counts.set_errors(Clamp(tally.errors));
  AddIds(tally.failed_ids, counts.mutable_failed_tests());
  // A test listed twice (two reports of one run) that failed once is failed.
  std::set<std::string> passed;
  for (const std::string& id : tally.passed_ids) {
    if (tally.failed_ids.count(id) == 0) passed.insert(id);
  }
  AddIds(passed, counts.mutable_passed_tests());
  return counts;
}

bool LooksLikeJUnitXml(absl::string_view text) {
  absl::ConsumePrefix(&text, "\xEF\xBB\xBF");
  text = absl::StripLeadingAsciiWhitespace(text);
  if (!absl::StartsWith(text, "<")) return false;
  // The root element comes within the first few hundred bytes (after the
  // declaration and perhaps a comment).
  return absl::StrContains(text.substr(0, 4096), "<testsuite");
}

}  // namespace musafarm::agent
