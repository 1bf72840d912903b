#!/usr/bin/env bash
# install_ccache.sh - install ccache and configure it for PyTorch-sized builds.
#
# Usage: install_ccache.sh [MAX_SIZE]      (default: $CCACHE_MAXSIZE, else 25G)
#
# * installs the distribution's ccache (3.7 on Ubuntu 20.04);
# * writes /etc/ccache.conf: cache in /root/.ccache, MAX_SIZE, compression on, and
#   sloppiness settings that let PyTorch's generated sources hit the cache;
# * refreshes the masquerade links in /usr/lib/ccache (gcc, g++, gcc-N, ...), so
#   run it AFTER install_gcc.sh. Nothing is put on PATH here: the dev image
#   prepends /usr/lib/ccache only in the RUN steps that compile, where a BuildKit
#   cache mount keeps /root/.ccache across image builds on the same host.
#
# Idempotent: reinstalling is a no-op; the config file is rewritten with the same
# content; update-ccache-symlinks only adds missing links.
set -euo pipefail

max_size=${1:-${CCACHE_MAXSIZE:-25G}}
[[ "$max_size" =~ ^[0-9]+(\.[0-9]+)?[kKMGT]?$ ]] || { echo "install_ccache.sh: bad size '$max_size'" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "install_ccache.sh: must run as root" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive

if ! command -v ccache >/dev/null 2>&1; then
  apt-get -o Acquire::Retries=5 -o DPkg::Lock::Timeout=600 update
  apt-get -o Acquire::Retries=5 -o DPkg::Lock::Timeout=600 install -y --no-install-recommends ccache
  apt-get clean
  rm -rf /var/lib/apt/lists/*
fi

cat >/etc/ccache.conf <<EOF
# Written by install_ccache.sh (musafarm torch_musa images).
cache_dir = /root/.ccache
max_size = ${max_size}
compression = true
# PyTorch's codegen rewrites headers with fresh mtimes on every build.
sloppiness = file_macro,include_file_mtime,include_file_ctime,time_macros,pch_defines
hash_dir = false
EOF

mkdir -p /root/.ccache
if command -v update-ccache-symlinks >/dev/null 2>&1; then
  update-ccache-symlinks
fi
[[ -e /usr/lib/ccache/gcc && -e /usr/lib/ccache/g++ ]] ||
  echo "install_ccache.sh: warning: /usr/lib/ccache has no gcc/g++ links (is gcc installed?)" >&2

echo "install_ccache.sh: $(ccache --version | sed -n 1p), max_size ${max_size}"
