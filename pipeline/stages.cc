#include "pipeline/stages.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/limits.h"
#include "common/status_macros.h"
#include "pipeline/suites.h"

namespace musafarm::pipeline {
namespace {

// `docker run -v` syntax: "SRC:DST" or "SRC:DST:ro|rw", both absolute. A
// relative SRC would make Docker create a named volume instead of a bind mount.
absl::Status ParseMount(absl::string_view spec, v1::Mount* out) {
  const std::vector<absl::string_view> parts = absl::StrSplit(spec, ':');
  if (parts.size() != 2 && parts.size() != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("mount '", spec, "' is not SRC:DST or SRC:DST:ro|rw"));
  }
  if (!IsAbsolute(parts[0])) {
    return absl::InvalidArgumentError(
        absl::StrCat("mount '", spec, "': host path '", parts[0], "' is not an absolute path"));
  }
  if (!IsAbsolute(parts[1])) {
    return absl::InvalidArgumentError(absl::StrCat("mount '", spec, "': container path '", parts[1],
                                                   "' is not an absolute path"));
  }
  if (parts.size() == 3 && parts[2] != "ro" && parts[2] != "rw") {
    return absl::InvalidArgumentError(
        absl::StrCat("mount '", spec, "': mode must be 'ro' or 'rw', got '", parts[2], "'"));
  }
  out->set_source(std::string(parts[0]));
  out->set_target(std::string(parts[1]));
  out->set_read_only(parts.size() == 3 && parts[2] == "ro");
  return absl::OkStatus();
}

// `docker run --shm-size`: "<number><unit>", the number greater than 0, the
// unit optional and one of b, k, m, g in either case.
absl::Status ValidateShmSize(absl::string_view size) {
  absl::string_view digits = size;
  int64_t unit = 1;
  if (!digits.empty()) {
    switch (absl::ascii_tolower(static_cast<unsigned char>(digits.back()))) {
      case 'b':
        unit = 1;
        digits.remove_suffix(1);
        break;
      case 'k':
        unit = int64_t{1} << 10;
        digits.remove_suffix(1);
        break;
      case 'm':
        unit = int64_t{1} << 20;
        digits.remove_suffix(1);
        break;
      case 'g':
        unit = int64_t{1} << 30;
        digits.remove_suffix(1);
        break;
      default:
        break;
    }
  }
  int64_t n = 0;
  if (!AllOf(digits, [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); })) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", size,
                     "' is not a size (write digits with an optional unit b, k, m or g, "
                     "e.g. \"80g\")"));
  }
  if (!absl::SimpleAtoi(digits, &n) || n > INT64_MAX / unit) {
    return absl::InvalidArgumentError(absl::StrCat("size '", size, "' is too large"));
  }
  if (n == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("size must be greater than 0, got '", size, "'"));
  }
  return absl::OkStatus();
}

bool IsDigit(char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); }

// An exec stage's `collect` path: inside the task's work dir, which is not
// known at submit (the agent checks again, following no symbolic link).
absl::Status ValidateWorkDirPath(absl::string_view path) {
  if (path.empty()) return absl::InvalidArgumentError("collect path is empty");
  if (IsAbsolute(path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", path, "' is absolute; collect paths are relative to the task's work dir"));
  }
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("'", path, "' leaves the task's work dir ('..')"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool ParseGpuCount(absl::string_view text, int32_t* out) {
  return AllOf(text, IsDigit) && absl::SimpleAtoi(text, out);
}

std::string GpuCountError(absl::string_view text) {
  if (absl::StartsWith(text, "-") && AllOf(text.substr(1), IsDigit)) {
    return absl::StrCat("must be 0 or more, got '", text, "'");
  }
  if (AllOf(text, IsDigit)) return absl::StrCat("'", text, "' is too large");
  return absl::StrCat("expected a whole number of GPUs (0 or more), got '", text, "'");
}

absl::Status StageParser::ParseEnv(const Entry& e, absl::string_view what,
                                   std::vector<EnvVar>* out) const {
  std::vector<Entry> vars;
  MF_RETURN_IF_ERROR(r_.Entries(e.value, e.key_mark, e.field, &vars));
  for (const Entry& v : vars) {
    if (!IsEnvName(v.key)) {
      return r_.Error(v.key_mark, v.field,
                      absl::StrCat("'", v.key, "' is not a valid ", what, " name ",
                                   "(letters, digits and '_', not starting with a digit)"));
    }
    EnvVar var{v.key, {}};
    MF_RETURN_IF_ERROR(r_.GetText(v.value, v.key_mark, v.field, &var.value));
    out->push_back(std::move(var));
  }
  return absl::OkStatus();
}

// Keys are axes or params. Axis values are checked against the file's cells
// (not those after --axis); param values are free-form.
absl::Status StageParser::ParseWhen(const Entry& e, const Pipeline& p, Stage* s) const {
  std::vector<Entry> keys;
  MF_RETURN_IF_ERROR(r_.Entries(e.value, e.key_mark, e.field, &keys));
  s->has_when = true;
  s->when_mark = MarkOf(e.value, e.key_mark);
  for (const Entry& k : keys) {
    const int axis = AxisIndex(p, k.key);
    const bool is_param = axis < 0 && FindParam(p, k.key) != nullptr;
    if (axis < 0 && !is_param) {
      const std::vector<std::string> params = ParamNames(p);
      return r_.Error(k.key_mark, k.field,
                      absl::StrCat(NotAnAxis(p, k.key), " or a param (",
                                   params.empty() ? "the pipeline declares no params"
                                                  : absl::StrCat("params: ", ListOrNone(params)),
                                   ")"));
    }
    Condition cond{axis, is_param ? k.key : "", {}};
    std::vector<std::pair<std::string, YAML::Mark>> values;
    if (k.value.IsSequence()) {
      if (k.value.size() == 0) return r_.Error(k.value.Mark(), k.field, "empty list of values");
      for (size_t i = 0; i < k.value.size(); ++i) {
        std::string v;
        MF_RETURN_IF_ERROR(r_.GetString(k.value[i], k.value.Mark(), Item(k.field, i), &v));
        values.emplace_back(std::move(v), k.value[i].Mark());
      }
    } else if (k.value.IsScalar()) {
      values.emplace_back(k.value.Scalar(), k.value.Mark());
    } else {
      return r_.Error(MarkOf(k.value, k.key_mark), k.field,
                      absl::StrCat("expected a value or a list of values, got ", KindOf(k.value)));
    }
    if (is_param) {
      for (auto& [v, mark] : values) cond.values.push_back(std::move(v));
      s->when.push_back(std::move(cond));
      continue;
    }
    // A misspelt value would silently make the stage skip cells, so every
    // value must occur on its axis (or in a cell added by `include`).
    std::vector<std::string> known = p.axes[axis].file_values;
    for (const Cell& c : p.file_cells) {
      if (!Contains(known, c.values[axis])) known.push_back(c.values[axis]);
    }
    for (size_t i = 0; i < values.size(); ++i) {
      if (!Contains(known, values[i].first)) {
        return r_.Error(values[i].second, k.value.IsSequence() ? Item(k.field, i) : k.field,
                        absl::StrCat("'", values[i].first, "' is not a value of axis '", k.key,
                                     "' (values: ", ListOrNone(known), ")"));
      }
      cond.values.push_back(values[i].first);
    }
    s->when.push_back(std::move(cond));
  }
  return absl::OkStatus();
}

absl::Status StageParser::ParseTimeout(const Entry& e, int64_t* out) const {
  std::string text;
  MF_RETURN_IF_ERROR(r_.GetString(e.value, e.key_mark, e.field, &text));
  const YAML::Mark mark = e.value.Mark();
  int64_t seconds = 0;
  absl::Duration d;
  if (absl::SimpleAtoi(text, &seconds)) {
    d = absl::Seconds(seconds);
  } else if (AllOf(text, IsDigit) && !text.empty()) {
    d = absl::InfiniteDuration();  // too many digits for int64: past any bound
  } else if (!absl::ParseDuration(text, &d) || d == -absl::InfiniteDuration()) {
    return r_.Error(
        mark, e.field,
        absl::StrCat("'", text, "' is not a duration (write e.g. \"90s\", \"30m\", \"1h30m\" ",
                     "or a whole number of seconds)"));
  }
  if (d <= absl::ZeroDuration()) {
    return r_.Error(mark, e.field, absl::StrCat("must be positive, got '", text, "'"));
  }
  // absl saturates a duration past ~292 billion years to infinity: one bound
  // catches both "99999999999h" and a week and a second.
  if (d > absl::Seconds(limits::kMaxTimeoutSeconds)) {
    return r_.Error(mark, e.field,
                    absl::StrCat("'", text, "' is longer than the limit of ",
                                 absl::FormatDuration(absl::Seconds(limits::kMaxTimeoutSeconds)),
                                 " (7 days)"));
  }
  if (d % absl::Seconds(1) != absl::ZeroDuration()) {
    return r_.Error(mark, e.field,
                    absl::StrCat("must be a whole number of seconds, got '", text, "'"));
  }
  *out = absl::ToInt64Seconds(d);
  return absl::OkStatus();
}

absl::Status StageParser::ParseDockerBuild(const Entry& e, DockerBuild* out) const {
  std::vector<Entry> entries;
  MF_RETURN_IF_ERROR(r_.Entries(e.value, e.key_mark, e.field, &entries));
  MF_RETURN_IF_ERROR(r_.CheckAllowed(
      entries, e.field,
      {"context", "dockerfile", "build_args", "tags", "push", "target", "network"}));
  bool has_context = false;
  bool has_tags = false;
  for (const Entry& f : entries) {
    if (f.key == "context") {
      MF_RETURN_IF_ERROR(r_.GetText(f.value, f.key_mark, f.field, &out->context));
      has_context = true;
    } else if (f.key == "dockerfile") {
      MF_RETURN_IF_ERROR(r_.GetText(f.value, f.key_mark, f.field, &out->dockerfile));
    } else if (f.key == "build_args") {
      MF_RETURN_IF_ERROR(ParseEnv(f, "build argument", &out->build_args));
    } else if (f.key == "tags") {
      MF_RETURN_IF_ERROR(
          r_.GetTextList(f.value, f.key_mark, f.field, "a list of tags", &out->tags));
      if (out->tags.empty()) {
        return r_.Error(MarkOf(f.value, f.key_mark), f.field, "must list at least one tag");
      }
      has_tags = true;
    } else if (f.key == "push") {
      MF_RETURN_IF_ERROR(r_.GetBool(f, &out->push));
    } else if (f.key == "target") {
      MF_RETURN_IF_ERROR(r_.GetText(f.value, f.key_mark, f.field, &out->target));
    } else if (f.key == "network") {
      MF_RETURN_IF_ERROR(r_.GetText(f.value, f.key_mark, f.field, &out->network));
    }
  }
  if (!has_context) return r_.Error(e.key_mark, e.field, "missing required field 'context'");
  if (!has_tags) return r_.Error(e.key_mark, e.field, "missing required field 'tags'");
  return absl::OkStatus();
}

absl::Status StageParser::ParseDockerRun(const Entry& e, DockerRun* out) const {
  std::vector<Entry> entries;
  MF_RETURN_IF_ERROR(r_.Entries(e.value, e.key_mark, e.field, &entries));
  MF_RETURN_IF_ERROR(r_.CheckAllowed(entries, e.field,
                                     {"image", "command", "privileged", "shm_size", "devices",
                                      "mounts", "network", "collect", "user", "workdir"}));
  bool has_image = false;
  for (const Entry& f : entries) {
    if (f.key == "image") {
      MF_RETURN_IF_ERROR(r_.GetText(f.value, f.key_mark, f.field, &out->image));
      has_image = true;
    } else if (f.key == "command") {
      MF_RETURN_IF_ERROR(
          r_.GetTextList(f.value, f.key_mark, f.field, "an argv list", &out->command));
      if (out->command.empty()) {
        return r_.Error(MarkOf(f.value, f.key_mark), f.field,
                        "argv list is empty (leave 'command' out to run the image's CMD)");
      }
    } else if (f.key == "privileged") {
      MF_RETURN_IF_ERROR(r_.GetBool(f, &out->privileged));
    } else if (f.key == "shm_size") {
      MF_RETURN_IF_ERROR(r_.GetText(f.value, f.key_mark, f.field, &out->shm_size));
    } else if (f.key == "devices") {
      MF_RETURN_IF_ERROR(
          r_.GetTextList(f.value, f.key_mark, f.field, "a list of devices", &out->devices));
    } else if (f.key == "mounts") {
      MF_RETURN_IF_ERROR(r_.GetTextList(f.value, f.key_mark, f.field,
                                        "a list of SRC:DST[:ro|rw] mounts", &out->mounts));
    } else if (f.key == "network") {
      MF_RETURN_IF_ERROR(r_.GetText(f.value, f.key_mark, f.field, &out->network));
    } else if (f.key == "collect") {
      MF_RETURN_IF_ERROR(
          r_.GetTextList(f.value, f.key_mark, f.field, "a list of container paths", &out->collect));
    } else if (f.key == "user") {
      MF_RETURN_IF_ERROR(r_.GetText(f.value, f.key_mark, f.field, &out->user));
    } else if (f.key == "workdir") {
      MF_RETURN_IF_ERROR(r_.GetText(f.value, f.key_mark, f.field, &out->workdir));
    }
  }
  if (!has_image) return r_.Error(e.key_mark, e.field, "missing required field 'image'");
  return absl::OkStatus();
}

absl::Status StageParser::ParseDockerPush(const Entry& e, const Pipeline& p,
                                          DockerPush* out) const {
  std::vector<Entry> entries;
  MF_RETURN_IF_ERROR(r_.Entries(e.value, e.key_mark, e.field, &entries));
  MF_RETURN_IF_ERROR(r_.CheckAllowed(entries, e.field, {"images", "registry_auth"}));
  bool has_images = false;
  for (const Entry& f : entries) {
    if (f.key == "registry_auth") {
      MF_RETURN_IF_ERROR(r_.GetString(f.value, f.key_mark, f.field, &out->registry_auth));
      if (!Contains(p.secrets, out->registry_auth)) {
        return r_.Error(MarkOf(f.value, f.key_mark), f.field,
                        absl::StrCat("secret '", out->registry_auth,
                                     "' is not declared in the top-level 'secrets' ",
                                     Declared(p.secrets, "secrets")));
      }
      continue;
    }
    if (f.key == "images") {
      MF_RETURN_IF_ERROR(
          r_.GetTextList(f.value, f.key_mark, f.field, "a list of images", &out->images));
      if (out->images.empty()) {
        return r_.Error(MarkOf(f.value, f.key_mark), f.field, "must list at least one image");
      }
      has_images = true;
    }
  }
  if (!has_images) return r_.Error(e.key_mark, e.field, "missing required field 'images'");
  return absl::OkStatus();
}

absl::Status StageParser::ParseNeeds(const Entry& e, Stage* s) const {
  if (!e.value.IsSequence()) {
    return r_.Error(MarkOf(e.value, e.key_mark), e.field,
                    absl::StrCat("expected a list of stage names, got ", KindOf(e.value)));
  }
  const YAML::Mark list_mark = MarkOf(e.value, e.key_mark);
  for (size_t i = 0; i < e.value.size(); ++i) {
    const YAML::Node node = e.value[i];
    const std::string field = Item(e.field, i);
    Need need;
    if (node.IsScalar()) {
      MF_RETURN_IF_ERROR(r_.GetText(node, list_mark, field, &need.stage));
    } else if (node.IsMap()) {
      std::vector<Entry> keys;
      MF_RETURN_IF_ERROR(r_.Entries(node, list_mark, field, &keys));
      MF_RETURN_IF_ERROR(r_.CheckAllowed(keys, field, {"stage", "optional"}));
      bool has_stage = false;
      for (const Entry& k : keys) {
        if (k.key == "stage") {
          MF_RETURN_IF_ERROR(r_.GetText(k.value, k.key_mark, k.field, &need.stage));
          has_stage = true;
        } else if (k.key == "optional") {
          MF_RETURN_IF_ERROR(r_.GetBool(k, &need.optional));
        }
      }
      if (!has_stage) {
        return r_.Error(MarkOf(node, list_mark), field, "missing required field 'stage'");
      }
    } else {
      return r_.Error(
          MarkOf(node, list_mark), field,
          absl::StrCat("expected a stage name or a mapping {stage: NAME, optional: true}, "
                       "got ",
                       KindOf(node)));
    }
    s->needs.push_back(std::move(need));
  }
  return absl::OkStatus();
}

absl::Status StageParser::ParseStageSecrets(const Entry& e, const Pipeline& p, Stage* s) const {
  if (!e.value.IsSequence()) {
    return r_.Error(MarkOf(e.value, e.key_mark), e.field,
                    absl::StrCat("expected a list of secret names, got ", KindOf(e.value)));
  }
  for (size_t i = 0; i < e.value.size(); ++i) {
    const std::string field = Item(e.field, i);
    std::string name;
    MF_RETURN_IF_ERROR(r_.GetString(e.value[i], e.value.Mark(), field, &name));
    if (!Contains(p.secrets, name)) {
      return r_.Error(
          e.value[i].Mark(), field,
          absl::StrCat("secret '", name, "' is not declared in the top-level 'secrets' ",
                       Declared(p.secrets, "secrets")));
    }
    if (Contains(s->secrets, name)) {
      return r_.Error(e.value[i].Mark(), field, absl::StrCat("duplicate secret '", name, "'"));
    }
    s->secrets.push_back(std::move(name));
  }
  return absl::OkStatus();
}

// A whole number, or a string with ${...} checked per cell once substituted.
absl::Status StageParser::ParseGpus(const Entry& e, Stage* s) const {
  MF_RETURN_IF_ERROR(r_.GetText(e.value, e.key_mark, e.field, &s->gpus));
  s->has_gpus = true;
  const std::string& text = s->gpus.value;
  int32_t n = 0;
  if (text.find("${") != std::string::npos || ParseGpuCount(text, &n)) return absl::OkStatus();
  if (AllOf(text, IsDigit) || absl::StartsWith(text, "-")) {
    return r_.Error(s->gpus.mark, e.field, GpuCountError(text));
  }
  return r_.Error(s->gpus.mark, e.field,
                  absl::StrCat("expected a whole number of GPUs (0 or more) or a string with "
                               "'${...}' that gives one, got '",
                               text, "'"));
}

absl::Status StageParser::ParseStage(const YAML::Node& node, const YAML::Mark& fallback,
                                     size_t index, const Pipeline& p, Stage* s) const {
  s->field = Item("stages", index);
  s->mark = MarkOf(node, fallback);
  std::vector<Entry> entries;
  MF_RETURN_IF_ERROR(r_.Entries(node, fallback, s->field, &entries));
  MF_RETURN_IF_ERROR(r_.CheckAllowed(
      entries, s->field,
      {"name", "when", "needs", "labels", "exec", "shell", "docker_build", "docker_run",
       "docker_push", "env", "timeout", "retries", "secrets", "gpus", "collect",
       "suites", "gpu_arch"}));
  bool has_name = false;
  std::vector<const Entry*> kinds;  // in file order
  for (const Entry& e : entries) {
    if (e.key == "name") {
      MF_RETURN_IF_ERROR(r_.GetString(e.value, e.key_mark, e.field, &s->name));
      if (s->name.size() > limits::kMaxNameBytes) {
        return r_.Error(MarkOf(e.value, e.key_mark), e.field,
                        absl::StrCat("stage name is ", s->name.size(), " bytes long; the limit is ",
                                     limits::kMaxNameBytes));
      }
      if (!AllOf(s->name, IsNameChar)) {
        return r_.Error(
            MarkOf(e.value, e.key_mark), e.field,
            absl::StrCat("stage name '", s->name,
                         "' must be non-empty and hold only letters, digits, '_' and '-'"));
      }
      has_name = true;
    } else if (e.key == "when") {
      MF_RETURN_IF_ERROR(ParseWhen(e, p, s));
    } else if (e.key == "needs") {
      MF_RETURN_IF_ERROR(ParseNeeds(e, s));
    } else if (e.key == "secrets") {
      MF_RETURN_IF_ERROR(ParseStageSecrets(e, p, s));
    } else if (e.key == "gpus") {
      MF_RETURN_IF_ERROR(ParseGpus(e, s));
    } else if (e.key == "labels") {
      MF_RETURN_IF_ERROR(
          r_.GetTextList(e.value, e.key_mark, e.field, "a list of labels", &s->labels));
      if (s->labels.size() > limits::kMaxLabels) {
        return r_.Error(MarkOf(e.value, e.key_mark), e.field,
                        absl::StrCat(s->labels.size(), " labels; the limit is ",
                                     limits::kMaxLabels));
      }
    } else if (e.key == "exec") {
      kinds.push_back(&e);
      s->kind = Kind::kExec;
      MF_RETURN_IF_ERROR(r_.GetTextList(e.value, e.key_mark, e.field,
                                        "an argv list (use 'shell' for a script)", &s->argv));
      if (s->argv.empty()) return r_.Error(e.value.Mark(), e.field, "argv list is empty");
      if (s->argv[0].value.empty())
        return r_.Error(s->argv[0].mark, s->argv[0].field, "program is empty");
    } else if (e.key == "shell") {
      kinds.push_back(&e);
      s->kind = Kind::kExec;
      Text script;
      MF_RETURN_IF_ERROR(r_.GetText(e.value, e.key_mark, e.field, &script));
      if (absl::StripAsciiWhitespace(script.value).empty()) {
        return r_.Error(script.mark, e.field, "script is empty");
      }
      s->argv.push_back(std::move(script));
      s->shell = true;
    } else if (e.key == "docker_build") {
      kinds.push_back(&e);
      s->kind = Kind::kDockerBuild;
      MF_RETURN_IF_ERROR(ParseDockerBuild(e, &s->docker_build));
    } else if (e.key == "docker_run") {
      kinds.push_back(&e);
      s->kind = Kind::kDockerRun;
      MF_RETURN_IF_ERROR(ParseDockerRun(e, &s->docker_run));
    } else if (e.key == "docker_push") {
      kinds.push_back(&e);
      s->kind = Kind::kDockerPush;
      MF_RETURN_IF_ERROR(ParseDockerPush(e, p, &s->docker_push));
    } else if (e.key == "collect") {
      MF_RETURN_IF_ERROR(r_.GetTextList(e.value, e.key_mark, e.field,
                                        "a list of paths relative to the task's work dir",
                                        &s->collect));
      s->collect_mark = e.key_mark;
    } else if (e.key == "env") {
      MF_RETURN_IF_ERROR(ParseEnv(e, "environment variable", &s->env));
    } else if (e.key == "suites") {
      MF_RETURN_IF_ERROR(ParseSuites(r_, e, &s->suites));
    } else if (e.key == "gpu_arch") {
      MF_RETURN_IF_ERROR(r_.GetText(e.value, e.key_mark, e.field, &s->gpu_arch));
      s->has_gpu_arch = true;
    } else if (e.key == "timeout") {
      MF_RETURN_IF_ERROR(ParseTimeout(e, &s->timeout_seconds));
    } else if (e.key == "retries") {
      std::string text;
      MF_RETURN_IF_ERROR(r_.GetString(e.value, e.key_mark, e.field, &text));
      if (!absl::SimpleAtoi(text, &s->retries)) {
        return r_.Error(e.value.Mark(), e.field,
                        absl::StrCat("expected a whole number, got '", text, "'"));
      }
      if (s->retries < 0) {
        return r_.Error(e.value.Mark(), e.field,
                        absl::StrCat("must be 0 or more, got ", s->retries));
      }
      if (s->retries > limits::kMaxRetries) {
        return r_.Error(e.value.Mark(), e.field,
                        absl::StrCat(s->retries, " retries is more than the limit of ",
                                     limits::kMaxRetries));
      }
    }
  }
  if (!has_name) return r_.Error(s->mark, s->field, "missing required field 'name'");
  // The registry credentials travel as one of the stage's secrets.
  const std::string& auth = s->docker_push.registry_auth;
  if (!auth.empty() && !Contains(s->secrets, auth)) s->secrets.push_back(auth);
  if (kinds.size() > 1) {
    return r_.Error(
        kinds[1]->key_mark, s->field,
        absl::StrCat("stage '", s->name, "' has both '", kinds[0]->key, "' and '", kinds[1]->key,
                     "'; give exactly one of exec, shell, docker_build, docker_run, "
                     "docker_push"));
  }
  if (!s->collect.empty() && !kinds.empty() && s->kind != Kind::kExec) {
    return r_.Error(s->collect_mark, s->field,
                    absl::StrCat("'collect' beside '", kinds[0]->key,
                                 "' is for exec and shell stages; a docker_run stage lists "
                                 "container paths under docker_run.collect"));
  }
  if (!s->suites.empty() && !kinds.empty() && s->kind != Kind::kDockerRun) {
    return r_.Error(s->suites.front().mark, s->suites.front().field,
                    absl::StrCat("stage '", s->name, "' has 'suites', which only a docker_run "
                                 "stage can have (their files are container paths)"));
  }
  if (kinds.empty()) {
    return r_.Error(
        s->mark, s->field,
        absl::StrCat("stage '", s->name,
                     "' needs one of 'exec' (an argv list), 'shell' (a /bin/sh script), "
                     "'docker_build', 'docker_run' or 'docker_push'"));
  }
  return absl::OkStatus();
}

absl::Status ExpandStageRun(const Substituter& sub, const Stage& st, const std::vector<Var>& vars,
                            absl::string_view where, v1::StageSpec* run) {
  auto subst = [&](const Text& t) { return sub.Substitute(t, vars, where); };
  switch (st.kind) {
    case Kind::kExec: {
      v1::ExecStage& exec = *run->mutable_exec();
      if (st.shell) {
        // A script: values are data, quoted for /bin/sh (docs/pipeline.md).
        MF_ASSIGN_OR_RETURN(*exec.add_argv(), sub.SubstituteShell(st.argv.at(0), vars, where));
      } else {
        // argv elements reach execve as they are: nothing to quote.
        MF_RETURN_IF_ERROR(sub.SubstituteAll(st.argv, vars, where, false, exec.mutable_argv()));
      }
      exec.set_shell(st.shell);
      for (const Text& c : st.collect) {
        MF_ASSIGN_OR_RETURN(std::string path, subst(c));
        if (absl::Status valid = ValidateWorkDirPath(path); !valid.ok()) {
          return sub.Invalid(c, where, valid.message());
        }
        exec.add_collect(std::move(path));
      }
      return absl::OkStatus();
    }
    case Kind::kDockerBuild: {
      const DockerBuild& in = st.docker_build;
      v1::DockerBuildStage& out = *run->mutable_docker_build();
      MF_ASSIGN_OR_RETURN(*out.mutable_context(), subst(in.context));
      if (out.context().empty()) return sub.Invalid(in.context, where, "must not be empty");
      // `input:NAME` (issue 17): a tree the job was submitted with, which the
      // agent fetches by digest; the coordinator checks the job carries it.
      if (absl::StartsWith(out.context(), kContextInputPrefix)) {
        std::string name = out.context().substr(kContextInputPrefix.size());
        if (absl::Status valid = ValidateInputName(name); !valid.ok()) {
          return sub.Invalid(in.context, where, valid.message());
        }
        out.set_context_input(std::move(name));
        out.clear_context();
      }
      MF_ASSIGN_OR_RETURN(*out.mutable_dockerfile(), subst(in.dockerfile));
      for (const EnvVar& arg : in.build_args) {
        MF_ASSIGN_OR_RETURN((*out.mutable_build_args())[arg.name], subst(arg.value));
      }
      MF_RETURN_IF_ERROR(sub.SubstituteAll(in.tags, vars, where, true, out.mutable_tags()));
      out.set_push(in.push);
      MF_ASSIGN_OR_RETURN(*out.mutable_target(), subst(in.target));
      MF_ASSIGN_OR_RETURN(*out.mutable_network(), subst(in.network));
      return absl::OkStatus();
    }
    case Kind::kDockerRun: {
      const DockerRun& in = st.docker_run;
      v1::DockerRunStage& out = *run->mutable_docker_run();
      MF_ASSIGN_OR_RETURN(*out.mutable_image(), subst(in.image));
      if (out.image().empty()) return sub.Invalid(in.image, where, "must not be empty");
      MF_RETURN_IF_ERROR(sub.SubstituteAll(in.command, vars, where, false, out.mutable_command()));
      out.set_privileged(in.privileged);
      MF_ASSIGN_OR_RETURN(*out.mutable_shm_size(), subst(in.shm_size));
      if (!out.shm_size().empty()) {
        if (absl::Status valid = ValidateShmSize(out.shm_size()); !valid.ok()) {
          return sub.Invalid(in.shm_size, where, valid.message());
        }
      }
      MF_RETURN_IF_ERROR(sub.SubstituteAll(in.devices, vars, where, true, out.mutable_devices()));
      for (const Text& m : in.mounts) {
        MF_ASSIGN_OR_RETURN(std::string spec, subst(m));
        if (absl::Status valid = ParseMount(spec, out.add_mounts()); !valid.ok()) {
          return sub.Invalid(m, where, valid.message());
        }
      }
      MF_ASSIGN_OR_RETURN(*out.mutable_network(), subst(in.network));
      for (const Text& c : in.collect) {
        MF_ASSIGN_OR_RETURN(std::string path, subst(c));
        if (!IsAbsolute(path)) {
          return sub.Invalid(c, where, absl::StrCat("'", path, "' is not an absolute path"));
        }
        out.add_collect(std::move(path));
      }
      MF_ASSIGN_OR_RETURN(*out.mutable_user(), subst(in.user));
      MF_ASSIGN_OR_RETURN(*out.mutable_workdir(), subst(in.workdir));
      if (!out.workdir().empty() && !IsAbsolute(out.workdir())) {
        return sub.Invalid(in.workdir, where,
                           absl::StrCat("'", out.workdir(), "' is not an absolute path"));
      }
      return absl::OkStatus();
    }
    case Kind::kDockerPush: {
      v1::DockerPushStage& out = *run->mutable_docker_push();
      out.set_registry_auth(st.docker_push.registry_auth);
      return sub.SubstituteAll(st.docker_push.images, vars, where, true, out.mutable_images());
    }
  }
  return absl::OkStatus();  // unreachable: every Kind is handled above
}

absl::Status ValidateInputName(absl::string_view name) {
  bool ok = !name.empty() && name.size() <= 64 && absl::ascii_isalnum(name[0]);
  for (char c : name) ok = ok && (absl::ascii_isalnum(c) || c == '_' || c == '.' || c == '-');
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "input name '", name, "' must be 1 to 64 letters, digits, '_', '.' or '-', "
      "starting with a letter or digit"));
}

}  // namespace musafarm::pipeline
