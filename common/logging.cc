#include "common/logging.h"

#include "absl/base/const_init.h"
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/log_formatters.h"
#include "spdlog/sinks/stdout_color_sinks.h"

namespace musafarm {
namespace {

// Serializes creating a logger (spdlog's registry throws on a second logger of
// the same name) with reading and changing the level and format new loggers
// start with.
ABSL_CONST_INIT absl::Mutex mu(absl::kConstInit);
spdlog::level::level_enum default_level ABSL_GUARDED_BY(mu) = spdlog::level::info;
LogFormat default_format ABSL_GUARDED_BY(mu) = LogFormat::kText;
}  // namespace

std::shared_ptr<spdlog::logger> GetLogger(const std::string& name) {
  absl::MutexLock lock(&mu);
  if (auto existing = spdlog::get(name)) return existing;
  auto logger = spdlog::stderr_color_mt(name);
  logger->set_formatter(MakeLogFormatter(default_format));
  logger->set_level(default_level);
  return logger;
}

void SetLogLevel(const std::string& level_name) {
  absl::MutexLock lock(&mu);
  default_level = spdlog::level::from_str(level_name);
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) {
    mu.AssertHeld();  // the lambda runs inside apply_all, under the lock above
    l->set_level(default_level);
  });
}

void SetLogFormat(LogFormat format) {
  absl::MutexLock lock(&mu);
  default_format = format;
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) {
    mu.AssertHeld();  // the lambda runs inside apply_all, under the lock above
    l->set_formatter(MakeLogFormatter(default_format));
  });
}

}  // namespace musafarm
