#include "cli/script_options.h"

#include <algorithm>
#include <cstdlib>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "cli/package_set.h"
#include "common/status_macros.h"
#include "pipeline/cell_values.h"

namespace musafarm::cli {
namespace {

using pipeline::OptionDecl;

// "3.8,3.9" and repeated flags alike; empty items and duplicates are errors.
absl::StatusOr<std::vector<std::string>> SplitList(const std::vector<std::string>& given,
                                                   const std::string& option) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const std::string& arg : given) {
    for (absl::string_view item : absl::StrSplit(arg, ',')) {
      item = absl::StripAsciiWhitespace(item);
      if (item.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(option, ": empty value in '", arg, "'"));
      }
      if (!seen.insert(std::string(item)).second) {
        return absl::InvalidArgumentError(absl::StrCat(option, ": '", item, "' is given twice"));
      }
      out.emplace_back(item);
    }
  }
  return out;
}

bool ValidName(absl::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  for (char c : name) {
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
      return false;
  }
  return true;
}

class Builder {
 public:
  // `typed`: how the option reads in a "pick one" message ("--mode opt");
  // empty for submit's generic options, which say "already set by" instead.
  absl::Status Param(const std::string& name, const std::string& value, const std::string& option,
                     const std::string& typed = "") {
    MF_RETURN_IF_ERROR(
        Claim(absl::StrCat("param ", name), absl::StrCat("param '", name, "'"), option, typed));
    parts_.params[name] = value;
    return absl::OkStatus();
  }
  absl::Status Axis(const std::string& axis, std::vector<std::string> values,
                    const std::string& option, const std::string& typed = "") {
    MF_RETURN_IF_ERROR(
        Claim(absl::StrCat("axis ", axis), absl::StrCat("axis '", axis, "'"), option, typed));
    parts_.axes.emplace_back(axis, std::move(values));
    return absl::OkStatus();
  }
  absl::Status Secret(const std::string& name, const std::string& value,
                      const std::string& option) {
    if (auto it = parts_.origin.find(absl::StrCat("secret ", name)); it != parts_.origin.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(option, ": secret ", name, " is already set by ", it->second));
    }
    if (value.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(option, ": the value is empty"));
    }
    parts_.origin[absl::StrCat("secret ", name)] = option;
    parts_.secrets[name] = value;
    return absl::OkStatus();
  }
  bool IsSet(const std::string& key) const { return parts_.origin.count(key) > 0; }
  const std::vector<std::string>* AxisValues(const std::string& axis) const {
    for (const auto& [name, values] : parts_.axes) {
      if (name == axis) return &values;
    }
    return nullptr;
  }
  std::string Origin(const std::string& key) const { return parts_.origin.at(key); }
  SubmitParts& parts() { return parts_; }

 private:
  absl::Status Claim(const std::string& key, const std::string& what, const std::string& option,
                     const std::string& typed) {
    if (auto it = parts_.origin.find(key); it != parts_.origin.end()) {
      if (!typed.empty() && declared_.count(it->second) > 0) {
        // Two of the pipeline's own options set the same thing.
        return absl::InvalidArgumentError(
            absl::StrCat(it->second, " and ", typed, ": pick one (both set ",
                         absl::StrReplaceAll(what, {{"'", ""}}), ")"));
      }
      return absl::InvalidArgumentError(
          absl::StrCat(option, ": ", what, " is already set by ", it->second));
    }
    parts_.origin[key] = option;
    if (!typed.empty()) declared_.insert(option);
    return absl::OkStatus();
  }

  SubmitParts parts_;
  std::set<std::string> declared_;  // origins that are declared options
};

// The one value of a non-list option.
absl::StatusOr<std::string> One(const OptionDecl& o, const std::vector<std::string>& values) {
  if (values.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(pipeline::OptionDisplay(o), ": given ",
                                                   values.size(), " times; give it once"));
  }
  return values[0];
}

absl::Status ApplyAxisOption(const OptionDecl& o, const std::vector<std::string>& values,
                             Builder* b) {
  const std::string display = pipeline::OptionDisplay(o);
  if (o.kind == OptionDecl::Kind::kFlag) {
    if (o.flag_kind == OptionDecl::Kind::kAxis) {
      return b->Axis(o.target, {o.flag_value}, display, display);
    }
    return b->Param(o.target, o.flag_value, display, display);
  }
  std::vector<std::string> list;
  if (o.list) {
    MF_ASSIGN_OR_RETURN(list, SplitList(values, display));
  } else {
    MF_ASSIGN_OR_RETURN(std::string one, One(o, values));
    MF_ASSIGN_OR_RETURN(list, SplitList({one}, display));
    if (list.size() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(display, ": takes one value, got '", one, "'"));
    }
  }
  return b->Axis(o.target, list, display, absl::StrCat(display, " ", absl::StrJoin(list, ",")));
}

// A param or secret option's per-cell values, "3.8=URL,3.9=URL" (and the
// option repeated): each item names a value of one axis, the one the other
// options chose for it or the file's. Returns no items when the first item
// does not start with an axis value: the whole is then one value for every
// cell, as before (a URL may hold '=' and ',').
struct PerCell {
  std::string axis;
  std::vector<std::pair<std::string, std::string>> items;  // axis value -> value
};
absl::StatusOr<PerCell> SplitPerCell(const OptionDecl& o, const std::vector<std::string>& given,
                                     const pipeline::PipelineOptions& pipeline, const Builder& b) {
  const std::string display = pipeline::OptionDisplay(o);
  auto values_of = [&](const std::string& axis) {
    std::vector<std::string> values = pipeline.axis_values.count(axis) > 0
                                          ? pipeline.axis_values.at(axis)
                                          : std::vector<std::string>{};
    if (const std::vector<std::string>* chosen = b.AxisValues(axis)) {
      for (const std::string& v : *chosen) {
        if (std::find(values.begin(), values.end(), v) == values.end()) values.push_back(v);
      }
    }
    return values;
  };
  // The axes `key` is a value of.
  auto axes_of = [&](const std::string& key) {
    std::vector<std::string> axes;
    for (const std::string& axis : pipeline.axes) {
      const std::vector<std::string> values = values_of(axis);
      if (std::find(values.begin(), values.end(), key) != values.end()) axes.push_back(axis);
    }
    return axes;
  };
  PerCell out;
  for (const std::string& arg : given) {
    for (absl::string_view item : absl::StrSplit(arg, ',')) {
      const size_t eq = item.find('=');
      const std::string key(item.substr(0, eq == absl::string_view::npos ? 0 : eq));
      const std::vector<std::string> axes =
          eq == absl::string_view::npos ? std::vector<std::string>{} : axes_of(key);
      if (out.axis.empty() && out.items.empty()) {
        // A URL's text before its first '=' has a '/'; an axis value has none.
        const bool looks_keyed =
            !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
              return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
                     c == '_' || c == '-' || c == '+';
            });
        if (axes.empty() && looks_keyed) {
          std::vector<std::string> listed;
          for (const std::string& axis : pipeline.axes) {
            listed.push_back(absl::StrCat(axis, ": ", absl::StrJoin(values_of(axis), ", ")));
          }
          return absl::InvalidArgumentError(absl::StrCat(
              display, ": '", key, "' is not a value of any axis (", absl::StrJoin(listed, "; "),
              "); per-cell values are VALUE=..., e.g. 3.8=URL,3.9=URL"));
        }
        if (axes.empty()) return PerCell{};  // one value for every cell
        if (axes.size() > 1) {
          return absl::InvalidArgumentError(
              absl::StrCat(display, ": '", key, "' is a value of axes ",
                           absl::StrJoin(axes, " and "), "; per-cell values must name one"));
        }
        out.axis = axes[0];
      }
      if (std::find(axes.begin(), axes.end(), out.axis) == axes.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            display, ": per-cell values of axis ", out.axis, " are ", out.axis,
            "-value=VALUE items, comma-separated or repeated (",
            absl::StrJoin(values_of(out.axis), ", "), "); '",
            eq == absl::string_view::npos ? std::string("an item without '='") : key,
            "' is not one"));
      }
      for (const auto& [have, unused] : out.items) {
        if (have == key) {
          return absl::InvalidArgumentError(
              absl::StrCat(display, ": ", out.axis, " ", key, " is given twice"));
        }
      }
      out.items.emplace_back(key, std::string(item.substr(eq + 1)));
    }
  }
  return out;
}

absl::Status ApplyValueOption(const OptionDecl& o, const std::vector<std::string>& values,
                              const pipeline::PipelineOptions& pipeline, Builder* b,
                              SubmitParts* parts) {
  const std::string display = pipeline::OptionDisplay(o);
  if (o.kind == OptionDecl::Kind::kFlag) {  // a flag that sets a param: its value
    return b->Param(o.target, o.flag_value, display, display);
  }
  if (o.per_axis.empty() && !o.names_job) {
    MF_ASSIGN_OR_RETURN(PerCell cells, SplitPerCell(o, values, pipeline, *b));
    for (auto& [axis_value, value] : cells.items) {
      const std::string key = pipeline::CellKeyName(o.target, cells.axis, axis_value);
      if (o.kind == OptionDecl::Kind::kSecret) {
        MF_RETURN_IF_ERROR(b->Secret(key, value, display));
      } else {
        MF_RETURN_IF_ERROR(b->Param(key, pipeline::StripPrefixes(o, value), display, display));
      }
    }
    if (!cells.items.empty()) return absl::OkStatus();
  }
  MF_ASSIGN_OR_RETURN(std::string value, One(o, values));
  if (o.kind == OptionDecl::Kind::kSecret) return b->Secret(o.target, value, display);
  std::string param = o.target;
  if (!o.per_axis.empty()) {
    // The param of one value of an axis ("${variant}_dockerfile"): the value
    // the other options chose, else the file's first, which this then chooses.
    const std::string ref = absl::StrCat("${", o.per_axis, "}");
    const std::vector<std::string>* chosen = b->AxisValues(o.per_axis);
    if (chosen == nullptr) {
      MF_RETURN_IF_ERROR(b->Axis(o.per_axis, {o.axis_default}, display));
      param = absl::StrReplaceAll(o.target, {{ref, o.axis_default}});
    } else if (chosen->size() == 1) {
      param = absl::StrReplaceAll(o.target, {{ref, chosen->front()}});
    } else {
      std::vector<std::string> each;
      for (const std::string& v : *chosen) {
        each.push_back(absl::StrCat("--param ", absl::StrReplaceAll(o.target, {{ref, v}}), "=..."));
      }
      return absl::InvalidArgumentError(
          absl::StrCat(display, ": applies to one ", o.per_axis, ", but ",
                       b->Origin(absl::StrCat("axis ", o.per_axis)), " asks for ",
                       absl::StrJoin(*chosen, ","), " (use ", absl::StrJoin(each, " and "), ")"));
    }
  }
  value = pipeline::StripPrefixes(o, std::move(value));
  MF_RETURN_IF_ERROR(b->Param(param, value, display, display));
  if (o.names_job) parts->job_name = value;
  return absl::OkStatus();
}

// --package-set: each set's URLs become the secrets it names, its name the
// param package_set, its digest the param download_cache_key and its
// packages' sha256s the param package_sha256s ("SECRET=HEX ..."); per cell when
// given as AXISVALUE=FILE items (one set per GPU architecture).
absl::Status ApplyPackageSets(const std::vector<std::string>& given,
                              const pipeline::PipelineOptions& pipeline, Builder* b) {
  OptionDecl o;
  o.long_name = "package-set";
  o.kind = OptionDecl::Kind::kParam;
  MF_ASSIGN_OR_RETURN(PerCell cells, SplitPerCell(o, given, pipeline, *b));
  if (cells.items.empty()) {
    if (given.size() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--package-set: given ", given.size(),
                       " times; give one file, or one per cell as VALUE=FILE,..."));
    }
    cells.items.emplace_back("", given[0]);
  }
  for (const auto& item : cells.items) {
    const std::string& axis_value = item.first;
    const std::string& file = item.second;
    // (Not a structured binding: C++17 lambdas cannot capture one.)
    auto key = [&](const std::string& name) {
      return axis_value.empty() ? name : pipeline::CellKeyName(name, cells.axis, axis_value);
    };
    MF_ASSIGN_OR_RETURN(PackageSet set, ReadPackageSet(file));
    const std::string display = absl::StrCat("--package-set ", file);
    for (const PackageSet::Package& p : set.packages) {
      MF_RETURN_IF_ERROR(b->Secret(key(p.secret), p.url, display));
    }
    MF_RETURN_IF_ERROR(b->Param(key("package_set"), set.name, display));
    MF_RETURN_IF_ERROR(b->Param(key("download_cache_key"), set.digest, display));
    // Each download is checked against the set's digest (download.sh).
    std::vector<std::string> digests;
    for (const PackageSet::Package& p : set.packages) {
      digests.push_back(absl::StrCat(p.secret, "=", p.sha256));
    }
    MF_RETURN_IF_ERROR(b->Param(key("package_sha256s"), absl::StrJoin(digests, " "), display));
  }
  return absl::OkStatus();
}

bool SetsAxis(const OptionDecl& o) {
  return o.kind == OptionDecl::Kind::kAxis ||
         (o.kind == OptionDecl::Kind::kFlag && o.flag_kind == OptionDecl::Kind::kAxis);
}

}  // namespace

std::optional<std::string> ProcessEnv(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

absl::StatusOr<std::string> SecretFromEnv(const std::string& name, EnvLookup env) {
  // A value on the command line would sit in shell history and `ps`; the
  // environment is where CI systems put their secrets.
  if (name.find('=') != std::string::npos || !ValidName(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--secret: expected the NAME of an environment variable that holds the value, got '",
        name.substr(0, name.find('=')), name.find('=') != std::string::npos ? "=...'" : "'"));
  }
  std::optional<std::string> value = env(name.c_str());
  if (!value.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--secret ", name, ": environment variable ", name, " is not set"));
  }
  return *std::move(value);
}

absl::StatusOr<SubmitParts> MapSubmitOptions(const pipeline::PipelineOptions& pipeline,
                                             const GivenOptions& given, EnvLookup env) {
  Builder b;
  for (const auto& [name, values] : given.declared) {
    bool known = false;
    for (const OptionDecl& o : pipeline.options) known = known || o.long_name == name;
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, ": the pipeline declares no such option"));
    }
  }
  auto values_of = [&](const OptionDecl& o) -> const std::vector<std::string>* {
    auto it = given.declared.find(o.long_name);
    return it == given.declared.end() || it->second.empty() ? nullptr : &it->second;
  };
  for (const OptionDecl& o : pipeline.options) {
    if (!SetsAxis(o) || values_of(o) == nullptr) continue;
    MF_RETURN_IF_ERROR(ApplyAxisOption(o, *values_of(o), &b));
  }
  for (const std::string& a : given.axes) {
    const size_t eq = a.find('=');
    const std::string axis = a.substr(0, eq);
    if (eq == std::string::npos || axis.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--axis ", a, ": expected AXIS=VALUE[,VALUE...], e.g. python=3.8,3.10"));
    }
    MF_ASSIGN_OR_RETURN(std::vector<std::string> v,
                        SplitList({a.substr(eq + 1)}, absl::StrCat("--axis ", axis)));
    MF_RETURN_IF_ERROR(b.Axis(axis, std::move(v), absl::StrCat("--axis ", axis)));
  }
  for (const OptionDecl& o : pipeline.options) {
    if (SetsAxis(o) || values_of(o) == nullptr) continue;
    MF_RETURN_IF_ERROR(ApplyValueOption(o, *values_of(o), pipeline, &b, &b.parts()));
  }
  if (!given.package_sets.empty()) {
    MF_RETURN_IF_ERROR(ApplyPackageSets(given.package_sets, pipeline, &b));
  }
  for (const std::string& p : given.params) {
    const size_t eq = p.find('=');
    const std::string name = p.substr(0, eq);
    if (eq == std::string::npos || !ValidName(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--param ", p, ": expected NAME=VALUE with NAME like tag or registry"));
    }
    MF_RETURN_IF_ERROR(b.Param(name, p.substr(eq + 1), absl::StrCat("--param ", name)));
  }
  for (const std::string& name : given.secrets) {
    MF_ASSIGN_OR_RETURN(std::string value, SecretFromEnv(name, env));
    MF_RETURN_IF_ERROR(b.Secret(name, value, absl::StrCat("--secret ", name)));
  }
  for (const OptionDecl& o : pipeline.options) {
    if (!o.note.empty() && values_of(o) != nullptr) {
      b.parts().notes.push_back(absl::StrCat(pipeline::OptionDisplay(o), ": ", o.note));
    }
  }
  // Defaults, where nothing above set the target.
  for (const OptionDecl& o : pipeline.options) {
    if (!o.has_default) continue;
    const std::string display = absl::StrCat(pipeline::OptionDisplay(o), " (default)");
    if (o.kind == OptionDecl::Kind::kParam && !b.IsSet(absl::StrCat("param ", o.target))) {
      MF_RETURN_IF_ERROR(b.Param(o.target, o.default_value, display));
    } else if (o.kind == OptionDecl::Kind::kAxis && !b.IsSet(absl::StrCat("axis ", o.target))) {
      MF_ASSIGN_OR_RETURN(std::vector<std::string> v, SplitList({o.default_value}, display));
      MF_RETURN_IF_ERROR(b.Axis(o.target, std::move(v), display));
    }
  }
  // Axes in the matrix's order, whichever option set them.
  SubmitParts& parts = b.parts();
  auto rank = [&](const std::string& axis) {
    return std::find(pipeline.axes.begin(), pipeline.axes.end(), axis) - pipeline.axes.begin();
  };
  std::stable_sort(parts.axes.begin(), parts.axes.end(),
                   [&](const auto& x, const auto& y) { return rank(x.first) < rank(y.first); });
  return std::move(parts);
}

std::string ExplainOrigin(const std::string& message, const SubmitParts& parts) {
  // The pipeline reports option errors as "FILE: --param NAME: ...",
  // "FILE: --axis NAME: ..." or "FILE: --secret NAME: ...".
  for (const auto& [key, option] : parts.origin) {
    const size_t space = key.find(' ');
    const std::string kind = key.substr(0, space), name = key.substr(space + 1);
    const std::string generic = absl::StrCat("--", kind, " ", name, ":");
    if (option == absl::StrCat("--", kind, " ", name)) continue;  // typed as such
    const size_t at = message.find(absl::StrCat(": ", generic));
    if (at == std::string::npos) continue;
    return absl::StrCat(message.substr(0, at + 2), option, " (", kind, " ", name,
                        "):", message.substr(at + 2 + generic.size()));
  }
  return message;
}

std::optional<std::string> PipelineFileArg(int argc, const char* const* argv) {
  // submit's, schedule add's and the CLI's own options that take a value, in
  // both spellings.
  static const std::set<std::string> kWithValue = {
      "-c",        "--coordinator", "--ca",         "-o",        "--output",
      "-p",        "--param",       "--axis",       "--secret",  "--job-name",
      "--package-set", "--cron",    "--timezone",   "--overlap",  "--webhook", "--color",
      "--context"};
  bool in_submit = false;
  bool in_schedule = false;
  int names_left = 0;  // positionals before the pipeline: `schedule add NAME`
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (absl::StartsWith(arg, "-")) {
      if (kWithValue.count(arg) > 0) {
        ++i;  // its value
      } else if (in_submit && !absl::StartsWith(arg, "--") && arg.size() == 2 && arg != "-w" &&
                 arg != "-h") {
        return "";  // a pipeline's short option: what follows may be its value
      } else if (in_submit && absl::StartsWith(arg, "--") && arg.find('=') == std::string::npos &&
                 arg != "--watch" && arg != "--logs" && arg != "--help" && arg != "--version" &&
                 arg != "--insecure" && arg != "--dry-run" && arg != "--strict") {
        return "";  // a pipeline's long option
      }
      continue;
    }
    if (in_submit) {
      if (names_left > 0) {
        --names_left;
        continue;
      }
      return arg;
    }
    if (in_schedule) {
      if (arg != "add") return std::nullopt;  // another schedule command
      in_submit = true;
      names_left = 1;
      continue;
    }
    if (arg == "schedule") {
      in_schedule = true;
      continue;
    }
    if (arg != "submit") return std::nullopt;  // another command
    in_submit = true;
  }
  if (in_submit) return "";
  return std::nullopt;
}

}  // namespace musafarm::cli
