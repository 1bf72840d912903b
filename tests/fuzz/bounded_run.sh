#!/usr/bin/env bash
# A bounded, reproducible libFuzzer run (the ctest fuzz_<name>_bounded in the
# sanitizer build): starts from the seed corpus, -seed=1, N runs, and writes new
# inputs and any crash into a temporary directory, never into the repository.
#   bash tests/fuzz/bounded_run.sh FUZZER_BINARY CORPUS_DIR RUNS
set -euo pipefail
fuzzer=$1 corpus=$2 runs=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/new" "$work/crashes"
set +e
"$fuzzer" -seed=1 -runs="$runs" -max_len=4096 -timeout=25 -rss_limit_mb=2048 \
  -artifact_prefix="$work/crashes/" -print_final_stats=1 "$work/new" "$corpus"
rc=$?
set -e
for f in "$work"/crashes/*; do
  [ -e "$f" ] || continue
  echo "bounded_run: $(basename "$f"), base64 (save it under $corpus to reproduce):"
  base64 -w0 "$f"; echo
done
exit $rc
