# Sourced by scripts/deploy/*-check.sh: run from the repository root, BUILD_DIR
# from the first argument, HERE the root, and say/fail prefixed with the check's
# name (the script's file name).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[1]}")/../.."
BUILD_DIR=${1:-build}
HERE=$(pwd)
CHECK_NAME=$(basename "${BASH_SOURCE[1]}" .sh)
say() { echo "$CHECK_NAME: $*"; }
fail() { echo "$CHECK_NAME: FAILED: $*" >&2; exit 1; }
