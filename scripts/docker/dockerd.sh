#!/usr/bin/env bash
# A private Docker daemon rooted at DIR, independent of the system dockerd and of any other
# private daemon (several run side by side).
#
#   scripts/docker/dockerd.sh start  DIR [-- EXTRA_DOCKERD_ARGS...]
#   scripts/docker/dockerd.sh stop   DIR
#   scripts/docker/dockerd.sh status DIR
#
# start: runs dockerd detached (setsid) with
#          --data-root DIR/root --exec-root EXEC -H unix://SOCK --pidfile DIR/dockerd.pid
#          --config-file DIR/daemon.json (an empty {}; /etc/docker/daemon.json is ignored)
#          --bridge=none --iptables=false --ip6tables=false --ip-masq=false --ip-forward=false
#          --containerd-namespace mf-HASH --containerd-plugins-namespace mf-HASH-plugins
#        logging to DIR/dockerd.log, waits (bounded) until `docker info` answers and prints
#        DOCKER_HOST=unix://SOCK (also written to DIR/docker-host). Starting a daemon that
#        already answers just prints its DOCKER_HOST.
#        Each daemon spawns its own managed containerd (socket EXEC/containerd/containerd.sock);
#        the per-daemon containerd namespaces keep daemons apart even where a system containerd
#        at /run/containerd/containerd.sock exists (dockerd 20.10 then uses it instead).
# stop:  `docker kill`s running containers, SIGTERMs dockerd (pidfile) and waits for it to exit
#        (SIGKILL after the bound), then makes sure no managed containerd, containerd-shim or
#        container process of this daemon is left and unmounts what it left mounted.
#        Exit 0 when nothing is left, 1 otherwise.
# status: exit 0 and prints pid and DOCKER_HOST when the daemon answers, exit 1 otherwise.
#
# Paths: EXEC is DIR/exec when that is at most 64 bytes (containerd refuses socket paths over 104
# bytes and puts EXEC/containerd/containerd-debug.sock in it: 33 bytes more), else /run/mfd-HASH
# (/tmp/mfd-HASH when /run is not writable) with a symlink DIR/exec -> EXEC. SOCK is
# DIR/docker.sock when short enough, else EXEC/docker.sock. HASH is derived from DIR's absolute path.
#
# Environment: DOCKERD (default /usr/sbin/dockerd), DOCKER_CLI (default /usr/bin/docker, Debian's
# client; see scripts/docker/README.md), MUSAFARM_DOCKERD_START_WAIT (seconds, default 30),
# MUSAFARM_DOCKERD_STOP_WAIT (seconds, default 30), MUSAFARM_DOCKERD_SHUTDOWN_TIMEOUT (dockerd's
# --shutdown-timeout, default 5).
set -euo pipefail
# alive, wait_gone
. "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

PROG="docker/dockerd"
DOCKERD=${DOCKERD:-/usr/sbin/dockerd}
DOCKER_CLI=${DOCKER_CLI:-/usr/bin/docker}
START_WAIT=${MUSAFARM_DOCKERD_START_WAIT:-30}
STOP_WAIT=${MUSAFARM_DOCKERD_STOP_WAIT:-30}
SHUTDOWN_TIMEOUT=${MUSAFARM_DOCKERD_SHUTDOWN_TIMEOUT:-5}
# Longest exec-root we use in place. The longest sockets dockerd 20.10 / containerd 1.6 create in it
# are EXEC/containerd/containerd{-debug.sock,.sock.ttrpc} (33 bytes more) and containerd refuses
# paths over 104 bytes ("unix socket path too long (> 104)", dockerd exits 1); 64 leaves room.
MAX_EXEC_LEN=64
MAX_SOCK_LEN=104

usage() {
  cat <<'EOF'
usage: scripts/docker/dockerd.sh start  DIR [-- EXTRA_DOCKERD_ARGS...]
       scripts/docker/dockerd.sh stop   DIR
       scripts/docker/dockerd.sh status DIR
Runs a private dockerd rooted at DIR (data in DIR/root, log in DIR/dockerd.log).
start prints DOCKER_HOST=unix://... once the daemon answers.
Environment: DOCKERD, DOCKER_CLI, MUSAFARM_DOCKERD_START_WAIT, MUSAFARM_DOCKERD_STOP_WAIT,
MUSAFARM_DOCKERD_SHUTDOWN_TIMEOUT.
EOF
}

die() { echo "$PROG: $*" >&2; exit 1; }
log() { echo "$PROG: $*" >&2; }

if [ $# -lt 2 ]; then
  case "${1:-}" in -h|--help) usage; exit 0 ;; esac
  usage >&2; exit 2
fi
CMD=$1
DIR_ARG=$2
shift 2
EXTRA=()
if [ $# -gt 0 ]; then
  [ "$1" = "--" ] || { usage >&2; exit 2; }
  shift
  EXTRA=("$@")
fi
case "$CMD" in start|stop|status) ;; *) usage >&2; exit 2 ;; esac

if [ "$CMD" = start ]; then
  mkdir -p "$DIR_ARG" || die "cannot create $DIR_ARG"
fi
[ -d "$DIR_ARG" ] || die "no such directory: $DIR_ARG"
DIR=$(cd "$DIR_ARG" && pwd -P)
HASH=$(printf '%s' "$DIR" | sha256sum | cut -c1-10)
NS="mf-$HASH"
PIDFILE=$DIR/dockerd.pid
LOGFILE=$DIR/dockerd.log

if [ ${#DIR} -le $((MAX_EXEC_LEN - 5)) ]; then
  EXEC=$DIR/exec
  SHORT_EXEC=0
else
  if [ -w /run ]; then EXEC=/run/mfd-$HASH; else EXEC=/tmp/mfd-$HASH; fi
  SHORT_EXEC=1
fi
if [ $((${#DIR} + 12)) -le $MAX_SOCK_LEN ]; then SOCK=$DIR/docker.sock; else SOCK=$EXEC/docker.sock; fi
HOST=unix://$SOCK
CONTAINERD_SOCK=$EXEC/containerd/containerd.sock

# pid of our dockerd from the pidfile, when it is alive and is a dockerd; empty otherwise.
daemon_pid() {
  local pid
  [ -f "$PIDFILE" ] || return 0
  pid=$(tr -dc '0-9' 2>/dev/null <"$PIDFILE" || true)
  [ -n "$pid" ] || return 0
  [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = dockerd ] || return 0
  alive "$pid" || return 0
  echo "$pid"
}

answers() { "$DOCKER_CLI" -H "$HOST" info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

# All descendants of a pid.
descendants() {
  ps -e -o pid=,ppid= | awk -v root="$1" '
    { parent[$1] = $2 }
    END {
      for (p in parent) {
        q = parent[p]
        while (q != "" && q != 0 && q != 1) { if (q == root) { print p; break } q = parent[q] }
      }
    }'
}

# pids of containerd shims that belong to this daemon (its containerd address or namespace).
our_shims() {
  ps -e -o pid=,args= | awk -v sock="$CONTAINERD_SOCK" -v ns="$NS" '
    $2 ~ /containerd-shim/ {
      for (i = 3; i < NF; i++) {
        if ($i == "-address" && $(i + 1) == sock) { print $1; break }
        if ($i == "-namespace" && ($(i + 1) == ns || $(i + 1) == ns "-plugins")) { print $1; break }
      }
    }'
}

# pid of this daemon's managed containerd, if alive.
our_containerd() {
  local f=$EXEC/containerd/containerd.pid pid
  [ -f "$f" ] || return 0
  pid=$(tr -dc '0-9' 2>/dev/null <"$f" || true)
  [ -n "$pid" ] || return 0
  [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = containerd ] || return 0
  alive "$pid" || return 0
  echo "$pid"
}

# Mount points under the daemon's data root or exec root, deepest first.
our_mounts() {
  awk -v a="$DIR/root" -v b="$EXEC" '
    { m = $5; if (m == a || m == b || index(m, a "/") == 1 || index(m, b "/") == 1) print m }' \
    /proc/self/mountinfo | sort -r
}

# Unmount whatever the daemon left mounted (after a SIGKILL).
unmount_leftovers() {
  local m
  our_mounts | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
  done
}

# After dockerd is gone: end its managed containerd (dockerd stops it on a clean exit, and the
# kernel does when dockerd is SIGKILLed, but not when containerd was started apart), every shim
# of this daemon with its container processes, and unmount what is left under DIR/root and EXEC.
reap_leftovers() {
  local cpid s d
  cpid=$(our_containerd)
  if [ -n "$cpid" ]; then
    kill -TERM "$cpid" 2>/dev/null || true
    wait_gone "$cpid" 10 || { kill -KILL "$cpid" 2>/dev/null || true; wait_gone "$cpid" 5 || true; }
  fi
  for s in $(our_shims); do
    log "killing leftover shim $s and its container processes"
    for d in $(descendants "$s"); do kill -KILL "$d" 2>/dev/null || true; done
    kill -KILL "$s" 2>/dev/null || true
  done
  sleep 0.1
  unmount_leftovers
}

case "$CMD" in
status)
  pid=$(daemon_pid)
  if [ -n "$pid" ] && answers; then
    echo "running pid $pid"
    echo "DOCKER_HOST=$HOST"
    exit 0
  fi
  if [ -n "$pid" ]; then echo "not answering (pid $pid alive)"; else echo "not running"; fi
  exit 1
  ;;

start)
  [ -x "$DOCKERD" ] || die "$DOCKERD not found (run scripts/docker/install.sh or set DOCKERD)"
  [ -x "$DOCKER_CLI" ] || die "docker client $DOCKER_CLI not found (set DOCKER_CLI)"
  [ "$(id -u)" -eq 0 ] || die "dockerd needs root"
  pid=$(daemon_pid)
  if [ -n "$pid" ]; then
    if answers; then
      log "already running (pid $pid)"
      echo "DOCKER_HOST=$HOST" | tee "$DIR/docker-host"
      exit 0
    fi
    die "a dockerd (pid $pid) owns $PIDFILE but does not answer on $HOST; run: $0 stop $DIR"
  fi
  rm -f "$PIDFILE"
  if [ -n "$(our_containerd)" ] || [ -n "$(our_shims)" ]; then
    die "processes of an earlier daemon at $DIR are still alive; run: $0 stop $DIR"
  fi
  [ -e "$SOCK" ] && [ ! -S "$SOCK" ] && die "$SOCK exists and is not a socket"
  rm -f "$SOCK"
  mkdir -p "$DIR/root" "$EXEC"
  if [ "$SHORT_EXEC" = 1 ]; then
    ln -sfn "$EXEC" "$DIR/exec"
  fi
  [ -f "$DIR/daemon.json" ] || echo '{}' >"$DIR/daemon.json"
  args=(
    --config-file "$DIR/daemon.json"
    --data-root "$DIR/root"
    --exec-root "$EXEC"
    -H "$HOST"
    --pidfile "$PIDFILE"
    --bridge=none --iptables=false --ip6tables=false --ip-masq=false --ip-forward=false
    --containerd-namespace "$NS"
    --containerd-plugins-namespace "$NS-plugins"
    --shutdown-timeout "$SHUTDOWN_TIMEOUT"
  )
  if [ ${#EXTRA[@]} -gt 0 ]; then args+=("${EXTRA[@]}"); fi
  echo "=== $(date -Is) $DOCKERD ${args[*]}" >>"$LOGFILE"
  # Debian's containerd, runc, docker-init and docker-proxy, never newer ones earlier on PATH.
  # setsid: the daemon outlives this script and the caller's terminal / process group.
  env -u DOCKER_HOST -u DOCKER_CONTEXT PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    setsid "$DOCKERD" "${args[@]}" >>"$LOGFILE" 2>&1 </dev/null &
  launched=$!
  n=$((START_WAIT * 10))
  until answers; do
    if ! kill -0 "$launched" 2>/dev/null && [ -z "$(daemon_pid)" ]; then
      tail -n 20 "$LOGFILE" >&2 || true
      reap_leftovers
      die "dockerd exited during start-up; see $LOGFILE"
    fi
    n=$((n - 1))
    if [ $n -le 0 ]; then
      tail -n 20 "$LOGFILE" >&2 || true
      die "dockerd did not answer on $HOST within ${START_WAIT}s; see $LOGFILE (stop it with: $0 stop $DIR)"
    fi
    sleep 0.1
  done
  echo "DOCKER_HOST=$HOST" | tee "$DIR/docker-host"
  ;;

stop)
  pid=$(daemon_pid)
  if [ -n "$pid" ]; then
    if answers; then
      ids=$("$DOCKER_CLI" -H "$HOST" ps -q 2>/dev/null || true)
      if [ -n "$ids" ]; then
        # shellcheck disable=SC2086  # one id per word
        "$DOCKER_CLI" -H "$HOST" kill $ids >/dev/null 2>&1 || true
      fi
    fi
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" "$STOP_WAIT"; then
      log "dockerd (pid $pid) still alive after ${STOP_WAIT}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" 5 || log "dockerd (pid $pid) survives SIGKILL"
    fi
  else
    log "no dockerd running for $DIR; cleaning up leftovers"
  fi
  reap_leftovers
  rm -f "$PIDFILE" "$DIR/docker-host"
  [ -S "$SOCK" ] && rm -f "$SOCK"
  left=""
  [ -n "$(daemon_pid)" ] && left="$left dockerd"
  [ -n "$(our_containerd)" ] && left="$left containerd"
  [ -n "$(our_shims)" ] && left="$left containerd-shim"
  [ -n "$left" ] && die "still alive after stop:$left"
  if [ "$SHORT_EXEC" = 1 ]; then
    if [ -z "$(our_mounts)" ]; then rm -rf "$EXEC"; fi
    [ -L "$DIR/exec" ] && rm -f "$DIR/exec"
  fi
  log "stopped ($DIR)"
  ;;
esac
