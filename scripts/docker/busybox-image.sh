#!/usr/bin/env bash
# Builds a tiny base image without any registry: a rootfs with Debian's static /bin/busybox
# (busybox-static), its applets as symlinks in /bin (`busybox --install -s /bin`), /tmp, /root
# and /etc/passwd + /etc/group with root, and `docker import`s it as TAG.
#
#   scripts/docker/busybox-image.sh DOCKER_HOST TAG
#   e.g. scripts/docker/busybox-image.sh unix:///tmp/d/docker.sock musafarm/busybox:test
#
# DOCKER_HOST may be given with or without the "DOCKER_HOST=" prefix that dockerd.sh prints.
# Environment: DOCKER_CLI (default /usr/bin/docker, Debian's client), BUSYBOX (default /bin/busybox),
# TMPDIR (scratch for the rootfs; default /dev/shm when writable, else /tmp).
# Prints the image id on stdout.
set -euo pipefail

PROG="docker/busybox-image"
DOCKER_CLI=${DOCKER_CLI:-/usr/bin/docker}
BUSYBOX=${BUSYBOX:-/bin/busybox}

usage() {
  cat <<'EOF'
usage: scripts/docker/busybox-image.sh DOCKER_HOST TAG
Imports a static-busybox image as TAG into the daemon at DOCKER_HOST (e.g. unix:///tmp/d/docker.sock).
Environment: DOCKER_CLI (default /usr/bin/docker), BUSYBOX (default /bin/busybox).
EOF
}
die() { echo "$PROG: $*" >&2; exit 1; }

case "${1:-}" in -h|--help) usage; exit 0 ;; esac
[ $# -eq 2 ] || { usage >&2; exit 2; }
HOST=${1#DOCKER_HOST=}
TAG=$2
if [ -z "$HOST" ] || [ -z "$TAG" ]; then usage >&2; exit 2; fi
[ -x "$DOCKER_CLI" ] || die "docker client $DOCKER_CLI not found (set DOCKER_CLI)"
[ -x "$BUSYBOX" ] || die "$BUSYBOX not found (run scripts/docker/install.sh: busybox-static)"
# A dynamically linked busybox would not run inside the image.
if file_out=$(LC_ALL=C file -b "$BUSYBOX" 2>/dev/null); then
  case "$file_out" in *dynamically*) die "$BUSYBOX is dynamically linked; install busybox-static" ;; esac
fi

# Build the rootfs on tmpfs when there is one: creating ~270 symlinks costs ~0.3 s on the dev
# machine's ext4 (0.8 ms per symlink(2)) and ~20 ms on /dev/shm.
scratch=${TMPDIR:-/tmp}
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then scratch=/dev/shm; fi
work=$(mktemp -d "$scratch/mf-busybox.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root/bin" "$root/etc" "$root/root" "$root/tmp" "$root/proc" "$root/sys" "$root/dev"
chmod 1777 "$root/tmp"
chmod 700 "$root/root"
cp "$BUSYBOX" "$root/bin/busybox"
chmod 755 "$root/bin/busybox"
# Run the rootfs's own busybox so that the links point at /bin/busybox inside the image.
# Without chroot (not root), create the links from the applet list instead.
if [ "$(id -u)" -eq 0 ]; then
  chroot "$root" /bin/busybox --install -s /bin
else
  for applet in $("$BUSYBOX" --list); do
    [ -e "$root/bin/$applet" ] || ln -s /bin/busybox "$root/bin/$applet"
  done
fi
[ -e "$root/bin/sh" ] || die "busybox --install did not create /bin/sh"
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF

id=$(tar -C "$root" --numeric-owner --owner=0 --group=0 -cf - . |
  "$DOCKER_CLI" -H "$HOST" import \
    --change 'ENV PATH=/bin' \
    --change 'CMD ["/bin/sh"]' \
    - "$TAG") || die "docker import into $HOST failed"
echo "$id"
