#include "cli/results.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "cli/render.h"
#include "google/protobuf/util/json_util.h"

namespace musafarm::cli {
namespace {

// TestCounts in the proto3 JSON mapping, defaults included.
std::string CountsJson(const v1::TestCounts& c) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.always_print_primitive_fields = true;
  std::string json;
  // Cannot fail for a well-formed message.
  (void)google::protobuf::util::MessageToJsonString(c, &json, opts);
  return json;
}

std::string CountsAttributes(const v1::TestCounts& c) {
  return absl::StrCat("tests=\"", TotalTests(c), "\" failures=\"", c.failed(), "\" errors=\"",
                      c.errors(), "\" skipped=\"", c.skipped(), "\"");
}

std::string TestCase(absl::string_view node_id, bool failed) {
  auto [classname, name] = JUnitNames(node_id);
  std::string s = absl::StrCat("    <testcase classname=\"", XmlEscape(classname), "\" name=\"",
                               XmlEscape(name), "\"");
  if (failed) {
    absl::StrAppend(&s, ">\n      <failure message=\"failed\"/>\n    </testcase>\n");
  } else {
    absl::StrAppend(&s, "/>\n");
  }
  return s;
}

}  // namespace

int TotalTests(const v1::TestCounts& c) {
  return c.passed() + c.failed() + c.skipped() + c.errors();
}

bool HasTests(const v1::Job& job) {
  for (const v1::Task& t : job.tasks()) {
    if (t.has_tests()) return true;
  }
  return false;
}

v1::TestCounts SumTests(const v1::Job& job) {
  v1::TestCounts sum;
  for (const v1::Task& t : job.tasks()) {
    if (!t.has_tests()) continue;
    sum.set_passed(sum.passed() + t.tests().passed());
    sum.set_failed(sum.failed() + t.tests().failed());
    sum.set_skipped(sum.skipped() + t.tests().skipped());
    sum.set_errors(sum.errors() + t.tests().errors());
  }
  return sum;
}

std::vector<std::string> RenderResults(const v1::Job& job, absl::Time now) {
  if (!HasTests(job)) {
    return {absl::StrCat("job ", job.id(), " has no test results"), JobSummaryLine(job, now)};
  }
  std::vector<Row> rows;
  for (const v1::Task& t : job.tasks()) {
    if (!t.has_tests()) continue;
    const v1::TestCounts& c = t.tests();
    rows.push_back({ShortTaskId(t.id()), TaskStateName(t.state()), absl::StrCat(c.passed()),
                    absl::StrCat(c.failed()), absl::StrCat(c.skipped()), absl::StrCat(c.errors())});
  }
  const v1::TestCounts sum = SumTests(job);
  rows.push_back({"total", JobStateName(job.state()), absl::StrCat(sum.passed()),
                  absl::StrCat(sum.failed()), absl::StrCat(sum.skipped()),
                  absl::StrCat(sum.errors())});
  std::vector<std::string> lines =
      RenderTable({"TASK", "STATE", "PASSED", "FAILED", "SKIPPED", "ERRORS"}, rows);
  lines.push_back(JobSummaryLine(job, now));
  return lines;
}

std::string ResultsJson(const v1::Job& job) {
  std::string s =
      absl::StrCat("{\"id\":", JsonQuote(job.id()),
                   ",\"state\":", JsonQuote(v1::JobState_Name(job.state())), ",\"tasks\":[");
  bool first = true;
  for (const v1::Task& t : job.tasks()) {
    if (!t.has_tests()) continue;
    absl::StrAppend(&s, first ? "" : ",", "{\"id\":", JsonQuote(t.id()),
                    ",\"state\":", JsonQuote(v1::TaskState_Name(t.state())),
                    ",\"tests\":", CountsJson(t.tests()), "}");
    first = false;
  }
  absl::StrAppend(&s, "],\"total\":", CountsJson(SumTests(job)), "}");
  return s;
}

std::string XmlEscape(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      case '\t':
        out += "&#9;";
        break;
      case '\n':
        out += "&#10;";
        break;
      case '\r':
        out += "&#13;";
        break;
      default:
        out += static_cast<unsigned char>(c) < 0x20 ? '?' : c;
    }
  }
  return out;
}

std::pair<std::string, std::string> JUnitNames(absl::string_view node_id) {
  const size_t sep = node_id.find("::");
  absl::string_view file = node_id.substr(0, sep);
  absl::ConsumeSuffix(&file, ".py");
  std::string classname = absl::StrReplaceAll(file, {{"/", "."}});
  std::string name(sep == absl::string_view::npos ? node_id : node_id.substr(sep + 2));
  return {std::move(classname), std::move(name)};
}

std::string JUnitXml(const v1::Job& job) {
  std::string s = absl::StrCat("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites ",
                               CountsAttributes(SumTests(job)), ">\n");
  for (const v1::Task& t : job.tasks()) {
    if (!t.has_tests()) continue;
    absl::StrAppend(&s, "  <testsuite name=\"", XmlEscape(ShortTaskId(t.id())), "\" ",
                    CountsAttributes(t.tests()), ">\n");
    for (const std::string& id : t.tests().failed_tests()) absl::StrAppend(&s, TestCase(id, true));
    for (const std::string& id : t.tests().passed_tests()) absl::StrAppend(&s, TestCase(id, false));
    absl::StrAppend(&s, "  </testsuite>\n");
  }
  absl::StrAppend(&s, "</testsuites>\n");
  return s;
}

}  // namespace musafarm::cli
