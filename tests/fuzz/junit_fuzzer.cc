// The JUnit XML reader (agent/junit_report.h) on arbitrary bytes: it never
// crashes, refusals are InvalidArgument with a short message, counts are never
// negative, every id is UTF-8 within its bound, no id is both failed and
// passed, and reading the same bytes twice gives the same answer.
#include <cstdint>
#include <set>
#include <string>

#include "absl/strings/string_view.h"
#include "agent/junit_report.h"
#include "common/utf8.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view xml(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<musafarm::v1::TestCounts> once = musafarm::agent::ParseJUnitXml(xml);
  const absl::StatusOr<musafarm::v1::TestCounts> twice = musafarm::agent::ParseJUnitXml(xml);
  MF_FUZZ_CHECK(once.ok() == twice.ok(), "%s", "a second read disagrees on whether it is a report");
  if (!once.ok()) {
    MF_FUZZ_CHECK(once.status().code() == absl::StatusCode::kInvalidArgument, "code %d",
                  static_cast<int>(once.status().code()));
    MF_FUZZ_CHECK(once.status().message().size() < 512, "a refusal of %zu bytes",
                  once.status().message().size());
    MF_FUZZ_CHECK(musafarm::IsValidUtf8(once.status().message()), "%s", "a refusal not in UTF-8");
    return 0;
  }
  MF_FUZZ_CHECK(once->SerializeAsString() == twice->SerializeAsString(), "%s",
                "two reads of the same bytes differ");
  for (int32_t n : {once->passed(), once->failed(), once->skipped(), once->errors()}) {
    MF_FUZZ_CHECK(n >= 0, "a negative count: %d", n);
  }
  std::set<std::string> failed;
  for (const std::string& id : once->failed_tests()) {
    MF_FUZZ_CHECK(musafarm::IsValidUtf8(id), "%s", "a failed id not in UTF-8");
    MF_FUZZ_CHECK(id.size() <= musafarm::agent::kMaxJUnitIdLength, "an id of %zu bytes",
                  id.size());
    failed.insert(id);
  }
  for (const std::string& id : once->passed_tests()) {
    MF_FUZZ_CHECK(musafarm::IsValidUtf8(id), "%s", "a passed id not in UTF-8");
    MF_FUZZ_CHECK(failed.count(id) == 0, "%s", "an id both failed and passed");
  }
  MF_FUZZ_CHECK(once->failed_tests_size() <= once->failed() + once->errors(),
                "%d failed ids for %d failed and %d errors", once->failed_tests_size(),
                once->failed(), once->errors());
  return 0;
}
