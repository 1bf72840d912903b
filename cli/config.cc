#include "cli/config.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "cli/client.h"
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

// "PATH:LINE:COL: FIELD: what", the shape of pipeline errors; 1-based.
absl::Status ConfigError(absl::string_view path, const YAML::Mark& mark, absl::string_view field,
                         absl::string_view what) {
  std::string where(path);
  if (!mark.is_null()) absl::StrAppend(&where, ":", mark.line + 1, ":", mark.column + 1);
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", field, ": ", what));
}

const char* KindName(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar:
      return "a scalar";
    default:
      return "nothing";
  }
}

absl::StatusOr<CliConfig> ParseRoot(const YAML::Node& root, absl::string_view path) {
  CliConfig config;
  bool seen_coordinator = false;
  if (!root.IsDefined() || root.IsNull()) return config;  // empty, or comments only
  if (!root.IsMap()) {
    return ConfigError(path, root.Mark(), "config",
                       absl::StrCat("expected a mapping of keys (e.g. 'coordinator: HOST:PORT'), "
                                    "found ",
                                    KindName(root)));
  }
  for (const auto& kv : root) {
    const YAML::Node& key = kv.first;
    const YAML::Node& value = kv.second;
    if (!key.IsScalar()) {
      return ConfigError(path, key.Mark(), "config",
                         absl::StrCat("a key must be a name, found ", KindName(key)));
    }
    const std::string& name = key.Scalar();
    if (name == "coordinator") {
      if (seen_coordinator) return ConfigError(path, key.Mark(), name, "given twice");
      seen_coordinator = true;
      if (value.IsNull()) continue;  // `coordinator:` with no value: as if absent
      if (!value.IsScalar()) {
        return ConfigError(path, value.Mark(), name,
                           absl::StrCat("expected HOST:PORT, found ", KindName(value)));
      }
      if (!value.Scalar().empty()) config.coordinator = value.Scalar();
      continue;
    }
    return ConfigError(path, key.Mark(), name, "unknown key (known keys: coordinator)");
  }
  return config;
}

}  // namespace

absl::StatusOr<CliConfig> ParseCliConfig(absl::string_view content, absl::string_view path) {
  // yaml-cpp reports malformed input by throwing; nothing past this function
  // sees an exception.
  try {
    return ParseRoot(YAML::Load(std::string(content)), path);
  } catch (const YAML::Exception& e) {
    return ConfigError(path, e.mark, "config", e.msg);
  }
}

absl::StatusOr<std::string> ResolveCoordinator(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv(kCoordinatorEnv); env != nullptr && *env != '\0') {
    return std::string(env);
  }
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
      if (config->coordinator) return *config->coordinator;
    } else if (explicit_path) {
      return absl::InvalidArgumentError(absl::StrCat("cannot read config file ($", kConfigEnv,
                                                     "): ", content.status().message()));
    } else if (!absl::IsNotFound(content.status())) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read config file: ", content.status().message()));
    }
  }
  return std::string(kDefaultCoordinator);
}

}  // namespace musafarm::cli
