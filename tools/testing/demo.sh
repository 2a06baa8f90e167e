#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The main job, end to end: install what is needed, build nbd.ko and
# nbdctl, boot a VM, attach /dev/nbd0 with nbdctl to a built-in default
# server (nbdkit's memory plugin, 1 GiB), make and mount a filesystem on
# it, and show what happened.
#
#   tools/testing/demo.sh [--kernel 6.1|6.12]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/errtrap.sh"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
kernel=6.12
if [ "${1:-}" = "--kernel" ] && [ -n "${2:-}" ]; then
	kernel=$2
fi

die() {
	echo "demo.sh: $*" >&2
	exit 1
}

"$REPO/tools/testing/vm/setup.sh" ||
	die "setup.sh failed: the demo needs the packages it installs (see above)"
cd "$REPO"
# nbdctl, the project's helper, attaches the device; the VM runs it from
# the host's cache (the guest's /tmp is its own).
nbdctl_dir=${NBD_CACHE_DIR:-/var/cache/nbd-dev}/nbdctl
make -s -C tools/nbdctl O="$nbdctl_dir" all
exec tools/testing/vm/vm-run.sh --kernel "$kernel" \
	--env "NBDCTL=$nbdctl_dir/nbdctl" -- tools/testing/demo-guest.sh
