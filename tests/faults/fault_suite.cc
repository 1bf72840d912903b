#include "tests/faults/fault_suite.h"

#include <signal.h>
#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"

namespace musafarm::faults {

using e2e::Farm;

std::vector<uint64_t> Seeds(const std::vector<uint64_t>& fixed) {
  const char* env = std::getenv("MF_FAULT_SEED");
  uint64_t seed = 0;
  if (env != nullptr && absl::SimpleAtoi(env, &seed)) return {seed};
  return fixed;
}

std::string SeedName(uint64_t seed) { return absl::StrCat("seed_", seed); }

namespace {

// Characters of the padding after a line's number: varied, so that a byte out
// of place shows, and harmless inside single quotes in sh.
std::string Pad(size_t n) {
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string pad;
  for (size_t i = 0; i < n; ++i) pad.push_back(kChars[i % (sizeof(kChars) - 1)]);
  return pad;
}

// "<task> <i>/<n> <pad>\n" is `width` bytes: the pad takes what the rest leaves.
size_t PadLength(const std::string& task, int width) {
  const size_t fixed = task.size() + 12;  // " 0001/0150 " and "\n"
  return static_cast<size_t>(width) > fixed ? static_cast<size_t>(width) - fixed : 0;
}

}  // namespace

std::string ExpectedLines(const std::string& task, int lines, int width) {
  const std::string pad = Pad(PadLength(task, width));
  std::string out;
  for (int i = 1; i <= lines; ++i) {
    absl::StrAppendFormat(&out, "%s %04d/%04d %s\n", task, i, lines, pad);
  }
  return out;
}

StageShape Shape(std::string name, int lines, int width, int every, std::string pause,
                 std::vector<std::string> needs) {
  StageShape s;
  s.name = std::move(name);
  s.lines = lines;
  s.width = width;
  s.every = every;
  s.pause = std::move(pause);
  s.needs = std::move(needs);
  return s;
}

Workload::Workload(std::string out_dir, std::vector<std::string> cells,
                   std::vector<StageShape> stages)
    : out_dir_(std::move(out_dir)), cells_(std::move(cells)), stages_(std::move(stages)) {
  std::filesystem::create_directories(out_dir_);
  for (const std::string& c : cells_) {
    // One script serves every cell, so the pad length must not depend on the cell.
    if (c.size() != cells_[0].size()) std::abort();
  }
}

Workload Workload::Standard(const std::string& out_dir) {
  return Workload(out_dir, {"x", "y", "z"},
                  {
                      Shape("s1", 30, 60, 5, "0.1"),
                      Shape("s2", 150, 1000, 10, "0.1", {"s1"}),
                      Shape("s3", 60, 80, 6, "0.1", {"s1"}),
                      Shape("s4", 40, 100, 5, "0.1", {"s2", "s3"}),
                  });
}

const StageShape* Workload::Stage(const std::string& name) const {
  for (const StageShape& s : stages_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::string Workload::Yaml() const {
  std::string y = absl::StrCat("name: faults\nmatrix:\n  cell: [", absl::StrJoin(cells_, ", "),
                               "]\nenv: {OUT: \"", out_dir_, "\"}\nstages:\n");
  for (const StageShape& s : stages_) {
    const std::string task = absl::StrCat("${cell}/", s.name);
    const std::string pad = Pad(PadLength(cells_[0] + "/" + s.name, s.width));
    const std::string fmt = "'%s %04d/%04d %s\\n'";
    const std::string args = absl::StrCat("\"", task, "\" $i ", s.lines, " '", pad, "'");
    std::vector<std::string> script = {
        "o=\"$OUT/$MUSAFARM_ATTEMPT_ID.out\"",
        "echo $$ > \"$OUT/$MUSAFARM_ATTEMPT_ID.pid\"",
        ": > \"$o\"",
        "i=1",
        absl::StrCat("while [ $i -le ", s.lines, " ]; do"),
        absl::StrCat("  printf ", fmt, " ", args),
        absl::StrCat("  printf ", fmt, " ", args, " >> \"$o\""),
        absl::StrCat("  if [ $((i % ", s.every, ")) -eq 0 ]; then sleep ", s.pause, "; fi"),
        "  i=$((i + 1))",
        "done",
    };
    if (!s.hold_on_agent.empty()) {
      script.push_back(absl::StrCat("if [ \"$MUSAFARM_AGENT\" = \"", s.hold_on_agent,
                                    "\" ]; then while :; do sleep 0.1; done; fi"));
    }
    absl::StrAppend(&y, "  - name: ", s.name, "\n");
    if (!s.needs.empty()) absl::StrAppend(&y, "    needs: [", absl::StrJoin(s.needs, ", "), "]\n");
    if (s.retries > 0) absl::StrAppend(&y, "    retries: ", s.retries, "\n");
    if (!s.labels.empty()) {
      absl::StrAppend(&y, "    labels: [", absl::StrJoin(s.labels, ", "), "]\n");
    }
    if (s.docker_image.empty()) {
      absl::StrAppend(&y, "    shell: |\n");
      for (const std::string& line : script) absl::StrAppend(&y, "      ", line, "\n");
    } else {
      // The container sees the out dir as /out; its shell is the image's sh.
      absl::StrAppend(&y, "    env: {OUT: /out}\n", "    docker_run:\n",
                      "      image: ", s.docker_image, "\n", "      network: none\n",
                      "      mounts: [\"", out_dir_, ":/out\"]\n", "      command:\n",
                      "        - sh\n", "        - -c\n", "        - |\n");
      for (const std::string& line : script) absl::StrAppend(&y, "          ", line, "\n");
    }
  }
  return y;
}

std::vector<std::string> Workload::Tasks() const {
  std::vector<std::string> tasks;
  for (const std::string& c : cells_) {
    for (const StageShape& s : stages_) tasks.push_back(absl::StrCat(c, "/", s.name));
  }
  return tasks;
}

std::string Workload::ExpectedLog(const std::string& task) const {
  const StageShape* s = Stage(task.substr(task.find('/') + 1));
  return s == nullptr ? "" : ExpectedLines(task, s->lines, s->width);
}

std::vector<TransitionRow> ReadTransitions(const std::string& db_path, std::string* error) {
  std::vector<TransitionRow> rows;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    *error = absl::StrCat("open ", db_path, ": ", db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return rows;
  }
  sqlite3_stmt* st = nullptr;
  const char* sql =
      "SELECT task_id, attempt_id, from_state, to_state, at_us, reason FROM transitions "
      "ORDER BY seq";
  if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) != SQLITE_OK) {
    *error = absl::StrCat("query ", db_path, ": ", sqlite3_errmsg(db));
    sqlite3_close(db);
    return rows;
  }
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    TransitionRow r;
    r.task_id = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    r.attempt_id = static_cast<uint64_t>(sqlite3_column_int64(st, 1));
    r.from = static_cast<v1::TaskState>(sqlite3_column_int(st, 2));
    r.to = static_cast<v1::TaskState>(sqlite3_column_int(st, 3));
    r.at_us = sqlite3_column_int64(st, 4);
    r.reason = reinterpret_cast<const char*>(sqlite3_column_text(st, 5));
    rows.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) *error = absl::StrCat("read ", db_path, ": ", sqlite3_errmsg(db));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return rows;
}

namespace {

// Where two strings first differ, for a readable mismatch message.
std::string FirstDifference(const std::string& got, const std::string& want) {
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  auto around = [i](const std::string& s) {
    const size_t from = i > 40 ? i - 40 : 0;
    return absl::CEscape(s.substr(from, 80));
  };
  return absl::StrCat("first difference at byte ", i, " of ", got.size(), " (want ", want.size(),
                      "): got \"", around(got), "\" want \"", around(want), "\"");
}

}  // namespace

std::string SummaryLine(uint64_t seed, const std::string& scenario, const RunReport& r) {
  return absl::StrCat("seed=", seed, " scenario=", scenario, " tasks submitted=", r.submitted,
                      " completed=", r.completed, " lost=", r.lost,
                      " completed_twice=", r.completed_twice, " log_bytes written=", r.written,
                      " stored=", r.stored);
}

RunReport CheckRun(Farm& farm, const std::string& job_id, const Workload& workload, uint64_t seed,
                   const std::string& scenario, absl::Duration bound, v1::TaskState want) {
  RunReport r;
  const std::vector<std::string> tasks = workload.Tasks();
  r.submitted = static_cast<int>(tasks.size());

  // 1. The job ends within the bound.
  if (!farm.WaitForJobEnd(job_id, bound)) {
    r.problems.push_back(absl::StrCat("job ", job_id, " did not reach a terminal state within ",
                                      absl::FormatDuration(bound)));
  }
  auto job = farm.Job(job_id);
  if (!job.ok()) {
    r.problems.push_back(absl::StrCat("status of job ", job_id, ": ", job.status().ToString()));
  } else {
    r.job = *job;
  }

  // 2 and 3. Every task ended as wanted, with the exact log.
  std::map<std::string, uint64_t> final_attempt;
  for (const std::string& name : tasks) {
    const v1::Task* t = job.ok() ? e2e::FindTask(*job, name) : nullptr;
    if (t == nullptr) {
      ++r.lost;
      r.problems.push_back(absl::StrCat("task ", job_id, "/", name, " not in the job"));
      continue;
    }
    final_attempt[t->id()] = t->attempt_id();
    if (t->state() != want) {
      ++r.lost;
      r.problems.push_back(absl::StrCat("task ", t->id(), " is ", v1::TaskState_Name(t->state()),
                                        " (", t->reason(), "), want ", v1::TaskState_Name(want),
                                        "; attempt ", t->attempt_id(), " on ", t->agent()));
      continue;
    }
    ++r.completed;
    if (want != v1::TASK_STATE_SUCCEEDED) continue;  // a failed attempt's log is not checked
    const e2e::CliResult log = farm.Cli({"logs", t->id()});
    const std::string wrote =
        e2e::ReadFile(absl::StrCat(workload.out_dir(), "/", t->attempt_id(), ".out"));
    const std::string expected = workload.ExpectedLog(name);
    r.stored += log.out.size();
    r.written += wrote.size();
    if (log.exit_code != 0) {
      r.problems.push_back(absl::StrCat("logs ", t->id(), ": exit ", log.exit_code, " ", log.err));
    }
    if (log.out != expected) {
      r.problems.push_back(
          absl::StrCat("stored log of ", t->id(), " attempt ", t->attempt_id(),
                       " is not what it printed: ", FirstDifference(log.out, expected)));
    }
    if (wrote != expected) {
      r.problems.push_back(
          absl::StrCat("attempt ", t->attempt_id(), " of ", t->id(),
                       " wrote something else: ", FirstDifference(wrote, expected)));
    }
  }

  // 4. One terminal transition per task, by its final attempt, and nothing after it.
  farm.StopCoordinator(SIGTERM);
  std::string error;
  std::vector<TransitionRow> all = ReadTransitions(farm.data_dir() + "/musafarm.db", &error);
  if (!error.empty()) r.problems.push_back(error);
  std::map<std::string, std::vector<const TransitionRow*>> by_task;
  for (const TransitionRow& t : all) {
    if (final_attempt.count(t.task_id) == 0) continue;
    r.transitions.push_back(t);
  }
  for (const TransitionRow& t : r.transitions) by_task[t.task_id].push_back(&t);
  for (const auto& [task, attempt] : final_attempt) {
    int terminal = 0;
    bool twice = false;
    for (const TransitionRow* t : by_task[task]) {
      if (terminal > 0) {
        twice = true;  // anything after the end: a second completion or a late change
        r.problems.push_back(absl::StrCat(task, ": transition after its end: attempt ",
                                          t->attempt_id, " ", v1::TaskState_Name(t->from), " -> ",
                                          v1::TaskState_Name(t->to), " (", t->reason, ")"));
      }
      if (IsTerminal(t->to)) {
        ++terminal;
        if (t->attempt_id != attempt) {
          twice = true;
          r.problems.push_back(absl::StrCat(task, ": ended by attempt ", t->attempt_id,
                                            ", not by its final attempt ", attempt));
        }
      }
    }
    if (terminal == 0)
      r.problems.push_back(absl::StrCat(task, ": no terminal transition recorded"));
    if (twice) ++r.completed_twice;
  }

  std::cout << SummaryLine(seed, scenario, r) << std::endl;
  for (const std::string& p : r.problems) {
    std::cout << "  problem: " << p << std::endl;
    ADD_FAILURE() << "seed=" << seed << " scenario=" << scenario << ": " << p;
  }
  EXPECT_EQ(r.lost, 0);
  EXPECT_EQ(r.completed_twice, 0);
  EXPECT_EQ(r.completed, r.submitted);
  EXPECT_EQ(r.written, r.stored);
  if (!r.problems.empty()) {
    std::cout << "  rerun: MF_FAULT_SEED=" << seed << ", farm files in " << farm.dir() << std::endl;
  }
  return r;
}

std::vector<std::string> BusyAgents(Farm& farm, const std::string& job_id) {
  std::vector<std::string> agents;
  auto job = farm.Job(job_id);
  if (!job.ok()) return agents;
  for (const v1::Task& t : job->tasks()) {
    if (t.state() == v1::TASK_STATE_RUNNING || t.state() == v1::TASK_STATE_ASSIGNED) {
      agents.push_back(t.agent());
    }
  }
  return agents;
}

bool ProcessGone(int pid) {
  const std::string stat = e2e::ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  if (stat.empty()) return true;
  // "pid (comm) S ...": the state follows the last ')'.
  const size_t close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
}

}  // namespace musafarm::faults
