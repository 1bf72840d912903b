#include "coordinator/nightly_diff.h"

#include <map>
#include <set>

#include "absl/strings/str_cat.h"

namespace musafarm::coordinator {
namespace {

// "7/dev-3.8/test" -> "dev-3.8/test"; its cell is what lies between.
std::string TaskKey(const v1::Task& t) {
  const std::string& id = t.id();
  const size_t slash = id.find('/');
  return slash == std::string::npos ? id : id.substr(slash + 1);
}

std::string CellOf(const std::string& key) {
  const size_t slash = key.rfind('/');
  return slash == std::string::npos ? "" : key.substr(0, slash);
}

}  // namespace

std::string TaskCell(const v1::Task& task) { return CellOf(TaskKey(task)); }

namespace {

bool Reported(const v1::Task& t) {
  return t.has_tests() && (t.tests().passed() + t.tests().failed() + t.tests().errors() > 0 ||
                           t.tests().passed_tests_size() > 0);
}

}  // namespace

NightlyDiff CompareRuns(const v1::Job& previous, const v1::Job& current) {
  NightlyDiff diff;
  diff.previous_job_id = previous.id();
  std::map<std::string, const v1::Task*> before;
  for (const v1::Task& t : previous.tasks()) before[TaskKey(t)] = &t;
  for (const v1::Task& t : current.tasks()) {
    const std::string key = TaskKey(t);
    const std::string cell = CellOf(key);
    const std::set<std::string> now_failing(t.tests().failed_tests().begin(),
                                            t.tests().failed_tests().end());
    std::set<std::string> then_failing;
    if (auto it = before.find(key); it != before.end()) {
      then_failing.insert(it->second->tests().failed_tests().begin(),
                          it->second->tests().failed_tests().end());
    }
    for (const std::string& test : now_failing) {
      (then_failing.count(test) ? diff.still_failing : diff.newly_failing)
          .push_back({cell, key, test});
    }
    if (!Reported(t)) continue;
    for (const std::string& test : then_failing) {
      if (now_failing.count(test) == 0) diff.fixed.push_back({cell, key, test});
    }
  }
  return diff;
}

nlohmann::json DiffToJson(const NightlyDiff& diff) {
  auto list = [](const std::vector<TestChange>& changes) {
    nlohmann::json out = nlohmann::json::array();
    for (const TestChange& c : changes) {
      out.push_back({{"cell", c.cell}, {"task", c.task}, {"test", c.test}});
    }
    return out;
  };
  return {{"previous_job_id", diff.previous_job_id},
          {"newly_failing", list(diff.newly_failing)},
          {"fixed", list(diff.fixed)},
          {"still_failing", list(diff.still_failing)}};
}

std::string DiffSummary(const NightlyDiff& diff, size_t max_per_kind) {
  std::string out = absl::StrCat("compared with job ", diff.previous_job_id, ":");
  for (const auto& [name, changes] :
       {std::pair<const char*, const std::vector<TestChange>*>{"newly failing", &diff.newly_failing},
        {"fixed", &diff.fixed},
        {"still failing", &diff.still_failing}}) {
    absl::StrAppend(&out, "\n", name, " (", changes->size(), ")");
    for (size_t i = 0; i < changes->size() && i < max_per_kind; ++i) {
      const TestChange& c = (*changes)[i];
      absl::StrAppend(&out, i == 0 ? ": " : ", ", c.cell.empty() ? "" : c.cell + ": ", c.test);
    }
    if (changes->size() > max_per_kind) absl::StrAppend(&out, ", ...");
  }
  return out;
}

}  // namespace musafarm::coordinator
