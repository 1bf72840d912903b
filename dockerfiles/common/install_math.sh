#!/usr/bin/env bash
# install_math.sh - install the MUSA math libraries torch_musa's sources include:
# muAlg, muThrust, muSPARSE and muRAND (upstream's docker/common/install_math.sh).
#
# Usage: install_math.sh DIR
#   DIR holds the downloaded packages, one file per library, each optional:
#   DIR/mualg, DIR/muthrust, DIR/musparse, DIR/murand (dockerfile.dev's fetch stage
#   writes them from the secrets MUALG_URL, MUTHRUST_URL, MUSPARSE_URL, MURAND_URL).
#   A missing file is skipped with a note: recent MUSA toolkits bundle muRAND, and
#   a torch_musa that needs a library that is absent fails at its own build.
#
# ASSUMED PACKAGE FORMATS (what upstream's script handled):
#   a .deb                          -> dpkg -i
#   a tar of .deb files             -> every .deb inside, dpkg -i
#   a tar(.gz) with an install.sh   -> bash install.sh (run where it lies)
# The format is told from the content (`file`-free: dpkg-deb and tar probes), not
# from the URL, which this script never sees. Runs as root; stdin from /dev/null.
set -euo pipefail

dir=${1:?usage: install_math.sh DIR}
prog=install_math.sh
log() { printf '%s: %s\n' "$prog" "$*"; }
die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }

install_one() {
  local name=$1 pkg="$dir/$1" work
  if [ ! -s "$pkg" ]; then
    log "$name: no package given, skipped"
    return 0
  fi
  if dpkg-deb --info "$pkg" >/dev/null 2>&1; then
    log "$name: installing a .deb"
    dpkg -i "$pkg" </dev/null
    return 0
  fi
  work=$(mktemp -d)
  tar -xf "$pkg" -C "$work" || die "$name: neither a .deb nor a tar archive"
  mapfile -t debs < <(find "$work" -type f -name '*.deb' | LC_ALL=C sort)
  if [ "${#debs[@]}" -gt 0 ]; then
    log "$name: installing ${#debs[@]} .deb file(s) from the archive"
    dpkg -i "${debs[@]}" </dev/null
  else
    local installer
    installer=$(find "$work" -name install.sh -type f | awk '{ print length, $0 }' | sort -n | sed -n '1s/^[0-9]* //p')
    [ -n "$installer" ] || die "$name: the archive has neither .deb files nor an install.sh"
    log "$name: running ${installer#"$work"/}"
    (cd "$(dirname "$installer")" && bash ./install.sh </dev/null)
  fi
  rm -rf "$work"
}

for lib in mualg muthrust musparse murand; do
  install_one "$lib"
done
