#!/usr/bin/env bash
# install_mccl.sh - install MCCL (MUSA collective communications) into $MUSA_HOME.
#
# Usage: install_mccl.sh PACKAGE_FILE
#        install_mccl.sh [download.sh options...]    e.g. --secret mccl_url --env MCCL_URL
#
# Thin wrapper: `install_musa.sh --component mccl`, which documents the assumed
# package format (a tar archive with an install.sh inside), the URL handling and
# the idempotency rule (same package sha256 -> skipped). The MUSA toolkit must be
# installed first. (torch_musa's scripts note MCCL is to be folded into the
# toolkit; until then it is a separate package.)
set -euo pipefail
exec bash "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/install_musa.sh" --component mccl "$@"
