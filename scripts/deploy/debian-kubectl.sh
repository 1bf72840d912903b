#!/usr/bin/env bash
# Prints the path of Debian 12's kubectl (package kubernetes-client 1.20, whose
# `kubectl kustomize` is kustomize 2.0), fetching it when needed.
#   bash scripts/deploy/debian-kubectl.sh      -> /var/cache/musafarm-ci/kubernetes-client/usr/bin/kubectl
# Why not `apt-get install kubernetes-client`: on this machine another package
# (kubectl 1:528, "v1.32.4-dispatcher") owns /usr/bin/kubectl and dpkg refuses
# to overwrite it. So when Debian's package is not the one installed, its .deb
# comes from the apt archive (`apt-get download`, checked by apt) and is
# unpacked under the cache dir; nothing else on the machine changes.
set -euo pipefail
CACHE=${MUSAFARM_CI_CACHE:-/var/cache/musafarm-ci}
if dpkg -L kubernetes-client 2>/dev/null | grep -qx /usr/bin/kubectl; then
  echo /usr/bin/kubectl
  exit 0
fi
dest=$CACHE/kubernetes-client
if [ ! -x "$dest/usr/bin/kubectl" ]; then
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/kubectl.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download kubernetes-client >/dev/null 2>&1) || {
    apt-get update >/dev/null && (cd "$tmp" && apt-get download kubernetes-client >/dev/null)
  }
  dpkg-deb -x "$tmp"/kubernetes-client_*.deb "$tmp/root"
  rm -rf "$dest" && mv "$tmp/root" "$dest"
fi
echo "$dest/usr/bin/kubectl"
