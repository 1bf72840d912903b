#include "common/log_formatters.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/bounded_text.h"
#include "common/utf8.h"
#include "spdlog/pattern_formatter.h"

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

// "<6>": the line's priority for journald (sd-daemon(3)).
class JournalPriorityFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string p = absl::StrCat("<", JournalPriority(msg.level), ">");
    dest.append(p.data(), p.data() + p.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JournalPriorityFlag>();
  }
};

const char* LevelName(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "off";
  }
}

// {"time":"2026-12-02T10:00:01.500Z","level":"info","logger":"core","msg":"..."}
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string line = absl::StrCat(
        "{\"time\":\"",
        absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromChrono(msg.time), absl::UTCTimeZone()),
        "\",\"level\":\"", LevelName(msg.level),
        "\",\"logger\":", JsonQuote(absl::string_view(msg.logger_name.data(), msg.logger_name.size())),
        ",\"msg\":", JsonQuote(absl::string_view(msg.payload.data(), msg.payload.size())), "}\n");
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  if (name == "journald") return LogFormat::kJournald;
  return absl::InvalidArgumentError(
      absl::StrCat("--log-format: '", Printable(name), "' is not one of text, json, journald"));
}

LogFormat DefaultLogFormat(const char* journal_stream) {
  if (journal_stream == nullptr) return LogFormat::kText;
  // systemd sets it for the service's stdout and stderr; a child whose stderr
  // was redirected elsewhere inherits the variable, hence the comparison.
  std::vector<std::string> parts = absl::StrSplit(journal_stream, ':');
  uint64_t dev = 0, ino = 0;
  struct stat st = {};
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &dev) ||
      !absl::SimpleAtoi(parts[1], &ino) || ::fstat(2, &st) != 0) {
    return LogFormat::kText;
  }
  return static_cast<uint64_t>(st.st_dev) == dev && static_cast<uint64_t>(st.st_ino) == ino
             ? LogFormat::kJournald
             : LogFormat::kText;
}

absl::StatusOr<LogFormat> ChooseLogFormat(absl::string_view flag) {
  if (flag.empty()) return DefaultLogFormat(std::getenv("JOURNAL_STREAM"));
  return ParseLogFormat(flag);
}

std::string JsonQuote(absl::string_view s) {
  const std::string text = CoerceUtf8(s);
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (u < 0x20 || u == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", u);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

int JournalPriority(int spdlog_level) {
  switch (spdlog_level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return 7;  // LOG_DEBUG
    case spdlog::level::info:
      return 6;  // LOG_INFO
    case spdlog::level::warn:
      return 4;  // LOG_WARNING
    case spdlog::level::err:
      return 3;  // LOG_ERR
    default:
      return 2;  // LOG_CRIT: critical (MF_CHECK)
  }
}

std::unique_ptr<spdlog::formatter> MakeLogFormatter(LogFormat format) {
  switch (format) {
    case LogFormat::kJson:
      return std::make_unique<JsonFormatter>();
    case LogFormat::kJournald: {
      auto f = std::make_unique<spdlog::pattern_formatter>();
      f->add_flag<JournalPriorityFlag>('J').add_flag<EscapedMessage>('*').set_pattern(
          "%J[%n] %*");
      return f;
    }
    case LogFormat::kText:
      break;
  }
  auto f = std::make_unique<spdlog::pattern_formatter>();
  f->add_flag<EscapedMessage>('*').set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%L%$ [%n] %*");
  return f;
}

}  // namespace musafarm
