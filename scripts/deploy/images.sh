#!/usr/bin/env bash
# The images of musafarm itself, from its .deb packages, on a Docker daemon
# that cannot pull (issue 15, point 2):
#   musafarm/debian:bookworm-KEY   the debootstrap root file system (scripts/deploy/rootfs.sh), `docker import`ed
#   musafarm/coordinator:VERSION   FROM it: the musafarm-coordinator and musafarm packages, tini; user 10001
#   musafarm/agent:VERSION         FROM it: the musafarm-agent and musafarm packages, Debian's docker.io (/usr/bin/docker), tini
#   DOCKER_HOST=unix:///... bash scripts/deploy/images.sh [BUILD_DIR]
# Debian's /usr/bin/docker, legacy builder with --network host (apt inside the
# build reaches Debian's archive; private daemons here have no bridge).
# The packages come from `cpack -G DEB` in BUILD_DIR unless they are there.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${1:-build}
DOCKER=${DOCKER_CLI:-/usr/bin/docker}
VERSION=$(sed -n 's/^project(musafarm VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
say() { echo "images: $*"; }
ls "$BUILD_DIR"/musafarm-coordinator_"$VERSION"_*.deb >/dev/null 2>&1 ||
  (cd "$BUILD_DIR" && cpack -G DEB >cpack.log 2>&1)

t=$(date +%s)
tarball=$(bash scripts/deploy/rootfs.sh)
key=$(basename "$tarball" .tar | sed 's/^bookworm-minbase-//')
base=musafarm/debian:bookworm-$key
if ! "$DOCKER" image inspect "$base" >/dev/null 2>&1; then
  "$DOCKER" import "$tarball" "$base" >/dev/null
fi
say "base $base: $(( $(date +%s) - t ))s"

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$BUILD_DIR"/musafarm*_"$VERSION"_*.deb "$ctx/"
for role in coordinator agent; do
  t=$(date +%s)
  DOCKER_BUILDKIT=0 "$DOCKER" build -q --network host --build-arg BASE="$base" \
    -f "deploy/images/$role.Dockerfile" -t "musafarm/$role:$VERSION" "$ctx" >"$ctx/$role.log" 2>&1 ||
    { cat "$ctx/$role.log"; say "FAILED: musafarm/$role"; exit 1; }
  say "musafarm/$role:$VERSION: $(( $(date +%s) - t ))s"
done

# What the manifests rely on: the coordinator runs as 10001; the agent finds
# /usr/bin/docker; both binaries load their libraries.
[ "$("$DOCKER" run --rm --network none "musafarm/coordinator:$VERSION" id -u)" = 10001 ] ||
  { say "FAILED: the coordinator image does not run as uid 10001"; exit 1; }
"$DOCKER" run --rm --network none "musafarm/coordinator:$VERSION" /usr/bin/musafarm-coordinator --help >/dev/null
"$DOCKER" run --rm --network none "musafarm/agent:$VERSION" /usr/bin/docker --version | grep -q "Docker version" ||
  { say "FAILED: no /usr/bin/docker in the agent image"; exit 1; }
"$DOCKER" run --rm --network none "musafarm/agent:$VERSION" /usr/bin/musafarm-agent --help >/dev/null
say "ok: musafarm/coordinator:$VERSION musafarm/agent:$VERSION"
