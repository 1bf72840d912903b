#!/usr/bin/env bash
# check_no_grpc.sh BINARY SUITE: fails if BINARY loads any libgrpc* (ldd), has
# gRPC code linked into it statically (nm), or holds no test of SUITE.
# Run by ctest on the coordinator core's test binary: the core must build,
# link and run its tests without gRPC.
set -euo pipefail
bin="$1"
suite="$2"
libs="$(ldd "$bin")"
if grep -i 'libgrpc' <<<"$libs"; then
  echo "FAIL: $bin loads gRPC (above)"
  exit 1
fi
syms="$(nm -C "$bin" | grep -E ' (grpc::|grpc_core::)| grpc_[a-z_]+$' || true)"
if [[ -n "$syms" ]]; then
  head -20 <<<"$syms"
  echo "FAIL: $bin has gRPC symbols linked in (above)"
  exit 1
fi
# Listed first, then searched: `grep -q` in a pipe exits at its first match
# and the binary, still writing, dies of SIGPIPE, which pipefail reports.
tests="$("$bin" --gtest_list_tests)"
if ! grep -q "^${suite}\." <<<"$tests"; then
  echo "FAIL: $bin holds no ${suite} tests"
  exit 1
fi
echo "OK: $bin: no libgrpc in ldd, no gRPC symbols, ${suite} tests present"
