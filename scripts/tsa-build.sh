#!/usr/bin/env bash
# Compiles the whole tree with clang++-14 and -Wthread-safety -Werror=thread-safety
# (CMakeLists.txt adds them for clang) into build-tsa/ (or $TSA_BUILD_DIR), so a
# guarded field touched without its lock fails the test command. GCC ignores the
# annotations. Cheap on purpose: -O0 without debug info, every object file
# (libraries, binaries and tests: the analysis runs per translation unit) but
# only the three binaries are linked, so no test binary is linked or run here.
#   bash scripts/tsa-build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${TSA_BUILD_DIR:-build-tsa}
JOBS=${JOBS:-$(nproc)}
CXX_BIN=${TSA_CXX:-clang++-14}
command -v "$CXX_BIN" >/dev/null || { echo "tsa-build: $CXX_BIN not found" >&2; exit 1; }
# ccache as in scripts/build.sh: paths hashed relative to the checkout's parent.
launcher=()
if command -v ccache >/dev/null 2>&1; then
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(cd .. && pwd)}
  export CCACHE_NOHASHDIR=1
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
# Build type "Tsa" has no flags of its own: -O0, no -g.
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_CXX_COMPILER="$CXX_BIN" -DCMAKE_BUILD_TYPE=Tsa \
  "${launcher[@]}" >/dev/null
mapfile -t objects < <(ninja -C "$BUILD_DIR" -t targets all | sed -n 's/^\([^:]*\.o\): .*/\1/p')
ninja -C "$BUILD_DIR" -j "$JOBS" "${objects[@]}" musafarm-coordinator musafarm-agent musafarm "$@"
