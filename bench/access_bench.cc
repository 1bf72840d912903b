// What users cost per call: AccessControl::Authenticate (one token row read
// from SQLite by id, the salted SHA-256, the compare) and UserAdmin::Record
// (one audit line, its own WAL commit with synchronous=FULL), on a database
// file in a temporary directory.
//   build/bench/access_bench [calls]
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/time/clock.h"
#include "coordinator/access_control.h"
#include "coordinator/user_admin.h"

using namespace musafarm::coordinator;  // NOLINT: a benchmark's main

int main(int argc, char** argv) {
  const int calls = argc > 1 ? std::atoi(argv[1]) : 2000;
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("access_bench." + std::to_string(getpid())))
          .string();
  std::filesystem::create_directories(dir);
  const std::string db = dir + "/musafarm.db";
  UserAdmin admin(*OpenSqliteStore(db));
  AccessControl access(*OpenSqliteStore(db), /*insecure=*/false);
  absl::StatusOr<NewApiToken> token = admin.CreateToken({"bench", "admin", "host"}, "alice",
                                                        "submitter", absl::Hours(1), absl::Now());
  if (!token.ok()) return 1;
  absl::Time start = absl::Now();
  for (int i = 0; i < calls; ++i) {
    if (!access.Authenticate(token->text, "", absl::Now()).ok()) return 1;
  }
  const double auth_us = absl::ToDoubleMicroseconds(absl::Now() - start) / calls;
  const int records = calls / 10;
  start = absl::Now();
  for (int i = 0; i < records; ++i) {
    if (!admin.Record({"alice", "submitter", "ipv4:127.0.0.1:1"}, "submit", "1", "ok", absl::Now())
             .ok()) {
      return 1;
    }
  }
  const double record_us = absl::ToDoubleMicroseconds(absl::Now() - start) / records;
  std::printf("authenticate: %.1f us/call (%d calls)\naudit line:   %.1f us/call (%d calls)\n",
              auth_us, calls, record_us, records);
  std::filesystem::remove_all(dir);
  return 0;
}
