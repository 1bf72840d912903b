#pragma once

// The agent policy (--agent-policy FILE, docs/security.md "Agent policy"):
// which agents may run stages that need trust, of which kinds, and which of
// the labels they declare count for such stages. An agent's labels are its
// own claim; a stage that receives secrets or runs with privilege, host
// mounts or a shell must not go wherever a claim steers it.

#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::coordinator {

// What a stage asks beyond an agent's slots and labels. A stage with any of
// these "needs trust": only its agent's trusted labels satisfy its labels.
struct TrustNeeds {
  bool shell = false;        // an exec stage with `shell: true`
  bool privileged = false;   // docker_run.privileged
  bool host_mounts = false;  // docker_run.mounts non-empty
  bool secrets = false;      // StageSpec.secrets non-empty

  bool any() const { return shell || privileged || host_mounts || secrets; }
  bool operator<(const TrustNeeds& o) const { return Tie() < o.Tie(); }
  bool operator==(const TrustNeeds& o) const { return Tie() == o.Tie(); }

 private:
  std::tuple<bool, bool, bool, bool> Tie() const {
    return std::tie(shell, privileged, host_mounts, secrets);
  }
};
TrustNeeds TrustNeedsOf(const v1::StageSpec& run);

// What the policy lets one agent run.
struct Grants {
  std::string rule;                  // the matching rule's `match`; "" for the defaults
  std::vector<v1::StageKind> kinds;  // shell stages need `shell` besides EXEC
  bool shell = false;
  bool privileged = false;
  bool host_mounts = false;
  bool secrets = false;
  // fnmatch patterns: a declared label is trusted when one matches the whole
  // label ("role=*"), or, for a pattern without '=', the label's key ("gpu"
  // trusts "gpu" and "gpu=s4000").
  std::vector<std::string> labels;
};

// The kinds an agent gets when no rule grants it others: every kind but
// shell. None of them needs trust by itself.
std::vector<v1::StageKind> DefaultKinds();

// Whether `grants` lets an agent take a stage of `kind` with `needs`; if not
// and `why` is set, it names what is missing ("secrets", "kind shell", ...).
bool Permits(const Grants& grants, v1::StageKind kind, const TrustNeeds& needs,
             std::string* why = nullptr);

// The labels of `declared` that `grants` trusts, in their order.
std::vector<std::string> TrustedLabels(const Grants& grants,
                                       const std::vector<std::string>& declared);

v1::AgentGrants GrantsProto(const Grants& grants);

// An ordered list of rules; the first whose `match` fits an agent's name
// gives its grants. Immutable once built; copied into the core on (re)load.
class AgentPolicy {
 public:
  // Every kind, privilege, host mount and secret, and every declared label
  // trusted: what --insecure means with no policy file (the behaviour from
  // before issue 10).
  static AgentPolicy AllowAll();
  // No rules: every agent gets the defaults (DefaultKinds, nothing that needs
  // trust, no trusted label). What TLS means with no policy file.
  static AgentPolicy Defaults() { return AgentPolicy(); }

  // The policy in force: the file's when there is one, else AllowAll when
  // `insecure`, else Defaults.
  static AgentPolicy Effective(const std::optional<AgentPolicy>& file, bool insecure);

  // Parses a policy file's text; errors are InvalidArgument
  // "FILE:LINE:COL: FIELD: what", like the pipeline compiler's.
  static absl::StatusOr<AgentPolicy> Parse(absl::string_view yaml, absl::string_view file);
  // Reads and parses `path`. A file that cannot be read is InvalidArgument too
  // (for the coordinator it is a bad flag either way).
  static absl::StatusOr<AgentPolicy> Load(const std::string& path);

  // The grants of the agent named `name`.
  Grants For(const std::string& name) const;

  size_t rule_count() const { return rules_.size(); }

 private:
  struct Rule {
    std::string match;
    Grants grants;
  };
  std::vector<Rule> rules_;
};

}  // namespace musafarm::coordinator
