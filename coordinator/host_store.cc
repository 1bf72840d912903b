#include "coordinator/host_store.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "coordinator/pg_connection.h"
#include "coordinator/postgres_store.h"
#include "coordinator/secret_cipher.h"
#include "coordinator/token_secret.h"

namespace musafarm::coordinator {

absl::StatusOr<std::unique_ptr<Store>> OpenHostStore(const std::string& data_dir,
                                                     const std::string& store) {
  if (!store.empty()) {
    if (!IsPostgresUrl(store)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--store: \"", pg::MaskPassword(store),
          "\" is not a postgres:// or postgresql:// URL (leave it out for SQLite in the data dir)"));
    }
    absl::StatusOr<std::string> key = RandomBytes(SecretCipher::kKeySize);
    if (!key.ok()) return key.status();
    absl::StatusOr<SecretCipher> cipher = SecretCipher::Create(*key);
    if (!cipher.ok()) return cipher.status();
    return OpenPostgresStore(store, *cipher);
  }
  const std::string path = absl::StrCat(data_dir, "/musafarm.db");
  if (::access(path.c_str(), F_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no coordinator store at ", path, "; pass the coordinator's --data-dir (or its --store)"));
  }
  return OpenSqliteStore(path);
}

}  // namespace musafarm::coordinator
