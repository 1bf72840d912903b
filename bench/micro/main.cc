// micro_bench: Google Benchmark's usual flags (--benchmark_filter,
// --benchmark_min_time, --benchmark_format=json ...), with the farm's own
// logging at warn so the store's migration notices stay out of the table.
#include "benchmark/benchmark.h"
#include "common/logging.h"

int main(int argc, char** argv) {
  musafarm::SetLogLevel("warn");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
