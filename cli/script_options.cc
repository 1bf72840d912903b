#include "cli/script_options.h"

#include <cstdlib>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace musafarm::cli {
namespace {

// "3.8,3.9" and repeated flags alike; empty items and duplicates are errors.
absl::StatusOr<std::vector<std::string>> SplitList(const std::vector<std::string>& given,
                                                   const std::string& option) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const std::string& arg : given) {
    for (absl::string_view item : absl::StrSplit(arg, ',')) {
      item = absl::StripAsciiWhitespace(item);
      if (item.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(option, ": empty value in '", arg, "'"));
      }
      if (!seen.insert(std::string(item)).second) {
        return absl::InvalidArgumentError(
            absl::StrCat(option, ": '", item, "' is given twice"));
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
  absl::Status Param(const std::string& name, const std::string& value,
                     const std::string& option) {
    const std::string key = absl::StrCat("param ", name);
    if (auto it = parts_.origin.find(key); it != parts_.origin.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(option, ": param '", name, "' is already set by ", it->second));
    }
    parts_.origin[key] = option;
    parts_.params[name] = value;
    return absl::OkStatus();
  }
  absl::Status Axis(const std::string& axis, std::vector<std::string> values,
                    const std::string& option) {
    const std::string key = absl::StrCat("axis ", axis);
    if (auto it = parts_.origin.find(key); it != parts_.origin.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(option, ": axis '", axis, "' is already set by ", it->second));
    }
    parts_.origin[key] = option;
    parts_.axes.emplace_back(axis, std::move(values));
    return absl::OkStatus();
  }
  absl::Status Secret(const std::string& name, const std::string& value,
                      const std::string& option) {
    const std::string key = absl::StrCat("secret ", name);
    if (auto it = parts_.origin.find(key); it != parts_.origin.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(option, ": secret ", name, " is already set by ", it->second));
    }
    if (value.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(option, ": the value is empty"));
    }
    parts_.origin[key] = option;
    parts_.secrets[name] = value;
    return absl::OkStatus();
  }
  SubmitParts Take() { return std::move(parts_); }

 private:
  SubmitParts parts_;
};

}  // namespace

std::optional<std::string> ProcessEnv(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

absl::StatusOr<SubmitParts> MapScriptOptions(const ScriptOptions& o, EnvLookup env) {
  Builder b;
  auto param = [&](const std::optional<std::string>& v, const char* name,
                   const char* option) -> absl::Status {
    if (!v.has_value()) return absl::OkStatus();
    return b.Param(name, *v, option);
  };
  absl::Status s;
  if (!(s = param(o.name, "name", "-n/--name")).ok()) return s;
  if (!(s = param(o.tag, "tag", "-t/--tag")).ok()) return s;
  if (!(s = param(o.sys, "sys", "-s/--sys")).ok()) return s;
  if (!(s = param(o.base_img, "base_img", "-b/--base_img")).ok()) return s;
  if (!(s = param(o.torch_musa_tag, "torch_musa_tag", "--torch_musa_tag")).ok()) return s;

  // The original scripts chose the image kind with -f and -r: -r means the
  // release Dockerfile, so -f names the release one with -r and the dev one
  // without. --variant is the farm's way to ask for both.
  std::vector<std::string> variants;
  if (!o.variants.empty()) {
    absl::StatusOr<std::vector<std::string>> v = SplitList(o.variants, "--variant");
    if (!v.ok()) return v.status();
    variants = *std::move(v);
    if (o.release) {
      return absl::InvalidArgumentError(absl::StrCat(
          "-r/--release and --variant ", absl::StrJoin(variants, ","),
          ": pick one (-r is --variant release)"));
    }
  } else if (o.release) {
    variants = {"release"};
  } else if (o.docker_file.has_value()) {
    variants = {"dev"};  // build.sh without -r builds the dev image
  }
  if (o.docker_file.has_value()) {
    if (variants.size() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("-f/--docker_file: applies to one variant, but --variant asks for ",
                       absl::StrJoin(variants, ","), " (use --param dev_dockerfile=... and "
                       "--param release_dockerfile=...)"));
    }
    if (!(s = b.Param(absl::StrCat(variants[0], "_dockerfile"), *o.docker_file,
                      "-f/--docker_file"))
             .ok())
      return s;
  }
  if (!variants.empty()) {
    const char* option = !o.variants.empty() ? "--variant"
                         : o.release         ? "-r/--release"
                                             : "-f/--docker_file";
    if (!(s = b.Axis("variant", variants, option)).ok()) return s;
  }
  if (!o.python_versions.empty()) {
    absl::StatusOr<std::vector<std::string>> v =
        SplitList(o.python_versions, "-v/--python_version");
    if (!v.ok()) return v.status();
    if (!(s = b.Axis("python", *std::move(v), "-v/--python_version")).ok()) return s;
  }

  const std::pair<const std::optional<std::string>*, std::pair<const char*, const char*>> urls[] = {
      {&o.musa_toolkits_url, {"MUSA_TOOLKITS_URL", "-m/--musa_toolkits_url"}},
      {&o.mudnn_url, {"MUDNN_URL", "--mudnn_url"}},
      {&o.mccl_url, {"MCCL_URL", "--mccl_url"}},
      {&o.torch_whl_url, {"TORCH_WHL_URL", "--torch_whl_url"}},
      {&o.torch_musa_whl_url, {"TORCH_MUSA_WHL_URL", "--torch_musa_whl_url"}},
  };
  for (const auto& [value, names] : urls) {
    if (!value->has_value()) continue;
    if (!(s = b.Secret(names.first, **value, names.second)).ok()) return s;
  }

  for (const std::string& p : o.params) {
    const size_t eq = p.find('=');
    const std::string name = p.substr(0, eq);
    if (eq == std::string::npos || !ValidName(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--param ", p, ": expected NAME=VALUE with NAME like tag or python_version"));
    }
    if (!(s = b.Param(name, p.substr(eq + 1), absl::StrCat("--param ", name))).ok()) return s;
  }
  for (const std::string& a : o.axes) {
    const size_t eq = a.find('=');
    const std::string axis = a.substr(0, eq);
    if (eq == std::string::npos || axis.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--axis ", a, ": expected AXIS=VALUE[,VALUE...], e.g. python=3.8,3.10"));
    }
    absl::StatusOr<std::vector<std::string>> v =
        SplitList({a.substr(eq + 1)}, absl::StrCat("--axis ", axis));
    if (!v.ok()) return v.status();
    if (!(s = b.Axis(axis, *std::move(v), absl::StrCat("--axis ", axis))).ok()) return s;
  }
  for (const std::string& name : o.secrets) {
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
    if (!(s = b.Secret(name, *value, absl::StrCat("--secret ", name))).ok()) return s;
  }
  return b.Take();
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
    return absl::StrCat(message.substr(0, at + 2), option, " (", kind, " ", name, "):",
                        message.substr(at + 2 + generic.size()));
  }
  return message;
}

}  // namespace musafarm::cli
