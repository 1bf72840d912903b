#include "common/logging.h"

#include "absl/base/const_init.h"
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/bounded_text.h"
#include "common/utf8.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/stdout_color_sinks.h"

namespace musafarm {
namespace {

// The message, with control characters escaped (Printable): a name, reason or
// error text from outside cannot start a new log line or drive the terminal
// that shows the log (issue 12). Messages without any cost one scan.
class EscapedMessage final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const absl::string_view text(msg.payload.data(), msg.payload.size());
    if (!HasControl(text) && IsValidUtf8(text)) {
      dest.append(text.data(), text.data() + text.size());
      return;
    }
    const std::string escaped = Printable(text, text.size());
    dest.append(escaped.data(), escaped.data() + escaped.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<EscapedMessage>();
  }
};

// Serializes creating a logger (spdlog's registry throws on a second logger of
// the same name) with reading and changing the level new loggers start at.
ABSL_CONST_INIT absl::Mutex mu(absl::kConstInit);
spdlog::level::level_enum default_level ABSL_GUARDED_BY(mu) = spdlog::level::info;
}  // namespace

std::shared_ptr<spdlog::logger> GetLogger(const std::string& name) {
  absl::MutexLock lock(&mu);
  if (auto existing = spdlog::get(name)) return existing;
  auto logger = spdlog::stderr_color_mt(name);
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<EscapedMessage>('*').set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%L%$ [%n] %*");
  logger->set_formatter(std::move(formatter));
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

}  // namespace musafarm
