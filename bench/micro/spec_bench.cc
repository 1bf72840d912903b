// Spec expansion (pipeline/spec.h ParseAndExpand), as `musafarm submit` and
// the coordinator's Submit run it: the farm's default torch_musa pipeline and
// a wide synthetic matrix (axes^3 cells x build -> test -> package).
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "pipeline/spec.h"

namespace {
namespace pl = musafarm::pipeline;

std::string ReadSource(const std::string& rel) {
  std::ifstream in(absl::StrCat(MUSAFARM_SOURCE_DIR, "/", rel));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Expands `yaml` once per iteration; counts its tasks.
void Expand(benchmark::State& state, const std::string& yaml, const std::string& file) {
  int tasks = 0;
  for (auto _ : state) {
    auto job = pl::ParseAndExpand(yaml, file, "j1");
    if (!job.ok()) {
      state.SkipWithError(job.status().ToString().c_str());
      return;
    }
    tasks = job->tasks_size();
    benchmark::DoNotOptimize(job);
  }
  state.counters["tasks"] = tasks;
  state.SetItemsProcessed(state.iterations() * tasks);
}

void BM_ExpandTorchMusa(benchmark::State& state) {
  const std::string yaml = ReadSource("pipelines/torch_musa.yaml");
  Expand(state, yaml, "pipelines/torch_musa.yaml");
}
BENCHMARK(BM_ExpandTorchMusa)->Unit(benchmark::kMicrosecond);

// `axis` values on each of three axes: axis^3 cells, three stages each.
std::string WideMatrix(int axis) {
  std::string values;
  for (int v = 0; v < axis; ++v) absl::StrAppend(&values, v == 0 ? "" : ", ", "\"v", v, "\"");
  return absl::StrCat("name: wide\nmatrix:\n  a: [", values, "]\n  b: [", values, "]\n  c: [",
                      values,
                      "]\nstages:\n"
                      "  - name: build\n    exec: [\"make\", \"A=${a}\", \"B=${b}\", \"C=${c}\"]\n"
                      "  - name: test\n    needs: [build]\n    exec: [\"make\", \"test\"]\n"
                      "  - name: package\n    needs: [test]\n    exec: [\"make\", \"dist\"]\n");
}

void BM_ExpandWideMatrix(benchmark::State& state) {
  const std::string yaml = WideMatrix(static_cast<int>(state.range(0)));
  Expand(state, yaml, "wide.yaml");
}
// 4^3 = 64 cells (192 tasks) and 10^3 = 1,000 cells (3,000 tasks), near the
// 1,024-cell limit (pipeline/model.h kMaxCells).
BENCHMARK(BM_ExpandWideMatrix)->Arg(4)->Arg(10)->Unit(benchmark::kMillisecond);

}  // namespace
