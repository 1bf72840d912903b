#include "pipeline/options.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/status_macros.h"
#include "pipeline/matrix.h"

namespace musafarm::pipeline {
namespace {

const char* KindName(OptionDecl::Kind kind) {
  switch (kind) {
    case OptionDecl::Kind::kParam:
      return "param";
    case OptionDecl::Kind::kAxis:
      return "axis";
    case OptionDecl::Kind::kSecret:
      return "secret";
    case OptionDecl::Kind::kFlag:
      return "flag";
  }
  return "";  // unreachable: every Kind is handled above
}

// Long names as build scripts spell them: "python_version", "dry-run".
bool IsLongName(absl::string_view s) {
  if (s.size() < 2 || !absl::ascii_isalpha(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  }
  return true;
}

// "${AXIS}" inside a param option's target: the axis name, or "" if none.
std::string PerAxis(absl::string_view target) {
  const size_t open = target.find("${");
  if (open == absl::string_view::npos) return "";
  const size_t close = target.find('}', open);
  if (close == absl::string_view::npos) return "";
  return std::string(target.substr(open + 2, close - open - 2));
}

const char kTargets[] = "param, axis, secret or flag";

}  // namespace

std::string OptionDisplay(const OptionDecl& o) {
  if (o.short_name.empty()) return absl::StrCat("--", o.long_name);
  return absl::StrCat("-", o.short_name, "/--", o.long_name);
}

std::vector<std::string> LongNames(const OptionDecl& o) {
  std::vector<std::string> names = {o.long_name};
  names.insert(names.end(), o.aliases.begin(), o.aliases.end());
  return names;
}

std::string StripPrefixes(const OptionDecl& o, std::string value) {
  for (bool again = true; again;) {
    again = false;
    for (const std::string& prefix : o.strip_prefixes) {
      if (absl::StartsWith(value, prefix)) {
        value.erase(0, prefix.size());
        again = true;
      }
    }
  }
  return value;
}

std::string OptionBecomes(const OptionDecl& o) {
  if (o.kind == OptionDecl::Kind::kFlag) {
    return absl::StrCat(KindName(o.flag_kind), " ", o.target, " = ", o.flag_value);
  }
  return absl::StrCat(KindName(o.kind), " ", o.target);
}

const std::vector<std::string>& ReservedLongOptions() {
  // submit's flags, the CLI's global ones, and those planned next (issue 9).
  static const std::vector<std::string> kNames = {
      "help", "version", "coordinator", "job-name", "param",   "axis",     "secret", "watch",
      "logs", "output",  "context",     "dry-run", "no-cache", "strict", "priority",
      "package-set", "color"};
  return kNames;
}

const std::vector<std::string>& ReservedShortOptions() {
  static const std::vector<std::string> kNames = {"h", "c", "p", "w", "o"};
  return kNames;
}

absl::Status OptionsParser::Parse(const Entry& e, Pipeline* p) const {
  if (!e.value.IsSequence()) {
    return r_.Error(MarkOf(e.value, e.key_mark), e.field,
                    absl::StrCat("expected a list of options, got ", KindOf(e.value)));
  }
  const YAML::Mark list_mark = MarkOf(e.value, e.key_mark);
  for (size_t i = 0; i < e.value.size(); ++i) {
    OptionDecl o;
    MF_RETURN_IF_ERROR(ParseOne(e.value[i], list_mark, Item(e.field, i), *p, &o));
    p->options.push_back(std::move(o));
  }
  return absl::OkStatus();
}

absl::Status OptionsParser::ParseOne(const YAML::Node& node, const YAML::Mark& fallback,
                                     const std::string& field, const Pipeline& p,
                                     OptionDecl* o) const {
  std::vector<Entry> entries;
  MF_RETURN_IF_ERROR(r_.Entries(node, fallback, field, &entries));
  const YAML::Mark mark = MarkOf(node, fallback);
  for (const Entry& k : entries) {
    const bool known = k.key == "long" || k.key == "short" || k.key == "help" || k.key == "list" ||
                       k.key == "default" || k.key == "names_job" || k.key == "param" ||
                       k.key == "axis" || k.key == "secret" || k.key == "flag" ||
                       k.key == "aliases" || k.key == "strip_prefix" || k.key == "note";
    if (!known) {
      return r_.Error(k.key_mark, k.field,
                      absl::StrCat("unknown field '", k.key,
                                   "' (an option has long, short, help, list, default, names_job, "
                                   "aliases, strip_prefix, note and what it becomes: one of ",
                                   kTargets, ")"));
    }
  }
  const Entry* target = nullptr;
  for (const Entry& k : entries) {
    if (k.key == "long") {
      MF_RETURN_IF_ERROR(r_.GetString(k.value, k.key_mark, k.field, &o->long_name));
      if (!IsLongName(o->long_name)) {
        return r_.Error(MarkOf(k.value, k.key_mark), k.field,
                        absl::StrCat("'", o->long_name,
                                     "' is not a valid option name (a letter, then letters, "
                                     "digits, '_' or '-'; two characters at least; no leading "
                                     "'--')"));
      }
      if (Contains(ReservedLongOptions(), o->long_name)) {
        return r_.Error(MarkOf(k.value, k.key_mark), k.field,
                        absl::StrCat("--", o->long_name,
                                     " is an option of musafarm submit itself (reserved: --",
                                     absl::StrJoin(ReservedLongOptions(), ", --"), ")"));
      }
    } else if (k.key == "short") {
      MF_RETURN_IF_ERROR(r_.GetString(k.value, k.key_mark, k.field, &o->short_name));
      if (o->short_name.size() != 1 ||
          !absl::ascii_isalpha(static_cast<unsigned char>(o->short_name[0]))) {
        return r_.Error(
            MarkOf(k.value, k.key_mark), k.field,
            absl::StrCat("'", o->short_name, "' is not a valid short option (one letter, no '-')"));
      }
      if (Contains(ReservedShortOptions(), o->short_name)) {
        return r_.Error(
            MarkOf(k.value, k.key_mark), k.field,
            absl::StrCat("-", o->short_name, " is an option of musafarm submit itself (reserved: -",
                         absl::StrJoin(ReservedShortOptions(), ", -"), ")"));
      }
    } else if (k.key == "help") {
      MF_RETURN_IF_ERROR(r_.GetString(k.value, k.key_mark, k.field, &o->help));
    } else if (k.key == "note") {
      MF_RETURN_IF_ERROR(r_.GetString(k.value, k.key_mark, k.field, &o->note));
    } else if (k.key == "aliases" || k.key == "strip_prefix") {
      std::vector<Text> items;
      MF_RETURN_IF_ERROR(r_.GetTextList(k.value, k.key_mark, k.field,
                                        k.key == "aliases" ? "a list of long names"
                                                           : "a list of prefixes",
                                        &items));
      for (const Text& item : items) {
        if (k.key == "strip_prefix") {
          if (item.value.empty()) return r_.Error(item.mark, item.field, "empty prefix");
          o->strip_prefixes.push_back(item.value);
          continue;
        }
        if (!IsLongName(item.value) || Contains(ReservedLongOptions(), item.value)) {
          return r_.Error(item.mark, item.field,
                          absl::StrCat("'", item.value,
                                       "' is not a valid alias (a long option name that is not "
                                       "one of musafarm submit's own)"));
        }
        o->aliases.push_back(item.value);
      }
    } else if (k.key == "list") {
      MF_RETURN_IF_ERROR(r_.GetBool(k, &o->list));
    } else if (k.key == "names_job") {
      MF_RETURN_IF_ERROR(r_.GetBool(k, &o->names_job));
    } else if (k.key == "default") {
      MF_RETURN_IF_ERROR(r_.GetString(k.value, k.key_mark, k.field, &o->default_value));
      o->has_default = true;
    } else {  // what it becomes
      if (target != nullptr) {
        return r_.Error(k.key_mark, field,
                        absl::StrCat("option has both '", target->key, "' and '", k.key,
                                     "'; give exactly one of ", kTargets));
      }
      target = &k;
    }
  }
  if (o->long_name.empty()) return r_.Error(mark, field, "missing required field 'long'");
  if (target == nullptr) {
    return r_.Error(
        mark, field,
        absl::StrCat("option --", o->long_name, " needs what it becomes: one of ", kTargets));
  }
  for (const OptionDecl& other : p.options) {
    for (const std::string& name : LongNames(*o)) {
      for (const std::string& taken : LongNames(other)) {
        if (name == taken) return r_.Error(mark, field, absl::StrCat("duplicate option --", name));
      }
    }
    if (!o->short_name.empty() && other.short_name == o->short_name) {
      return r_.Error(mark, field,
                      absl::StrCat("duplicate short option -", o->short_name, " (also ",
                                   OptionDisplay(other), ")"));
    }
  }
  if (target->key == "flag") {
    MF_RETURN_IF_ERROR(ParseFlag(*target, p, o));
  } else {
    const OptionDecl::Kind kind = target->key == "param"  ? OptionDecl::Kind::kParam
                                  : target->key == "axis" ? OptionDecl::Kind::kAxis
                                                          : OptionDecl::Kind::kSecret;
    std::string name;
    MF_RETURN_IF_ERROR(r_.GetString(target->value, target->key_mark, target->field, &name));
    MF_RETURN_IF_ERROR(CheckTarget(*target, kind, name, p, o));
  }
  // What the other fields mean depends on the kind.
  for (const Entry& k : entries) {
    const bool list_ok = o->kind == OptionDecl::Kind::kAxis;
    const bool default_ok = (o->kind == OptionDecl::Kind::kParam && o->per_axis.empty()) ||
                            o->kind == OptionDecl::Kind::kAxis;
    const bool names_job_ok = o->kind == OptionDecl::Kind::kParam && o->per_axis.empty();
    const bool strip_ok = o->kind == OptionDecl::Kind::kParam;
    if ((k.key == "list" && !list_ok) || (k.key == "default" && !default_ok) ||
        (k.key == "names_job" && !names_job_ok) || (k.key == "strip_prefix" && !strip_ok)) {
      return r_.Error(k.key_mark, k.field,
                      absl::StrCat("'", k.key, "' does not apply to option --", o->long_name, " (",
                                   OptionBecomes(*o), ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status OptionsParser::CheckTarget(const Entry& e, OptionDecl::Kind kind,
                                        const std::string& target, const Pipeline& p,
                                        OptionDecl* o) const {
  const YAML::Mark mark = MarkOf(e.value, e.key_mark);
  if (o->kind != OptionDecl::Kind::kFlag) o->kind = kind;
  o->target = target;
  switch (kind) {
    case OptionDecl::Kind::kParam: {
      const std::string axis = PerAxis(target);
      if (axis.empty()) {
        if (FindParam(p, target) != nullptr) return absl::OkStatus();
        return r_.Error(mark, e.field,
                        absl::StrCat("param '", target, "' is not declared in 'params' ",
                                     Declared(ParamNames(p), "params")));
      }
      if (o->kind == OptionDecl::Kind::kFlag) {
        return r_.Error(mark, e.field, "a flag sets one param: '${...}' is not allowed here");
      }
      const int index = AxisIndex(p, axis);
      if (index < 0) return r_.Error(mark, e.field, NotAnAxis(p, axis));
      for (const std::string& v : p.axes[index].file_values) {
        const std::string param = absl::StrReplaceAll(target, {{absl::StrCat("${", axis, "}"), v}});
        if (FindParam(p, param) == nullptr) {
          return r_.Error(
              mark, e.field,
              absl::StrCat("param '", param, "' (for ", axis, " ", v,
                           ") is not declared in 'params' ", Declared(ParamNames(p), "params")));
        }
      }
      o->per_axis = axis;
      o->axis_default = p.axes[index].file_values.at(0);
      return absl::OkStatus();
    }
    case OptionDecl::Kind::kAxis:
      if (AxisIndex(p, target) >= 0) return absl::OkStatus();
      return r_.Error(mark, e.field, NotAnAxis(p, target));
    case OptionDecl::Kind::kSecret:
      if (Contains(p.secrets, target)) return absl::OkStatus();
      return r_.Error(mark, e.field,
                      absl::StrCat("secret '", target, "' is not declared in 'secrets' ",
                                   Declared(p.secrets, "secrets")));
    case OptionDecl::Kind::kFlag:
      break;
  }
  return r_.Error(mark, e.field, absl::StrCat("a flag sets a param or an axis"));
}

// `flag: {param: NAME, value: V}` or `flag: {axis: NAME, value: V}`.
absl::Status OptionsParser::ParseFlag(const Entry& e, const Pipeline& p, OptionDecl* o) const {
  o->kind = OptionDecl::Kind::kFlag;
  std::vector<Entry> keys;
  MF_RETURN_IF_ERROR(r_.Entries(e.value, e.key_mark, e.field, &keys));
  MF_RETURN_IF_ERROR(r_.CheckAllowed(keys, e.field, {"param", "axis", "value"}));
  const Entry* target = nullptr;
  bool has_value = false;
  for (const Entry& k : keys) {
    if (k.key == "value") {
      MF_RETURN_IF_ERROR(r_.GetString(k.value, k.key_mark, k.field, &o->flag_value));
      has_value = true;
    } else if (target != nullptr) {
      return r_.Error(k.key_mark, e.field,
                      absl::StrCat("flag has both '", target->key, "' and '", k.key,
                                   "'; give one of param, axis"));
    } else {
      target = &k;
    }
  }
  if (target == nullptr) {
    return r_.Error(MarkOf(e.value, e.key_mark), e.field,
                    "missing what the flag sets: 'param' or 'axis'");
  }
  if (!has_value) {
    return r_.Error(MarkOf(e.value, e.key_mark), e.field, "missing required field 'value'");
  }
  o->flag_kind = target->key == "param" ? OptionDecl::Kind::kParam : OptionDecl::Kind::kAxis;
  std::string name;
  MF_RETURN_IF_ERROR(r_.GetString(target->value, target->key_mark, target->field, &name));
  return CheckTarget(*target, o->flag_kind, name, p, o);
}

}  // namespace musafarm::pipeline
