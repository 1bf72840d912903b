// The coordinator's log path: LogStore::Append (coordinator/log_store.h, the
// file backend) of agent log chunks, as OnLog stores them, into a temp dir.
// The agent's side (redaction, spool) is bench/output_path_bench.cc.
#include <memory>
#include <string>

#include "bench/micro/temp_dir.h"
#include "benchmark/benchmark.h"
#include "coordinator/log_store.h"

namespace {
namespace co = musafarm::coordinator;

// Chunks of state.range(0) bytes appended to one attempt's log.
void BM_LogAppend(benchmark::State& state) {
  musafarm::bench::TempDir dir(state, "musafarm-log-bench");
  if (!dir.ok()) return;
  const std::string chunk(static_cast<size_t>(state.range(0)), 'x');
  uint64_t offset = 0;
  {
    std::unique_ptr<co::LogStore> logs = co::OpenFileLogStore(dir.path() + "/logs");
    for (auto _ : state) {
      auto size = logs->Append("j1/build", 1, offset, chunk);
      if (!size.ok()) {
        state.SkipWithError(size.status().ToString().c_str());
        break;
      }
      offset = *size;
    }
    logs->CloseAttempt("j1/build", 1);
  }
  state.SetBytesProcessed(static_cast<int64_t>(offset));
}
// A line, a typical agent chunk, and a large one.
BENCHMARK(BM_LogAppend)->Arg(80)->Arg(4096)->Arg(64 << 10)->Unit(benchmark::kMicrosecond);

}  // namespace
