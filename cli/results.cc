#include "cli/results.h"

#include <cstdint>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "cli/json.h"
#include "cli/render.h"
#include "common/utf8.h"
#include "pugixml.hpp"

namespace musafarm::cli {
namespace {

void SetCounts(pugi::xml_node node, const v1::TestCounts& c) {
  node.append_attribute("tests") = TotalTests(c);
  node.append_attribute("failures") = c.failed();
  node.append_attribute("errors") = c.errors();
  node.append_attribute("skipped") = c.skipped();
}

// pugixml escapes markup (&, <, >, quotes); XmlChars first drops what XML
// cannot carry at all, so the document stays well-formed whatever a test
// name holds.
void SetText(pugi::xml_attribute attr, absl::string_view text) {
  attr.set_value(XmlChars(text).c_str());
}

void AddTestCase(pugi::xml_node suite, absl::string_view node_id, bool failed) {
  auto [classname, name] = JUnitNames(node_id);
  pugi::xml_node tc = suite.append_child("testcase");
  SetText(tc.append_attribute("classname"), classname);
  SetText(tc.append_attribute("name"), name);
  if (failed) tc.append_child("failure").append_attribute("message") = "failed";
}

// Appends what pugixml writes to a string.
class StringWriter final : public pugi::xml_writer {
 public:
  explicit StringWriter(std::string* out) : out_(out) {}
  void write(const void* data, size_t size) override {
    out_->append(static_cast<const char*>(data), size);
  }

 private:
  std::string* const out_;  // not owned
};

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

Json ResultsDocument(const v1::Job& job) {
  Json tasks = Json::array();
  for (const v1::Task& t : job.tasks()) {
    if (!t.has_tests()) continue;
    Json task = Json::object();
    task["id"] = t.id();
    task["state"] = v1::TaskState_Name(t.state());
    task["tests"] = ProtoToJson(t.tests());
    tasks.push_back(std::move(task));
  }
  Json doc = Json::object();
  doc["id"] = job.id();
  doc["state"] = v1::JobState_Name(job.state());
  doc["tasks"] = std::move(tasks);
  doc["total"] = ProtoToJson(SumTests(job));
  return doc;
}

std::string ResultsJson(const v1::Job& job) { return DumpJson(ResultsDocument(job)); }

std::string XmlChars(absl::string_view s) {
  // Well-formed UTF-8 first (each bad byte one U+FFFD), then what XML 1.0
  // cannot carry although it is UTF-8: C0 controls but tab, newline and CR,
  // and the noncharacters U+FFFE and U+FFFF.
  const std::string text = CoerceUtf8(s);
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x20) {
      out += (c == '\t' || c == '\n' || c == '\r') ? static_cast<char>(c) : '?';
    } else if (c == 0xEF && i + 2 < text.size() && text[i + 1] == '\xBF' &&
               (text[i + 2] == '\xBE' || text[i + 2] == '\xBF')) {
      out += "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD";  // one U+FFFD a byte, as for bad bytes
      i += 2;
    } else {
      out += static_cast<char>(c);
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
  pugi::xml_document doc;
  pugi::xml_node decl = doc.append_child(pugi::node_declaration);
  decl.append_attribute("version") = "1.0";
  decl.append_attribute("encoding") = "UTF-8";
  pugi::xml_node suites = doc.append_child("testsuites");
  SetCounts(suites, SumTests(job));
  for (const v1::Task& t : job.tasks()) {
    if (!t.has_tests()) continue;
    pugi::xml_node suite = suites.append_child("testsuite");
    SetText(suite.append_attribute("name"), ShortTaskId(t.id()));
    SetCounts(suite, t.tests());
    for (const std::string& id : t.tests().failed_tests()) AddTestCase(suite, id, true);
    for (const std::string& id : t.tests().passed_tests()) AddTestCase(suite, id, false);
  }
  std::string out;
  StringWriter writer(&out);
  doc.save(writer, "  ", pugi::format_indent, pugi::encoding_utf8);
  return out;
}

}  // namespace musafarm::cli
