#include "cli/json.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/duration.pb.h"
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


// The proto3 JSON mapping by reflection, straight into a Json (issue 19): what
// protobuf's printer (MessageToJsonString with always_print_primitive_fields)
// prints, without its detour through a type resolver, the binary encoding and
// a JSON text parsed again, ~1 ms of a `submit -o json` on this machine.
// Fields in declaration order, as protobuf's printer has them (Timestamp and
// Duration last, see DirectJson); scalars, enums,
// repeated fields and maps always, messages and oneof members when set; map
// entries in key order. Messages this printer does not cover (floating point,
// whose text protobuf formats its own way, and well-known types other than
// Timestamp and Duration) go to protobuf's printer (PrintsDirectly).
namespace gpb = google::protobuf;

bool IsTimestamp(const gpb::Descriptor* d) {
  return d->full_name() == gpb::Timestamp::descriptor()->full_name();
}
bool IsDuration(const gpb::Descriptor* d) {
  return d->full_name() == gpb::Duration::descriptor()->full_name();
}

bool ComputePrintsDirectly(const gpb::Descriptor* d, std::vector<const gpb::Descriptor*>* seen) {
  if (std::find(seen->begin(), seen->end(), d) != seen->end()) return true;  // recursion
  seen->push_back(d);
  if (d->file()->syntax() != gpb::FileDescriptor::SYNTAX_PROTO3) return false;
  if (d->extension_range_count() > 0) return false;
  for (int i = 0; i < d->field_count(); ++i) {
    const gpb::FieldDescriptor* f = d->field(i);
    switch (f->cpp_type()) {
      case gpb::FieldDescriptor::CPPTYPE_DOUBLE:
      case gpb::FieldDescriptor::CPPTYPE_FLOAT:
        return false;
      case gpb::FieldDescriptor::CPPTYPE_MESSAGE: {
        const gpb::Descriptor* m = f->message_type();
        if (IsTimestamp(m) || IsDuration(m)) break;
        if (absl::StartsWith(m->full_name(), "google.protobuf.")) return false;
        if (!ComputePrintsDirectly(m, seen)) return false;
        break;
      }
      default:
        break;
    }
  }
  return true;
}

// PrintsDirectly's answers, per process: descriptors live as long as it does.
struct DirectTypes {
  absl::Mutex mu;
  std::map<const gpb::Descriptor*, bool> known ABSL_GUARDED_BY(mu);
};

// Whether DirectJson prints `d` (and every message inside it) as protobuf would.
bool PrintsDirectly(const gpb::Descriptor* d) {
  static DirectTypes* const types = new DirectTypes();  // never destroyed
  absl::MutexLock lock(&types->mu);
  auto it = types->known.find(d);
  if (it != types->known.end()) return it->second;
  std::vector<const gpb::Descriptor*> seen;
  const bool direct = !IsTimestamp(d) && !IsDuration(d) && ComputePrintsDirectly(d, &seen);
  types->known.emplace(d, direct);
  return direct;
}

Json DirectJson(const gpb::Message& msg);

// Field `f` of `msg` (element `i` of a repeated field; -1: a singular one).
Json FieldValue(const gpb::Message& msg, const gpb::FieldDescriptor* f, int i) {
  const gpb::Reflection* r = msg.GetReflection();
  const bool rep = i >= 0;
  switch (f->cpp_type()) {
    case gpb::FieldDescriptor::CPPTYPE_INT32:
      return rep ? r->GetRepeatedInt32(msg, f, i) : r->GetInt32(msg, f);
    case gpb::FieldDescriptor::CPPTYPE_UINT32:
      return rep ? r->GetRepeatedUInt32(msg, f, i) : r->GetUInt32(msg, f);
    case gpb::FieldDescriptor::CPPTYPE_INT64:
      return absl::StrCat(rep ? r->GetRepeatedInt64(msg, f, i) : r->GetInt64(msg, f));
    case gpb::FieldDescriptor::CPPTYPE_UINT64:
      return absl::StrCat(rep ? r->GetRepeatedUInt64(msg, f, i) : r->GetUInt64(msg, f));
    case gpb::FieldDescriptor::CPPTYPE_BOOL:
      return rep ? r->GetRepeatedBool(msg, f, i) : r->GetBool(msg, f);
    case gpb::FieldDescriptor::CPPTYPE_ENUM: {
      const int v = rep ? r->GetRepeatedEnumValue(msg, f, i) : r->GetEnumValue(msg, f);
      const gpb::EnumValueDescriptor* e = f->enum_type()->FindValueByNumber(v);
      if (e == nullptr) return v;  // a value this build does not know: its number
      return e->name();
    }
    case gpb::FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& v = rep ? r->GetRepeatedStringReference(msg, f, i, &scratch)
                                 : r->GetStringReference(msg, f, &scratch);
      if (f->type() == gpb::FieldDescriptor::TYPE_BYTES) return absl::Base64Escape(v);
      return v;
    }
    case gpb::FieldDescriptor::CPPTYPE_MESSAGE: {
      const gpb::Message& m = rep ? r->GetRepeatedMessage(msg, f, i) : r->GetMessage(msg, f);
      const gpb::Descriptor* d = m.GetDescriptor();
      if (IsTimestamp(d) || IsDuration(d)) {
        const gpb::Reflection* mr = m.GetReflection();
        const int64_t seconds = mr->GetInt64(m, d->FindFieldByNumber(1));
        const int32_t nanos = mr->GetInt32(m, d->FindFieldByNumber(2));
        using gpb::util::TimeUtil;
        if (IsTimestamp(d)) {
          gpb::Timestamp t;
          t.set_seconds(seconds);
          t.set_nanos(nanos);
          return TimeUtil::ToString(t);
        }
        gpb::Duration t;
        t.set_seconds(seconds);
        t.set_nanos(nanos);
        return TimeUtil::ToString(t);
      }
      return DirectJson(m);
    }
    default:
      return nullptr;  // floating point: PrintsDirectly sends those to protobuf's printer
  }
}

// A map entry's key as its JSON text: proto3 keys are integers, bools or strings.
std::string MapKey(const gpb::Message& entry, const gpb::FieldDescriptor* key) {
  const Json k = FieldValue(entry, key, -1);
  if (k.is_string()) return k.get<std::string>();
  return k.dump();
}

Json DirectJson(const gpb::Message& msg) {
  const gpb::Descriptor* d = msg.GetDescriptor();
  const gpb::Reflection* r = msg.GetReflection();
  Json out = Json::object();
  // Timestamp and Duration fields, printed as text, follow all others in
  // protobuf's printer, in field number order.
  std::vector<const gpb::FieldDescriptor*> times;
  for (int i = 0; i < d->field_count(); ++i) {
    const gpb::FieldDescriptor* f = d->field(i);
    if (!f->is_repeated() && f->cpp_type() == gpb::FieldDescriptor::CPPTYPE_MESSAGE &&
        (IsTimestamp(f->message_type()) || IsDuration(f->message_type()))) {
      if (r->HasField(msg, f)) times.push_back(f);
    } else if (f->is_map()) {
      const gpb::FieldDescriptor* key = f->message_type()->map_key();
      const gpb::FieldDescriptor* value = f->message_type()->map_value();
      std::vector<std::pair<std::string, const gpb::Message*>> entries;
      for (int j = 0; j < r->FieldSize(msg, f); ++j) {
        const gpb::Message& entry = r->GetRepeatedMessage(msg, f, j);
        entries.emplace_back(MapKey(entry, key), &entry);
      }
      std::sort(entries.begin(), entries.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      Json object = Json::object();
      for (const auto& entry : entries) object[entry.first] = FieldValue(*entry.second, value, -1);
      out[f->json_name()] = std::move(object);
    } else if (f->is_repeated()) {
      Json array = Json::array();
      for (int j = 0; j < r->FieldSize(msg, f); ++j) array.push_back(FieldValue(msg, f, j));
      out[f->json_name()] = std::move(array);
    } else if (f->has_presence() && !r->HasField(msg, f)) {
      continue;  // an unset message or oneof member
    } else {
      out[f->json_name()] = FieldValue(msg, f, -1);
    }
  }
  std::sort(times.begin(), times.end(),
            [](const gpb::FieldDescriptor* a, const gpb::FieldDescriptor* b) {
              return a->number() < b->number();
            });
  for (const gpb::FieldDescriptor* f : times) out[f->json_name()] = FieldValue(msg, f, -1);
  return out;
}

}  // namespace

std::string Rfc3339FromMicros(int64_t unix_micros) {
  using google::protobuf::util::TimeUtil;
  return TimeUtil::ToString(TimeUtil::MicrosecondsToTimestamp(unix_micros));
}

Json ProtoToJson(const google::protobuf::Message& msg) {
  if (PrintsDirectly(msg.GetDescriptor())) return AddTimes(DirectJson(msg));
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
