#include "coordinator/agent_policy.h"

#include <fnmatch.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/labels.h"
#include "common/stage_kind.h"
#include "common/status_macros.h"
#include "pipeline/yaml_reader.h"

namespace musafarm::coordinator {
namespace {

using pipeline::Entry;
using pipeline::YamlReader;

bool Matches(const std::string& pattern, const std::string& text) {
  return ::fnmatch(pattern.c_str(), text.c_str(), 0) == 0;
}

bool HasKind(const Grants& grants, v1::StageKind kind) {
  for (v1::StageKind k : grants.kinds) {
    if (k == kind) return true;
  }
  return false;
}

// A list of strings under `e`: YAML's flow or block list.
absl::Status GetStrings(const YamlReader& reader, const Entry& e, std::vector<Entry>* out) {
  if (!e.value.IsSequence()) {
    return reader.Error(pipeline::MarkOf(e.value, e.key_mark), e.field,
                        absl::StrCat("expected a list of strings, got ", pipeline::KindOf(e.value)));
  }
  for (size_t i = 0; i < e.value.size(); ++i) {
    Entry item{"", pipeline::MarkOf(e.value[i], e.key_mark), e.value[i],
               pipeline::Item(e.field, i)};
    std::string text;
    MF_RETURN_IF_ERROR(reader.GetString(item.value, item.key_mark, item.field, &text));
    if (text.empty()) return reader.Error(item.key_mark, item.field, "must not be empty");
    item.key = std::move(text);
    out->push_back(std::move(item));
  }
  return absl::OkStatus();
}

absl::Status ParseKinds(const YamlReader& reader, const Entry& e, Grants* g) {
  std::vector<Entry> kinds;
  MF_RETURN_IF_ERROR(GetStrings(reader, e, &kinds));
  g->kinds.clear();
  g->shell = false;
  for (const Entry& k : kinds) {
    if (k.key == "shell") {
      g->shell = true;
      continue;
    }
    const v1::StageKind kind = StageKindFromName(k.key);
    if (kind == v1::STAGE_KIND_UNSPECIFIED) {
      return reader.Error(k.key_mark, k.field,
                          absl::StrCat("unknown stage kind '", k.key,
                                       "' (known: exec, shell, docker_build, docker_run, "
                                       "docker_push)"));
    }
    if (!HasKind(*g, kind)) g->kinds.push_back(kind);
  }
  return absl::OkStatus();
}

}  // namespace

TrustNeeds TrustNeedsOf(const v1::StageSpec& run) {
  TrustNeeds needs;
  needs.shell = run.has_exec() && run.exec().shell();
  needs.privileged = run.has_docker_run() && run.docker_run().privileged();
  needs.host_mounts = run.has_docker_run() && run.docker_run().mounts_size() > 0;
  // registry_auth names one of the stage's secrets already; counted on its
  // own too, so that a credential never rides past the policy.
  needs.secrets = run.secrets_size() > 0 ||
                  (run.has_docker_push() && !run.docker_push().registry_auth().empty());
  return needs;
}

std::vector<v1::StageKind> DefaultKinds() {
  return {v1::STAGE_KIND_EXEC, v1::STAGE_KIND_DOCKER_BUILD, v1::STAGE_KIND_DOCKER_RUN,
          v1::STAGE_KIND_DOCKER_PUSH};
}

bool Permits(const Grants& grants, v1::StageKind kind, const TrustNeeds& needs, std::string* why) {
  std::vector<std::string> missing;
  if (!HasKind(grants, kind)) missing.push_back(absl::StrCat("kind ", StageKindName(kind)));
  if (needs.shell && !grants.shell) missing.push_back("kind shell");
  if (needs.privileged && !grants.privileged) missing.push_back("privileged");
  if (needs.host_mounts && !grants.host_mounts) missing.push_back("host_mounts");
  if (needs.secrets && !grants.secrets) missing.push_back("secrets");
  if (why != nullptr) *why = absl::StrJoin(missing, ", ");
  return missing.empty();
}

std::vector<std::string> TrustedLabels(const Grants& grants,
                                       const std::vector<std::string>& declared) {
  std::vector<std::string> trusted;
  for (const std::string& label : declared) {
    for (const std::string& pattern : grants.labels) {
      const bool by_key = pattern.find('=') == std::string::npos && Matches(pattern, LabelKey(label));
      if (by_key || Matches(pattern, label)) {
        trusted.push_back(label);
        break;
      }
    }
  }
  return trusted;
}

v1::AgentGrants GrantsProto(const Grants& grants) {
  v1::AgentGrants out;
  for (v1::StageKind k : grants.kinds) out.add_kinds(k);
  out.set_shell(grants.shell);
  out.set_privileged(grants.privileged);
  out.set_host_mounts(grants.host_mounts);
  out.set_secrets(grants.secrets);
  out.set_rule(grants.rule);
  return out;
}

AgentPolicy AgentPolicy::AllowAll() {
  AgentPolicy p;
  Rule all{"*", Grants{}};  // grants.rule stays "": no file, no rule
  all.grants.kinds = DefaultKinds();
  all.grants.shell = all.grants.privileged = all.grants.host_mounts = all.grants.secrets = true;
  all.grants.labels = {"*"};
  p.rules_.push_back(std::move(all));
  return p;
}

AgentPolicy AgentPolicy::Effective(const std::optional<AgentPolicy>& file, bool insecure) {
  if (file.has_value()) return *file;
  return insecure ? AllowAll() : Defaults();
}

absl::StatusOr<AgentPolicy> AgentPolicy::Parse(absl::string_view yaml, absl::string_view file) {
  const YamlReader reader(yaml, file);
  absl::StatusOr<YAML::Node> doc = reader.LoadDocument(
      "policy", "the file is empty; expected one YAML document: a mapping with an 'agents' list");
  if (!doc.ok()) return doc.status();
  const YAML::Node& root = *doc;
  // yaml-cpp throws on some node accesses; keep its exceptions in here.
  try {
    std::vector<Entry> top;
    MF_RETURN_IF_ERROR(reader.Entries(root, YAML::Mark::null_mark(), "", &top));
    MF_RETURN_IF_ERROR(reader.CheckAllowed(top, "", {"agents"}));
    AgentPolicy policy;
    for (const Entry& agents : top) {
      if (!agents.value.IsSequence()) {
        return reader.Error(pipeline::MarkOf(agents.value, agents.key_mark), agents.field,
                            absl::StrCat("expected a list of rules, got ",
                                         pipeline::KindOf(agents.value)));
      }
      for (size_t i = 0; i < agents.value.size(); ++i) {
        const std::string field = pipeline::Item(agents.field, i);
        const YAML::Mark mark = pipeline::MarkOf(agents.value[i], agents.key_mark);
        std::vector<Entry> keys;
        MF_RETURN_IF_ERROR(reader.Entries(agents.value[i], mark, field, &keys));
        MF_RETURN_IF_ERROR(reader.CheckAllowed(
            keys, field, {"match", "labels", "kinds", "privileged", "host_mounts", "secrets"}));
        Rule rule;
        rule.grants.kinds = DefaultKinds();
        for (const Entry& e : keys) {
          if (e.key == "match") {
            MF_RETURN_IF_ERROR(reader.GetString(e.value, e.key_mark, e.field, &rule.match));
            if (rule.match.empty()) return reader.Error(e.key_mark, e.field, "must not be empty");
          } else if (e.key == "labels") {
            std::vector<Entry> labels;
            MF_RETURN_IF_ERROR(GetStrings(reader, e, &labels));
            for (Entry& l : labels) rule.grants.labels.push_back(std::move(l.key));
          } else if (e.key == "kinds") {
            MF_RETURN_IF_ERROR(ParseKinds(reader, e, &rule.grants));
          } else if (e.key == "privileged") {
            MF_RETURN_IF_ERROR(reader.GetBool(e, &rule.grants.privileged));
          } else if (e.key == "host_mounts") {
            MF_RETURN_IF_ERROR(reader.GetBool(e, &rule.grants.host_mounts));
          } else {
            MF_RETURN_IF_ERROR(reader.GetBool(e, &rule.grants.secrets));
          }
        }
        if (rule.match.empty()) {
          return reader.Error(mark, field, "a rule needs 'match' (an agent name or pattern)");
        }
        rule.grants.rule = rule.match;
        policy.rules_.push_back(std::move(rule));
      }
    }
    return policy;
  } catch (const YAML::Exception& e) {
    return reader.SyntaxError(e);
  }
}

absl::StatusOr<AgentPolicy> AgentPolicy::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read agent policy ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return Parse(text.str(), path);
}

Grants AgentPolicy::For(const std::string& name) const {
  for (const Rule& rule : rules_) {
    if (Matches(rule.match, name)) return rule.grants;
  }
  Grants defaults;
  defaults.kinds = DefaultKinds();
  return defaults;
}

}  // namespace musafarm::coordinator
