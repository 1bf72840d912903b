#!/usr/bin/env bash
# install_gcc.sh - install gcc/g++ of one major version and make it the default.
#
# Usage: install_gcc.sh [MAJOR]        (default: $GCC_VERSION, else 9)
#
# torch_musa's images are built and tested with Ubuntu 20.04's own gcc 9; PyTorch 2.0
# needs a C++17 compiler (gcc >= 9 recommended). Versions the distribution does not
# ship (e.g. 11 or 13 on focal) come from the ubuntu-toolchain-r/test PPA, but only
# when GCC_USE_TOOLCHAIN_PPA=1 - it needs internet access to launchpad, which farm
# hosts may lack, so it is never tried silently.
#
# gcc, g++, gcov, cc and c++ are pointed at the chosen version with
# update-alternatives. Run install_ccache.sh AFTER this script so that ccache's
# masquerade links cover the new compiler.
#
# Idempotent: when gcc-MAJOR and g++-MAJOR are installed and are already the
# defaults, nothing is done (no apt-get update).
set -euo pipefail

ver=${1:-${GCC_VERSION:-9}}
[[ "$ver" =~ ^[0-9]+$ ]] || { echo "install_gcc.sh: version must be a major number, got '$ver'" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "install_gcc.sh: must run as root" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive

current_major() { "$1" -dumpversion 2>/dev/null | cut -d. -f1; }

if [[ -x /usr/bin/gcc-$ver && -x /usr/bin/g++-$ver ]] &&
  [[ "$(current_major gcc)" == "$ver" && "$(current_major g++)" == "$ver" ]]; then
  echo "install_gcc.sh: gcc/g++ $ver already installed and default"
  exit 0
fi

apt_get() { apt-get -o Acquire::Retries=5 -o DPkg::Lock::Timeout=600 "$@"; }
apt_get update

candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'; }
if [[ -z "$(candidate "gcc-$ver")" || "$(candidate "gcc-$ver")" == "(none)" ]]; then
  if [[ "${GCC_USE_TOOLCHAIN_PPA:-0}" != 1 ]]; then
    echo "install_gcc.sh: gcc-$ver is not in this distribution's repositories;" \
      "set GCC_USE_TOOLCHAIN_PPA=1 to add ppa:ubuntu-toolchain-r/test (needs internet)" >&2
    exit 1
  fi
  apt_get install -y --no-install-recommends software-properties-common gnupg
  add-apt-repository -y ppa:ubuntu-toolchain-r/test
  apt_get update
fi

apt_get install -y --no-install-recommends "gcc-$ver" "g++-$ver" libc6-dev binutils

# Priority 100 + explicit --set: wins over whatever the distribution registered.
update-alternatives --install /usr/bin/gcc gcc "/usr/bin/gcc-$ver" 100 \
  --slave /usr/bin/gcov gcov "/usr/bin/gcov-$ver"
update-alternatives --install /usr/bin/g++ g++ "/usr/bin/g++-$ver" 100
update-alternatives --set gcc "/usr/bin/gcc-$ver"
update-alternatives --set g++ "/usr/bin/g++-$ver"
update-alternatives --install /usr/bin/cc cc /usr/bin/gcc 100
update-alternatives --install /usr/bin/c++ c++ /usr/bin/g++ 100
update-alternatives --set cc /usr/bin/gcc
update-alternatives --set c++ /usr/bin/g++

got=$(current_major gcc)
[[ "$got" == "$ver" ]] || { echo "install_gcc.sh: gcc reports major version '$got', wanted $ver" >&2; exit 1; }

apt-get clean
rm -rf /var/lib/apt/lists/*
echo "install_gcc.sh: $(gcc --version | sed -n 1p)"
