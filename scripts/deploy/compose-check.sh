#!/usr/bin/env bash
# The compose demo end to end on a private dockerd (issue 15, points 2 and 3):
# builds the images from the packages (scripts/deploy/images.sh), checks that
# Debian's docker-compose accepts deploy/compose/compose.yaml, brings the demo
# up, and runs the fixture pipeline (tests/fixtures/docker: docker builds,
# pushes to a registry, GPU test containers) for Python 3.8 to success with the
# host's CLI, through the published port.
#   bash scripts/deploy/compose-check.sh [BUILD_DIR]      (root; docker-compose, docker.io, docker-registry)
source "$(dirname "$0")/check-common.sh"
command -v docker-compose >/dev/null || fail "docker-compose missing: apt-get install docker-compose"
for p in 7070 8080; do
  ss -ltn | grep -q ":$p " && fail "port $p is in use: the demo publishes 127.0.0.1:$p"
done

dir=$(mktemp -d /var/tmp/musafarm-compose-check.XXXXXX)
project=mfcheck$$
registry=""
cleanup() {
  docker-compose -p "$project" -f deploy/compose/compose.yaml -f "$dir/override.yaml" down -v \
    >"$dir/down.log" 2>&1 || true
  [ -z "$registry" ] || bash scripts/docker/registry.sh stop "$dir/registry" >/dev/null 2>&1 || true
  bash scripts/docker/dockerd.sh stop "$dir/d" >/dev/null 2>&1 || true
  rm -rf --one-file-system "$dir"
}
trap cleanup EXIT
t0=$(date +%s)
eval "export $(bash scripts/docker/dockerd.sh start "$dir/d" | tail -1)"
bash scripts/deploy/images.sh "$BUILD_DIR"
bash scripts/docker/busybox-image.sh "$DOCKER_HOST" musafarm/busybox:test >/dev/null
for i in $(seq 0 19); do
  port=$(( 20000 + ($$ * 13 + i * 149) % 20000 ))
  if bash scripts/docker/registry.sh start "$dir/registry" "$port" >/dev/null 2>&1; then
    registry=127.0.0.1:$port
    break
  fi
done
[ -n "$registry" ] || fail "no registry"

# What the demo needs from this host: the private daemon's socket, a work dir at
# the same path inside and out, and (for the fixture only) its build context.
export DOCKER_SOCKET=${DOCKER_HOST#unix://} MUSAFARM_WORK=$dir/work
mkdir -p "$MUSAFARM_WORK"
cat >"$dir/override.yaml" <<EOF
services:
  agent-1:
    volumes: ["$HERE/tests/fixtures/docker:$HERE/tests/fixtures/docker:ro"]
  agent-2:
    volumes: ["$HERE/tests/fixtures/docker:$HERE/tests/fixtures/docker:ro"]
EOF
docker-compose -f deploy/compose/compose.yaml config >/dev/null || fail "docker-compose config refuses compose.yaml"
say "docker-compose config: ok"
t=$(date +%s)
docker-compose -p "$project" -f deploy/compose/compose.yaml -f "$dir/override.yaml" up -d \
  >"$dir/up.log" 2>&1 || { cat "$dir/up.log"; fail "docker-compose up"; }
cli=("$BUILD_DIR/cli/musafarm" --insecure --coordinator 127.0.0.1:7070)
for _ in $(seq 1 300); do
  [ "$("${cli[@]}" agents 2>/dev/null | grep -c 'compose-agent-.*connected')" = 2 ] && break
  sleep 0.2
done
"${cli[@]}" agents | grep -c 'compose-agent-.*connected' | grep -qx 2 ||
  { docker-compose -p "$project" -f deploy/compose/compose.yaml logs >&2; fail "agents did not connect"; }
say "up, both agents connected: $(( $(date +%s) - t ))s"

# The coordinator's health check (musafarm-coordinator probe on /readyz) passed:
# Docker says healthy and its last check printed the probe's 200 (the agents
# also wait for service_healthy before they start).
coordinator_id=$(docker-compose -p "$project" -f deploy/compose/compose.yaml ps -q coordinator)
health=$(docker inspect --format '{{json .State.Health}}' "$coordinator_id")
python3 - "$health" <<'PY' || fail "coordinator health check: $health"
import json, sys
h = json.loads(sys.argv[1])
assert h["Status"] == "healthy", h["Status"]
last = h["Log"][-1]
assert last["ExitCode"] == 0 and "/readyz: HTTP 200: ready" in last["Output"], last
PY
# The same route from the host through the published HTTP port.
python3 -c 'import sys,urllib.request; r=urllib.request.urlopen("http://127.0.0.1:8080/readyz", timeout=10); sys.exit(r.status != 200)' ||
  fail "/readyz through the published port 127.0.0.1:8080"
say "coordinator health check: healthy by musafarm-coordinator probe on /readyz ($(
  python3 -c 'import json,sys; print(json.loads(sys.argv[1])["Log"][-1]["Output"].strip())' "$health"))"

t=$(date +%s)
sed -e "s|@REGISTRY@|$registry|g" -e "s|@CONTEXT@|$HERE/tests/fixtures/docker|g" \
  tests/fixtures/docker/pipeline.yaml.in >"$dir/fixture.yaml"
if ! "${cli[@]}" submit "$dir/fixture.yaml" -v 3.8 --watch >"$dir/submit.log" 2>&1; then
  cat "$dir/submit.log"
  docker-compose -p "$project" -f deploy/compose/compose.yaml logs --tail 50 >&2
  fail "the fixture job did not succeed"
fi
"${cli[@]}" status 1 -o json >"$dir/status.json" || fail "status 1"
python3 - "$dir/status.json" <<'PY' || fail "the fixture's tasks: $(cat "$dir/status.json")"
import json, sys
job = json.load(open(sys.argv[1]))
tasks = {t["id"]: t["state"] for t in job["tasks"]}
want = {"1/dev-3.8/base", "1/dev-3.8/dev", "1/dev-3.8/test-dev", "1/release-3.8/release",
        "1/release-3.8/test-release"}
assert job["state"] == "JOB_STATE_SUCCEEDED", job["state"]
assert set(tasks) == want, sorted(tasks)
assert all(s == "TASK_STATE_SUCCEEDED" for s in tasks.values()), tasks
agents = {t["agent"] for t in job["tasks"]}
assert agents == {"compose-agent-1", "compose-agent-2"}, agents
PY
"${cli[@]}" logs 1/dev-3.8/test-dev | grep -q "MTHREADS_VISIBLE_DEVICES=0" || fail "test-dev ran without its GPU"
say "fixture job (5 tasks: docker builds, pushes, GPU test containers) succeeded: $(( $(date +%s) - t ))s"
say "ok in $(( $(date +%s) - t0 ))s"
