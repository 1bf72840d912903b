#include "coordinator/cron.h"

#include <cstdint>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace musafarm::coordinator {
namespace {

struct FieldSpec {
  const char* name;
  int min;
  int max;
  std::vector<const char*> names;  // names[i] is value min + i (or i for weekdays)
};

const FieldSpec kFields[5] = {
    {"minute", 0, 59, {}},
    {"hour", 0, 23, {}},
    {"day of month", 1, 31, {}},
    {"month", 1, 12, {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                      "dec"}},
    // 7 is Sunday too; it is folded onto 0 after parsing.
    {"day of week", 0, 7, {"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
};

absl::Status FieldError(const FieldSpec& f, absl::string_view text, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("cron ", f.name, " field '", text, "': ", what));
}

absl::StatusOr<int> ParseValue(const FieldSpec& f, absl::string_view field, absl::string_view v) {
  const std::string lower = absl::AsciiStrToLower(v);
  for (size_t i = 0; i < f.names.size(); ++i) {
    if (lower == f.names[i]) return f.min == 1 ? static_cast<int>(i) + 1 : static_cast<int>(i);
  }
  int n = 0;
  if (v.empty() || !absl::SimpleAtoi(v, &n) || !absl::ascii_isdigit(static_cast<unsigned char>(v[0]))) {
    return FieldError(f, field, absl::StrCat("'", v, "' is not a number or name"));
  }
  if (n < f.min || n > f.max) {
    return FieldError(f, field, absl::StrCat(n, " is outside ", f.min, "-", f.max));
  }
  return n;
}

// Sets bits[v] for every value the field names. `star` tells whether the
// field began with '*' (the day-of-month/day-of-week rule).
template <size_t N>
absl::Status ParseField(const FieldSpec& f, absl::string_view field, std::bitset<N>& bits,
                        bool* star) {
  *star = !field.empty() && field[0] == '*';
  for (absl::string_view item : absl::StrSplit(field, ',')) {
    if (item.empty()) return FieldError(f, field, "empty list item");
    absl::string_view range = item;
    int step = 1;
    if (size_t slash = item.find('/'); slash != absl::string_view::npos) {
      range = item.substr(0, slash);
      absl::string_view s = item.substr(slash + 1);
      if (!absl::SimpleAtoi(s, &step) || step <= 0 || step > f.max) {
        return FieldError(f, field, absl::StrCat("step '", s, "' is not 1-", f.max));
      }
    }
    int lo = f.min, hi = f.max;
    if (range == "*") {
      // the whole range
    } else if (size_t dash = range.find('-'); dash != absl::string_view::npos) {
      absl::StatusOr<int> a = ParseValue(f, field, range.substr(0, dash));
      if (!a.ok()) return a.status();
      absl::StatusOr<int> b = ParseValue(f, field, range.substr(dash + 1));
      if (!b.ok()) return b.status();
      if (*a > *b) return FieldError(f, field, absl::StrCat("range ", range, " runs backwards"));
      lo = *a;
      hi = *b;
    } else {
      absl::StatusOr<int> a = ParseValue(f, field, range);
      if (!a.ok()) return a.status();
      lo = *a;
      // "a/n" steps from a to the end; a lone "a" is itself.
      hi = item.size() != range.size() ? f.max : *a;
    }
    for (int v = lo; v <= hi; v += step) bits.set(static_cast<size_t>(v));
  }
  return absl::OkStatus();
}

int DaysIn(int month) {
  static constexpr int kDays[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return kDays[month];
}

// Weekday as cron counts it: 0 = Sunday.
int CronWeekday(absl::CivilDay day) {
  switch (absl::GetWeekday(day)) {
    case absl::Weekday::sunday: return 0;
    case absl::Weekday::monday: return 1;
    case absl::Weekday::tuesday: return 2;
    case absl::Weekday::wednesday: return 3;
    case absl::Weekday::thursday: return 4;
    case absl::Weekday::friday: return 5;
    case absl::Weekday::saturday: return 6;
  }
  return 0;
}

}  // namespace

absl::StatusOr<CronSchedule> CronSchedule::Parse(absl::string_view expression,
                                                 absl::string_view timezone) {
  CronSchedule c;
  c.expression_ = std::string(absl::StripAsciiWhitespace(expression));
  std::string expr = c.expression_;
  if (expr == "@yearly" || expr == "@annually") expr = "0 0 1 1 *";
  if (expr == "@monthly") expr = "0 0 1 * *";
  if (expr == "@weekly") expr = "0 0 * * 0";
  if (expr == "@daily" || expr == "@midnight") expr = "0 0 * * *";
  if (expr == "@hourly") expr = "0 * * * *";
  std::vector<absl::string_view> fields = absl::StrSplit(expr, ' ', absl::SkipEmpty());
  if (fields.size() != 5) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cron expression '", c.expression_, "' has ", fields.size(),
        " fields; want 5: minute hour day-of-month month day-of-week (e.g. \"0 2 * * *\")"));
  }
  bool star = false;
  std::bitset<8> weekdays;
  if (absl::Status s = ParseField(kFields[0], fields[0], c.minutes_, &star); !s.ok()) return s;
  if (absl::Status s = ParseField(kFields[1], fields[1], c.hours_, &star); !s.ok()) return s;
  if (absl::Status s = ParseField(kFields[2], fields[2], c.days_, &c.days_star_); !s.ok()) return s;
  if (absl::Status s = ParseField(kFields[3], fields[3], c.months_, &star); !s.ok()) return s;
  if (absl::Status s = ParseField(kFields[4], fields[4], weekdays, &c.weekdays_star_); !s.ok()) {
    return s;
  }
  for (size_t d = 0; d < 7; ++d) c.weekdays_[d] = weekdays[d];
  if (weekdays[7]) c.weekdays_[0] = true;
  // A day-of-month that no chosen month has ("0 0 31 2 *") never fires, unless
  // the weekday field also names days (either then matches).
  if (c.days_star_ || c.weekdays_star_) {
    bool possible = false;
    for (int m = 1; m <= 12 && !possible; ++m) {
      if (!c.months_[static_cast<size_t>(m)]) continue;
      for (int d = 1; d <= DaysIn(m) && !possible; ++d) possible = c.days_[static_cast<size_t>(d)];
    }
    if (!possible) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cron expression '", c.expression_, "' never fires: no chosen month has that day"));
    }
  }
  c.timezone_name_ = std::string(timezone);
  if (timezone.empty() || timezone == "UTC") {
    c.tz_ = absl::UTCTimeZone();
  } else if (!absl::LoadTimeZone(c.timezone_name_, &c.tz_)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown time zone '", timezone, "' (want a name from /usr/share/zoneinfo, e.g. Asia/Shanghai)"));
  }
  return c;
}

bool CronSchedule::DayMatches(absl::CivilDay day) const {
  if (!months_[static_cast<size_t>(day.month())]) return false;
  const bool dom = days_[static_cast<size_t>(day.day())];
  const bool dow = weekdays_[static_cast<size_t>(CronWeekday(day))];
  if (days_star_ || weekdays_star_) return dom && dow;
  return dom || dow;
}

absl::Time CronSchedule::Next(absl::Time after) const {
  // Walks local days from the one `after` falls on, and in each matching day
  // its hours and minutes in order. Local times map to instants that never
  // decrease (a skipped one maps to the transition, a repeated one to its
  // first occurrence), so the first instant past `after` is the answer.
  const absl::CivilDay first = absl::CivilDay(absl::ToCivilSecond(after, tz_));
  for (absl::CivilDay day = first; day < first + 8 * 366; ++day) {
    if (!DayMatches(day)) continue;
    for (int h = 0; h < 24; ++h) {
      if (!hours_[static_cast<size_t>(h)]) continue;
      for (int m = 0; m < 60; ++m) {
        if (!minutes_[static_cast<size_t>(m)]) continue;
        const absl::CivilSecond local(day.year(), day.month(), day.day(), h, m, 0);
        const absl::TimeZone::TimeInfo info = tz_.At(local);
        const absl::Time at =
            info.kind == absl::TimeZone::TimeInfo::SKIPPED ? info.trans : info.pre;
        if (at > after) return at;
      }
    }
  }
  return absl::InfiniteFuture();
}

}  // namespace musafarm::coordinator
