#!/usr/bin/env bash
# ThreadSanitizer over the parts without gRPC (build type Tsan, CMakeLists.txt) in
# build-tsan/ (or $TSAN_BUILD_DIR): the common, pipeline, coordinator core and agent
# test binaries, plus the checks in tests/sanitizers that the build is live and that
# its absl::Mutex is instrumented. Debian's Abseil is not: this script fetches the
# abseil source package of the installed libabsl-dev (apt-get source with its own
# deb-src list and list dir, so the system's apt configuration is left alone) into
# /var/cache/musafarm-ci/tsan/ (outside the checkout, so fresh clones on this machine
# reuse it; $MUSAFARM_CI_CACHE moves it; build-tsan/ when that is not writable) unless
# $MF_TSAN_ABSL_SOURCE names an unpacked tree. gRPC is left out: Debian's is not
# instrumented either and has its own synchronization (docs/security.md, "Sanitizers").
#   bash scripts/tsan-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${TSAN_BUILD_DIR:-build-tsan}
JOBS=${JOBS:-$(nproc)}
CXX_BIN=${TSAN_CXX:-clang++-14}
command -v "$CXX_BIN" >/dev/null || { echo "tsan-test: $CXX_BIN not found" >&2; exit 1; }
mkdir -p "$BUILD_DIR"
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)

version=$(dpkg-query -W -f='${Version}' libabsl-dev)
src_root=${MUSAFARM_CI_CACHE:-/var/cache/musafarm-ci}/tsan/abseil-$version
mkdir -p "$src_root" 2>/dev/null && [ -w "$src_root" ] || src_root=$BUILD_DIR/abseil-src
absl_src=${MF_TSAN_ABSL_SOURCE:-$src_root/abseil}
if [ -n "${MF_TSAN_ABSL_SOURCE:-}" ] && [ ! -d "$absl_src/absl" ]; then
  echo "tsan-test: MF_TSAN_ABSL_SOURCE=$absl_src holds no absl/" >&2; exit 1
fi
if [ ! -d "$absl_src/absl" ]; then
  rm -rf "$src_root" && mkdir -p "$src_root"
  apt_dir=$src_root/apt
  mkdir -p "$apt_dir/lists/partial"
  printf 'deb-src http://deb.debian.org/debian %s main\n' bookworm bookworm-updates >"$apt_dir/sources.list"
  printf 'deb-src http://deb.debian.org/debian-security bookworm-security main\n' >>"$apt_dir/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
            -o "Dir::State::Lists=$apt_dir/lists")
  apt-get "${apt_opts[@]}" -q update >/dev/null
  (cd "$src_root" && apt-get "${apt_opts[@]}" -q source --download-only "abseil=$version" >/dev/null &&
   dpkg-source -x abseil_*.dsc abseil >/dev/null)
  echo "tsan-test: abseil $version source in $absl_src"
fi

launcher=()
if command -v ccache >/dev/null 2>&1; then
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(cd .. && pwd)}
  export CCACHE_NOHASHDIR=1
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_CXX_COMPILER="$CXX_BIN" -DCMAKE_BUILD_TYPE=Tsan \
  -DMF_TSAN_ABSL_SOURCE="$absl_src" "${launcher[@]}" >/dev/null
# Every test binary of common/, pipeline/, coordinator/ and agent/ that links no gRPC
# (the others open channels or servers: transport_test, http_test, pki_test, ...).
tests=(common_test pipeline_test pipeline_parts_test pipeline_params_test pipeline_options_test
       coordinator_test store_test access_test enrollment_test metrics_test backup_test
       agent_test agent_executor_test agent_host_test docker_executor_test image_pruner_test)
ninja -C "$BUILD_DIR" -j "$JOBS" tsan_mutex_counter tsan_mutex_counter_debian_absl "${tests[@]}"

# ignore_noninstrumented_modules: Debian's Abseil outside synchronization (LowLevelAlloc
# mmaps the per-thread state a Mutex hands between threads) is not instrumented; TSan would
# count those mmaps as writes that the mutex's own, deliberately ignored, internals never order.
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1:suppressions=$PWD/tests/sanitizers/tsan.supp}
(cd "$BUILD_DIR" && ctest --output-on-failure -L tsan_run)
failed=0
for t in "${tests[@]}"; do
  bin=$(find "$BUILD_DIR" -name "$t" -type f -perm -u+x | head -1)
  echo "tsan-test: $t"
  (cd "$BUILD_DIR" && "$bin" --gtest_brief=1) || { echo "tsan-test: $t FAILED"; failed=1; }
done
exit $failed
