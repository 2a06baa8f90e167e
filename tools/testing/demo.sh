#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The main job, end to end: install what is needed, build nbd.ko, boot a
# VM, attach /dev/nbd0 to a built-in default server (nbdkit's memory
# plugin, 1 GiB), make and mount a filesystem on it, and show what
# happened.
#
#   tools/testing/demo.sh [--kernel 6.1|6.12]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
kernel=6.12
if [ "${1:-}" = "--kernel" ] && [ -n "${2:-}" ]; then
	kernel=$2
fi

"$REPO/tools/testing/vm/setup.sh"
cd "$REPO"
exec tools/testing/vm/vm-run.sh --kernel "$kernel" -- \
	tools/testing/demo-guest.sh
