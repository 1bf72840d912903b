#include "agent/send_lead.h"

#include "gtest/gtest.h"

namespace musafarm::agent {
namespace {

TEST(SendLeadTest, BoundsOnlyWhileTheLogIsBeingSent) {
  SendLead lead;
  lead.Read(SendLead::kMax);  // read, not yet spooled: counts
  EXPECT_TRUE(lead.WaitForRoom(absl::ZeroDuration())) << "nothing is sent yet: no bound";
  lead.Update(/*unsent=*/0, /*sending=*/true);
  EXPECT_FALSE(lead.WaitForRoom(absl::ZeroDuration())) << "read bytes count";
  lead.Update(SendLead::kMax, true);
  lead.Spooled(SendLead::kMax);  // spooled, still unsent: as far ahead as before
  EXPECT_FALSE(lead.WaitForRoom(absl::ZeroDuration()));
  lead.Update(SendLead::kMax - 1, true);  // one byte went out
  EXPECT_TRUE(lead.WaitForRoom(absl::ZeroDuration()));
  lead.Update(4 * SendLead::kMax, true);
  EXPECT_FALSE(lead.WaitForRoom(absl::ZeroDuration()));
  lead.Update(4 * SendLead::kMax, false);  // disconnected: the spool absorbs it
  EXPECT_TRUE(lead.WaitForRoom(absl::ZeroDuration()));
}

TEST(SendLeadTest, AnAttemptIsBoundByItsShare) {
  SendLead lead;
  constexpr uint64_t kHalf = SendLead::kMax / 2;
  lead.Update(kHalf, true, kHalf);  // two attempts share the agent's lead
  EXPECT_FALSE(lead.WaitForRoom(absl::ZeroDuration()));
  lead.Update(kHalf - 1, true, kHalf);
  EXPECT_TRUE(lead.WaitForRoom(absl::ZeroDuration()));
  lead.Read(1);
  EXPECT_FALSE(lead.WaitForRoom(absl::ZeroDuration()));
  lead.Update(kHalf - 1, true, SendLead::kMax);  // alone again: the whole lead
  EXPECT_TRUE(lead.WaitForRoom(absl::ZeroDuration()));
}

// What the executor's next read may take (ExecCallbacks::read_room).
TEST(SendLeadTest, RoomIsWhatIsLeftUnderTheBoundWhileSending) {
  SendLead lead;
  lead.Read(100);
  EXPECT_EQ(lead.Room(), SendLead::kMax) << "not being sent: one whole read";
  lead.Update(/*unsent=*/1000, /*sending=*/true, /*max=*/4096);
  EXPECT_EQ(lead.Room(), 4096u - 1100u);
  lead.Update(5000, true, 4096);
  EXPECT_EQ(lead.Room(), 0u);
}

}  // namespace
}  // namespace musafarm::agent
