#include "coordinator/cron.h"

#include <vector>

#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

absl::Time Utc(int y, int mo, int d, int h, int mi) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, 0), absl::UTCTimeZone());
}

std::string Local(absl::Time t, const char* zone) {
  absl::TimeZone tz;
  EXPECT_TRUE(absl::LoadTimeZone(zone, &tz));
  return absl::FormatTime("%Y-%m-%d %H:%M %Z", t, tz);
}

// Every firing in [from, to), in order.
std::vector<absl::Time> Firings(const CronSchedule& c, absl::Time from, absl::Time to) {
  std::vector<absl::Time> out;
  for (absl::Time t = c.Next(from); t < to; t = c.Next(t)) out.push_back(t);
  return out;
}

TEST(CronTest, DailyAtTwoUtc) {
  absl::StatusOr<CronSchedule> c = CronSchedule::Parse("0 2 * * *", "");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->Next(Utc(2026, 12, 1, 1, 59)), Utc(2026, 12, 1, 2, 0));
  // Strictly after: at the minute itself, the next day's.
  EXPECT_EQ(c->Next(Utc(2026, 12, 1, 2, 0)), Utc(2026, 12, 2, 2, 0));
  EXPECT_EQ(c->Next(Utc(2026, 12, 31, 3, 0)), Utc(2027, 1, 1, 2, 0));
}

TEST(CronTest, ListsRangesStepsAndNames) {
  absl::StatusOr<CronSchedule> c = CronSchedule::Parse("*/15,7 9-17/4 * JAN,mar-apr mon-fri", "UTC");
  ASSERT_TRUE(c.ok()) << c.status();
  // 2026-01-02 is a Friday; hours 9, 13, 17; minutes 0, 7, 15, 30, 45.
  std::vector<absl::Time> got = Firings(*c, Utc(2026, 1, 2, 0, 0), Utc(2026, 1, 2, 10, 0));
  std::vector<absl::Time> want = {Utc(2026, 1, 2, 9, 0), Utc(2026, 1, 2, 9, 7),
                                  Utc(2026, 1, 2, 9, 15), Utc(2026, 1, 2, 9, 30),
                                  Utc(2026, 1, 2, 9, 45)};
  EXPECT_EQ(got, want);
  EXPECT_EQ(c->Next(Utc(2026, 1, 2, 9, 45)), Utc(2026, 1, 2, 13, 0));
  // Saturday and Sunday skipped: Monday 5 January.
  EXPECT_EQ(c->Next(Utc(2026, 1, 2, 17, 45)), Utc(2026, 1, 5, 9, 0));
  // February is not chosen: from the end of January to 2 March (a Monday).
  EXPECT_EQ(c->Next(Utc(2026, 1, 31, 0, 0)), Utc(2026, 3, 2, 9, 0));
}

TEST(CronTest, SundayIsZeroAndSevenAndStepFromAValue) {
  absl::StatusOr<CronSchedule> a = CronSchedule::Parse("0 0 * * 7", "");
  absl::StatusOr<CronSchedule> b = CronSchedule::Parse("0 0 * * sun", "");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->Next(Utc(2026, 12, 1, 0, 0)), Utc(2026, 12, 6, 0, 0));  // a Sunday
  EXPECT_EQ(b->Next(Utc(2026, 12, 1, 0, 0)), Utc(2026, 12, 6, 0, 0));
  absl::StatusOr<CronSchedule> c = CronSchedule::Parse("50/5 * * * *", "");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(Firings(*c, Utc(2026, 12, 1, 0, 0), Utc(2026, 12, 1, 1, 0)),
            (std::vector<absl::Time>{Utc(2026, 12, 1, 0, 50), Utc(2026, 12, 1, 0, 55)}));
}

TEST(CronTest, BothDayFieldsRestrictedMatchEither) {
  // The 13th, or any Friday (Vixie cron's rule).
  absl::StatusOr<CronSchedule> c = CronSchedule::Parse("0 0 13 * fri", "");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->Next(Utc(2026, 12, 1, 0, 0)), Utc(2026, 12, 4, 0, 0));   // Friday 4th
  EXPECT_EQ(c->Next(Utc(2026, 12, 11, 0, 0)), Utc(2026, 12, 13, 0, 0));  // Sunday 13th
  // With a star in one of them both must match: Friday the 13th only.
  absl::StatusOr<CronSchedule> d = CronSchedule::Parse("0 0 13 * *", "");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->Next(Utc(2026, 12, 1, 0, 0)), Utc(2026, 12, 13, 0, 0));
}

TEST(CronTest, LeapDayAndMacros) {
  absl::StatusOr<CronSchedule> c = CronSchedule::Parse("0 0 29 2 *", "");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->Next(Utc(2026, 12, 1, 0, 0)), Utc(2028, 2, 29, 0, 0));
  absl::StatusOr<CronSchedule> d = CronSchedule::Parse("@daily", "");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->Next(Utc(2026, 12, 1, 5, 0)), Utc(2026, 12, 2, 0, 0));
}

TEST(CronTest, TimeZoneShiftsTheInstant) {
  absl::StatusOr<CronSchedule> c = CronSchedule::Parse("0 2 * * *", "Asia/Shanghai");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->timezone(), "Asia/Shanghai");
  // 02:00 in Shanghai (UTC+8) is 18:00 UTC the day before.
  EXPECT_EQ(c->Next(Utc(2026, 12, 1, 12, 0)), Utc(2026, 12, 1, 18, 0));
}

// Spring forward in Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST, so 02:30
// does not exist. It fires once, at the first valid instant after: 03:00 CEST.
TEST(CronTest, BerlinSpringForwardFiresOnceAtTheTransition) {
  absl::StatusOr<CronSchedule> c = CronSchedule::Parse("30 2 * * *", "Europe/Berlin");
  ASSERT_TRUE(c.ok()) << c.status();
  std::vector<absl::Time> got = Firings(*c, Utc(2026, 3, 27, 12, 0), Utc(2026, 3, 31, 12, 0));
  std::vector<std::string> local;
  for (absl::Time t : got) local.push_back(Local(t, "Europe/Berlin"));
  EXPECT_EQ(local, (std::vector<std::string>{"2026-03-28 02:30 CET", "2026-03-29 03:00 CEST",
                                             "2026-03-30 02:30 CEST", "2026-03-31 02:30 CEST"}));
}

// Fall back in Berlin, 2026-10-25: 03:00 CEST goes back to 02:00 CET, so 02:30
// happens twice. It fires once, at the first (CEST).
TEST(CronTest, BerlinFallBackFiresOnceAtTheFirstOccurrence) {
  absl::StatusOr<CronSchedule> c = CronSchedule::Parse("30 2 * * *", "Europe/Berlin");
  ASSERT_TRUE(c.ok()) << c.status();
  std::vector<absl::Time> got = Firings(*c, Utc(2026, 10, 23, 12, 0), Utc(2026, 10, 27, 12, 0));
  std::vector<std::string> local;
  for (absl::Time t : got) local.push_back(Local(t, "Europe/Berlin"));
  EXPECT_EQ(local, (std::vector<std::string>{"2026-10-24 02:30 CEST", "2026-10-25 02:30 CEST",
                                             "2026-10-26 02:30 CET", "2026-10-27 02:30 CET"}));
  // Asked from inside the second 02:30 hour (CET), it does not fire again that day.
  EXPECT_EQ(Local(c->Next(Utc(2026, 10, 25, 1, 15)), "Europe/Berlin"), "2026-10-26 02:30 CET");
}

TEST(CronTest, BadExpressionsNameTheFieldAndTheProblem) {
  struct Case {
    const char* expr;
    const char* zone;
    const char* want;
  };
  for (const Case& c : std::vector<Case>{
           {"0 2 * *", "", "has 4 fields; want 5"},
           {"60 2 * * *", "", "minute field '60': 60 is outside 0-59"},
           {"0 24 * * *", "", "hour field '24'"},
           {"0 2 0 * *", "", "day of month field '0'"},
           {"0 2 * foo *", "", "month field 'foo': 'foo' is not a number or name"},
           {"0 2 * * 8", "", "day of week field '8'"},
           {"*/0 2 * * *", "", "step '0'"},
           {"0 5-2 * * *", "", "runs backwards"},
           {"0 2 1,,2 * *", "", "empty list item"},
           {"0 2 -1 * *", "", "day of month field"},
           {"0 0 30 2 *", "", "never fires"},
           {"0 2 * * *", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"},
       }) {
    absl::StatusOr<CronSchedule> s = CronSchedule::Parse(c.expr, c.zone);
    ASSERT_FALSE(s.ok()) << c.expr;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << c.expr;
    EXPECT_NE(s.status().message().find(c.want), absl::string_view::npos)
        << c.expr << ": " << s.status().message();
  }
}

}  // namespace
}  // namespace musafarm::coordinator
