#!/usr/bin/env bash
# End-to-end farm throughput with the real binaries on loopback: a coordinator
# (SQLite, synchronous=FULL), AGENTS agents with SLOTS slots each, and a job of
# CELLS x (build -> test) no-op tasks. Prints submit-to-end time, tasks per
# second and the mean gap between a task's dependency ending and the task
# starting (the farm's own dispatch overhead).
#   bash bench/farm_bench.sh [CELLS] [AGENTS] [SLOTS]
set -euo pipefail
cd "$(dirname "$0")/.."
CELLS=${1:-100}
AGENTS=${2:-2}
SLOTS=${3:-4}
BIN=${BUILD_DIR:-build}
DIR=$(mktemp -d /tmp/musafarm-bench.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$DIR"' EXIT

"$BIN/coordinator/musafarm-coordinator" --insecure --listen 127.0.0.1:0 --port-file "$DIR/port" \
  --data-dir "$DIR/data" --log-level warn 2>"$DIR/coordinator.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$DIR/port" ] && break; sleep 0.1; done
export MUSAFARM_COORDINATOR=127.0.0.1:$(cat "$DIR/port")
for n in $(seq "$AGENTS"); do
  "$BIN/agent/musafarm-agent" --insecure --name "bench-$n" --slots "$SLOTS" --work-dir "$DIR/agent-$n" \
    --log-level warn 2>"$DIR/agent-$n.log" &
  pids+=($!)
done
for _ in $(seq 100); do
  [ "$("$BIN/cli/musafarm" --insecure agents | grep -c connected)" -ge "$AGENTS" ] && break
  sleep 0.1
done

{
  echo "name: farm-bench"
  echo "matrix:"
  printf '  n: ['; seq -s, 1 "$CELLS" | sed 's/,/, /g' | tr -d '\n'; echo ']'
  echo "stages:"
  echo "  - name: build"
  echo "    exec: [\"true\"]"
  echo "  - name: test"
  echo "    needs: [build]"
  echo "    exec: [\"true\"]"
} > "$DIR/bench.yaml"

"$BIN/cli/musafarm" --insecure submit "$DIR/bench.yaml" --watch >/dev/null
"$BIN/cli/musafarm" --insecure status 1 --output json > "$DIR/job.json"
python3 - "$DIR/job.json" "$CELLS" "$AGENTS" "$SLOTS" <<'PY'
import json, sys
job = json.load(open(sys.argv[1]))
cells, agents, slots = sys.argv[2:5]
tasks = job["tasks"]
ends = {t["id"]: int(t["endedUs"]) for t in tasks}
total_s = (int(job["endedUs"]) - int(job["createdUs"])) / 1e6
gaps = [int(t["startedUs"]) - ends[t["spec"]["needs"][0]] for t in tasks if t["spec"].get("needs")]
print(f"farm_bench: {len(tasks)} tasks ({cells} cells x build->test), {agents} agents x {slots} slots")
print(f"  job state             {job['state']}")
print(f"  submit -> job end     {total_s:8.2f} s")
print(f"  tasks/s               {len(tasks) / total_s:8.1f}")
print(f"  dependency -> start   {sum(gaps) / len(gaps) / 1000:8.2f} ms mean, {max(gaps) / 1000:.2f} ms max")
PY
