#include "cli/config.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "cli/client.h"
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
  static const auto* const kKeys = new std::vector<std::string>{"coordinator"};
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
    // e.key is "coordinator", the only known key. No value: as if absent.
    if (e.value.IsNull()) continue;
    std::string address;
    MF_RETURN_IF_ERROR(reader.GetString(e.value, e.key_mark, e.field, &address));
    if (!address.empty()) config.coordinator = std::move(address);
  }
  return config;
}

}  // namespace

absl::StatusOr<CliConfig> ParseCliConfig(absl::string_view content, absl::string_view path) {
  const pipeline::YamlReader reader(content, path);
  std::vector<YAML::Node> docs;
  // yaml-cpp reports malformed input by throwing; nothing past this function
  // sees an exception.
  try {
    docs = YAML::LoadAll(std::string(content));
  } catch (const YAML::Exception& e) {
    return reader.SyntaxError(e);
  }
  if (docs.empty()) return CliConfig{};  // an empty file
  if (docs.size() > 1) {
    return reader.Error(docs[1].Mark(), "config",
                        absl::StrCat("the file holds ", docs.size(),
                                     " YAML documents; a config is a single document"));
  }
  return ParseDocument(reader, docs[0]);
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
