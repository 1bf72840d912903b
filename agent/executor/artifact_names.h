#pragma once

#include <set>
#include <string>

namespace musafarm::agent {

// Names of collected files within an attempt (docker_run's and exec's
// `collect`): the path's base name ("root" for "/"), and for a later path
// with a base name already used "out-2.txt", "out-3.txt", ...
std::string ArtifactBasename(std::string path);
std::string UniqueArtifactName(const std::string& base, std::set<std::string>* used);

}  // namespace musafarm::agent
