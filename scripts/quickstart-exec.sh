#!/usr/bin/env bash
# The farm without Docker: sets up a fresh Debian 12 machine, builds musafarm,
# starts a farm on this machine (one coordinator and two agents on loopback,
# embedded SQLite store), runs the torch_musa matrix as host commands
# (pipelines/torch_musa-exec.yaml) and prints the result table.
#   bash scripts/quickstart-exec.sh [PIPELINE]
# The README's run command, with Docker: scripts/quickstart.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PIPELINE=${1:-$ROOT/pipelines/torch_musa-exec.yaml}
bash scripts/install-deps.sh
bash scripts/build.sh musafarm-coordinator musafarm-agent musafarm
BIN=$ROOT/${BUILD_DIR:-build}

FARM=$(mktemp -d /tmp/musafarm-exec.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

"$BIN/coordinator/musafarm-coordinator" --insecure --listen 127.0.0.1:0 --port-file "$FARM/port" \
  --data-dir "$FARM/coordinator" 2>"$FARM/coordinator.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$FARM/port" ] && break; sleep 0.1; done
[ -s "$FARM/port" ] || { cat "$FARM/coordinator.log"; echo "coordinator did not start" >&2; exit 1; }
export MUSAFARM_COORDINATOR=127.0.0.1:$(cat "$FARM/port")

for n in 1 2; do
  "$BIN/agent/musafarm-agent" --insecure --name "agent-$n" --label os=linux --label "host=local-$n" \
    --slots 2 --work-dir "$FARM/agent-$n" 2>"$FARM/agent-$n.log" &
  pids+=($!)
done
for _ in $(seq 100); do
  [ "$("$BIN/cli/musafarm" --insecure agents 2>/dev/null | grep -c connected)" -ge 2 ] && break
  sleep 0.1
done
echo "farm: coordinator at $MUSAFARM_COORDINATOR, logs and data in $FARM"
"$BIN/cli/musafarm" --insecure agents
echo
rc=0
"$BIN/cli/musafarm" --insecure submit "$PIPELINE" --watch || rc=$?
exit $rc
