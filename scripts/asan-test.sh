#!/usr/bin/env bash
# The sanitizer build and its run: the whole tree with clang++-14, AddressSanitizer
# and UndefinedBehaviorSanitizer (-fno-sanitize-recover=all) and the thread-safety
# flags (build type Asan, CMakeLists.txt) into build-asan/ (or $ASAN_BUILD_DIR), then
# every test there, e2e included: the binaries they spawn are the sanitized ones, and
# the e2e harness fails a test whose child printed a report (tests/e2e/sanitizer_report.h).
#   bash scripts/asan-test.sh            # build and run the suite
#   bash scripts/asan-test.sh -R core    # extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${ASAN_BUILD_DIR:-build-asan}
JOBS=${JOBS:-$(nproc)}
CXX_BIN=${ASAN_CXX:-clang++-14}
command -v "$CXX_BIN" >/dev/null || { echo "asan-test: $CXX_BIN not found" >&2; exit 1; }
source scripts/sanitizer-env.sh
launcher=()
if command -v ccache >/dev/null 2>&1; then
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(cd .. && pwd)}
  export CCACHE_NOHASHDIR=1
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
start=$(date +%s)
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_CXX_COMPILER="$CXX_BIN" -DCMAKE_BUILD_TYPE=Asan \
  "${launcher[@]}" >/dev/null
ninja -C "$BUILD_DIR" -j "$JOBS"
echo "asan-build: $(( $(date +%s) - start ))s"
start=$(date +%s)
(cd "$BUILD_DIR" && ctest --output-on-failure -j "$(nproc)" --timeout 600 "$@")
echo "asan-tests: $(( $(date +%s) - start ))s"
