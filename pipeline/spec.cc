#include "pipeline/spec.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/bounded_text.h"
#include "common/duration_text.h"
#include "common/limits.h"
#include "common/secret_forms.h"
#include "common/status_macros.h"
#include "pipeline/cell_values.h"
#include "pipeline/dag.h"
#include "pipeline/inputs.h"
#include "pipeline/matrix.h"
#include "pipeline/model.h"
#include "pipeline/options.h"
#include "pipeline/stages.h"
#include "pipeline/substitute.h"
#include "pipeline/yaml_reader.h"
#include "yaml-cpp/yaml.h"

// The compiler's driver: the top level of the file (name, params, secrets,
// env, and the order in which the parts read it), then the parts:
//   yaml_reader  YAML nodes with positions; FILE:LINE:COL errors
//   matrix       axes, exclude, include, --axis -> cells
//   stages       one `stages` entry -> Stage; per-cell checks of its kind
//   substitute   ${name}, ${name:-default}, ${matrix.name}, $${
//   dag          Pipeline -> Job: tasks per cell, needs, order, cycles
// yaml-cpp reports errors by throwing. Every exception it can raise is caught in
// ParseAndExpand and turned into a Status, so none crosses this library.

namespace musafarm::pipeline {
namespace {

std::string BaseName(absl::string_view file) {
  const size_t slash = file.find_last_of('/');
  if (slash != absl::string_view::npos) file.remove_prefix(slash + 1);
  const size_t dot = file.rfind('.');
  if (dot != absl::string_view::npos && dot > 0) file = file.substr(0, dot);
  return std::string(file);
}

// Reads the top level into a Pipeline, handing each part its entries.
class TopLevel {
 public:
  explicit TopLevel(const YamlReader& r) : r_(r) {}
  absl::Status Parse(const YAML::Node& root, const ExpandOptions& options, Pipeline* p) const;

 private:
  absl::Status ParseParams(const Entry& e, Pipeline* p) const;
  absl::Status ParseSecrets(const Entry& e, Pipeline* p) const;
  absl::Status ParseSecretDeclaration(const YAML::Node& node, const YAML::Mark& fallback,
                                      const std::string& field, std::string* name,
                                      std::vector<std::string>* forms) const;
  absl::Status ApplyOptions(const ExpandOptions& options, Pipeline* p) const;

  const YamlReader& r_;
};

absl::Status TopLevel::ParseParams(const Entry& e, Pipeline* p) const {
  std::vector<Entry> entries;
  MF_RETURN_IF_ERROR(r_.Entries(e.value, e.key_mark, e.field, &entries));
  for (const Entry& k : entries) {
    if (k.key.find('@') != std::string::npos) {  // NAME@AXIS=VALUE: a per-cell default
      MF_RETURN_IF_ERROR(AddFileCellParam(r_, k, p));
      continue;
    }
    if (!IsEnvName(k.key)) {
      return r_.Error(k.key_mark, k.field,
                      absl::StrCat("'", k.key, "' is not a valid param name ",
                                   "(letters, digits and '_', not starting with a digit)"));
    }
    // One name space for ${...}: a param may not shadow a cell's variable.
    if (AxisIndex(*p, k.key) >= 0) {
      return r_.Error(k.key_mark, k.field,
                      absl::StrCat("param '", k.key, "' has the name of a matrix axis, so '${",
                                   k.key, "}' would be ambiguous; rename one of them"));
    }
    if (Contains(p->include_vars, k.key)) {
      return r_.Error(
          k.key_mark, k.field,
          absl::StrCat("param '", k.key,
                       "' has the name of a variable that matrix.include introduces, so "
                       "'${",
                       k.key, "}' would be ambiguous; rename one of them"));
    }
    if (!k.value.IsScalar()) {
      return r_.Error(MarkOf(k.value, k.key_mark), k.field,
                      absl::StrCat("expected a default value (a string), got ", KindOf(k.value),
                                   k.value.IsNull() ? " (write \"\" for an empty default)" : ""));
    }
    p->params.push_back({k.key, k.value.Scalar()});
  }
  return absl::OkStatus();
}

absl::Status TopLevel::ParseSecrets(const Entry& e, Pipeline* p) const {
  if (!e.value.IsSequence()) {
    return r_.Error(MarkOf(e.value, e.key_mark), e.field,
                    absl::StrCat("expected a list of secret names, got ", KindOf(e.value)));
  }
  for (size_t i = 0; i < e.value.size(); ++i) {
    std::string field = Item(e.field, i);
    std::string name;
    std::vector<std::string> forms;
    if (e.value[i].IsMap()) {
      // {name: X, forms: [base64]}: a secret the agent also masks in those forms.
      MF_RETURN_IF_ERROR(ParseSecretDeclaration(e.value[i], e.value.Mark(), field, &name, &forms));
      field = absl::StrCat(field, ".name");
    } else {
      MF_RETURN_IF_ERROR(r_.GetString(e.value[i], e.value.Mark(), field, &name));
    }
    if (!IsEnvName(name)) {
      return r_.Error(e.value[i].Mark(), field,
                      absl::StrCat("'", name, "' is not a valid secret name ",
                                   "(letters, digits and '_', not starting with a digit)"));
    }
    if (Contains(p->secrets, name)) {
      return r_.Error(e.value[i].Mark(), field, absl::StrCat("duplicate secret '", name, "'"));
    }
    for (const std::string& other : p->secrets) {
      // Docker stages get a secret as /run/secrets/<name lowercased> and
      // BuildKit id <name lowercased>: two names may not differ by case alone.
      if (absl::AsciiStrToLower(other) == absl::AsciiStrToLower(name)) {
        return r_.Error(e.value[i].Mark(), field,
                        absl::StrCat("secret '", name, "' differs from '", other,
                                     "' only by case; Docker stages see both as /run/secrets/",
                                     absl::AsciiStrToLower(name)));
      }
    }
    if (!forms.empty()) p->secret_forms[name] = std::move(forms);
    p->secrets.push_back(std::move(name));
  }
  return absl::OkStatus();
}

absl::Status TopLevel::ParseSecretDeclaration(const YAML::Node& node, const YAML::Mark& fallback,
                                              const std::string& field, std::string* name,
                                              std::vector<std::string>* forms) const {
  std::vector<Entry> entries;
  MF_RETURN_IF_ERROR(r_.Entries(node, fallback, field, &entries));
  MF_RETURN_IF_ERROR(r_.CheckAllowed(entries, field, {"name", "forms"}));
  bool has_name = false;
  for (const Entry& f : entries) {
    if (f.key == "name") {
      MF_RETURN_IF_ERROR(r_.GetString(f.value, f.key_mark, f.field, name));
      has_name = true;
      continue;
    }
    if (!f.value.IsSequence()) {
      return r_.Error(MarkOf(f.value, f.key_mark), f.field,
                      absl::StrCat("expected a list of forms, got ", KindOf(f.value)));
    }
    for (size_t j = 0; j < f.value.size(); ++j) {
      std::string form;
      MF_RETURN_IF_ERROR(r_.GetString(f.value[j], f.value.Mark(), Item(f.field, j), &form));
      if (absl::Status known = CheckSecretForm(form); !known.ok()) {
        return r_.Error(f.value[j].Mark(), Item(f.field, j), known.message());
      }
      if (!Contains(*forms, form)) forms->push_back(std::move(form));
    }
  }
  if (!has_name) return r_.Error(node.Mark(), field, "missing required field 'name'");
  return absl::OkStatus();
}

// ExpandOptions::params and ::secrets, once the file's are known.
absl::Status TopLevel::ApplyOptions(const ExpandOptions& options, Pipeline* p) const {
  for (const auto& [name, value] : options.params) {
    if (name.find('@') != std::string::npos) {  // a per-cell value, cell_values.h
      MF_RETURN_IF_ERROR(AddCellParam(r_, name, value, p));
      continue;
    }
    Param* param = nullptr;
    for (Param& have : p->params) {
      if (have.name == name) param = &have;
    }
    if (param == nullptr) {
      return r_.OptionError("--param", name,
                            absl::StrCat("not declared in the pipeline's 'params' ",
                                         Declared(ParamNames(*p), "params")));
    }
    param->value = value;
    param->given = true;
  }
  for (const std::string& name : options.secrets) {
    if (name.find('@') != std::string::npos) {  // a per-cell value, cell_values.h
      MF_RETURN_IF_ERROR(AddCellSecret(r_, name, p));
      if (!Contains(p->given_secrets, name)) p->given_secrets.push_back(name);
      continue;
    }
    if (!Contains(p->secrets, name)) {
      return r_.OptionError("--secret", name,
                            absl::StrCat("not declared in the pipeline's 'secrets' ",
                                         Declared(p->secrets, "secrets")));
    }
    if (!Contains(p->given_secrets, name)) p->given_secrets.push_back(name);
  }
  std::sort(p->given_secrets.begin(), p->given_secrets.end());
  return absl::OkStatus();
}

absl::Status TopLevel::Parse(const YAML::Node& root, const ExpandOptions& options,
                             Pipeline* p) const {
  if (!root.IsMap()) {
    return r_.Error(root.Mark(), "pipeline",
                    absl::StrCat("expected a mapping with a 'stages' list, got ", KindOf(root)));
  }
  std::vector<Entry> entries;
  MF_RETURN_IF_ERROR(r_.Entries(root, root.Mark(), "", &entries));
  MF_RETURN_IF_ERROR(r_.CheckAllowed(
      entries, "",
      {"name", "matrix", "params", "secrets", "env", "stages", "options", "retention", "inputs"}));
  const Entry* stages = nullptr;
  // The matrix comes first wherever it is written: params and `when` need its
  // axes. Params and secrets come before the stages, which refer to them.
  bool has_matrix = false;
  for (const Entry& e : entries) {
    if (e.key == "matrix") {
      MF_RETURN_IF_ERROR(MatrixParser(r_).ParseMatrix(e, options, p));
      has_matrix = true;
    }
  }
  if (!has_matrix) {
    MF_RETURN_IF_ERROR(MatrixParser(r_).NoMatrix(options, p));
  }
  for (const Entry& e : entries) {
    if (e.key == "params") {
      MF_RETURN_IF_ERROR(ParseParams(e, p));
    } else if (e.key == "secrets") {
      MF_RETURN_IF_ERROR(ParseSecrets(e, p));
    } else if (e.key == "name") {
      MF_RETURN_IF_ERROR(r_.GetString(e.value, e.key_mark, e.field, &p->name));
      if (p->name.empty()) return r_.Error(e.value.Mark(), e.field, "must not be empty");
      if (absl::Status ok = CheckName("job name", p->name, limits::kMaxNameBytes); !ok.ok()) {
        return r_.Error(e.value.Mark(), e.field, ok.message());
      }
    } else if (e.key == "retention") {
      // How long the coordinator keeps this pipeline's finished jobs, in
      // place of its --retain (docs/architecture.md, "Retention").
      std::string text;
      MF_RETURN_IF_ERROR(r_.GetString(e.value, e.key_mark, e.field, &text));
      absl::Duration d;
      if (!ParseDurationText(text, &d) || d < absl::Seconds(1) || d == absl::InfiniteDuration()) {
        return r_.Error(e.value.Mark(), e.field,
                        absl::StrCat("'", text,
                                     "' is not a retention age (write e.g. \"30d\", \"12h\", "
                                     "\"90m\"; at least 1s)"));
      }
      p->retention_seconds = absl::ToInt64Seconds(d);
    } else if (e.key == "env") {
      MF_RETURN_IF_ERROR(StageParser(r_).ParseEnv(e, "environment variable", &p->env));
    } else if (e.key == "inputs") {
      MF_RETURN_IF_ERROR(ParseInputs(r_, e, p));
    } else if (e.key == "stages") {
      stages = &e;
    }
  }
  // Options name params, axes and secrets, so they come after all three.
  for (const Entry& e : entries) {
    if (e.key == "options") MF_RETURN_IF_ERROR(OptionsParser(r_).Parse(e, p));
  }
  if (stages == nullptr) {
    return r_.Error(root.Mark(), "stages", "missing: a pipeline needs a non-empty 'stages' list");
  }
  const YAML::Node& list = stages->value;
  if (!list.IsSequence()) {
    return r_.Error(MarkOf(list, stages->key_mark), stages->field,
                    absl::StrCat("expected a list of stages, got ", KindOf(list)));
  }
  if (list.size() == 0) return r_.Error(list.Mark(), stages->field, "must list at least one stage");
  p->stages_mark = stages->key_mark;
  std::map<std::string, int> first_line;
  for (size_t i = 0; i < list.size(); ++i) {
    Stage s;
    MF_RETURN_IF_ERROR(StageParser(r_).ParseStage(list[i], list.Mark(), i, *p, &s));
    auto [it, inserted] = first_line.emplace(s.name, s.mark.line + 1);
    if (!inserted) {
      return r_.Error(s.mark, Child(s.field, "name"),
                      absl::StrCat("duplicate stage name '", s.name, "' (first defined on line ",
                                   it->second, ")"));
    }
    p->stages.push_back(std::move(s));
  }
  return ApplyOptions(options, p);
}

}  // namespace

absl::StatusOr<PipelineOptions> DeclaredOptions(absl::string_view yaml, absl::string_view file) {
  const YamlReader reader(yaml, file);
  try {
    MF_ASSIGN_OR_RETURN(const YAML::Node root, reader.LoadDocument());
    Pipeline p;
    MF_RETURN_IF_ERROR(TopLevel(reader).Parse(root, ExpandOptions{}, &p));
    PipelineOptions out{std::move(p.options), AxisNames(p), {}, std::move(p.inputs)};
    for (const Axis& a : p.axes) out.axis_values[a.name] = a.file_values;
    return out;
  } catch (const YAML::Exception& e) {
    return reader.SyntaxError(e);
  }
}

absl::StatusOr<v1::Job> ParseAndExpand(absl::string_view yaml, absl::string_view file,
                                       absl::string_view job_id, absl::string_view name_override) {
  ExpandOptions options;
  options.name_override = std::string(name_override);
  return ParseAndExpand(yaml, file, job_id, options);
}

absl::StatusOr<v1::Job> ParseAndExpand(absl::string_view yaml, absl::string_view file,
                                       absl::string_view job_id, const ExpandOptions& options) {
  return ParseAndExpand(yaml, file, job_id, options, nullptr);
}

absl::StatusOr<v1::Job> ParseAndExpand(absl::string_view yaml, absl::string_view file,
                                       absl::string_view job_id, const ExpandOptions& options,
                                       std::vector<InputUse>* uses) {
  const YamlReader reader(yaml, file);
  try {
    MF_ASSIGN_OR_RETURN(const YAML::Node root, reader.LoadDocument());
    Pipeline p;
    p.max_gpus_per_stage = options.max_gpus_per_stage;
    MF_RETURN_IF_ERROR(TopLevel(reader).Parse(root, options, &p));
    if (absl::Status ok = CheckName("job name (--job-name)", options.name_override, limits::kMaxNameBytes);
        !ok.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": ", ok.message()));
    }
    std::string name = options.name_override;
    if (name.empty()) name = p.name;
    if (name.empty()) name = BaseName(file);
    std::vector<InputUse> found;
    MF_ASSIGN_OR_RETURN(v1::Job job, BuildJob(Substituter(reader, p.secrets), p, job_id, name,
                                              options.replaced_inputs, &found));
    if (uses != nullptr) *uses = std::move(found);
    return job;
  } catch (const YAML::Exception& e) {
    return reader.SyntaxError(e);
  }
}

}  // namespace musafarm::pipeline
