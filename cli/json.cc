#include "cli/json.h"

#include <cstdint>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"

namespace musafarm::cli {
namespace {

// The protocol names every time field `*_us` (unix microseconds); the JSON
// mapping calls it "*Us". Nothing else in it ends that way.
constexpr absl::string_view kMicrosSuffix = "Us";
constexpr absl::string_view kTimeSuffix = "Time";

// "createdUs": "1700000000500000" -> 1700000000500000; false for anything else
// (a field that happens to end in "Us" but holds no integer) and for 0 (unset).
bool TimeMicros(const std::string& key, const Json& value, int64_t* micros) {
  if (key.size() <= kMicrosSuffix.size() || !absl::EndsWith(key, kMicrosSuffix)) return false;
  // "createdUs" but not "status": the suffix starts a word.
  if (!absl::ascii_islower(key[key.size() - kMicrosSuffix.size() - 1])) return false;
  if (!value.is_string()) return false;
  return absl::SimpleAtoi(value.get_ref<const std::string&>(), micros) && *micros != 0;
}

// Rebuilds objects to insert each "xTime" right after its "xUs", keeping the
// printer's field order.
Json AddTimes(Json&& json) {
  if (json.is_array()) {
    for (Json& item : json) item = AddTimes(std::move(item));
    return std::move(json);
  }
  if (!json.is_object()) return std::move(json);
  Json out = Json::object();
  for (auto& [key, value] : json.items()) {
    int64_t micros = 0;
    const bool is_time = TimeMicros(key, value, &micros);
    out[key] = AddTimes(std::move(value));
    if (!is_time) continue;
    const std::string time_key =
        key.substr(0, key.size() - kMicrosSuffix.size()) + std::string(kTimeSuffix);
    if (!json.contains(time_key)) out[time_key] = Rfc3339FromMicros(micros);
  }
  return out;
}

}  // namespace

std::string Rfc3339FromMicros(int64_t unix_micros) {
  using google::protobuf::util::TimeUtil;
  return TimeUtil::ToString(TimeUtil::MicrosecondsToTimestamp(unix_micros));
}

Json ProtoToJson(const google::protobuf::Message& msg) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.always_print_primitive_fields = true;
  std::string text;
  // Printing a well-formed message cannot fail short of a bug; and the parse
  // below reads what protobuf just printed. Neither throws (allow_exceptions
  // is off); a failure gives a "discarded" value, which DumpJson prints as null.
  if (!google::protobuf::util::MessageToJsonString(msg, &text, opts).ok()) {
    return Json(Json::value_t::discarded);
  }
  return AddTimes(Json::parse(text, /*cb=*/nullptr, /*allow_exceptions=*/false));
}

std::string DumpJson(const Json& json) {
  if (json.is_discarded()) return "null";
  return json.dump(/*indent=*/-1, /*indent_char=*/' ', /*ensure_ascii=*/false,
                   nlohmann::detail::error_handler_t::replace);
}

}  // namespace musafarm::cli
