#pragma once

// Five-field cron expressions ("minute hour day-of-month month day-of-week")
// evaluated in a time zone, for the coordinator's schedules. Our own small
// parser rather than a library: Debian has none for C++, and the DST rules
// below are ours to choose and test.
//
// Syntax per field: `*`, a number or name, a range `a-b`, a step `*/n`,
// `a-b/n` or `a/n`, and comma lists of these. Months take jan..dec, days of
// the week sun..sat (0 and 7 are both Sunday). As in Vixie cron, when both
// day fields are restricted a day matching either fires; when one is `*` both
// must match. Macros: @yearly @monthly @weekly @daily @hourly.
//
// Daylight saving: a local time that does not exist (spring forward) fires
// once, at the first valid instant after it (the transition); one that
// happens twice (fall back) fires once, at its first occurrence.

#include <bitset>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace musafarm::coordinator {

class CronSchedule {
 public:
  // InvalidArgument naming the field and what is wrong with it, or an
  // unknown time zone (an empty `timezone` is UTC).
  static absl::StatusOr<CronSchedule> Parse(absl::string_view expression,
                                            absl::string_view timezone);

  // The first firing instant strictly after `after`; InfiniteFuture() if
  // there is none within eight years (Parse refuses the expressions that
  // can never fire, such as "0 0 30 2 *").
  absl::Time Next(absl::Time after) const;

  const std::string& expression() const { return expression_; }
  const std::string& timezone() const { return timezone_name_; }

 private:
  CronSchedule() = default;
  bool DayMatches(absl::CivilDay day) const;

  std::string expression_;
  std::string timezone_name_;
  absl::TimeZone tz_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;    // 1..31
  std::bitset<13> months_;  // 1..12
  std::bitset<7> weekdays_; // 0 = Sunday
  bool days_star_ = false;
  bool weekdays_star_ = false;
};

}  // namespace musafarm::coordinator
