#!/usr/bin/env bash
# A private image registry (Debian's docker-registry, distribution 2.8) on loopback.
#
#   scripts/docker/registry.sh start  DIR [PORT]   (PORT default 5000; 0 is not supported)
#   scripts/docker/registry.sh stop   DIR
#   scripts/docker/registry.sh status DIR
#
# start: writes DIR/config.yml (http.addr 127.0.0.1:PORT, filesystem storage in DIR/data,
#        delete enabled, no auth, no TLS), runs `docker-registry serve DIR/config.yml` detached
#        with a clean environment (REGISTRY_* variables would override the config), logging to
#        DIR/registry.log, pid in DIR/registry.pid, port in DIR/registry.port; fails clearly when
#        the port is already in use; waits (bounded) until http://127.0.0.1:PORT/v2/ answers and
#        prints REGISTRY=127.0.0.1:PORT. Dockerd treats 127.0.0.0/8 as an insecure registry by
#        default, so images tagged 127.0.0.1:PORT/NAME:TAG push and pull over plain HTTP.
# stop:  SIGTERM via the pidfile, waits for exit (SIGKILL after the bound). Data stays in DIR/data.
# status: exit 0 and prints REGISTRY=... when it answers, exit 1 otherwise.
#
# Environment: DOCKER_REGISTRY (default /usr/bin/docker-registry), MUSAFARM_REGISTRY_START_WAIT
# (seconds, default 30), MUSAFARM_REGISTRY_STOP_WAIT (seconds, default 10).
set -euo pipefail

PROG="docker/registry"
REGISTRY_BIN=${DOCKER_REGISTRY:-/usr/bin/docker-registry}
START_WAIT=${MUSAFARM_REGISTRY_START_WAIT:-30}
STOP_WAIT=${MUSAFARM_REGISTRY_STOP_WAIT:-10}

usage() {
  cat <<'EOF'
usage: scripts/docker/registry.sh start  DIR [PORT]   (PORT default 5000)
       scripts/docker/registry.sh stop   DIR
       scripts/docker/registry.sh status DIR
Runs Debian's docker-registry on 127.0.0.1:PORT with its storage in DIR/data.
start prints REGISTRY=127.0.0.1:PORT once /v2/ answers.
Environment: DOCKER_REGISTRY, MUSAFARM_REGISTRY_START_WAIT, MUSAFARM_REGISTRY_STOP_WAIT.
EOF
}
die() { echo "$PROG: $*" >&2; exit 1; }
log() { echo "$PROG: $*" >&2; }

case "${1:-}" in -h|--help) usage; exit 0 ;; esac
[ $# -ge 2 ] || { usage >&2; exit 2; }
CMD=$1
DIR_ARG=$2
PORT=${3:-5000}
case "$CMD" in
  start) [ $# -le 3 ] || { usage >&2; exit 2; } ;;
  stop|status) [ $# -eq 2 ] || { usage >&2; exit 2; } ;;
  *) usage >&2; exit 2 ;;
esac
if [ "$CMD" = start ]; then
  case "$PORT" in ''|*[!0-9]*) die "PORT must be a number, got '$PORT'" ;; esac
  if [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]; then
    die "PORT must be 1-65535 (docker-registry cannot listen on port 0 and report the port it got)"
  fi
  mkdir -p "$DIR_ARG" || die "cannot create $DIR_ARG"
fi
[ -d "$DIR_ARG" ] || die "no such directory: $DIR_ARG"
DIR=$(cd "$DIR_ARG" && pwd -P)
PIDFILE=$DIR/registry.pid
PORTFILE=$DIR/registry.port
LOGFILE=$DIR/registry.log
CONFIG=$DIR/config.yml

registry_pid() {
  local pid
  [ -f "$PIDFILE" ] || return 0
  pid=$(tr -dc '0-9' 2>/dev/null <"$PIDFILE" || true)
  [ -n "$pid" ] || return 0
  [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = docker-registry ] || return 0
  alive "$pid" || return 0
  echo "$pid"
}

# 0 when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# 0 when the registry API answers on 127.0.0.1:$1.
answers() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$1/v2/" 2>/dev/null
  else
    # Without curl: a raw HTTP request; /v2/ answers "HTTP/1.1 200 OK" with no auth configured.
    # shellcheck disable=SC2016  # expanded by the inner bash
    timeout 2 bash -c '
      exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
      printf "GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3
      IFS= read -r line <&3 && case "$line" in "HTTP/1."?" 200"*) exit 0 ;; esac
      exit 1' _ "$1" 2>/dev/null
  fi
}

# 0 when pid runs. A zombie counts as gone: an exited daemon was re-parented to PID 1, which
# may reap it only later (on the dev machine PID 1 reaps about once a second).
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

wait_gone() { # pid seconds
  local pid=$1 n=$(($2 * 10))
  while [ $n -gt 0 ] && alive "$pid"; do sleep 0.1; n=$((n - 1)); done
  ! alive "$pid"
}

case "$CMD" in
status)
  pid=$(registry_pid)
  port=$(cat "$PORTFILE" 2>/dev/null || true)
  if [ -n "$pid" ] && [ -n "$port" ] && answers "$port"; then
    echo "running pid $pid"
    echo "REGISTRY=127.0.0.1:$port"
    exit 0
  fi
  echo "not running"
  exit 1
  ;;

start)
  [ -x "$REGISTRY_BIN" ] || die "$REGISTRY_BIN not found (run scripts/docker/install.sh or set DOCKER_REGISTRY)"
  pid=$(registry_pid)
  if [ -n "$pid" ]; then
    old=$(cat "$PORTFILE" 2>/dev/null || true)
    if [ "$old" = "$PORT" ] && answers "$PORT"; then
      log "already running (pid $pid)"
      echo "REGISTRY=127.0.0.1:$PORT"
      exit 0
    fi
    die "a registry (pid $pid) already runs for $DIR on port ${old:-?}; run: $0 stop $DIR"
  fi
  if port_open "$PORT"; then
    die "port 127.0.0.1:$PORT is already in use; pick another PORT"
  fi
  mkdir -p "$DIR/data"
  cat >"$CONFIG" <<EOF
# Generated by scripts/docker/registry.sh; rewritten on every start.
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $DIR/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$PORT
  headers:
    X-Content-Type-Options: [nosniff]
EOF
  echo "=== $(date -Is) $REGISTRY_BIN serve $CONFIG" >>"$LOGFILE"
  # Clean environment: REGISTRY_* variables override config.yml.
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/nonexistent \
    setsid "$REGISTRY_BIN" serve "$CONFIG" >>"$LOGFILE" 2>&1 </dev/null &
  pid=$!
  echo "$PORT" >"$PORTFILE"
  echo "$pid" >"$PIDFILE"
  n=$((START_WAIT * 10))
  until answers "$PORT"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PIDFILE"
      tail -n 5 "$LOGFILE" >&2 || true
      if grep -q "address already in use" <(tail -n 5 "$LOGFILE"); then
        die "port 127.0.0.1:$PORT is already in use; pick another PORT"
      fi
      die "docker-registry exited during start-up; see $LOGFILE"
    fi
    n=$((n - 1))
    if [ $n -le 0 ]; then
      tail -n 5 "$LOGFILE" >&2 || true
      kill -TERM "$pid" 2>/dev/null || true
      rm -f "$PIDFILE"
      die "registry did not answer on http://127.0.0.1:$PORT/v2/ within ${START_WAIT}s; see $LOGFILE"
    fi
    sleep 0.1
  done
  [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = docker-registry ] ||
    die "pid $pid is not docker-registry (setsid forked?); see $LOGFILE"
  echo "REGISTRY=127.0.0.1:$PORT"
  ;;

stop)
  pid=$(registry_pid)
  if [ -z "$pid" ]; then
    log "no registry running for $DIR"
    rm -f "$PIDFILE"
    exit 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" "$STOP_WAIT"; then
    log "registry (pid $pid) still alive after ${STOP_WAIT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 5 || die "registry (pid $pid) survives SIGKILL"
  fi
  rm -f "$PIDFILE"
  log "stopped ($DIR)"
  ;;
esac
