#include "tests/support/private_postgres.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace musafarm::test_support {
namespace {

namespace fs = std::filesystem;

constexpr char kBinDir[] = "/usr/lib/postgresql/15/bin";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs a PostgreSQL tool (no shell), as `postgres` when we are root, its
// output appended to `log`. Returns "" or what failed, with the log.
std::string RunTool(const std::string& tool, const std::vector<std::string>& args,
                    const std::string& log) {
  std::vector<std::string> argv;
  if (::geteuid() == 0) argv = {"/usr/sbin/runuser", "-u", "postgres", "--"};
  argv.push_back(absl::StrCat(kBinDir, "/", tool));
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (std::string& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, cargv[0], &actions, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return absl::StrCat("cannot run ", cargv[0]);
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return absl::StrCat("waitpid ", tool);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::StrCat(tool, " failed: ", ReadAll(log));
  }
  return "";
}

// Makes `dir` (0700) and gives it to `postgres` when we are root.
std::string MakeOwnedDir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0) return absl::StrCat("mkdir ", dir, " failed");
  if (::geteuid() != 0) return "";
  const passwd* pw = ::getpwnam("postgres");
  if (pw == nullptr) return "no postgres user";
  if (::chown(dir.c_str(), pw->pw_uid, pw->pw_gid) != 0) return absl::StrCat("chown ", dir);
  return "";
}

// Runs `sql` on the cluster's `postgres` database.
std::string AdminExec(const PrivatePostgres& pg, const std::string& sql) {
  PGconn* c = PQconnectdb(pg.Url("postgres").c_str());
  std::string error;
  if (PQstatus(c) != CONNECTION_OK) {
    error = PQerrorMessage(c);
  } else {
    PGresult* r = PQexec(c, sql.c_str());
    if (PQresultStatus(r) != PGRES_COMMAND_OK) error = PQresultErrorMessage(r);
    PQclear(r);
  }
  PQfinish(c);
  return error;
}

}  // namespace

std::string PrivatePostgres::MissingTools() {
  for (const char* tool : {"initdb", "pg_ctl", "postgres"}) {
    if (!fs::exists(absl::StrCat(kBinDir, "/", tool))) {
      return absl::StrCat("no ", kBinDir, "/", tool, " (scripts/install-deps.sh installs postgresql)");
    }
  }
  if (::geteuid() == 0 && ::getpwnam("postgres") == nullptr) return "no postgres user";
  return "";
}

std::string PrivatePostgres::Start(const std::string& dir) {
  if (std::string missing = MissingTools(); !missing.empty()) return missing;
  dir_ = dir;
  if (std::string e = MakeOwnedDir(dir_); !e.empty()) return e;
  const std::string log = dir_ + "/tools.log";
  if (std::string e = RunTool("initdb",
                              {"-D", dir_ + "/data", "-U", "postgres", "-A", "trust", "-E", "UTF8",
                               "--locale=C", "--no-sync"},
                              log);
      !e.empty()) {
    return e;
  }
  // No TCP (listen_addresses ''), the socket in our directory; no fsync.
  const std::string options = absl::StrCat("-c listen_addresses= -k ", dir_,
                                           " -c fsync=off -c full_page_writes=off");
  if (std::string e = RunTool("pg_ctl",
                              {"-D", dir_ + "/data", "-l", dir_ + "/server.log", "-w", "-o",
                               options, "start"},
                              log);
      !e.empty()) {
    return absl::StrCat(e, ReadAll(dir_ + "/server.log"));
  }
  started_ = true;
  return "";
}

std::string PrivatePostgres::Attach(const std::string& dir) {
  dir_ = dir;
  if (!fs::exists(dir_ + "/.s.PGSQL.5432")) return absl::StrCat("no cluster in ", dir_);
  return AdminExec(*this, "SELECT 1");
}

std::string PrivatePostgres::StopAt(const std::string& dir) {
  std::string error;
  if (fs::exists(dir + "/data/postmaster.pid")) {
    error = RunTool("pg_ctl", {"-D", dir + "/data", "-m", "immediate", "-w", "stop"},
                    "/dev/null");
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  return error;
}

void PrivatePostgres::Stop() {
  if (!started_) return;
  started_ = false;
  (void)StopAt(dir_);  // a test binary's exit: nothing left to report to
}

std::string PrivatePostgres::Url(const std::string& name) const {
  return absl::StrCat("postgresql:///", name, "?host=", dir_, "&user=postgres");
}

absl::StatusOr<std::string> PrivatePostgres::CreateDatabase() {
  const std::string name = absl::StrCat("t_", ::getpid(), "_", ++databases_);
  // FILE_COPY: copying template1's few files beats WAL-logging them.
  if (std::string e = AdminExec(*this, absl::StrCat("CREATE DATABASE ", name,
                                                    " STRATEGY = FILE_COPY"));
      !e.empty()) {
    return absl::InternalError(absl::StrCat("CREATE DATABASE ", name, ": ", e));
  }
  return Url(name);
}

PrivatePostgres* TestPostgres(std::string* error) {
  static PrivatePostgres* const shared = [error]() -> PrivatePostgres* {
    static PrivatePostgres pg;
#ifdef MF_TEST_POSTGRES_DIR
    if (pg.Attach(MF_TEST_POSTGRES_DIR).empty()) return &pg;
#endif
    std::string tmpl = "/tmp/mf-pg.XXXXXX";  // short: the socket path has a length limit
    if (::mkdtemp(tmpl.data()) == nullptr) {
      *error = "mkdtemp";
      return nullptr;
    }
    ::rmdir(tmpl.c_str());  // Start makes it, owned by postgres
    if (std::string e = pg.Start(tmpl); !e.empty()) {
      *error = e;
      return nullptr;
    }
    return &pg;
  }();
  return shared;
}

absl::StatusOr<std::string> NewTestDatabase() {
  std::string error;
  PrivatePostgres* pg = TestPostgres(&error);
  if (pg == nullptr) return absl::UnavailableError(absl::StrCat("no test PostgreSQL: ", error));
  return pg->CreateDatabase();
}

absl::StatusOr<std::vector<std::string>> QueryRows(const std::string& url,
                                                   const std::string& sql) {
  std::unique_ptr<PGconn, void (*)(PGconn*)> c(PQconnectdb(url.c_str()), PQfinish);
  std::unique_ptr<PGresult, void (*)(PGresult*)> r(PQexec(c.get(), sql.c_str()), PQclear);
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    return absl::InternalError(absl::StrCat(sql, ": ", PQresultErrorMessage(r.get())));
  }
  std::vector<std::string> rows;
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    std::string row;
    for (int j = 0; j < PQnfields(r.get()); ++j) {
      absl::StrAppend(&row, j ? "|" : "", PQgetvalue(r.get(), i, j));
    }
    rows.push_back(row);
  }
  return rows;
}

absl::StatusOr<std::string> TestDatabaseFor(const std::string& dir) {
  static auto* const urls = new std::map<std::string, std::string>();
  std::string& url = (*urls)[dir];
  if (url.empty()) {
    absl::StatusOr<std::string> created = NewTestDatabase();
    if (!created.ok()) return created.status();
    url = *created;
  }
  return url;
}

}  // namespace musafarm::test_support
