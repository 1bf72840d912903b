#!/usr/bin/env bash
# Checks too long for every run of scripts/test.sh (issue 15): the .deb packages
# installed into a debootstrap Debian 12 chroot (scripts/deploy/deb-install-check.sh),
# and the images built from them running the compose demo's fixture job on a
# private dockerd (scripts/deploy/compose-check.sh).
# scripts/test.sh runs this after the build; it runs the checks only when their
# inputs changed since they last passed on this machine:
#   the inputs: every tracked file under deploy/, dockerfiles/, pipelines/,
#   scripts/deploy/, cmake/, this script, every CMakeLists.txt outside tests/ and
#   bench/ (install rules, link modes such as the static CLI), and the sources
#   of the three programs' command lines (coordinator/main.cc, agent/main.cc,
#   cli/main.cc), hashed by content (git ls-files + sha256sum);
#   the stamp: /var/cache/musafarm-ci/long-checks/<hash>.ok (outside the
#   checkout, so a fresh clone with unchanged inputs skips and says so).
#   bash scripts/long-checks.sh [--force] [BUILD_DIR]
# Each part prints its time. The debootstrap root file system is cached by its
# own inputs (scripts/deploy/rootfs.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
force=0
if [ "${1:-}" = --force ]; then force=1; shift; fi
BUILD_DIR=${1:-${BUILD_DIR:-build}}
CACHE=${MUSAFARM_CI_CACHE:-/var/cache/musafarm-ci}

inputs() {
  git ls-files -z deploy dockerfiles pipelines scripts/deploy scripts/long-checks.sh cmake \
    CMakeLists.txt ':(glob)*/**/CMakeLists.txt' ':(exclude,glob)tests/**' ':(exclude,glob)bench/**' \
    coordinator/main.cc agent/main.cc cli/main.cc | sort -z | xargs -0 sha256sum
}
if ! git rev-parse --git-dir >/dev/null 2>&1; then
  echo "long-checks: not a git checkout; running the checks" >&2
  hash=nogit-$(date +%s)
else
  hash=$(inputs | sha256sum | cut -c1-16)
fi
stamp=$CACHE/long-checks/$hash.ok
if [ "$force" = 0 ] && [ -e "$stamp" ]; then
  echo "long-checks: skipped: inputs unchanged since they passed ($(cat "$stamp")); stamp $stamp"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "long-checks: needs root (debootstrap, chroot); inputs $hash not checked" >&2
  exit 1
fi

start=$(date +%s)
t=$(date +%s)
bash scripts/deploy/rootfs.sh >/dev/null
echo "long-checks: debootstrap rootfs (cached by its inputs): $(( $(date +%s) - t ))s"
t=$(date +%s)
bash scripts/deploy/deb-install-check.sh "$BUILD_DIR"
echo "long-checks: packages installed and run in a Debian 12 chroot: $(( $(date +%s) - t ))s"

t=$(date +%s)
bash scripts/deploy/compose-check.sh "$BUILD_DIR"
echo "long-checks: images from the packages, compose demo running the fixture job: $(( $(date +%s) - t ))s"

mkdir -p "$CACHE/long-checks"
echo "passed $(date -u +%FT%TZ) in $(( $(date +%s) - start ))s" >"$stamp"
echo "long-checks: passed in $(( $(date +%s) - start ))s; stamp $stamp"
