#pragma once

// JSON output of `-o json`: messages in the proto3 JSON mapping, as protobuf's
// own printer has it (printed by reflection, json.cc), with RFC 3339 times
// beside the protocol's microsecond fields.
// Documents that are no single message (results, a downloaded artifact) are
// composed with nlohmann::ordered_json, never by hand.

#include <string>

#include "nlohmann/json.hpp"

namespace google::protobuf {
class Message;
}  // namespace google::protobuf

namespace musafarm::cli {

using Json = nlohmann::ordered_json;

// `msg` in the proto3 JSON mapping: lowerCamelCase field names, enums by name,
// 64-bit integers as strings, bytes as base64, defaults included. Beside every
// time field of the protocol ("createdUs", unix microseconds, a string) that is
// set, "createdTime" holds the same time as an RFC 3339 string in UTC, e.g.
// "2023-11-14T22:13:20.500Z", unless the message already has that key. That is
// the key and the text of the user API's google.protobuf.Timestamp fields
// (created_time, ...) beside the *_us ones: a coordinator that fills them
// prints the same line, and one that predates them still gets RFC 3339 times.
Json ProtoToJson(const google::protobuf::Message& msg);

// One line of JSON, without a newline. Bytes that are not UTF-8 (a test name
// from a hostile log) become U+FFFD instead of failing the whole output.
std::string DumpJson(const Json& json);

// "2023-11-14T22:13:20.500Z": RFC 3339 in UTC, as protobuf prints a
// google.protobuf.Timestamp (0, 3, 6 or 9 fractional digits).
std::string Rfc3339FromMicros(int64_t unix_micros);

}  // namespace musafarm::cli
