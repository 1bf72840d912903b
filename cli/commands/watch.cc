#include <sys/ioctl.h>
#include <unistd.h>

#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "cli/client.h"
#include "cli/color.h"
#include "cli/commands/commands.h"
#include "cli/commands/watch_stream.h"
#include "cli/render.h"
#include "cli/watch_model.h"

namespace musafarm::cli {
namespace {

// The terminal view: a live table of tasks, redrawn in place, with log lines
// and notices scrolling above it. Events arrive on the caller's thread; a
// ticker thread redraws every `every` so running tasks' elapsed time moves.
// Redraws happen on an event unless the last one is younger than `every`.
// Thread-safe.
class LiveView {
 public:
  LiveView(const CommandEnv& env, WatchModel* model, absl::Duration every)
      : env_(env), model_(model), every_(every) {
    struct winsize ws {};
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
      width_ = ws.ws_col;
      height_ = ws.ws_row;
    }
    ticker_ = std::thread([this] {
      while (!stop_.WaitForNotificationWithTimeout(every_)) {
        absl::MutexLock lock(&mu_);
        RedrawLocked();
      }
    });
  }
  ~LiveView() { StopTicker(); }

  void OnEvent(const v1::WatchEvent& ev) {
    absl::MutexLock lock(&mu_);
    for (std::string& l : model_->Apply(ev, env_.clock->Now())) above_.push_back(std::move(l));
    if (absl::Now() - last_draw_ >= every_) RedrawLocked();
  }

  // Prints a message to stderr, which shares the terminal: the table is
  // erased first and drawn again below the message.
  void Notice(const std::string& line) {
    absl::MutexLock lock(&mu_);
    *env_.out << LiveFrame(prev_lines_, above_, {}) << std::flush;
    above_.clear();
    prev_lines_ = 0;
    *env_.err << "musafarm: " << line << "\n" << std::flush;
    RedrawLocked();
  }

  // Stops redrawing and replaces the live table with the remaining log lines
  // and then the final result table if `with_result`, else the last live table
  // (the watch failed: it is the last known state).
  void End(bool with_result) {
    StopTicker();
    absl::MutexLock lock(&mu_);
    for (std::string& l : model_->FlushLogs()) above_.push_back(std::move(l));
    std::vector<std::string> last;
    if (with_result) {
      last = RenderResult(model_->job(), env_.clock->Now());
    } else if (model_->has_snapshot()) {
      last = RenderLiveTable(model_->job(), env_.clock->Now(), width_, height_ - 1);
    }
    if (env_.color) last = ColorStateColumn(std::move(last));
    for (std::string& l : last) above_.push_back(std::move(l));
    *env_.out << LiveFrame(prev_lines_, above_, {}) << std::flush;
    above_.clear();
    prev_lines_ = 0;
  }

 private:
  void StopTicker() {
    if (!stop_.HasBeenNotified()) stop_.Notify();
    if (ticker_.joinable()) ticker_.join();
  }

  void RedrawLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<std::string> table =
        RenderLiveTable(model_->job(), env_.clock->Now(), width_, height_ - 1);
    if (env_.color) table = ColorStateColumn(std::move(table));
    *env_.out << LiveFrame(prev_lines_, above_, table) << std::flush;
    above_.clear();
    prev_lines_ = static_cast<int>(table.size());
    last_draw_ = absl::Now();
  }

  const CommandEnv& env_;
  int width_ = 80;
  int height_ = 24;
  absl::Mutex mu_;
  WatchModel* const model_ ABSL_PT_GUARDED_BY(mu_);
  std::vector<std::string> above_ ABSL_GUARDED_BY(mu_);
  int prev_lines_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_draw_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  const absl::Duration every_;
  absl::Notification stop_;
  std::thread ticker_;
};

void PrintLines(const CommandEnv& env, const std::vector<std::string>& lines) {
  for (const std::string& l : lines) *env.out << l << "\n";
}

}  // namespace

int RunWatch(const CommandEnv& env, const WatchOptions& opts) {
  const bool json = env.output != OutputFormat::kTable;  // or YAML
  const bool live = env.tty && !json;
  WatchModel::Options model_opts;
  model_opts.logs = opts.logs;
  model_opts.live = live;
  model_opts.tz = env.tz;
  model_opts.color = env.color;
  WatchModel model(model_opts);
  auto make_request = [&] {
    v1::WatchJobRequest req;
    req.set_job_id(opts.job_id);
    req.set_logs(opts.logs);
    // Text and the live table print a change from its state, not its spec;
    // JSON and YAML print each change whole.
    req.set_without_specs(!json);
    for (const auto& [task, offset] : model.LogOffsets())
      (*req.mutable_log_offsets())[task] = offset;
    return req;
  };

  grpc::Status status;
  if (live) {
    LiveView view(env, &model, opts.redraw_every);
    status = FollowWatch(
        env, opts, make_request, [&](const v1::WatchEvent& ev) { view.OnEvent(ev); },
        [&](const std::string& line) { view.Notice(line); });
    view.End(/*with_result=*/status.ok() && model.finished());
  } else {
    std::string text;  // what one event prints: one write (a log chunk is thousands of lines)
    status = FollowWatch(
        env, opts, make_request,
        [&](const v1::WatchEvent& ev) {
          text.clear();
          model.ApplyText(ev, env.clock->Now(), &text);
          if (json) {
            PrintMessage(env, ev);
          } else {
            env.out->write(text.data(), static_cast<std::streamsize>(text.size()));
          }
          env.out->flush();
        },
        [&](const std::string& line) { *env.err << "musafarm: " << line << "\n"; });
    if (!json) {
      PrintLines(env, model.FlushLogs());
      if (status.ok() && model.finished()) {
        *env.out << "\n";
        std::vector<std::string> result = RenderResult(model.job(), env.clock->Now());
        PrintLines(env, env.color ? ColorStateColumn(std::move(result)) : result);
      }
    }
    env.out->flush();
  }

  if (!status.ok()) return ReportRpcError(env, status);
  if (!model.finished()) {
    *env.err << "musafarm: the coordinator ended the watch of job " << opts.job_id
             << " before the job finished\n";
    return kExitJobFailed;
  }
  return model.ExitCode();
}

}  // namespace musafarm::cli
