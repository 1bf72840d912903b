#!/usr/bin/env bash
# The performance figures of issue 19 in one command: builds Release into
# build-bench/ (its own tree; ccache shares objects with the other builds),
# then runs bench/run.py, which prints the table (figure, value, target,
# met / not met, load average) and writes bench/results/latest.json.
#   bash bench/run.sh            the full run (about 4 minutes after the build)
#   bash bench/run.sh --smoke    CI: builds the benchmarks in $BUILD_DIR (default
#                                build/), runs each briefly (under 60 s), writes
#                                $BUILD_DIR/bench-smoke.json
# Extra arguments go to run.py (--no-slurm skips the Slurm peer; --only logs,scale
# takes some groups of figures only).
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=0
args=()
for a in "$@"; do
  if [ "$a" = --smoke ]; then smoke=1; else args+=("$a"); fi
done
targets=(coordinator/musafarm-coordinator agent/musafarm-agent cli/musafarm
         bench/spawn_loop bench/core_bench bench/output_path_bench bench/access_bench bench/startup_bench
         bench/micro_bench bench/agent_sim bench/log_writer)
if [ "$smoke" = 1 ]; then
  dir=${BUILD_DIR:-build}
  BUILD_DIR=$dir bash scripts/build.sh "${targets[@]}"
  start=$(date +%s)
  tmp=$(mktemp -d /tmp/musafarm-bench-smoke.XXXXXX)
  trap 'rm -rf "$tmp"' EXIT
  "$dir/bench/core_bench" --cells 10 --dir "$tmp/core" >/dev/null
  "$dir/bench/output_path_bench" --mib 1 --dir "$tmp/output" >/dev/null
  "$dir/bench/access_bench" 20 >/dev/null
  "$dir/bench/startup_bench" --jobs 100 --dir "$tmp/startup" >/dev/null
  TMPDIR=$tmp "$dir/bench/micro_bench" --benchmark_min_time=0.01 >/dev/null
  echo "bench smoke: in-process benchmarks ran in $(( $(date +%s) - start ))s"
  python3 bench/run.py --build-dir "$dir" --smoke --out "$dir/bench-smoke.json" "${args[@]}"
  echo "bench smoke: $(( $(date +%s) - start ))s in all"
  exit 0
fi
dir=${BENCH_BUILD_DIR:-build-bench}
start=$(date +%s)
BUILD_DIR=$dir BUILD_TYPE=Release bash scripts/build.sh "${targets[@]}"
echo "bench: build $(( $(date +%s) - start ))s"
python3 bench/run.py --build-dir "$dir" "${args[@]}"
