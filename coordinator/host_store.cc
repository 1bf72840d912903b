#include "coordinator/host_store.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"

namespace musafarm::coordinator {

absl::StatusOr<std::unique_ptr<Store>> OpenHostStore(const std::string& data_dir) {
  const std::string path = absl::StrCat(data_dir, "/musafarm.db");
  if (::access(path.c_str(), F_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no coordinator store at ", path, "; pass the coordinator's --data-dir"));
  }
  return OpenSqliteStore(path);
}

}  // namespace musafarm::coordinator
