#pragma once

// The SQLite Store is opened with OpenSqliteStore() (declared in store.h). This
// header describes its file format, which operators may query with sqlite3.
//
// Schema (version 6). Each `proto` column holds the serialized message and is the
// source of truth; the other columns copy fields out of it for ad-hoc SQL and
// future filtering, and every upsert rewrites them together with the proto.
//
//   jobs(seq INTEGER PRIMARY KEY, id TEXT UNIQUE, name, state, created_us, ended_us,
//        proto)                          proto: v1.Job with `tasks` cleared
//   tasks(seq INTEGER PRIMARY KEY, id TEXT UNIQUE, job_id REFERENCES jobs(id), state,
//         attempt_id, agent, proto)      proto: v1.Task; index on job_id
//   transitions(seq INTEGER PRIMARY KEY, task_id REFERENCES tasks(id), attempt_id,
//               from_state, to_state, at_us, reason)       index on task_id
//   agents(name TEXT PRIMARY KEY, proto) proto: v1.Agent
//   job_secrets(job_id REFERENCES jobs(id), name, value)     (version 2)
//   join_tokens(id TEXT PRIMARY KEY, salt, secret_hash, uses_left, expire_us,
//               created_us, description)                     (version 3)
//   issued_certificates(serial TEXT PRIMARY KEY, name, fingerprint,
//                       not_after_us, issued_us)   index on name (version 3)
//   revocations(name TEXT PRIMARY KEY, revoked_us, serials)  (version 3)
//                                        serials: comma-separated hex
//   api_tokens(id TEXT PRIMARY KEY, user, role, salt, secret_hash, created_us,
//              created_by, expire_us, revoked_us)  index on user (version 4)
//                                        expire_us / revoked_us: 0 = never / not revoked
//   audit(seq INTEGER PRIMARY KEY, at_us, user, role, action, target, peer, outcome)
//                                        append-only (triggers refuse UPDATE and
//                                        DELETE); index on (user, seq) (version 4)
//   jobs gains submitter, stored_bytes, retention_s (copied from the proto);
//        indexes on state and ended_us                       (version 5)
//   job_images(job_id REFERENCES jobs(id), image)  index on image (version 5)
//   image_outbox(image TEXT PRIMARY KEY)  registry tags retention still has to
//                                        delete (version 5)
//   counters(name TEXT PRIMARY KEY, value)  'max_job_number': highest id of
//                                        deleted jobs (version 5)
//   schedules(name TEXT PRIMARY KEY, paused, next_fire_us, proto)  proto:
//                                        v1.Schedule without runs (version 6)
//   schedule_secrets(schedule REFERENCES schedules(name), name, value)  sealed
//                                        like job_secrets (version 6)
//   schedule_runs(seq INTEGER PRIMARY KEY, schedule, slot_us, job_id, proto)
//                                        proto: v1.ScheduleRun; job_id '' when
//                                        nothing was submitted; index on
//                                        (schedule, seq) (version 6)
//   job_webhooks(job_id REFERENCES jobs(id), seq, value)  a running job's
//                                        webhooks, sealed (version 6)
//   webhook_outbox(id TEXT PRIMARY KEY, job_id, target, body, attempts,
//                  next_attempt_us, last_error)  notifications still to
//                                        deliver; target sealed (version 6)
//
// `seq` aliases the rowid and gives insertion order. It is declared rather than
// implicit because VACUUM may renumber implicit rowids. Upserts use
// INSERT ... ON CONFLICT(id) DO UPDATE, which keeps a row's seq. States are the
// proto enum numbers. attempt_id is a uint64 stored bit-for-bit in SQLite's signed
// INTEGER, so ids of 2^63 and above read as negative in SQL.

#include "coordinator/store.h"

namespace musafarm::coordinator {

// The schema version (PRAGMA user_version) this build writes. OpenSqliteStore()
// migrates older files up to it and refuses files with a newer version.
inline constexpr int kSqliteSchemaVersion = 7;

}  // namespace musafarm::coordinator
