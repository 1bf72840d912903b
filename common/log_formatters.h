#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "spdlog/formatter.h"

namespace musafarm {

// How the coordinator and the agent write their log lines to stderr
// (--log-format, issue 16 item 6).
enum class LogFormat {
  kText,      // "2026-12-02T10:00:01.500 I [scheduler] message" (for a terminal or a file)
  kJson,      // one object per line: {"time","level","logger","msg"} (for log shippers)
  kJournald,  // "<6>[scheduler] message": sd-daemon priority prefixes, no time (journald stamps it)
};

// "text", "json" or "journald"; anything else is InvalidArgument naming the flag.
absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name);

// The format when none is given: journald when stderr is the journal's stream
// (`journal_stream` is $JOURNAL_STREAM, "DEVICE:INODE" of that stream as
// systemd sets it, and it matches stderr's), else text.
LogFormat DefaultLogFormat(const char* journal_stream);

// Sets the line format of every logger, existing and future (text until set).
// With the loggers, in logging.cc; declared here so that the header every
// file includes (logging.h) stays as it is.
void SetLogFormat(LogFormat format);

// What --log-format `flag` asks for; "" (not given): DefaultLogFormat of this
// process's $JOURNAL_STREAM.
absl::StatusOr<LogFormat> ChooseLogFormat(absl::string_view flag);

// `s` as a JSON string, quotes included: '"', '\' and control characters
// escaped (\n, \t, ..., \u001b, DEL as \u007f), and each byte that starts no
// well-formed UTF-8 sequence replaced by U+FFFD, so every line parses.
std::string JsonQuote(absl::string_view s);

// The sd-daemon priority ("<3>" error .. "<7>" debug) of an spdlog level.
int JournalPriority(int spdlog_level);

// A formatter for `format`: the whole line, newline included. Messages are
// escaped as the text format escapes them (no control character starts a new
// line), or JSON-quoted.
std::unique_ptr<spdlog::formatter> MakeLogFormatter(LogFormat format);

}  // namespace musafarm
