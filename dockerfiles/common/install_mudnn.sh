#!/usr/bin/env bash
# install_mudnn.sh - install muDNN into $MUSA_HOME (default /usr/local/musa).
#
# Usage: install_mudnn.sh PACKAGE_FILE
#        install_mudnn.sh [download.sh options...]   e.g. --secret mudnn_url --env MUDNN_URL
#
# Thin wrapper: `install_musa.sh --component mudnn`, which documents the assumed
# package format (a tar archive with mudnn/install_mudnn.sh), the URL handling and
# the idempotency rule (same package sha256 -> skipped). The MUSA toolkit must be
# installed first.
set -euo pipefail
exec bash "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/install_musa.sh" --component mudnn "$@"
