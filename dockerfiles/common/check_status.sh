#!/bin/sh
# check_status.sh - the start-up check of a torch_musa container: is the GPU
# this task was given usable, and does torch_musa see it?
#
# Usage: check_status.sh            (no arguments; POSIX sh, so busybox runs it too)
#
# The farm runs it first in both test stages (pipelines/torch_musa.yaml), the
# job upstream's docker/common/check_status.sh does by hand. It exits 0 when
#  - the task holds no GPU (MTHREADS_VISIBLE_DEVICES unset, empty or "void"):
#    the import is tried and a failure only warned about, or
#  - the task holds GPUs, `mthreads-gmi` answers with its driver table, and
#    torch.musa.is_available() is true with at least one device.
# Otherwise it exits 1 and its last line says what is wrong, naming the GPU as
# mthreads-gmi names it (e.g. "GPU 0 : MTT S4000"), so the task's log says which
# device of which host to look at. PYTHON (default: python) is the interpreter.
set -u

py=${PYTHON:-python}
held=${MTHREADS_VISIBLE_DEVICES:-}
case "${held}" in void|none) held= ;; esac

fail() {
  echo "check_status: FAILED: $*" >&2
  exit 1
}

if [ -z "${held}" ]; then
  # Without a GPU the MUSA runtime may not be injected into the container, so
  # a failed import is reported, not fatal: there was no device to check.
  echo "check_status: this task holds no GPU; nothing to check but the import"
  "${py}" -c 'import torch, torch_musa; print("torch", torch.__version__)' ||
    echo "check_status: warning: torch_musa does not import here (no GPU held)" >&2
  echo "check_status: ok (no GPU)"
  exit 0
fi

echo "check_status: this task holds GPU(s) ${held} (MTHREADS_VISIBLE_DEVICES)"
gpus=""
if command -v mthreads-gmi >/dev/null 2>&1; then
  table=$(mthreads-gmi 2>&1) || true
  echo "${table}"
  # "GPU 0 : MTT S4000 (UUID : ...)" from -L; the table's "0    MTT S80  |..." otherwise.
  gpus=$(mthreads-gmi -L 2>/dev/null | sed -n 's/ *(UUID.*//p' | tr '\n' ';' | sed 's/;$//')
  case "${table}" in
    *"Driver Version"*) ;;
    *) fail "mthreads-gmi printed no driver table: the MUSA driver or the container runtime is not set up for GPU(s) ${held}" ;;
  esac
else
  echo "check_status: mthreads-gmi is not in this image; relying on torch_musa alone"
fi
[ -n "${gpus}" ] || gpus="GPU(s) ${held}"

"${py}" -c '
import sys
import torch, torch_musa
n = torch.musa.device_count() if torch.musa.is_available() else 0
names = [torch.musa.get_device_name(i) for i in range(n)]
print("torch", torch.__version__, "musa devices:", n, names)
sys.exit(0 if n > 0 else 3)
'
rc=$?
case ${rc} in
  0) echo "check_status: ok (${gpus})" ;;
  3) fail "no MUSA device visible to torch_musa although this task holds ${gpus} (MTHREADS_VISIBLE_DEVICES=${held})" ;;
  *) fail "torch_musa did not load (exit ${rc}) on ${gpus}" ;;
esac
