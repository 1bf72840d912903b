#!/usr/bin/env bash
# Installs what the Docker executor's end-to-end tests need, from Debian 12's archive:
#   docker.io (dockerd + Debian's /usr/bin/docker client, containerd, runc),
#   docker-registry (the distribution registry, `docker-registry serve`),
#   busybox-static (/bin/busybox, the base of the test image).
# Idempotent: does nothing when every package is already installed.
# It never starts or stops the system dockerd service; our scripts run private daemons
# (scripts/docker/dockerd.sh) and do not depend on it.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/docker/install.sh
Installs docker.io, docker-registry and busybox-static with apt-get (root or sudo).
Does nothing when they are already installed.
EOF
}

case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  "") ;;
  *) usage >&2; exit 2 ;;
esac

PACKAGES=(docker.io docker-registry busybox-static)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "docker/install: all ${#PACKAGES[@]} packages present (${PACKAGES[*]})"
  exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "docker/install: not root and no sudo; cannot install ${missing[*]}" >&2; exit 1; }
  SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
echo "docker/install: installing ${missing[*]}"
# Only refresh the package lists when apt cannot find a candidate for a missing package.
need_update=0
for p in "${missing[@]}"; do
  cand=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
  if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then need_update=1; fi
done
if [ "$need_update" -eq 1 ]; then
  "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 update -q
fi
"${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"

for bin in /usr/sbin/dockerd /usr/bin/docker /usr/bin/docker-registry /bin/busybox; do
  [ -x "$bin" ] || { echo "docker/install: $bin missing after install" >&2; exit 1; }
done
echo "docker/install: done"
