#include "common/stream_outbox.h"

#include <string>

#include "gtest/gtest.h"

namespace musafarm {
namespace {

using Outbox = StreamOutbox<std::string>;

TEST(StreamOutboxTest, OneWriteInFlightInOrder) {
  Outbox out;
  const std::string* first = out.Push("a");
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(*first, "a");
  // A write is in flight: the next ones wait.
  EXPECT_EQ(out.Push("b"), nullptr);
  EXPECT_EQ(out.Push("c"), nullptr);
  EXPECT_EQ(out.queued(), 3u);

  Outbox::AfterWrite next = out.OnWriteDone(true);
  ASSERT_NE(next.write, nullptr);
  EXPECT_EQ(*next.write, "b");
  EXPECT_FALSE(next.end);
  next = out.OnWriteDone(true);
  ASSERT_NE(next.write, nullptr);
  EXPECT_EQ(*next.write, "c");
  next = out.OnWriteDone(true);
  EXPECT_EQ(next.write, nullptr);
  EXPECT_FALSE(next.end);
  EXPECT_FALSE(out.writing());

  // Idle again: the next push starts a write at once.
  const std::string* again = out.Push("d");
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(*again, "d");
}

TEST(StreamOutboxTest, CloseWhileIdleEndsNowAndOnlyOnce) {
  Outbox out;
  EXPECT_TRUE(out.Close(Outbox::CloseMode::kDrain));
  EXPECT_TRUE(out.closed());
  EXPECT_FALSE(out.Close(Outbox::CloseMode::kDrop));
  EXPECT_EQ(out.Push("late"), nullptr);
  EXPECT_EQ(out.queued(), 0u);
}

TEST(StreamOutboxTest, DrainWritesEverythingQueuedThenEnds) {
  Outbox out;
  ASSERT_NE(out.Push("a"), nullptr);
  out.Push("b");
  EXPECT_FALSE(out.Close(Outbox::CloseMode::kDrain));  // a write is in flight
  EXPECT_EQ(out.Push("after close"), nullptr);
  Outbox::AfterWrite next = out.OnWriteDone(true);
  ASSERT_NE(next.write, nullptr);
  EXPECT_EQ(*next.write, "b");
  EXPECT_FALSE(next.end);
  next = out.OnWriteDone(true);
  EXPECT_EQ(next.write, nullptr);
  EXPECT_TRUE(next.end);
}

// The last message of a draining stream is marked, so that its owner can send
// it with the stream's end (one write instead of two); only then.
TEST(StreamOutboxTest, DrainMarksTheLastMessageOnly) {
  Outbox out;
  ASSERT_NE(out.Push("a"), nullptr);
  out.Push("b");
  out.Push("c");
  Outbox::AfterWrite next = out.OnWriteDone(true);  // open: nothing is last
  ASSERT_NE(next.write, nullptr);
  EXPECT_EQ(*next.write, "b");
  EXPECT_FALSE(next.last);
  EXPECT_FALSE(out.Close(Outbox::CloseMode::kDrain));
  next = out.OnWriteDone(true);
  ASSERT_NE(next.write, nullptr);
  EXPECT_EQ(*next.write, "c");
  EXPECT_TRUE(next.last);
  EXPECT_FALSE(next.end);

  Outbox dropping;
  dropping.Push("a");
  dropping.Push("b");
  EXPECT_FALSE(dropping.Close(Outbox::CloseMode::kDrop));
  next = dropping.OnWriteDone(true);
  EXPECT_EQ(next.write, nullptr);
  EXPECT_FALSE(next.last);
}

TEST(StreamOutboxTest, PushLastClosesAndHandsTheMessageBackWhenItsTurnComes) {
  Outbox idle;
  const std::string* now = idle.PushLast("end");
  ASSERT_NE(now, nullptr);  // nothing in flight: sent at once, with the end
  EXPECT_EQ(*now, "end");
  EXPECT_TRUE(idle.closed());
  EXPECT_EQ(idle.Push("late"), nullptr);
  EXPECT_EQ(idle.PushLast("late"), nullptr);
  EXPECT_FALSE(idle.Close(Outbox::CloseMode::kDrain));  // the end is already on its way

  Outbox busy;
  ASSERT_NE(busy.Push("a"), nullptr);
  EXPECT_EQ(busy.PushLast("end"), nullptr);  // behind the write in flight
  Outbox::AfterWrite next = busy.OnWriteDone(true);
  ASSERT_NE(next.write, nullptr);
  EXPECT_EQ(*next.write, "end");
  EXPECT_TRUE(next.last);
}

TEST(StreamOutboxTest, DropKeepsOnlyTheWriteInFlight) {
  Outbox out;
  const std::string* in_flight = out.Push("a");
  out.Push("b");
  out.Push("c");
  EXPECT_FALSE(out.Close(Outbox::CloseMode::kDrop));
  EXPECT_EQ(out.queued(), 1u);
  EXPECT_EQ(*in_flight, "a");  // still readable by the transport
  Outbox::AfterWrite next = out.OnWriteDone(true);
  EXPECT_EQ(next.write, nullptr);
  EXPECT_TRUE(next.end);
}

TEST(StreamOutboxTest, FailedWriteDropsTheRestAndEnds) {
  Outbox out;
  out.Push("a");
  out.Push("b");
  Outbox::AfterWrite next = out.OnWriteDone(false);
  EXPECT_EQ(next.write, nullptr);
  EXPECT_TRUE(next.end);
  EXPECT_TRUE(out.closed());
  EXPECT_EQ(out.Push("c"), nullptr);
  EXPECT_FALSE(out.Close(Outbox::CloseMode::kDrain));  // the end was already reported
}

}  // namespace
}  // namespace musafarm
