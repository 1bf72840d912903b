#include "cli/json.h"

#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "musafarm/v1/farm.pb.h"
#include "musafarm/v1/user_service.pb.h"

namespace musafarm::cli {
namespace {

// 2023-11-14T22:13:20Z
constexpr int64_t kT0 = 1'700'000'000'000'000;

TEST(Rfc3339Test, UtcWithTheFractionProtobufUses) {
  EXPECT_EQ(Rfc3339FromMicros(kT0), "2023-11-14T22:13:20Z");
  EXPECT_EQ(Rfc3339FromMicros(kT0 + 500'000), "2023-11-14T22:13:20.500Z");
  EXPECT_EQ(Rfc3339FromMicros(kT0 + 1), "2023-11-14T22:13:20.000001Z");
}

TEST(ProtoToJsonTest, AddsRfc3339TimesBesideTheMicrosecondFields) {
  v1::Job job;
  job.set_id("7");
  job.set_created_us(kT0);
  v1::Task* t = job.add_tasks();
  t->set_id("7/a");
  t->set_created_us(kT0);
  t->set_started_us(kT0 + 1'500'000);
  // ended_us unset: no endedTime.
  const Json j = ProtoToJson(job);
  EXPECT_EQ(j["createdUs"], "1700000000000000");
  EXPECT_EQ(j["createdTime"], "2023-11-14T22:13:20Z");
  EXPECT_FALSE(j.contains("endedTime"));
  EXPECT_EQ(j["endedUs"], "0");
  const Json& task = j["tasks"][0];
  EXPECT_EQ(task["startedTime"], "2023-11-14T22:13:21.500Z");
  EXPECT_FALSE(task.contains("endedTime"));
  EXPECT_FALSE(task.contains("cancelRequestedTime"));
  // Right after its microsecond field, in the printer's order.
  const std::string line = DumpJson(j);
  EXPECT_THAT(line, ::testing::HasSubstr(
                        "\"createdUs\":\"1700000000000000\",\"createdTime\":\"2023-11-14T22:13:20Z\""));
}

TEST(ProtoToJsonTest, KeepsTheProto3MappingSoOldReadersStillParseTheMessage) {
  v1::Agent a;
  a.set_name("gpu-1");
  a.set_last_seen_us(kT0);
  a.set_state(v1::AGENT_STATE_CONNECTED);
  a.add_labels("gpu");
  Json j = ProtoToJson(a);
  EXPECT_EQ(j["lastSeenTime"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(j["state"], "AGENT_STATE_CONNECTED");
  EXPECT_EQ(j["slots"], 0) << "defaults are printed";
  // Without the added times, the line is exactly what protobuf prints.
  j.erase("lastSeenTime");
  google::protobuf::util::JsonPrintOptions opts;
  opts.always_print_primitive_fields = true;
  std::string want;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(a, &want, opts).ok());
  EXPECT_EQ(DumpJson(j), want);
}

// A message that already carries the RFC 3339 time (the user API's Timestamp
// fields, once a coordinator fills them) keeps it: no second key, no rewrite.
// A Struct stands in for such a message: it prints as the object it holds.
TEST(ProtoToJsonTest, ATimeTheMessageAlreadyHasIsKept) {
  google::protobuf::Struct msg;
  (*msg.mutable_fields())["createdUs"].set_string_value("1700000000000000");
  // The same instant as printed differently, so a rewrite would show.
  (*msg.mutable_fields())["createdTime"].set_string_value("2023-11-14T22:13:20.000Z");
  (*msg.mutable_fields())["endedUs"].set_string_value("1700000000500000");
  const Json j = ProtoToJson(msg);
  EXPECT_EQ(j.size(), 4u) << DumpJson(j);
  EXPECT_EQ(j["createdTime"], "2023-11-14T22:13:20.000Z");
  EXPECT_EQ(j["endedTime"], "2023-11-14T22:13:20.500Z");
  const std::string line = DumpJson(j);
  EXPECT_EQ(line.find("createdTime"), line.rfind("createdTime")) << "one key: " << line;
}

TEST(ProtoToJsonTest, OnlyMicrosecondIntegersBecomeTimes) {
  google::protobuf::Struct msg;
  (*msg.mutable_fields())["statusUs"].set_string_value("not a number");
  (*msg.mutable_fields())["Us"].set_string_value("1700000000000000");
  (*msg.mutable_fields())["zeroUs"].set_string_value("0");
  const Json j = ProtoToJson(msg);
  EXPECT_EQ(j.size(), 3u) << DumpJson(j);
}

TEST(DumpJsonTest, HostileStringsStayOneParseableLine) {
  Json j = Json::object();
  j["name"] = std::string("a\"b\\c\n\x01<&>\xff\xfe end");
  const std::string line = DumpJson(j);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const Json back = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(back.is_discarded()) << line;
  // Invalid UTF-8 becomes U+FFFD; everything else survives.
  EXPECT_EQ(back["name"], "a\"b\\c\n\x01<&>\xEF\xBF\xBD\xEF\xBF\xBD end");
}

}  // namespace
}  // namespace musafarm::cli
