// The pytest output reader (agent/pytest_summary.h) on arbitrary text: it
// never crashes, counts are never negative and saturate rather than overflow,
// and reading the same text again adds the same counts again and no new ids.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "absl/strings/string_view.h"
#include "agent/pytest_summary.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  musafarm::v1::TestCounts once;
  const bool found = musafarm::agent::ParsePytestOutput(text, &once);
  musafarm::v1::TestCounts twice = once;
  MF_FUZZ_CHECK(musafarm::agent::ParsePytestOutput(text, &twice) == found, "%s",
                "a second read of the same text disagrees on whether it holds a summary");
  MF_FUZZ_CHECK(twice.failed_tests_size() == once.failed_tests_size(), "%d failed ids, then %d",
                once.failed_tests_size(), twice.failed_tests_size());
  MF_FUZZ_CHECK(twice.passed_tests_size() == once.passed_tests_size(), "%d passed ids, then %d",
                once.passed_tests_size(), twice.passed_tests_size());
  const auto doubled = [](int32_t n) {
    return static_cast<int32_t>(std::min<int64_t>(2 * int64_t{n}, std::numeric_limits<int32_t>::max()));
  };
  for (auto field : {&musafarm::v1::TestCounts::passed, &musafarm::v1::TestCounts::failed,
                     &musafarm::v1::TestCounts::skipped, &musafarm::v1::TestCounts::errors}) {
    MF_FUZZ_CHECK((once.*field)() >= 0, "a negative count: %d", (once.*field)());
    MF_FUZZ_CHECK((twice.*field)() == doubled((once.*field)()), "%d, read twice: %d",
                  (once.*field)(), (twice.*field)());
  }
  return 0;
}
