#pragma once

// Shell completion scripts made by walking the command tree (cli/command_tree.h):
// commands, subcommands, options and flags, the values of options that take
// only some (--output table|json|yaml), files for FILE and directories for DIR.
// Nothing is written by hand, so a new command or flag completes at once.

#include <string>

#include "cli/command_tree.h"

namespace musafarm::cli {

// For bash: `source <(musafarm completion bash)`, or the file in
// /usr/share/bash-completion/completions/musafarm.
std::string BashCompletion(const CommandTree& tree);

// For zsh: `source <(musafarm completion zsh)` after `compinit`, or the file
// as _musafarm in a directory of $fpath.
std::string ZshCompletion(const CommandTree& tree);

}  // namespace musafarm::cli
