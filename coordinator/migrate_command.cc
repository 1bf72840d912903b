#include "coordinator/migrate_command.h"

#include <unistd.h>

#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "content/digest.h"
#include "coordinator/data_dir_lock.h"
#include "coordinator/pg_connection.h"
#include "coordinator/postgres_blob_store.h"
#include "coordinator/postgres_log_store.h"
#include "coordinator/postgres_store.h"
#include "coordinator/secret_cipher.h"
#include "coordinator/secrets_key.h"
#include "coordinator/sqlite_statement.h"
#include "coordinator/store.h"

namespace musafarm::coordinator {
namespace {

// The store's tables, parents before children (PostgreSQL checks foreign
// keys row by row). The content store's `blobs` is copied with its bytes
// (CopyBlobs). A table of SQLite missing here is refused rather than left
// behind (CheckEveryTableKnown).
constexpr const char* kTables[] = {
    "jobs",        "tasks",       "transitions",     "agents",         "job_secrets",
    "join_tokens", "issued_certificates", "revocations", "api_tokens", "audit",
    "job_images",  "image_outbox", "counters",       "schedules",      "schedule_secrets",
    "schedule_runs", "job_webhooks", "webhook_outbox", "blob_pins"};

struct Summary {
  std::vector<std::pair<std::string, int64_t>> rows;  // per table
  int64_t log_streams = 0;
  int64_t log_bytes = 0;
  int64_t blobs = 0;
  int64_t blob_bytes = 0;
  std::vector<std::string> skipped;  // what was not copied, and why
};

absl::StatusOr<std::set<std::string>> SqliteTables(sqlite3* db) {
  std::set<std::string> out;
  MF_ASSIGN_OR_RETURN(sql::Statement s,
                      sql::Statement::Prepare(db,
                                              "SELECT name FROM sqlite_master WHERE type = 'table' "
                                              "AND name NOT LIKE 'sqlite_%'",
                                              false));
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.insert(std::string(s.ColumnText(0)));
  if (rc != SQLITE_DONE) return s.Error(rc, "list tables");
  return out;
}

absl::StatusOr<std::set<std::string>> SqliteColumns(sqlite3* db, const std::string& table) {
  std::set<std::string> out;
  MF_ASSIGN_OR_RETURN(sql::Statement s,
                      sql::Statement::Prepare(db, absl::StrCat("PRAGMA table_info(", table, ")"),
                                              false));
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.insert(std::string(s.ColumnText(1)));
  if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("columns of ", table));
  return out;
}

// The target must hold nothing of a farm: a coordinator that started on it,
// or another farm's migration, would mix with this one.
absl::Status CheckEmpty(pg::Connection& conn) {
  std::vector<std::string> tables(std::begin(kTables), std::end(kTables));
  for (const char* t : {"blobs", "blob_chunks", "log_chunks"}) tables.emplace_back(t);
  for (const std::string& t : tables) {
    MF_ASSIGN_OR_RETURN(pg::Result r,
                        conn.RunOnce(absl::StrCat("SELECT count(*) FROM ", t), pg::Params(),
                                     absl::StrCat("count the rows of ", t)));
    if (r.Int(0, 0) > 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "\"", conn.where(), "\" is not empty: table ", t, " holds ", r.Int(0, 0),
          " row(s). migrate moves a farm into a new, empty database only (createdb one), so "
          "that nothing of another farm mixes with this one"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckEveryTableKnown(const std::set<std::string>& sqlite_tables) {
  std::set<std::string> known(std::begin(kTables), std::end(kTables));
  known.insert("blobs");
  std::vector<std::string> unknown;
  for (const std::string& t : sqlite_tables) {
    if (known.count(t) == 0) unknown.push_back(t);
  }
  if (unknown.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "the SQLite store has table(s) ", absl::StrJoin(unknown, ", "),
      " that this musafarm does not know how to move; use the musafarm version that wrote it"));
}

// A column of the PostgreSQL table and where its value comes from in SQLite.
struct Column {
  std::string name;
  std::string type;    // PostgreSQL's data_type: bigint, integer, text, bytea, boolean
  std::string source;  // the SQLite column (or rowid)
};

absl::StatusOr<int64_t> CopyTable(sqlite3* db, pg::Connection& conn, const std::string& table,
                                  std::deque<std::string>* keep_alive) {
  MF_ASSIGN_OR_RETURN(std::set<std::string> have, SqliteColumns(db, table));
  MF_ASSIGN_OR_RETURN(
      pg::Result cols,
      conn.RunOnce("SELECT column_name::text, data_type::text, is_identity::text FROM "
                   "information_schema.columns WHERE table_schema = current_schema() AND "
                   "table_name = $1 ORDER BY ordinal_position",
                   pg::Params().Text(table), absl::StrCat("columns of ", table)));
  std::vector<Column> columns;
  bool identity = false;
  for (int i = 0; i < cols.rows(); ++i) {
    Column c{cols.String(i, 0), cols.String(i, 1), cols.String(i, 0)};
    identity = identity || cols.String(i, 2) == "YES";
    if (c.name == "username") c.source = "user";  // "user" is reserved in PostgreSQL
    if (have.count(c.source) == 0 && c.name == "seq") c.source = "rowid";  // image_outbox
    if (c.source != "rowid" && have.count(c.source) == 0) {
      return absl::FailedPreconditionError(absl::StrCat("table ", table, ": column ", c.name,
                                                        " has no counterpart in SQLite"));
    }
    columns.push_back(std::move(c));
  }
  if (columns.empty()) {
    return absl::InternalError(absl::StrCat("table ", table, " is missing in PostgreSQL"));
  }
  std::vector<std::string> names, sources, placeholders;
  for (size_t i = 0; i < columns.size(); ++i) {
    names.push_back(columns[i].name);
    sources.push_back(absl::StrCat("\"", columns[i].source, "\""));
    if (columns[i].source == "rowid") sources.back() = "rowid";
    placeholders.push_back(absl::StrCat("$", i + 1));
  }
  // Prepared once: its name and text live as long as the connection uses them.
  keep_alive->push_back(absl::StrCat("migrate_", table));
  const char* name = keep_alive->back().c_str();
  keep_alive->push_back(absl::StrCat("INSERT INTO ", table, "(", absl::StrJoin(names, ", "), ")",
                                     identity ? " OVERRIDING SYSTEM VALUE" : "", " VALUES(",
                                     absl::StrJoin(placeholders, ", "), ")"));
  const pg::Query insert{name, keep_alive->back().c_str()};
  MF_ASSIGN_OR_RETURN(sql::Statement s,
                      sql::Statement::Prepare(db,
                                              absl::StrCat("SELECT ", absl::StrJoin(sources, ", "),
                                                           " FROM ", table, " ORDER BY rowid"),
                                              false));
  int64_t copied = 0;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    pg::Params p;
    for (size_t i = 0; i < columns.size(); ++i) {
      const int col = static_cast<int>(i);
      const std::string& type = columns[i].type;
      if (s.ColumnType(col) == SQLITE_NULL) {
        p.Null();
      } else if (type == "bigint" || type == "integer" || type == "smallint") {
        p.Int(s.ColumnInt64(col));
      } else if (type == "boolean") {
        p.Bool(s.ColumnInt64(col) != 0);
      } else if (type == "bytea") {
        p.Bytes(s.ColumnBlob(col));
      } else {
        p.Text(s.ColumnText(col));
      }
    }
    MF_RETURN_IF_ERROR(conn.Run(insert, p, absl::StrCat("copy a row of ", table)).status());
    ++copied;
  }
  if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("read ", table));
  if (identity) {
    // The identity goes on after the copied rows, so new rows sort after them.
    MF_RETURN_IF_ERROR(
        conn.RunOnce(absl::StrCat("SELECT setval(pg_get_serial_sequence('", table,
                                  "', 'seq'), (SELECT coalesce(max(seq), 0) FROM ", table,
                                  ") + 1, false)"),
                     pg::Params(), absl::StrCat("continue the numbering of ", table))
            .status());
  }
  return copied;
}

// Streams the file `path` into `table` rows of `chunk` bytes: (key..., off,
// bytes) with `key` as the first parameters. Returns the bytes copied.
absl::StatusOr<int64_t> CopyFile(pg::Connection& conn, const pg::Query& insert,
                                 const pg::Params& key, const std::string& path, size_t chunk,
                                 content::Hasher* hasher) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InternalError(absl::StrCat("cannot read ", path));
  std::string buf(chunk, '\0');
  int64_t off = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(chunk));
    const size_t n = static_cast<size_t>(in.gcount());
    if (n == 0) break;
    const absl::string_view piece(buf.data(), n);
    if (hasher != nullptr) hasher->Update(piece);
    pg::Params p = key;
    p.Int(off).Bytes(piece);
    MF_RETURN_IF_ERROR(conn.Run(insert, p, absl::StrCat("copy ", path)).status());
    off += static_cast<int64_t>(n);
  }
  if (in.bad()) return absl::InternalError(absl::StrCat("cannot read ", path));
  return off;
}

// <logs>/<task id>/<attempt>.log and <task id>/<attempt>.artifacts/<name>
// (FileLogStore's layout; a task id may hold '/').
absl::Status CopyLogs(pg::Connection& conn, const std::string& root, Summary* summary) {
  static constexpr pg::Query kInsert{
      "migrate_log_chunk",
      "INSERT INTO log_chunks(task_id, attempt_id, artifact, off, bytes) VALUES($1, $2, $3, $4, $5)"};
  std::error_code ec;
  if (!std::filesystem::exists(root, ec)) return absl::OkStatus();
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const std::filesystem::path rel = std::filesystem::relative(it->path(), root);
    const std::string file = rel.filename().string();
    absl::string_view stem = file;
    std::string task, artifact;
    uint64_t attempt = 0;
    if (absl::ConsumeSuffix(&stem, ".log") && absl::SimpleAtoi(stem, &attempt)) {
      task = rel.parent_path().string();
    } else {
      const std::string dir = rel.parent_path().filename().string();
      absl::string_view dstem = dir;
      if (!absl::ConsumeSuffix(&dstem, ".artifacts") || !absl::SimpleAtoi(dstem, &attempt)) {
        summary->skipped.push_back(absl::StrCat("logs/", rel.string(), " (not a log or artifact)"));
        continue;
      }
      task = rel.parent_path().parent_path().string();
      artifact = file;
    }
    if (task.empty()) {
      summary->skipped.push_back(absl::StrCat("logs/", rel.string(), " (no task)"));
      continue;
    }
    pg::Params key;
    key.Text(task).Int(static_cast<int64_t>(attempt)).Text(artifact);
    MF_ASSIGN_OR_RETURN(int64_t bytes, CopyFile(conn, kInsert, key, it->path().string(),
                                                PostgresLogStore::kMaxChunkBytes, nullptr));
    ++summary->log_streams;
    summary->log_bytes += bytes;
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", root, ": ", ec.message()));
  return absl::OkStatus();
}

// The content store: each indexed blob's file, checked against its digest.
absl::Status CopyBlobs(sqlite3* db, pg::Connection& conn, const std::string& dir,
                       Summary* summary) {
  static constexpr pg::Query kBlob{
      "migrate_blob",
      "INSERT INTO blobs(sha256, size, created_us, last_used_us, complete) "
      "VALUES($1, $2, $3, $4, true)"};
  static constexpr pg::Query kChunk{
      "migrate_blob_chunk", "INSERT INTO blob_chunks(sha256, off, bytes) VALUES($1, $2, $3)"};
  static constexpr pg::Query kDrop{"migrate_drop_blob", "DELETE FROM blobs WHERE sha256 = $1"};
  MF_ASSIGN_OR_RETURN(sql::Statement s,
                      sql::Statement::Prepare(db,
                                              "SELECT sha256, size, created_us, last_used_us "
                                              "FROM blobs ORDER BY rowid",
                                              false));
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    const std::string sha(s.ColumnText(0));
    const int64_t size = s.ColumnInt64(1);
    const std::string path = absl::StrCat(dir, "/", sha.substr(0, 2), "/", sha);
    if (::access(path.c_str(), R_OK) != 0) {
      summary->skipped.push_back(absl::StrCat("blob ", sha.substr(0, 12), " (its file is missing)"));
      continue;
    }
    MF_RETURN_IF_ERROR(
        conn.Run(kBlob, pg::Params().Text(sha).Int(size).Int(s.ColumnInt64(2)).Int(s.ColumnInt64(3)),
                 "copy a blob")
            .status());
    content::Hasher hasher;
    MF_ASSIGN_OR_RETURN(int64_t bytes, CopyFile(conn, kChunk, pg::Params().Text(sha), path,
                                                PostgresBlobStore::kChunkBytes, &hasher));
    if (bytes != size || hasher.FinishHex() != sha) {
      // A corrupt blob would be refused at its first read anyway; the
      // submitter uploads it again.
      MF_RETURN_IF_ERROR(conn.Run(kDrop, pg::Params().Text(sha), "drop a corrupt blob").status());
      summary->skipped.push_back(
          absl::StrCat("blob ", sha.substr(0, 12), " (its bytes do not match its digest)"));
      continue;
    }
    ++summary->blobs;
    summary->blob_bytes += bytes;
  }
  if (rc != SQLITE_DONE) return s.Error(rc, "read blobs");
  return absl::OkStatus();
}

absl::Status Migrate(const MigrateOptions& o, std::ostream& out) {
  if (!IsPostgresUrl(o.to)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--to: \"", pg::MaskPassword(o.to), "\" is not a postgres:// or postgresql:// URL"));
  }
  const std::string db_path = absl::StrCat(o.data_dir, "/musafarm.db");
  if (::access(db_path.c_str(), F_OK) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("no coordinator store at ", db_path, "; pass the farm's --data-dir"));
  }
  // Held until we return: no coordinator runs on the data dir meanwhile.
  absl::StatusOr<int> lock = LockDataDir(o.data_dir);
  if (!lock.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(lock.status().message(), "; stop that coordinator before migrating"));
  }
  struct Unlock {
    int fd;
    ~Unlock() { ::close(fd); }
  } unlock{*lock};

  MF_ASSIGN_OR_RETURN(SecretsKey key,
                      LoadSecretsKey(o.secrets_key_file, std::getenv(kSecretsKeyEnv), o.data_dir));
  MF_ASSIGN_OR_RETURN(SecretCipher cipher, SecretCipher::Create(key.key));
  // Opening it as the coordinator does brings the file to this version's
  // schema and seals any value an old coordinator left in clear, so every
  // sealed column can be copied as it is.
  MF_RETURN_IF_ERROR(OpenSqliteStore(db_path, cipher).status());
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(db_path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  sql::DbPtr db(raw);
  if (rc != SQLITE_OK) return sql::SqliteError(db.get(), rc, absl::StrCat("open ", db_path));
  MF_ASSIGN_OR_RETURN(std::set<std::string> tables, SqliteTables(db.get()));
  MF_RETURN_IF_ERROR(CheckEveryTableKnown(tables));

  MF_ASSIGN_OR_RETURN(std::unique_ptr<pg::Connection> conn, pg::Connection::Open(o.to));
  MF_RETURN_IF_ERROR(MigratePostgresSchema(*conn));
  Summary summary;
  std::deque<std::string> queries;  // the prepared statements' names and text
  // One read snapshot of SQLite (the lock keeps writers away anyway).
  MF_RETURN_IF_ERROR(sql::Exec(db.get(), "BEGIN", "read snapshot"));
  MF_RETURN_IF_ERROR(conn->InTransaction("migrate", [&]() -> absl::Status {
    MF_RETURN_IF_ERROR(CheckEmpty(*conn));
    for (const char* table : kTables) {
      if (tables.count(table) == 0) continue;  // an older farm without it
      MF_ASSIGN_OR_RETURN(int64_t n, CopyTable(db.get(), *conn, table, &queries));
      summary.rows.emplace_back(table, n);
    }
    if (tables.count("blobs") != 0) {
      MF_RETURN_IF_ERROR(CopyBlobs(db.get(), *conn, absl::StrCat(o.data_dir, "/blobs"), &summary));
    }
    return CopyLogs(*conn, absl::StrCat(o.data_dir, "/logs"), &summary);
  }));
  (void)sql::Exec(db.get(), "COMMIT", "end the read snapshot");

  out << "migrated " << o.data_dir << " into " << conn->where() << " (one transaction):\n";
  for (const auto& [table, n] : summary.rows) out << "  " << table << ": " << n << " row(s)\n";
  out << "  logs and artifacts: " << summary.log_streams << " stream(s), " << summary.log_bytes
      << " bytes\n";
  out << "  content store: " << summary.blobs << " blob(s), " << summary.blob_bytes << " bytes\n";
  for (const std::string& s : summary.skipped) out << "  not copied: " << s << "\n";
  out << "Start the coordinator(s) with --store " << conn->where()
      << " and the same secrets key (" << key.source
      << "), with their --data-dir holding the TLS material (pki/). The data dir's musafarm.db, "
         "logs/ and blobs/ are left as they were and are no longer used.\n";
  return absl::OkStatus();
}

}  // namespace

int RunMigrate(const MigrateOptions& options, std::ostream& out, std::ostream& err) {
  absl::Status s = Migrate(options, out);
  if (s.ok()) return 0;
  err << "migrate: " << s.message() << "\n";
  if (absl::IsInvalidArgument(s) || absl::IsFailedPrecondition(s)) {
    err << "migrate: nothing was written to the database\n";
    return 2;
  }
  err << "migrate: nothing was written to the database (the transaction rolled back); fix the "
         "cause and run it again\n";
  return 1;
}

}  // namespace musafarm::coordinator
