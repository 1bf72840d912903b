// The agent's output path, per byte a task prints: redaction of secret values
// (common/redactor.h) and the disk spool that keeps unacknowledged output
// (agent/log_spool.h), appended in log-sized chunks and acknowledged as the
// coordinator would. Tells whether either could slow a chatty build.
//
//   build/bench/output_path_bench [--mib N] [--chunk BYTES] [--secrets N] [--dir DIR]
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/log_spool.h"
#include "common/redactor.h"

namespace mf = musafarm;

int main(int argc, char** argv) {
  int mib = 256, chunk = 64 << 10, secrets = 5;
  std::string dir = absl::StrCat("/tmp/musafarm-output-bench-", ::getpid());
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--mib") mib = std::atoi(argv[i + 1]);
    if (flag == "--chunk") chunk = std::atoi(argv[i + 1]);
    if (flag == "--secrets") secrets = std::atoi(argv[i + 1]);
    if (flag == "--dir") dir = argv[i + 1];
  }
  // Build-log-like text: printable lines of varying length, with an
  // occasional secret in it (as a careless download tool would print).
  std::vector<std::string> values;
  for (int s = 0; s < secrets; ++s) {
    values.push_back(absl::StrCat("https://ci:token-", s, "-9f8e7d6c@dl.example.com/pkg", s, ".tar.gz"));
  }
  std::mt19937_64 rng(42);
  std::string text;
  while (text.size() < static_cast<size_t>(chunk) * 16) {
    const int len = 20 + static_cast<int>(rng() % 100);
    for (int c = 0; c < len; ++c) text.push_back(static_cast<char>('a' + rng() % 26));
    if (!values.empty() && rng() % 200 == 0) text += values[rng() % values.size()];
    text.push_back('\n');
  }
  const uint64_t total = static_cast<uint64_t>(mib) << 20;

  mf::Redactor redactor(values);
  uint64_t in = 0, out = 0;
  absl::Time t0 = absl::Now();
  for (size_t at = 0; in < total; at = (at + chunk) % (text.size() - chunk)) {
    out += redactor.Feed(absl::string_view(text).substr(at, chunk)).size();
    in += chunk;
  }
  out += redactor.Finish().size();
  const double redact_s = absl::ToDoubleSeconds(absl::Now() - t0);

  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto spool = mf::agent::LogSpool::Create(dir + "/attempt.log");
  if (!spool.ok()) {
    std::fprintf(stderr, "%s\n", spool.status().ToString().c_str());
    return 1;
  }
  uint64_t appended = 0;
  t0 = absl::Now();
  for (size_t at = 0; appended < total; at = (at + chunk) % (text.size() - chunk)) {
    if (absl::Status s = (*spool)->Append(absl::string_view(text).substr(at, chunk)); !s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
    appended += chunk;
    // The coordinator acknowledges a little behind: 4 chunks in flight.
    if (appended > 4u * chunk) (*spool)->Ack(appended - 4u * chunk);
  }
  const double spool_s = absl::ToDoubleSeconds(absl::Now() - t0);
  std::filesystem::remove_all(dir);

  std::printf("output path: %d MiB in %d-byte chunks, %d secrets\n", mib, chunk, secrets);
  std::printf("  redact: %.2f s, %.0f MiB/s (%llu bytes out)\n", redact_s, mib / redact_s,
              static_cast<unsigned long long>(out));
  std::printf("  spool append + ack: %.2f s, %.0f MiB/s\n", spool_s, mib / spool_s);
  return 0;
}
