#include "cli/config.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "cli/client.h"
#include "common/address.h"
#include "common/status_macros.h"
#include "pipeline/yaml_reader.h"
#include "yaml-cpp/yaml.h"

namespace musafarm::cli {
namespace {

// Reads a whole file; NotFound when it does not exist.
absl::StatusOr<std::string> ReadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int e = errno;
    std::string why = std::strerror(e);
    if (e == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": ", why));
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", why));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The keys a config file may hold.
const std::vector<std::string>& KnownKeys() {
  static const auto* const kKeys = new std::vector<std::string>{"coordinator", "ca", "insecure",
                                                               "token"};
  return *kKeys;
}

// Reads with the pipeline's YAML reader, so a config error has the shape of a
// pipeline error ("FILE:LINE:COL: FIELD: what") and repeated keys are caught
// the same way.
absl::StatusOr<CliConfig> ParseDocument(const pipeline::YamlReader& reader,
                                        const YAML::Node& root) {
  CliConfig config;
  if (!root.IsDefined() || root.IsNull()) return config;  // comments only, or `---`
  if (!root.IsMap()) {
    return reader.Error(root.Mark(), "config",
                        absl::StrCat("expected a mapping of keys (e.g. 'coordinator: HOST:PORT'), "
                                     "got ",
                                     pipeline::KindOf(root)));
  }
  std::vector<pipeline::Entry> entries;
  MF_RETURN_IF_ERROR(reader.Entries(root, root.Mark(), /*field=*/"", &entries));
  MF_RETURN_IF_ERROR(reader.CheckAllowed(entries, /*field=*/"", KnownKeys()));
  for (const pipeline::Entry& e : entries) {
    // No value: as if absent.
    if (e.value.IsNull()) continue;
    if (e.key == "insecure") {
      bool insecure = false;
      MF_RETURN_IF_ERROR(reader.GetBool(e, &insecure));
      config.insecure = insecure;
      continue;
    }
    std::string value;
    MF_RETURN_IF_ERROR(reader.GetString(e.value, e.key_mark, e.field, &value));
    if (value.empty()) continue;
    (e.key == "ca" ? config.ca : e.key == "token" ? config.token : config.coordinator) =
        std::move(value);
  }
  return config;
}

}  // namespace

absl::StatusOr<CliConfig> ParseCliConfig(absl::string_view content, absl::string_view path) {
  const pipeline::YamlReader reader(content, path);
  absl::StatusOr<YAML::Node> doc = reader.LoadDocument("config", /*if_empty=*/"");
  if (!doc.ok()) return doc.status();
  if (doc->IsNull()) return CliConfig{};  // an empty file
  return ParseDocument(reader, *doc);
}

namespace {

// The config file ($MUSAFARM_CONFIG, else $HOME/.config/musafarm/config.yaml);
// an empty config when the default file does not exist. `path_out`: the file
// read, if any.
absl::StatusOr<CliConfig> LoadCliConfig(std::string* path_out = nullptr) {
  std::string path;
  bool explicit_path = false;
  if (const char* cfg = std::getenv(kConfigEnv); cfg != nullptr && *cfg != '\0') {
    path = cfg;
    explicit_path = true;
  } else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    path = absl::StrCat(home, "/.config/musafarm/config.yaml");
  }
  if (!path.empty()) {
    absl::StatusOr<std::string> content = ReadConfigFile(path);
    if (content.ok()) {
      absl::StatusOr<CliConfig> config = ParseCliConfig(*content, path);
      if (!config.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("bad config file: ", config.status().message()));
      }
      if (path_out != nullptr) *path_out = path;
      return config;
    } else if (explicit_path) {
      return absl::InvalidArgumentError(absl::StrCat("cannot read config file ($", kConfigEnv,
                                                     "): ", content.status().message()));
    } else if (!absl::IsNotFound(content.status())) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read config file: ", content.status().message()));
    }
  }
  return CliConfig{};
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ResolveCoordinator(const std::string& flag) {
  // Checked here, where it is known where the address came from: gRPC would
  // wrap a port past 65535, dial port 0 for a missing one, and report a
  // malformed address as unreachable (exit 3) instead of bad input (issue 12).
  if (!flag.empty()) return ParseAddressList("--coordinator", flag);
  if (const char* env = std::getenv(kCoordinatorEnv); env != nullptr && *env != '\0') {
    return ParseAddressList(absl::StrCat("$", kCoordinatorEnv), env);
  }
  MF_ASSIGN_OR_RETURN(const CliConfig config, LoadCliConfig());
  if (config.coordinator.has_value()) {
    return ParseAddressList("the config file's 'coordinator'", *config.coordinator);
  }
  return std::vector<std::string>{kDefaultCoordinator};
}

absl::StatusOr<ResolvedToken> ResolveToken() {
  ResolvedToken out;
  if (const char* env = std::getenv(kTokenEnv); env != nullptr && *env != '\0') {
    out.token = env;
    return out;
  }
  std::string path;
  MF_ASSIGN_OR_RETURN(const CliConfig config, LoadCliConfig(&path));
  if (!config.token.has_value()) return out;
  out.token = *config.token;
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    out.warning = absl::StrCat("warning: ", path, " holds your API token and is readable by ",
                               (st.st_mode & 007) != 0 ? "others" : "its group", " (mode ", mode,
                               "); run: chmod 600 ", path);
  }
  return out;
}

absl::StatusOr<std::optional<ChannelTls>> ResolveTls(bool insecure_flag,
                                                     const std::string& ca_flag) {
  if (insecure_flag) return std::nullopt;
  std::string ca = ca_flag;
  const char* how = "--ca";
  if (ca.empty()) {
    if (const char* env = std::getenv(kCaEnv); env != nullptr && *env != '\0') {
      ca = env;
      how = "$MUSAFARM_CA";
    }
  }
  // The config file is read even when a flag names the CA, so that a broken
  // one is reported the same way whatever the flags.
  MF_ASSIGN_OR_RETURN(const CliConfig config, LoadCliConfig());
  if (ca.empty() && config.insecure.value_or(false)) return std::nullopt;
  if (ca.empty() && config.ca.has_value()) {
    ca = *config.ca;
    how = "'ca' in the config file";
  }
  if (ca.empty()) {
    const char* home = std::getenv("HOME");
    ca = absl::StrCat(home != nullptr ? home : "", "/.config/musafarm/ca.crt");
    how = "the default";
  }
  absl::StatusOr<std::string> pem = ReadPemFile(ca);
  if (absl::IsNotFound(pem.status())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "no CA certificate at ", ca, " (", how,
        ") to verify the coordinator with: copy the "
        "farm's ca.crt (the coordinator's <data-dir>/pki/ca.crt) there or pass --ca FILE, or "
        "pass --insecure for a coordinator run with --insecure"));
  }
  if (!pem.ok()) return pem.status();
  ChannelTls tls;
  tls.ca_pem = *std::move(pem);
  return tls;
}

}  // namespace musafarm::cli
