#pragma once

// Build args vs. Dockerfile ARGs: a small Dockerfile reader that finds the ARG
// declarations, ENV definitions and variable references of every stage, and checks
// that what a pipeline passes to a docker_build stage matches what its Dockerfile
// declares and uses.
//
// The reader follows Docker's (BuildKit's) rules where they matter for ARGs:
//   * `\` at the end of a line continues it (the `# escape=` directive changes the
//     character); comment lines and blank lines inside a continued instruction are
//     dropped; heredocs are not supported.
//   * An ARG before the first FROM is global: visible only in FROM lines (and the
//     defaults of later global ARGs). A stage sees an ARG only from its `ARG NAME`
//     on; `ARG NAME` without a value in a stage takes the global default. ARGs end
//     with their stage; ENV goes on into stages built FROM that stage.
//   * Docker itself expands variables in FROM, ARG, ENV, LABEL, COPY, ADD, WORKDIR,
//     USER, EXPOSE, VOLUME and STOPSIGNAL; in RUN the shell does, with the ARGs in
//     scope in its environment. CMD, ENTRYPOINT, SHELL, HEALTHCHECK and ONBUILD are
//     not looked at (their variables are the container's, at run time).

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::tests {

// One name of an `ARG A=1 B` instruction.
struct ArgDecl {
  std::string name;
  bool has_default = false;  // `ARG N=...`, including `ARG N=` and `ARG N=""`
  std::string value;         // the default as written, surrounding quotes removed
  int line = 0;              // 1-based line where the instruction starts
  int seq = 0;               // position among all declarations and references of the file
};

// One `$NAME` or `${NAME...}`.
struct VarRef {
  std::string name;
  std::string instruction;  // upper case: FROM, ARG, RUN, ENV, LABEL, COPY, ...
  int line = 0;
  int seq = 0;
  // ${N:-w} ${N-w} ${N:=w} ${N=w} ${N:+w} ${N+w}, or inside the word of a `+` form
  // (`${X:+:${X}}`): an unset N does not matter here.
  bool has_default = false;
};

// One variable set by ENV.
struct EnvDef {
  std::string name;
  int line = 0;
  int seq = 0;
};

struct DockerfileStage {
  std::string name;  // after AS, lower case; "" when the stage has none
  std::string from;  // the image as written: "${SYS}", "os", "scratch"
  int line = 0;      // of the FROM
  int parent = -1;   // index of the earlier stage `from` names; -1: an image
  std::vector<ArgDecl> args;
  std::vector<EnvDef> envs;
  std::vector<VarRef> refs;  // the FROM line's own references included
};

struct DockerfileArgs {
  std::vector<ArgDecl> global_args;  // before the first FROM
  std::vector<VarRef> global_refs;   // in the defaults of global ARGs
  std::vector<DockerfileStage> stages;

  const ArgDecl* FindGlobal(absl::string_view name) const;
  // Declared as a global ARG or by any stage.
  bool Declares(absl::string_view name) const;
  // Index of the stage named `name` (case-insensitive), or -1.
  int FindStage(absl::string_view name) const;
  // The ENV names stage `index` ends with: its own and those of the stages it is
  // built FROM (not those of an external base image).
  std::set<std::string> StageEnv(int index) const;
};

// Reads a Dockerfile. InvalidArgument "line N: ..." for an unknown instruction, an
// instruction other than ARG before the first FROM, or an ARG/FROM without operands.
absl::StatusOr<DockerfileArgs> ParseDockerfileArgs(absl::string_view text);

// Build args Docker defines itself: the proxy variables (usable without an ARG) and
// the BuildKit platform args (TARGETARCH, ...: set automatically when declared).
bool IsPredefinedArg(absl::string_view name);

struct ArgCheckOptions {
  std::string dockerfile = "Dockerfile";  // how messages name the file
  std::string who = "the pipeline";       // who passes the args, e.g. "pipeline stage base"
  std::set<std::string> passed;           // names of the build args passed
  // ENV names the external images that stages start FROM already set (the ENV of a
  // base image built by another stage, say). PATH is always assumed: BuildKit sets
  // a default when the image has none.
  std::set<std::string> base_image_env;
};

// Rule 1: every passed build arg is declared somewhere in the Dockerfile (global or
// in a stage). Messages: "<who> passes X but <dockerfile> declares no such ARG".
std::vector<std::string> CheckPassedArgs(const DockerfileArgs& df, const ArgCheckOptions& opt);

// Rule 2: every ARG the Dockerfile uses is in scope where it is used and has a value:
// its own or the global default, a ${X:-...} form, or a passed build arg. A reference
// in RUN counts as an ARG use only when the name is an ARG somewhere in the file or a
// passed build arg (otherwise it is the shell's); in the instructions Docker expands
// itself every name must be an ARG or ENV in scope (or have a ${X:-...} form).
// Also reports an ARG declared in a stage without a value that is not passed.
std::vector<std::string> CheckArgUses(const DockerfileArgs& df, const ArgCheckOptions& opt);

// Maps a docker_build stage's `context` ("input:NAME" for a job input) to a
// local directory holding it.
using ResolveContextFn = std::function<absl::StatusOr<std::string>(absl::string_view context)>;

// Both rules for every docker_build task of `job`: reads each task's Dockerfile
// (`dockerfile` relative to the resolved context unless absolute; "" = Dockerfile)
// and checks it against the task's build args. A build arg whose value is a tag
// that another docker_build task of the job builds (BASE_IMG) brings that image's
// ENV names in as base_image_env. Problems that a file cannot be read or parsed are
// reported as such. The same problem from several matrix cells is reported once.
std::vector<std::string> CheckBuildArgs(const v1::Job& job,
                                        const ResolveContextFn& resolve_context);

}  // namespace musafarm::tests
