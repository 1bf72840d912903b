#include "coordinator/webhook_format.h"

#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/task_state.h"
#include "nlohmann/json.hpp"

namespace musafarm::coordinator {
namespace {

using Json = nlohmann::json;

// Failed tasks listed in a chat message; the JSON body lists them all.
constexpr size_t kMaxChatTasks = 10;

std::string JobStateText(v1::JobState s) {
  const std::string& name = v1::JobState_Name(s);
  constexpr absl::string_view kPrefix = "JOB_STATE_";
  if (!absl::StartsWith(name, kPrefix)) return "unknown";
  return absl::AsciiStrToLower(absl::string_view(name).substr(kPrefix.size()));
}

bool Failed(const v1::Task& t) {
  return t.state() == v1::TASK_STATE_FAILED || t.state() == v1::TASK_STATE_TIMED_OUT;
}

std::string Rfc3339(const google::protobuf::Timestamp& t) {
  return absl::FormatTime(absl::RFC3339_sec, absl::FromUnixSeconds(t.seconds()),
                          absl::UTCTimeZone());
}

std::string Link(const Notification& n) {
  if (n.dashboard_url.empty()) return "";
  std::string base = n.dashboard_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return absl::StrCat(base, "/#/job/", n.job.id());
}

Json Tests(const v1::TestCounts& t) {
  return {{"passed", t.passed()}, {"failed", t.failed()}, {"skipped", t.skipped()},
          {"errors", t.errors()}};
}

void Add(const v1::TestCounts& from, v1::TestCounts* to) {
  to->set_passed(to->passed() + from.passed());
  to->set_failed(to->failed() + from.failed());
  to->set_skipped(to->skipped() + from.skipped());
  to->set_errors(to->errors() + from.errors());
}

// A cell's state is its worst task's: failed, then cancelled, then still
// running, then succeeded.
int Severity(v1::TaskState s) {
  switch (s) {
    case v1::TASK_STATE_FAILED:
    case v1::TASK_STATE_TIMED_OUT:
      return 4;
    case v1::TASK_STATE_CANCELLED:
    case v1::TASK_STATE_SKIPPED:
      return 3;
    case v1::TASK_STATE_SUCCEEDED:
      return 1;
    default:
      return 2;  // not ended yet
  }
}

std::string CellState(int severity) {
  return severity == 4 ? "failed" : severity == 3 ? "cancelled" : severity == 2 ? "running"
                                                                              : "succeeded";
}

Json JsonBody(const Notification& n) {
  const v1::Job& job = n.job;
  Json j;
  j["event"] = n.event == Notification::Event::kEnded ? "job.ended" : "job.first_failure";
  Json head = {{"id", job.id()},
               {"name", job.name()},
               {"state", JobStateText(job.state())},
               {"submitter", job.submitter()},
               {"schedule", job.schedule()},
               {"link", Link(n)}};
  if (job.has_scheduled_time()) head["scheduled_time"] = Rfc3339(job.scheduled_time());
  j["job"] = std::move(head);

  std::map<std::string, int> by_state;
  v1::TestCounts total;
  std::vector<std::string> cell_order;
  std::map<std::string, std::pair<int, v1::TestCounts>> cells;
  Json failed = Json::array();
  for (const v1::Task& t : job.tasks()) {
    ++by_state[TaskStateName(t.state())];
    Add(t.tests(), &total);
    const std::string cell = TaskCell(t);
    auto [it, inserted] = cells.try_emplace(cell, 0, v1::TestCounts());
    if (inserted) cell_order.push_back(cell);
    it->second.first = std::max(it->second.first, Severity(t.state()));
    Add(t.tests(), &it->second.second);
    if (!Failed(t)) continue;
    auto tail = n.log_tails.find(t.id());
    failed.push_back({{"id", t.id()},
                      {"cell", cell},
                      {"stage", t.spec().stage()},
                      {"reason", t.reason()},
                      {"failed_tests", t.tests().failed_tests()},
                      {"log_tail", tail == n.log_tails.end() ? "" : tail->second}});
  }
  Json counts = {{"tasks", job.tasks_size()}, {"tests", Tests(total)}};
  for (const auto& [state, count] : by_state) counts[state] = count;
  j["counts"] = std::move(counts);
  Json cell_list = Json::array();
  for (const std::string& cell : cell_order) {
    const auto& [severity, tests] = cells[cell];
    cell_list.push_back({{"cell", cell}, {"state", CellState(severity)}, {"tests", Tests(tests)}});
  }
  j["cells"] = std::move(cell_list);
  j["failed_tasks"] = std::move(failed);
  if (n.diff.has_value()) j["nightly_diff"] = DiffToJson(*n.diff);
  return j;
}

}  // namespace

std::string NotificationText(const Notification& n) {
  const v1::Job& job = n.job;
  std::string text =
      n.event == Notification::Event::kEnded
          ? absl::StrCat("musafarm job ", job.id(), " (", job.name(), ") ",
                         JobStateText(job.state()))
          : absl::StrCat("musafarm job ", job.id(), " (", job.name(), "): a task failed");
  if (!job.schedule().empty()) absl::StrAppend(&text, ", schedule ", job.schedule());
  int succeeded = 0, failed = 0, other = 0;
  v1::TestCounts total;
  std::vector<const v1::Task*> failures;
  for (const v1::Task& t : job.tasks()) {
    Add(t.tests(), &total);
    if (t.state() == v1::TASK_STATE_SUCCEEDED) {
      ++succeeded;
    } else if (Failed(t)) {
      ++failed;
      failures.push_back(&t);
    } else {
      ++other;
    }
  }
  absl::StrAppend(&text, "\ntasks: ", succeeded, " succeeded, ", failed, " failed, ", other,
                  " other; tests: ", total.passed(), " passed, ", total.failed() + total.errors(),
                  " failed, ", total.skipped(), " skipped");
  for (size_t i = 0; i < failures.size() && i < kMaxChatTasks; ++i) {
    const v1::Task& t = *failures[i];
    absl::StrAppend(&text, "\nfailed: ", t.id(), t.reason().empty() ? "" : ": ", t.reason());
  }
  if (failures.size() > kMaxChatTasks) {
    absl::StrAppend(&text, "\n... and ", failures.size() - kMaxChatTasks, " more");
  }
  if (n.diff.has_value()) absl::StrAppend(&text, "\n", DiffSummary(*n.diff));
  if (const std::string link = Link(n); !link.empty()) absl::StrAppend(&text, "\n", link);
  return text;
}

std::string WebhookBody(const Notification& n, v1::WebhookFormat format) {
  Json body;
  switch (format) {
    case v1::WEBHOOK_FORMAT_SLACK:
      body = {{"text", NotificationText(n)}};
      break;
    case v1::WEBHOOK_FORMAT_FEISHU:
      body = {{"msg_type", "text"}, {"content", {{"text", NotificationText(n)}}}};
      break;
    default:
      body = JsonBody(n);
      break;
  }
  // Log lines may hold bytes that are not UTF-8: replaced, never thrown on.
  return body.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace musafarm::coordinator
