#!/usr/bin/env bash
# The README's run command. Sets up a fresh Debian 12 machine (build
# dependencies, Docker Engine and a registry from Debian packages), builds
# musafarm, starts a registry on 127.0.0.1, two private dockerd instances and a
# coordinator (embedded SQLite) with two agents (one dockerd and one declared
# GPU each), runs the fixture torch_musa matrix (tests/fixtures/docker, the
# shape of pipelines/torch_musa.yaml: base -> dev -> test-dev per Python,
# release -> test-release per Python, 15 tasks; base images pass between the
# agents through the registry) and prints one row per task with its state,
# duration and test counts, and the per-cell test results. Exits 0 when every
# task succeeded (the farm worked), 1 when a task failed.
#   bash scripts/quickstart.sh                  # all 15 tasks succeed
#   bash scripts/quickstart.sh --with-failure   # Python 3.9's dev cell fails a unit test on
#                                               # purpose (param failing_python=3.9): how a
#                                               # failure looks; exits 1
# The same farm without Docker: scripts/quickstart-exec.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
extra=()
case "${1:-}" in
  "") ;;
  --with-failure) extra=(--param failing_python=3.9) ;;
  *) echo "usage: bash scripts/quickstart.sh [--with-failure]" >&2; exit 2 ;;
esac
ROOT=$(pwd)
bash scripts/install-deps.sh
bash scripts/docker/install.sh
bash scripts/build.sh musafarm-coordinator musafarm-agent musafarm
BIN=$ROOT/${BUILD_DIR:-build}
S=$ROOT/scripts/docker

FARM=$(mktemp -d /tmp/musafarm-quickstart.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for d in a b; do "$S/dockerd.sh" stop "$FARM/dockerd-$d" >/dev/null 2>&1 || true; done
  "$S/registry.sh" stop "$FARM/registry" >/dev/null 2>&1 || true
}
trap cleanup EXIT

port=""
for p in 5000 5001 5002 5003 5004 5005; do
  if "$S/registry.sh" start "$FARM/registry" "$p" >"$FARM/registry.log" 2>&1; then port=$p; break; fi
done
[ -n "$port" ] || { cat "$FARM/registry.log"; echo "no free port for the registry" >&2; exit 1; }
REGISTRY=127.0.0.1:$port
hosts=()
for d in a b; do
  "$S/dockerd.sh" start "$FARM/dockerd-$d" >"$FARM/dockerd-$d.log" 2>&1
  h=$(sed 's/^DOCKER_HOST=//' "$FARM/dockerd-$d/docker-host")
  "$S/busybox-image.sh" "$h" musafarm/busybox:test >/dev/null
  hosts+=("$h")
done

"$BIN/coordinator/musafarm-coordinator" --insecure --listen 127.0.0.1:0 --port-file "$FARM/port" \
  --data-dir "$FARM/coordinator" 2>"$FARM/coordinator.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$FARM/port" ] && break; sleep 0.1; done
export MUSAFARM_COORDINATOR=127.0.0.1:$(cat "$FARM/port")
# This machine has no GPU: each agent declares one (--gpus) so that the test
# stages, which need a GPU, can be placed; MTHREADS_VISIBLE_DEVICES is set all the same.
"$BIN/agent/musafarm-agent" --insecure --name agent-a --label role=base --slots 3 --work-dir "$FARM/agent-a" \
  --docker --buildkit --docker-host "${hosts[0]}" --gpus 1 --gpu-vendor mthreads \
  2>"$FARM/agent-a.log" &
pids+=($!)
"$BIN/agent/musafarm-agent" --insecure --name agent-b --label role=dev --slots 3 --work-dir "$FARM/agent-b" \
  --docker --buildkit --docker-host "${hosts[1]}" --gpus 1 --gpu-vendor mthreads \
  2>"$FARM/agent-b.log" &
pids+=($!)
for _ in $(seq 100); do
  [ "$("$BIN/cli/musafarm" --insecure agents 2>/dev/null | grep -c connected)" -ge 2 ] && break
  sleep 0.1
done
sed -e "s|@REGISTRY@|$REGISTRY|g" -e "s|@CONTEXT@|$ROOT/tests/fixtures/docker|g" \
  tests/fixtures/docker/pipeline.yaml.in > "$FARM/pipeline.yaml"
echo "farm: coordinator at $MUSAFARM_COORDINATOR, registry at $REGISTRY, files in $FARM"
"$BIN/cli/musafarm" --insecure agents
echo
rc=0
"$BIN/cli/musafarm" --insecure submit "$FARM/pipeline.yaml" "${extra[@]}" --watch >"$FARM/watch.log" || rc=$?
"$BIN/cli/musafarm" --insecure status 1 || true
echo
"$BIN/cli/musafarm" --insecure results 1 --junit "$FARM/junit.xml" || true
echo "JUnit: $FARM/junit.xml"
if [ "$rc" = 0 ]; then
  echo "quickstart: the farm ran the fixture matrix; every task succeeded"
elif [ ${#extra[@]} -gt 0 ]; then
  echo "quickstart: job 1 failed, as asked (--with-failure): see dev-3.9/test-dev above"
else
  echo "quickstart: job 1 did not succeed (exit $rc); the farm's logs are in $FARM" >&2
fi
exit $rc
