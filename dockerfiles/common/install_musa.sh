#!/usr/bin/env bash
# install_musa.sh - install a MUSA package: the MUSA toolkit (default), muDNN or MCCL.
#
# Usage:
#   install_musa.sh [--component toolkit|mudnn|mccl] PACKAGE_FILE
#   install_musa.sh [--component ...] [download.sh options...]   e.g.
#       install_musa.sh --secret musa_toolkits_url --env MUSA_TOOLKITS_URL
# install_mudnn.sh and install_mccl.sh are this script with --component preset.
# With download options the package is fetched by download.sh (the URL is never
# printed) into a temporary file that is removed afterwards.
#
# ASSUMED PACKAGE FORMATS (Moore Threads ships no public spec; these are the layouts
# torch_musa's own docker scripts relied on - check them when a new release changes
# packaging):
#   toolkit  a tar archive, normally gzip'ed (musa_toolkits_install*.tar.gz), holding a
#            directory `musa_toolkits_install/` with `install.sh`; `bash install.sh`
#            installs runtime, mcc, muBLAS, muFFT, muRAND, ... into /usr/local/musa
#            (usually a symlink to /usr/local/musa-<version>). It bundles the compiler,
#            so the release image gets it too: the toolkit has no runtime-only package.
#   mudnn    a tar archive (plain `mudnn.tar` or `mudnn.tar.gz`) holding `mudnn/` with
#            `install_mudnn.sh` (older: `install.sh`), which copies into $MUSA_HOME.
#   mccl     a tar archive (`mccl*.tar.gz`) with an `install.sh` somewhere inside,
#            which copies into $MUSA_HOME.
# Compression is detected by tar. The installer found nearest the top of the archive
# is run as root (vendor scripts may call `sudo`, which install_base_deps.sh
# installs) with stdin from /dev/null, so a prompt fails the build instead of hanging
# it. The user-space GPU driver (libmusa) is NOT part of these packages: the MT
# container toolkit injects it at `docker run` (MTHREADS_VISIBLE_DEVICES).
#
# Environment: MUSA_HOME (default /usr/local/musa).
#
# Idempotent: the sha256 of each installed package is recorded in
# $MUSA_HOME/.musafarm/<component>.sha256; the same package again is skipped. A
# DIFFERENT toolkit first removes /usr/local/musa and /usr/local/musa-* (as
# torch_musa's update scripts do), which also drops muDNN/MCCL and their records,
# so those must be installed again after it (they will be, not skipped).
set -euo pipefail
set +x

prog=install_musa.sh
component=toolkit
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MUSA_HOME=${MUSA_HOME:-/usr/local/musa}

die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }
log() { printf '%s: %s\n' "$prog" "$*"; }

if [[ "${1:-}" == "--component" ]]; then
  [[ $# -ge 2 ]] || die "--component needs a value"
  component=$2
  shift 2
fi
case "$component" in
  toolkit) what="MUSA toolkit"; installers=(install.sh) ;;
  mudnn) what="muDNN"; installers=(install_mudnn.sh install.sh) ;;
  mccl) what="MCCL"; installers=(install.sh install_mccl.sh) ;;
  *) die "unknown component '$component' (toolkit|mudnn|mccl)" ;;
esac
prog="install_musa.sh[$component]"

if [[ $# -eq 0 || "$1" == "-h" || "$1" == "--help" ]]; then
  sed -n '2,/^set -euo pipefail/p' "$0" | sed '$d; s/^# \{0,1\}//'
  [[ $# -eq 0 ]] && exit 2
  exit 0
fi
[[ $(id -u) -eq 0 ]] || die "must run as root"

work=$(mktemp -d /tmp/musa-install.XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# --- the package -----------------------------------------------------------------
if [[ $# -eq 1 && "$1" != -* ]]; then
  pkg=$1
  [[ -f "$pkg" ]] || die "package file not found: $pkg"
else
  pkg=$work/package
  bash "$here/download.sh" --what "$what" -o "$pkg" "$@"
fi
[[ -s "$pkg" ]] || die "$what package is empty"
sum=$(sha256sum "$pkg" | cut -d' ' -f1)

marker_dir=$MUSA_HOME/.musafarm
marker=$marker_dir/$component.sha256
if [[ -f "$marker" && "$(cat "$marker")" == "$sum" ]]; then
  log "$what package (sha256 $sum) already installed in $MUSA_HOME; skipping"
  exit 0
fi

if [[ "$component" == toolkit ]]; then
  if [[ -e "$MUSA_HOME" || -L "$MUSA_HOME" ]]; then
    parent=$(dirname "$MUSA_HOME")
    real=$(readlink -f "$MUSA_HOME")
    # Refuse to delete anything that is not plainly a MUSA directory (MUSA_HOME=/usr ...).
    [[ "$(basename "$real")" == *musa* && "$(basename "$MUSA_HOME")" == *musa* ]] ||
      die "refusing to replace $MUSA_HOME ($real): its name does not contain 'musa'"
    log "replacing the MUSA installation in $MUSA_HOME (muDNN/MCCL must be installed again after this)"
    rm -rf "$real" "$MUSA_HOME"
    if [[ "$MUSA_HOME" == /usr/local/musa ]]; then
      rm -rf "$parent"/musa-*
    fi
  fi
else
  [[ -d "$MUSA_HOME" ]] || die "$MUSA_HOME does not exist: install the MUSA toolkit before $what"
fi

# --- unpack and find the installer ---------------------------------------------------
tar -tf "$pkg" >/dev/null 2>&1 || die "$what package is not a tar archive ($(file -b "$pkg" 2>/dev/null || echo unknown type))"
mkdir -p "$work/x"
tar -xf "$pkg" -C "$work/x" --no-same-owner

installer=""
for name in "${installers[@]}"; do
  # Shallowest match wins; ties are broken by path so the choice is deterministic.
  installer=$(find "$work/x" -maxdepth 4 -type f -name "$name" -printf '%d %p\n' | sort -k1,1n -k2 | sed -n 1p | cut -d' ' -f2-)
  [[ -n "$installer" ]] && break
done
[[ -n "$installer" ]] || die "no ${installers[*]} found in the $what package (see the format notes in $0)"
log "running ${installer#"$work/x/"} for $what"
(cd "$(dirname "$installer")" && MUSA_HOME=$MUSA_HOME bash "./$(basename "$installer")" </dev/null)

# --- check and record ----------------------------------------------------------------------
[[ -d "$MUSA_HOME" ]] || die "the $what installer did not create $MUSA_HOME"
case "$component" in
  toolkit)
    [[ -d "$MUSA_HOME/lib" ]] || die "$MUSA_HOME/lib missing after installing the toolkit"
    compgen -G "$MUSA_HOME/lib/libmusart.so*" >/dev/null ||
      log "warning: no libmusart.so* in $MUSA_HOME/lib (unexpected toolkit layout?)"
    [[ -x "$MUSA_HOME/bin/mcc" ]] || log "warning: no $MUSA_HOME/bin/mcc (torch_musa cannot be built without it)"
    ;;
  mudnn) compgen -G "$MUSA_HOME/lib/libmudnn.so*" >/dev/null || log "warning: no libmudnn.so* in $MUSA_HOME/lib" ;;
  mccl) compgen -G "$MUSA_HOME/lib/libmccl.so*" >/dev/null || log "warning: no libmccl.so* in $MUSA_HOME/lib" ;;
esac

echo "$MUSA_HOME/lib" >/etc/ld.so.conf.d/musa.conf
ldconfig

mkdir -p "$marker_dir"
echo "$sum" >"$marker"
log "$what installed into $MUSA_HOME (package sha256 $sum)"
