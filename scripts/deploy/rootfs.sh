#!/usr/bin/env bash
# A clean Debian 12 root file system made by debootstrap from Debian's archive,
# cached as a tarball keyed by everything that goes into it; prints its path.
#   bash scripts/deploy/rootfs.sh      -> /var/cache/musafarm-ci/rootfs/bookworm-minbase-<hash>.tar
# Used by scripts/deploy/deb-install-check.sh (packages into a chroot) and
# scripts/deploy/images.sh (docker import: nothing can be pulled here).
# systemd is included for systemd-analyze, systemd-sysusers and -tmpfiles, the
# tools a unit-installing package expects on Debian; ca-certificates for apt.
set -euo pipefail
CACHE=${MUSAFARM_CI_CACHE:-/var/cache/musafarm-ci}
SUITE=bookworm
VARIANT=minbase
INCLUDE=systemd,ca-certificates
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
key=$(printf '%s\n' "$SUITE" "$VARIANT" "$INCLUDE" "$MIRROR" "$(sha256sum "$0" | cut -d' ' -f1)" |
      sha256sum | cut -c1-16)
out=$CACHE/rootfs/$SUITE-$VARIANT-$key.tar
if [ -s "$out" ]; then
  echo "$out"
  exit 0
fi
command -v debootstrap >/dev/null || {
  echo "rootfs: debootstrap missing: apt-get install debootstrap" >&2
  exit 1
}
mkdir -p "$CACHE/rootfs"
work=$(mktemp -d "$CACHE/rootfs/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
debootstrap --variant="$VARIANT" --include="$INCLUDE" "$SUITE" "$work/root" "$MIRROR" \
  >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
}
# The same sources (main, updates, security) as this machine, for apt inside.
cat >"$work/root/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
SOURCES
rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
tar -C "$work/root" --numeric-owner -cf "$out.part" .
mv "$out.part" "$out"
echo "rootfs: debootstrap $SUITE ($VARIANT, $INCLUDE) in $(( $(date +%s) - start ))s: $out" >&2
echo "$out"
