#include "coordinator/log_store.h"

namespace musafarm::coordinator {

bool LogStore::ValidArtifactName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos && name.size() <= 255;
}

}  // namespace musafarm::coordinator
