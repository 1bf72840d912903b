#pragma once

// Test support: a private PostgreSQL 15 cluster (issue 20) for the store
// suites and the e2e tests. Debian's initdb and pg_ctl from
// /usr/lib/postgresql/15/bin run the cluster in a directory of its own,
// listening only on a Unix socket there (no TCP port to collide on). As root
// (CI) they run as the `postgres` user through runuser, since PostgreSQL
// refuses to run as root. Test clusters skip fsync: they hold nothing to keep.
//
// Cheap by design: ctest starts one cluster for the whole run (the `postgres`
// fixture: tests/CMakeLists.txt runs `mf-test-postgres start|stop`), and each
// test takes a fresh database in it. A test binary run by hand without that
// cluster starts its own, once, and stops it at exit.

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace musafarm::test_support {

class PrivatePostgres {
 public:
  // What is missing to run a cluster here, "" when nothing is.
  static std::string MissingTools();

  // Starts a cluster in `dir`, which must not exist; "" on success, else what
  // went wrong. The object stops it on Stop() or destruction.
  std::string Start(const std::string& dir);
  // Uses the cluster another process started in `dir`; "" when it answers.
  // The object does not stop it.
  std::string Attach(const std::string& dir);
  // Stops the cluster if this object started it, and removes its directory.
  void Stop();
  ~PrivatePostgres() { Stop(); }
  // Leaves the cluster running past this object (the fixture's start).
  void Release() { started_ = false; }

  // Stops whatever cluster runs in `dir` and removes `dir`: the fixture's
  // cleanup, and the start's, when a killed run left one behind.
  static std::string StopAt(const std::string& dir);

  // A new, empty database, named uniquely across processes; its libpq URL.
  absl::StatusOr<std::string> CreateDatabase();
  // The URL of database `name` in this cluster.
  std::string Url(const std::string& name) const;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  bool started_ = false;
  int databases_ = 0;
};

// The cluster of this test process: the ctest fixture's when it runs, else
// one started for this process (stopped at exit). Null, with *error set,
// when neither is possible.
PrivatePostgres* TestPostgres(std::string* error);

// A new database in TestPostgres(); its URL.
absl::StatusOr<std::string> NewTestDatabase();

// The rows of `sql` run on a connection of its own to `url`, each row's
// columns as text joined by '|'; the server's error on failure.
absl::StatusOr<std::vector<std::string>> QueryRows(const std::string& url, const std::string& sql);

// The conformance suites' backends: a database of TestPostgres() per test
// directory, so that opening the same directory again (a coordinator
// restart) reconnects to the same database. Not thread-safe.
absl::StatusOr<std::string> TestDatabaseFor(const std::string& dir);

}  // namespace musafarm::test_support
