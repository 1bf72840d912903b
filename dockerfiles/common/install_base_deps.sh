#!/usr/bin/env bash
# install_base_deps.sh - OS packages for the torch_musa images (Ubuntu; Debian works too).
#
# Usage: install_base_deps.sh [fetch|runtime|dev]     (default: dev)
#   fetch    just enough to download packages: ca-certificates, curl.
#   runtime  the release image: fetch + what the MUSA installers and a Python
#            runtime need (sudo, tar/xz/bzip2/unzip, libelf, libnuma, libgomp, ...).
#   dev      the base/dev images: runtime + the tools to build PyTorch, torchvision
#            and torch_musa and to debug them (git, gdb, make, autotools, patch,
#            pkg-config, image codecs for torchvision, glog/gflags, OpenMP, ...).
#            The compiler comes from install_gcc.sh, ccache from install_ccache.sh,
#            and cmake/ninja are pinned in the Python environment (Ubuntu 20.04's
#            cmake 3.16 is too old for PyTorch 2.0, which needs >= 3.18).
#
# It also, in every profile:
#   * points apt at APT_MIRROR when that is set (e.g. http://mirror.internal/ubuntu;
#     Ubuntu sources only): farm hosts may have no route to archive.ubuntu.com;
#   * creates the `render` group (gid 109, as in the torch_musa images): only members
#     of `render` may open Moore Threads GPUs;
#   * (dev) marks every directory safe for git, so trees COPYed from the build
#     context or bind-mounted by developers work with git >= 2.35.2 (and Ubuntu's
#     backport of that check).
#
# Idempotent: apt-get install, the mirror rewrite and the group/git settings can run
# again without changing anything. Cleans the apt lists afterwards.
set -euo pipefail

profile=${1:-dev}
case "$profile" in
  fetch | runtime | dev) ;;
  -h | --help) sed -n '2,/^set -euo pipefail/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "install_base_deps.sh: unknown profile '$profile' (fetch|runtime|dev)" >&2; exit 2 ;;
esac

[[ $(id -u) -eq 0 ]] || { echo "install_base_deps.sh: must run as root" >&2; exit 1; }

# shellcheck disable=SC1091
. /etc/os-release
case "${ID:-} ${ID_LIKE:-}" in
  *ubuntu* | *debian*) ;;
  *)
    echo "install_base_deps.sh: unsupported OS '${ID:-unknown}': only Ubuntu is supported (CentOS is future work)" >&2
    exit 1
    ;;
esac

export DEBIAN_FRONTEND=noninteractive

# --- optional apt mirror ------------------------------------------------------
if [[ -n "${APT_MIRROR:-}" ]]; then
  mirror=${APT_MIRROR%/}
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    # Only the official Ubuntu hosts are replaced, so running this twice is harmless.
    # (Ubuntu's security pockets live in the same archive layout, so one mirror
    # serves both; other distributions' sources are left alone.)
    sed -i -E \
      -e "s#https?://(([a-z]{2}\.)?archive|security|ports)\.ubuntu\.com/ubuntu(-ports)?/?#${mirror}/#g" \
      "$f"
  done
  echo "install_base_deps.sh: apt sources now use APT_MIRROR"
fi

# --- packages -------------------------------------------------------------------
pkgs=(ca-certificates curl)
if [[ "$profile" == runtime || "$profile" == dev ]]; then
  pkgs+=(
    sudo wget tzdata locales less vim-tiny
    tar gzip xz-utils bzip2 unzip file procps
    libelf1 libnuma1 libgomp1 libncurses6 zlib1g pciutils kmod
  )
fi
if [[ "$profile" == dev ]]; then
  pkgs+=(
    git git-lfs openssh-client gdb
    make autoconf automake libtool patch pkg-config gawk bison flex expect
    libelf-dev libnuma-dev libncurses-dev zlib1g-dev
    libgoogle-glog-dev libgflags-dev libomp-dev
    libjpeg-dev libpng-dev
    clinfo
  )
fi

apt_get() { apt-get -o Acquire::Retries=5 -o DPkg::Lock::Timeout=600 "$@"; }
apt_get update
apt_get install -y --no-install-recommends "${pkgs[@]}"

# C.UTF-8 exists on every Ubuntu; en_US.UTF-8 is what many test suites expect.
if [[ "$profile" != fetch ]] && ! locale -a 2>/dev/null | grep -qi '^en_US\.utf8$'; then
  sed -i -E 's/^# *(en_US\.UTF-8 UTF-8)/\1/' /etc/locale.gen
  locale-gen >/dev/null
fi

if ! getent group render >/dev/null; then
  groupadd -o -g 109 render
fi

if [[ "$profile" == dev ]]; then
  if ! git config --system --get-all safe.directory 2>/dev/null | grep -qx '\*'; then
    git config --system --add safe.directory '*'
  fi
fi

apt-get clean
rm -rf /var/lib/apt/lists/*
echo "install_base_deps.sh: profile '$profile' installed (${#pkgs[@]} packages requested)"
