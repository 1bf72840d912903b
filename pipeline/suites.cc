#include "pipeline/suites.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/limits.h"
#include "common/status_macros.h"

namespace musafarm::pipeline {
namespace {

// More suites than this in one stage is a mistake, not a test plan.
constexpr size_t kMaxSuites = 64;

}  // namespace

absl::Status ParseSuites(const YamlReader& r, const Entry& e, std::vector<Suite>* out) {
  if (!e.value.IsSequence()) {
    return r.Error(MarkOf(e.value, e.key_mark), e.field,
                   absl::StrCat("expected a list of suites ({name, output, exit_status}), got ",
                                KindOf(e.value)));
  }
  if (e.value.size() > kMaxSuites) {
    return r.Error(MarkOf(e.value, e.key_mark), e.field,
                   absl::StrCat(e.value.size(), " suites; the limit is ", kMaxSuites));
  }
  const YAML::Mark list_mark = MarkOf(e.value, e.key_mark);
  for (size_t i = 0; i < e.value.size(); ++i) {
    const YAML::Node node = e.value[i];
    const std::string field = Item(e.field, i);
    if (!node.IsMap()) {
      return r.Error(MarkOf(node, list_mark), field,
                     absl::StrCat("expected a mapping {name, output, exit_status, junit}, got ",
                                  KindOf(node)));
    }
    std::vector<Entry> keys;
    MF_RETURN_IF_ERROR(r.Entries(node, list_mark, field, &keys));
    MF_RETURN_IF_ERROR(r.CheckAllowed(keys, field, {"name", "output", "exit_status", "junit"}));
    Suite suite;
    suite.field = field;
    suite.mark = MarkOf(node, list_mark);
    bool has_output = false;
    bool has_status = false;
    for (const Entry& k : keys) {
      if (k.key == "name") {
        MF_RETURN_IF_ERROR(r.GetString(k.value, k.key_mark, k.field, &suite.name));
        if (suite.name.empty() || suite.name.size() > limits::kMaxNameBytes ||
            !AllOf(suite.name, IsNameChar)) {
          return r.Error(MarkOf(k.value, k.key_mark), k.field,
                         absl::StrCat("suite name '", suite.name,
                                      "' must be 1 to ", limits::kMaxNameBytes,
                                      " letters, digits, '_' or '-'"));
        }
      } else if (k.key == "output") {
        MF_RETURN_IF_ERROR(r.GetText(k.value, k.key_mark, k.field, &suite.output));
        has_output = true;
      } else if (k.key == "exit_status") {
        MF_RETURN_IF_ERROR(r.GetText(k.value, k.key_mark, k.field, &suite.exit_status));
        has_status = true;
      } else if (k.key == "junit") {
        MF_RETURN_IF_ERROR(r.GetText(k.value, k.key_mark, k.field, &suite.junit));
      }
    }
    if (suite.name.empty()) return r.Error(suite.mark, field, "missing required field 'name'");
    // Without both, a crash or a missing file could not be told from a pass.
    if (!has_output) return r.Error(suite.mark, field, "missing required field 'output'");
    if (!has_status) return r.Error(suite.mark, field, "missing required field 'exit_status'");
    for (const Suite& other : *out) {
      if (other.name == suite.name) {
        return r.Error(suite.mark, field,
                       absl::StrCat("suite '", suite.name, "' is declared twice"));
      }
    }
    out->push_back(std::move(suite));
  }
  return absl::OkStatus();
}

absl::Status ExpandSuites(const Substituter& sub, const Stage& st, const std::vector<Var>& vars,
                          absl::string_view where, v1::StageSpec* run) {
  if (st.suites.empty()) return absl::OkStatus();
  v1::DockerRunStage* docker_run = run->mutable_docker_run();
  auto path = [&](const Text& t, bool optional, std::string* out) -> absl::Status {
    MF_ASSIGN_OR_RETURN(*out, sub.Substitute(t, vars, where));
    if (out->empty() && optional) return absl::OkStatus();
    if (!IsAbsolute(*out)) {
      return sub.Invalid(t, where, absl::StrCat("'", *out, "' is not an absolute path"));
    }
    const auto& collect = docker_run->collect();
    if (std::find(collect.begin(), collect.end(), *out) == collect.end()) {
      docker_run->add_collect(*out);
    }
    return absl::OkStatus();
  };
  for (const Suite& in : st.suites) {
    v1::TestSuite& out = *run->add_suites();
    out.set_name(in.name);
    MF_RETURN_IF_ERROR(path(in.output, false, out.mutable_output()));
    MF_RETURN_IF_ERROR(path(in.exit_status, false, out.mutable_exit_status()));
    MF_RETURN_IF_ERROR(path(in.junit, true, out.mutable_junit()));
  }
  return absl::OkStatus();
}

}  // namespace musafarm::pipeline
