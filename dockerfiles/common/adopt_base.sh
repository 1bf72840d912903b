#!/bin/sh
# adopt_base.sh - make a base image built by upstream's build_base.sh usable by
# dockerfile.dev, which was written for dockerfile.base's layout.
#
# Usage: adopt_base.sh PYTHON_VERSION        (POSIX sh: runs before anything is installed)
#
# Our base has: a conda env /opt/conda/envs/py<X.Y> on PATH, PYTORCH_REPO_PATH and
# PYTORCH_TAG in its environment, /opt/musafarm/pip-constraints.txt. Upstream's base
# has a conda env named py<XY> (no dot, from `tr -d .`), the PyTorch tree in
# /home/pytorch, and none of the rest. This script makes /opt/musafarm/python-env a
# link to whichever env exists (dockerfile.dev puts its bin/ first on PATH) and writes
# the constraints file if missing (numpy and setuptools pinned as our base does). It
# changes nothing else and fails, saying what it looked for, when it finds no env.
set -eu

py=${1:?usage: adopt_base.sh PYTHON_VERSION}
nodot=$(printf '%s' "$py" | tr -d .)
mkdir -p /opt/musafarm
env=""
for candidate in "/opt/conda/envs/py${py}" "/opt/conda/envs/py${nodot}"; do
  if [ -x "${candidate}/bin/python" ]; then env=$candidate; break; fi
done
if [ -z "$env" ]; then
  echo "adopt_base.sh: error: no Python ${py} env in the base image (looked for" \
       "/opt/conda/envs/py${py} and /opt/conda/envs/py${nodot}); build the base with" \
       "dockerfile.base or upstream's build_base.sh -v ${py}" >&2
  exit 1
fi
ln -sfn "$env" /opt/musafarm/python-env
echo "adopt_base.sh: Python ${py} from ${env}"
if [ ! -f /opt/musafarm/pip-constraints.txt ]; then
  printf '%s\n' "numpy==${NUMPY_VERSION:-1.23.1}" "setuptools==${SETUPTOOLS_VERSION:-69.5.1}" \
    >/opt/musafarm/pip-constraints.txt
  echo "adopt_base.sh: a base not built by dockerfile.base: wrote /opt/musafarm/pip-constraints.txt"
fi
if [ ! -f /home/pytorch/setup.py ]; then
  echo "adopt_base.sh: error: the base image has no PyTorch tree in /home/pytorch" >&2
  exit 1
fi
