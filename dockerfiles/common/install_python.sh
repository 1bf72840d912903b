#!/usr/bin/env bash
# install_python.sh - Miniforge (conda) in /opt/conda plus one Python environment for torch_musa.
#
# Usage: install_python.sh PYTHON_VERSION          e.g. 3.8, 3.9, 3.10
#
# Result:
#   /opt/conda                    Miniforge (conda-forge only; no Anaconda "defaults" channel)
#   /opt/conda/envs/pyX.Y         the environment: python=X.Y and pip, nothing else
#   /opt/conda/envs/pyXY          symlink to it, the name the torch_musa images and
#                                 documents use (`conda activate py38`)
#   /etc/bash.bashrc              interactive shells load conda and activate the environment
#   /opt/conda/.condarc           channels pinned to CONDA_CHANNEL
# The Dockerfiles put /opt/conda/envs/pyX.Y/bin first on PATH, so every later RUN and
# `docker run` uses this Python without activation.
#
# Why conda (Miniforge) and not deadsnakes or a venv over the system Python:
#   * any of 3.8/3.9/3.10 on any base OS from one code path; deadsnakes covers only
#     supported Ubuntu releases (focal is out of standard support) and nothing else,
#     and CentOS is on the torch_musa roadmap;
#   * the interpreter is self-contained, so apt's python3 (used by apt tools and the
#     MUSA installers) is never shadowed or upgraded underneath them;
#   * /opt/conda/envs/pyXY is the layout torch_musa's own images use, which users'
#     scripts already expect;
#   * Miniforge defaults to conda-forge only: no Anaconda terms-of-service issue, and a
#     single channel that an internal mirror can serve (CONDA_CHANNEL).
# Only the interpreter comes from conda; packages come from pip (PIP_INDEX), exactly as
# in a venv, so the same pins work in the dev and the release images.
#
# Environment (all optional):
#   MINIFORGE_URL     installer URL; file:///path works for an installer put in the
#                     build context (offline hosts). Default: the pinned GitHub release.
#   MINIFORGE_VERSION version in the default URL (default 24.3.0-0).
#   MINIFORGE_SHA256  expected sha256 of the installer; set it in production.
#   CONDA_CHANNEL     channel name or mirror URL (default conda-forge).
#   PIP_INDEX         pip index URL written to /etc/pip.conf (default: pip's own).
#
# Idempotent: an existing /opt/conda is reused; an existing environment with the right
# Python X.Y is kept; the bashrc block is written once.
set -euo pipefail

py=${1:-${PYTHON_VERSION:-}}
[[ "$py" =~ ^3\.[0-9]+$ ]] || { echo "install_python.sh: need a Python version like 3.8, got '${py}'" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "install_python.sh: must run as root" >&2; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
conda_root=/opt/conda
env_dir=$conda_root/envs/py$py
env_alias=$conda_root/envs/py${py//./}
channel=${CONDA_CHANNEL:-conda-forge}
miniforge_version=${MINIFORGE_VERSION:-24.3.0-0}
arch=$(uname -m)
default_url="https://github.com/conda-forge/miniforge/releases/download/${miniforge_version}/Miniforge3-${miniforge_version}-Linux-${arch}.sh"

# --- Miniforge ------------------------------------------------------------------
if [[ -x $conda_root/bin/conda ]]; then
  echo "install_python.sh: reusing $conda_root ($("$conda_root/bin/conda" --version))"
else
  installer=$(mktemp /tmp/miniforge.XXXXXX.sh)
  trap 'rm -f "$installer"' EXIT
  dl_args=(--what "Miniforge installer" -o "$installer")
  [[ -n "${MINIFORGE_SHA256:-}" ]] && dl_args+=(--sha256 "$MINIFORGE_SHA256")
  if [[ -n "${MINIFORGE_URL:-}" ]]; then
    dl_args+=(--env MINIFORGE_URL)
  else
    dl_args+=(--url "$default_url")
  fi
  bash "$here/download.sh" "${dl_args[@]}"
  [[ -n "${MINIFORGE_SHA256:-}" ]] ||
    echo "install_python.sh: warning: MINIFORGE_SHA256 not set; the installer was not verified" >&2
  rm -rf "$conda_root" # a half-finished earlier attempt
  bash "$installer" -b -p "$conda_root"
  rm -f "$installer"
  trap - EXIT
fi

conda=$conda_root/bin/conda
# Channel configuration lives in the installation, not in ~/.condarc, so it holds for
# every user of the image.
"$conda" config --system --remove-key channels >/dev/null 2>&1 || true
"$conda" config --system --add channels "$channel"
"$conda" config --system --set channel_priority strict
"$conda" config --system --set auto_update_conda false
"$conda" config --system --set auto_activate_base false

# --- the environment ----------------------------------------------------------------
have=""
if [[ -x $env_dir/bin/python ]]; then
  have=$("$env_dir/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)
fi
if [[ "$have" == "$py" ]]; then
  echo "install_python.sh: reusing $env_dir (Python $have)"
else
  if [[ -e $env_dir ]]; then
    echo "install_python.sh: replacing $env_dir (has Python '${have:-none}', want $py)"
    rm -rf "$env_dir"
  fi
  "$conda" create -y -p "$env_dir" --override-channels -c "$channel" "python=$py" pip
fi
if [[ "$env_alias" != "$env_dir" ]]; then
  ln -sfn "$(basename "$env_dir")" "$env_alias"
fi

# --- pip configuration ---------------------------------------------------------------
{
  echo "# Written by install_python.sh (musafarm torch_musa images)."
  echo "[global]"
  echo "disable-pip-version-check = true"
  echo "timeout = 60"
  echo "retries = 5"
  if [[ -n "${PIP_INDEX:-}" ]]; then
    echo "index-url = ${PIP_INDEX}"
  fi
} >/etc/pip.conf

# --- interactive shells ----------------------------------------------------------------
marker="# >>> musafarm conda >>>"
if ! grep -qF "$marker" /etc/bash.bashrc 2>/dev/null; then
  cat >>/etc/bash.bashrc <<EOF

$marker
if [ -f $conda_root/etc/profile.d/conda.sh ]; then
  . $conda_root/etc/profile.d/conda.sh
  conda activate $env_dir
fi
# <<< musafarm conda <<<
EOF
fi

"$conda" clean -y --all >/dev/null
"$env_dir/bin/python" -m pip --version
echo "install_python.sh: $("$env_dir/bin/python" --version) in $env_dir (alias $env_alias)"
