#!/usr/bin/env bash
# The test command: sets up a fresh Debian 12 machine, builds, runs every test.
#   bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/docker/install.sh   # Docker Engine, registry, busybox: the Docker executor tests use real daemons
start=$(date +%s)
bash scripts/build.sh
echo "build: $(( $(date +%s) - start ))s"
start=$(date +%s)
bash scripts/long-checks.sh "${BUILD_DIR:-build}"   # packages in a debootstrap chroot; only when their inputs changed
echo "long-checks: $(( $(date +%s) - start ))s"
start=$(date +%s)
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure -j "$(nproc)" --timeout 300)
echo "tests: $(( $(date +%s) - start ))s"
# The benchmarks, each briefly, so they cannot rot (figures are not checked: bench/run.sh measures).
start=$(date +%s)
bash bench/run.sh --smoke
echo "bench smoke: $(( $(date +%s) - start ))s"
# The whole suite again under clang with AddressSanitizer + UndefinedBehaviorSanitizer,
# the bounded fuzz runs included. Its objects carry -Wthread-safety -Werror=thread-safety,
# so it is also the thread-safety check (scripts/tsa-build.sh compiled the same objects once more).
bash scripts/asan-test.sh
# ThreadSanitizer over the tests of the parts without gRPC (common, pipeline, coordinator
# core and store, the agent's logic and executors), Abseil's synchronization instrumented:
# about 2.5 min with a warm ccache (BENCHMARKS.md, "CI").
start=$(date +%s)
bash scripts/tsan-test.sh
echo "tsan: $(( $(date +%s) - start ))s"
