#include "cli/json.h"

#include <initializer_list>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "musafarm/v1/farm.pb.h"
#include "musafarm/v1/user_service.pb.h"
#include "musafarm/v1/agent_service.pb.h"

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

// What protobuf's own printer makes of `msg`, as ProtoToJson printed it before
// printing by reflection (issue 19), times added the same way.
Json ProtobufsJson(const google::protobuf::Message& msg) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.always_print_primitive_fields = true;
  std::string text;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(msg, &text, opts).ok());
  return Json::parse(text);
}

// `got` less the "xTime" keys ProtoToJson adds that `want` lacks.
Json WithoutAddedTimes(const Json& got, const Json& want) {
  if (got.is_array() && want.is_array() && got.size() == want.size()) {
    Json out = Json::array();
    for (size_t i = 0; i < got.size(); ++i) out.push_back(WithoutAddedTimes(got[i], want[i]));
    return out;
  }
  if (!got.is_object() || !want.is_object()) return got;
  Json out = Json::object();
  for (const auto& [k, v] : got.items()) {
    if (!want.contains(k) && absl::EndsWith(k, "Time")) continue;
    out[k] = want.contains(k) ? WithoutAddedTimes(v, want[k]) : v;
  }
  return out;
}

// ProtoToJson prints by reflection now: the same keys, values and order as
// protobuf's printer for every kind of field the protocol has: 64-bit integers
// as strings, enums by name, bytes as base64, repeated and map fields even when
// empty, messages and oneof members only when set, Timestamp and Duration as
// text (the times added beside the *Us fields aside).
TEST(ProtoToJsonTest, PrintsWhatProtobufsPrinterPrints) {
  v1::Job job;
  job.set_id("7");
  job.set_created_us(kT0);
  job.set_state(v1::JOB_STATE_RUNNING);
  (*job.mutable_params())["a"] = "1";
  job.mutable_created_time()->set_seconds(1'700'000'000);
  job.mutable_created_time()->set_nanos(500'000'000);
  v1::Task* t = job.add_tasks();
  t->set_id("7/a");
  t->set_state(v1::TASK_STATE_RUNNING);
  t->mutable_spec()->set_stage("build");
  t->mutable_spec()->mutable_run()->mutable_exec()->add_argv("true");
  (*t->mutable_spec()->mutable_run()->mutable_env())["K"] = "v";
  t->mutable_spec()->mutable_run()->mutable_timeout()->set_seconds(90);
  t->mutable_spec()->mutable_run()->mutable_timeout()->set_nanos(1'000'000);
  job.add_tasks()->set_id("7/b");  // defaults only
  v1::WatchEvent snapshot;
  *snapshot.mutable_snapshot() = job;
  v1::WatchEvent log;
  log.mutable_log()->set_task_id("7/a");
  log.mutable_log()->set_data(std::string("line\n\0\xff", 7));
  v1::Agent agent;
  agent.set_name("gpu-1");
  agent.add_labels("gpu");
  agent.set_state(v1::AGENT_STATE_CONNECTED);
  for (const google::protobuf::Message* m :
       std::initializer_list<const google::protobuf::Message*>{&job, &snapshot, &log, &agent,
                                                               &v1::Job::default_instance()}) {
    SCOPED_TRACE(m->GetTypeName());
    const Json want = ProtobufsJson(*m);
    const Json got = ProtoToJson(*m);
    EXPECT_EQ(DumpJson(WithoutAddedTimes(got, want)), DumpJson(want));
  }
}

// A map of several entries prints in key order (protobuf's printer follows its
// hash order), with the same entries.
TEST(ProtoToJsonTest, MapEntriesInKeyOrder) {
  v1::SubmitRequest req;
  for (const char* k : {"zeta", "alpha", "mu", "beta"}) (*req.mutable_params())[k] = k;
  const Json got = ProtoToJson(req);
  EXPECT_EQ(DumpJson(got["params"]),
            "{\"alpha\":\"alpha\",\"beta\":\"beta\",\"mu\":\"mu\",\"zeta\":\"zeta\"}");
  EXPECT_EQ(nlohmann::json(got), nlohmann::json(ProtobufsJson(req)));
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
