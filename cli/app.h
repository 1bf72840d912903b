#pragma once

#include <iosfwd>

#include "cli/client.h"

namespace musafarm::cli {

// The whole `musafarm` command line: parses argv, resolves the coordinator and
// runs one subcommand. Returns the process exit code (kExitUsage for any parse
// error; 0 for --help). `env` gives the streams, terminal flag, time zone and
// clock; its coordinator and output fields are filled in from argv.
int RunCli(int argc, const char* const* argv, CommandEnv env);

}  // namespace musafarm::cli
