// A task that prints as fast as it can, for the log figures of issue 19:
// MIB mebibytes of 128-byte lines to stdout, in 64 KiB writes. Every line
// carries its sequence number, so a reader can tell that every line arrived
// in order; the first line of each write also carries the CLOCK_MONOTONIC
// time it was written at ("MFTS" and 19 digits), so a reader on the same
// machine can tell how long a line took to reach it.
//
//   log_writer MIB
//
// Line: "<seq, 10 digits> MFTS<19 digits>|-----------------------...\n" (the
// stamp is 23 dashes on the other lines), 128 bytes with the newline.
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr size_t kLine = 128;
constexpr size_t kLinesPerWrite = 512;  // 64 KiB

void PutDigits(char* at, uint64_t v, int width) {
  for (int i = width - 1; i >= 0; --i) {
    at[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
}

uint64_t MonotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 || std::atol(argv[1]) <= 0) {
    std::fprintf(stderr, "usage: log_writer MIB\n");
    return 2;
  }
  const uint64_t lines = static_cast<uint64_t>(std::atol(argv[1])) * (1 << 20) / kLine;
  static char buf[kLine * kLinesPerWrite];
  for (size_t i = 0; i < kLinesPerWrite; ++i) {
    char* l = buf + i * kLine;
    std::memset(l, '-', kLine - 1);
    l[10] = ' ';
    l[11 + 23] = '|';
    l[kLine - 1] = '\n';
  }
  uint64_t seq = 0;
  while (seq < lines) {
    const size_t n = static_cast<size_t>(lines - seq < kLinesPerWrite ? lines - seq : kLinesPerWrite);
    for (size_t i = 0; i < n; ++i) PutDigits(buf + i * kLine, seq + i, 10);
    std::memcpy(buf + 11, "MFTS", 4);
    PutDigits(buf + 15, MonotonicNs(), 19);
    size_t off = 0;
    const size_t len = n * kLine;
    while (off < len) {
      ssize_t w = ::write(1, buf + off, len - off);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        std::perror("log_writer: write");
        return 1;
      }
      off += static_cast<size_t>(w);
    }
    std::memset(buf + 11, '-', 23);  // the next write's first line stamps again
    seq += n;
  }
  return 0;
}
