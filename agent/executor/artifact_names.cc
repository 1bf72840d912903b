#include "agent/executor/artifact_names.h"

#include <filesystem>

#include "absl/strings/str_cat.h"

namespace musafarm::agent {

std::string ArtifactBasename(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  std::string base = std::filesystem::path(path).filename().string();
  return base.empty() || base == "/" || base == "." || base == ".." ? "root" : base;
}

std::string UniqueArtifactName(const std::string& base, std::set<std::string>* used) {
  std::string name = base;
  const size_t dot = base.find('.', 1);
  const std::string stem = base.substr(0, dot),
                    ext = dot == std::string::npos ? "" : base.substr(dot);
  for (int n = 2; used->count(name) != 0; ++n) name = absl::StrCat(stem, "-", n, ext);
  used->insert(name);
  return name;
}

}  // namespace musafarm::agent
