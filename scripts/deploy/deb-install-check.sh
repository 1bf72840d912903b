#!/usr/bin/env bash
# Installs the .deb packages with their dependencies into a clean Debian 12 root
# file system (debootstrap, scripts/deploy/rootfs.sh) and checks them as an
# operator would use them (issue 15, point 1):
#   1. `apt-get install ./musafarm-*.deb` resolves every dependency from Debian's
#      archive (Recommends too: docker.io for the agent);
#   2. the installed file list is the expected one, /usr/share/musafarm belongs
#      to musafarm (the CLI, which uploads the built-in pipeline's Dockerfiles)
#      only, /etc/musafarm files are conffiles;
#   3. the postinsts made the users (musafarm; musafarm-agent in group docker)
#      and their state directories with the right modes;
#   4. `systemd-analyze verify` accepts the installed units;
#   5. the coordinator (ExecStartPre, then ExecStart) and an agent (enrolled with
#      a join token, then ExecStart) run with the command lines read out of the
#      installed units, as their users, and the agent registers over TLS.
#   bash scripts/deploy/deb-install-check.sh [BUILD_DIR]     (default: build; root needed)
# The packages are made with `cpack -G DEB` in BUILD_DIR (its binaries must be built).
source "$(dirname "$0")/check-common.sh"
[ "$(id -u)" = 0 ] || fail "needs root (chroot, mounts)"

t0=$(date +%s)
(cd "$BUILD_DIR" && rm -f musafarm*.deb && cpack -G DEB >cpack.log 2>&1) || fail "cpack: see $BUILD_DIR/cpack.log"
debs=("$BUILD_DIR"/musafarm-coordinator_*.deb "$BUILD_DIR"/musafarm-agent_*.deb "$BUILD_DIR"/musafarm_*.deb)
for d in "${debs[@]}"; do [ -f "$d" ] || fail "no package $d"; done
say "packages in $(( $(date +%s) - t0 ))s: ${debs[*]##*/}"

t1=$(date +%s)
tarball=$(bash scripts/deploy/rootfs.sh)
R=$(mktemp -d /var/tmp/musafarm-deb-check.XXXXXX)
pids=()
# Every process running inside this check's root (the coordinator and agent
# started below, and anything they left), not only the shells that started them.
in_root_pids() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$R" ] && echo "${p#/proc/}"
  done
  return 0
}
cleanup() {
  kill $(in_root_pids) 2>/dev/null || true
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for _ in $(seq 1 50); do [ -z "$(in_root_pids)" ] && break; sleep 0.1; done
  kill -9 $(in_root_pids) 2>/dev/null || true
  umount "$R/proc" 2>/dev/null || true
  # --one-file-system: never into a mount left behind.
  [ -n "${KEEP:-}" ] || rm -rf --one-file-system "$R"
}
trap cleanup EXIT
tar -C "$R" -xf "$tarball"
mount -t proc proc "$R/proc"   # /dev: the device nodes debootstrap made are in the tarball
cp /etc/resolv.conf "$R/etc/resolv.conf"
# No daemon starts inside the chroot (docker.io's postinst would try).
printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d" && chmod +x "$R/usr/sbin/policy-rc.d"
mkdir -p "$R/tmp/debs" && cp "${debs[@]}" "$R/tmp/debs/"
say "rootfs $(basename "$tarball") unpacked in $(( $(date +%s) - t1 ))s"

t2=$(date +%s)
in_root() { chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
in_root apt-get update >"$R/tmp/apt.log" 2>&1 || { tail -20 "$R/tmp/apt.log"; fail "apt-get update"; }
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${debs[@]/#*\//\/tmp\/debs\/}" \
  >>"$R/tmp/apt.log" 2>&1 ||
  { tail -30 "$R/tmp/apt.log"; fail "apt-get install ./musafarm-*.deb"; }
say "apt-get install with dependencies in $(( $(date +%s) - t2 ))s"
in_root dpkg -s docker.io >/dev/null 2>&1 || fail "docker.io (Recommends of musafarm-agent) not installed"

# 2. The installed files.
expect_files() {
  local pkg=$1; shift
  local listed
  listed=$(in_root dpkg -L "$pkg" | sort)
  for f in "$@"; do
    grep -qx "$f" <<<"$listed" || fail "$pkg: $f not installed (dpkg -L: $(tr '\n' ' ' <<<"$listed"))"
    [ -e "$R$f" ] || fail "$pkg: $f listed but missing"
  done
}
expect_files musafarm-coordinator /usr/bin/musafarm-coordinator \
  /usr/lib/systemd/system/musafarm-coordinator.service /usr/lib/sysusers.d/musafarm-coordinator.conf \
  /usr/lib/tmpfiles.d/musafarm-coordinator.conf /etc/musafarm/agent-policy.yaml
expect_files musafarm-agent /usr/bin/musafarm-agent /usr/lib/systemd/system/musafarm-agent.service \
  /usr/lib/sysusers.d/musafarm-agent.conf /usr/lib/tmpfiles.d/musafarm-agent.conf /etc/musafarm/agent.yaml
expect_files musafarm /usr/bin/musafarm \
  /usr/share/musafarm/pipelines/torch_musa.yaml /usr/share/musafarm/dockerfiles/ubuntu/dockerfile.base \
  /usr/share/musafarm/dockerfiles/ubuntu/dockerfile.dev /usr/share/musafarm/dockerfiles/ubuntu/dockerfile.release \
  /usr/share/musafarm/dockerfiles/common/install_musa.sh /usr/share/musafarm/dockerfiles/common/download.sh
# Every Dockerfile and common/ script the repository has, and nothing of them elsewhere.
for f in $(cd "$HERE" && git ls-files dockerfiles pipelines); do
  expect_files musafarm "/usr/share/musafarm/$f"
done
owners=$(in_root dpkg -S /usr/share/musafarm | cut -d: -f1 | tr -d ' ')
[ "$owners" = musafarm ] || fail "/usr/share/musafarm belongs to: $owners"
# The agent needs none of it: jobs bring their Dockerfiles.
in_root dpkg -L musafarm-agent | grep -q '^/usr/share/musafarm' && fail "musafarm-agent ships /usr/share/musafarm"
[ -x "$R/usr/share/musafarm/dockerfiles/common/install_musa.sh" ] || fail "common/ scripts lost their x bit"
grep -qx /etc/musafarm/agent.yaml "$R/var/lib/dpkg/info/musafarm-agent.conffiles" || fail "agent.yaml is not a conffile"
grep -qx /etc/musafarm/agent-policy.yaml "$R/var/lib/dpkg/info/musafarm-coordinator.conffiles" ||
  fail "agent-policy.yaml is not a conffile"
say "file lists: ok"
# The CLI alone submits the built-in pipeline: `submit` with no file packs its
# Dockerfiles from the installed /usr/share/musafarm/dockerfiles (a dry run
# sends nothing, so no coordinator is needed).
in_root musafarm --insecure --coordinator 127.0.0.1:1 submit --dry-run -v 3.9 \
  >"$R/tmp/dry-run.json" 2>"$R/tmp/dry-run.err" || { cat "$R/tmp/dry-run.err"; fail "musafarm submit --dry-run"; }
python3 - "$R/tmp/dry-run.json" <<'PY' || fail "the built-in pipeline's inputs in the dry run"
import json, sys
inputs = {i["name"]: i for i in json.load(open(sys.argv[1]))["request"]["inputs"]}
assert inputs["dockerfiles"]["source"] == "dir:/usr/share/musafarm/dockerfiles", inputs
assert len(inputs["dockerfiles"]["tree"]["sha256"]) == 64, inputs
assert inputs["torch_musa"]["source"].startswith("git+https://github.com/MooreThreads/torch_musa"), inputs
PY
say "the installed CLI packs the built-in pipeline's Dockerfiles: ok"

# 3. Users and directories from sysusers.d / tmpfiles.d.
in_root getent passwd musafarm >/dev/null || fail "no user musafarm"
in_root id -nG musafarm-agent | grep -qw docker || fail "musafarm-agent is not in group docker"
owned() {  # DIR MODE USER: mode and owner as the rootfs' passwd names it
  local got want
  got=$(stat -c '%a %u' "$R$1")
  want="$2 $(awk -F: -v u="$3" '$1 == u {print $3}' "$R/etc/passwd")"
  [ "$got" = "$want" ] || fail "$1: mode and uid $got, expected $want ($3)"
}
owned /var/lib/musafarm 700 musafarm
owned /var/lib/musafarm-agent 750 musafarm-agent
say "users and directories: ok"

# 4. systemd-analyze verify on the installed units (binaries, users, settings).
in_root systemd-analyze verify /usr/lib/systemd/system/musafarm-coordinator.service \
  /usr/lib/systemd/system/musafarm-agent.service >"$R/tmp/verify.log" 2>&1 ||
  { cat "$R/tmp/verify.log"; fail "systemd-analyze verify"; }
if grep -i "musafarm" "$R/tmp/verify.log"; then fail "systemd-analyze verify warns about our units"; fi
say "systemd-analyze verify: ok"

# 5. Start both from the command lines in the installed units.
unit=/usr/lib/systemd/system
as_user() {  # USER GROUPS ENV... -- ARGV...
  local user=$1 groups=$2; shift 2
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  # Numeric ids from the rootfs' own passwd and group files (chroot resolves
  # names outside the new root).
  local uid gid gids=""
  uid=$(awk -F: -v u="$user" '$1 == u {print $3}' "$R/etc/passwd")
  gid=$(awk -F: -v u="$user" '$1 == u {print $4}' "$R/etc/passwd")
  [ -n "$groups" ] && gids=$(awk -F: -v g="$groups" '$1 == g {print $3}' "$R/etc/group")
  chroot --userspec="$uid:$gid" ${gids:+--groups="$gids"} "$R" /usr/bin/env -i \
    PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/nonexistent "${envs[@]}" "$@"
}
# Polls (bounded: 30 s) until FILE has a line matching PATTERN; fails showing
# LOG if process PID ends first.
wait_for_line() {
  local file=$1 pattern=$2 pid=$3 log=$4 what=$5
  for _ in $(seq 1 300); do
    grep -q "$pattern" "$file" && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log"; fail "$what exited"; }
    sleep 0.1
  done
}
cenv=(STATE_DIRECTORY=/var/lib/musafarm CONFIGURATION_DIRECTORY=/etc/musafarm)
mapfile -d '' pre < <(python3 scripts/deploy/unit_exec.py -0 "$R$unit/musafarm-coordinator.service" ExecStartPre "${cenv[@]}")
mapfile -d '' start < <(python3 scripts/deploy/unit_exec.py -0 "$R$unit/musafarm-coordinator.service" ExecStart "${cenv[@]}")
say "coordinator: ${pre[*]}"
as_user musafarm "" "${cenv[@]}" -- "${pre[@]}" >"$R/tmp/ca-init.log" 2>&1 || { cat "$R/tmp/ca-init.log"; fail "ExecStartPre"; }
[ -s "$R/var/lib/musafarm/pki/ca.crt" ] || fail "ExecStartPre made no CA"
say "coordinator: ${start[*]}"
as_user musafarm "" "${cenv[@]}" -- "${start[@]}" >"$R/tmp/coordinator.log" 2>&1 &
pids+=($!)
wait_for_line "$R/tmp/coordinator.log" "listening on port" "${pids[0]}" "$R/tmp/coordinator.log" "coordinator"
grep -q "listening on port 7070 with TLS" "$R/tmp/coordinator.log" || { cat "$R/tmp/coordinator.log"; fail "coordinator not serving TLS on 7070"; }

# Enrol as the README says, point agent.yaml at this host, start the agent.
token_out=$(as_user musafarm "" -- /usr/bin/musafarm-coordinator join-token create --data-dir /var/lib/musafarm \
  --coordinator localhost:7070) || fail "join-token create"
token=$(grep -o 'mfj1\.[^ ]*' <<<"$token_out" | head -1)
pin=$(grep -o -- '--ca-pin [^ ]*' <<<"$token_out" | head -1 | cut -d' ' -f2)
[ -n "$token" ] && [ -n "$pin" ] || fail "no token or pin in: $token_out"
as_user musafarm-agent "" -- /usr/bin/musafarm-agent enroll --coordinator localhost:7070 --token "$token" \
  --ca-pin "$pin" --name deb-check-agent --work-dir /var/lib/musafarm-agent >"$R/tmp/enroll.log" 2>&1 ||
  { cat "$R/tmp/enroll.log"; fail "musafarm-agent enroll"; }
sed -i 's/^coordinator: .*/coordinator: localhost:7070/' "$R/etc/musafarm/agent.yaml"
aenv=(STATE_DIRECTORY=/var/lib/musafarm-agent CONFIGURATION_DIRECTORY=/etc/musafarm)
mapfile -d '' astart < <(python3 scripts/deploy/unit_exec.py -0 "$R$unit/musafarm-agent.service" ExecStart "${aenv[@]}")
say "agent: ${astart[*]}"
as_user musafarm-agent docker "${aenv[@]}" -- "${astart[@]}" >"$R/tmp/agent.log" 2>&1 &
pids+=($!)
wait_for_line "$R/tmp/coordinator.log" "agent=deb-check-agent registered" "${pids[1]}" "$R/tmp/agent.log" "agent"
grep -q "agent=deb-check-agent registered" "$R/tmp/coordinator.log" ||
  { cat "$R/tmp/agent.log" "$R/tmp/coordinator.log"; fail "the agent did not register"; }
say "coordinator and agent from the installed units: the agent registered over TLS"
say "ok in $(( $(date +%s) - t0 ))s"
