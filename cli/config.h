#pragma once

// The CLI's config file and where the coordinator address comes from.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/tls_channel.h"

namespace musafarm::cli {

inline constexpr char kCoordinatorEnv[] = "MUSAFARM_COORDINATOR";
inline constexpr char kConfigEnv[] = "MUSAFARM_CONFIG";
inline constexpr char kCaEnv[] = "MUSAFARM_CA";
inline constexpr char kTokenEnv[] = "MUSAFARM_TOKEN";

// What a config file says. Every key is optional.
struct CliConfig {
  std::optional<std::string> coordinator;  // HOST:PORT[,HOST:PORT...]; empty counts as absent
  std::optional<std::string> ca;           // the farm CA's certificate file; empty: absent
  std::optional<bool> insecure;            // plaintext to a coordinator run with --insecure
  std::optional<std::string> token;        // the user's API token; empty: absent
};

// Reads a config file: one YAML mapping, block (`coordinator: h:1`) or flow
// (`{coordinator: h:1}`) style; an empty file or one of comments only is an
// empty config. A YAML error, a top level that is not a mapping, an unknown or
// repeated key or a value of the wrong type is InvalidArgument
// "PATH:LINE:COL: KEY: what", so a typo is reported instead of silently
// ignored. `path` names the file in messages only.
absl::StatusOr<CliConfig> ParseCliConfig(absl::string_view content, absl::string_view path);

// The coordinator addresses: `flag` when non-empty, else $MUSAFARM_COORDINATOR,
// else the config file ($MUSAFARM_CONFIG, or $HOME/.config/musafarm/config.yaml),
// else kDefaultCoordinator. Each may list a farm's coordinators ("a:1,b:1",
// issue 20); a bad entry is InvalidArgument naming where it came from and
// which entry (common/address.h). A missing default config file is skipped; a
// $MUSAFARM_CONFIG that cannot be read, or any config file that ParseCliConfig
// refuses, is an InvalidArgument error.
absl::StatusOr<std::vector<std::string>> ResolveCoordinator(const std::string& flag);

// How to secure the channel: nothing (plaintext) when `insecure_flag` or the
// config file's `insecure: true`; else TLS that trusts the certificate in
// `ca_flag`, else $MUSAFARM_CA, else the config file's `ca`, else
// $HOME/.config/musafarm/ca.crt. A CA file that is missing or unreadable, or a
// config file refused as above, is InvalidArgument saying what to do.
absl::StatusOr<std::optional<ChannelTls>> ResolveTls(bool insecure_flag,
                                                     const std::string& ca_flag);

// The user's API token: $MUSAFARM_TOKEN, else the config file's `token`, else
// none (empty). Never a command-line flag: it would land in shell history and
// in `ps`. A config file refused as above is InvalidArgument.
struct ResolvedToken {
  std::string token;
  // Non-empty when the token comes from a config file that group or others
  // may read: what to tell the user (on stderr).
  std::string warning;
};
absl::StatusOr<ResolvedToken> ResolveToken();

}  // namespace musafarm::cli
