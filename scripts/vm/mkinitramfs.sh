#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Usage: scripts/vm/mkinitramfs.sh --kselftest-dir DIR [-o FILE]
#            [options of selftests/vfio_cpr/vmtest-initramfs.sh]
#
# The repository's front of the kselftest target's initramfs packer,
# selftests/vfio_cpr/vmtest-initramfs.sh (see its usage: -h prints both),
# with this repository's defaults: -o .deps/vm/initramfs.cpio.gz; without
# --modroot, the Debian kernel of .deps/vm/current.env (provision.sh):
# --modroot VM_MODROOT --kver VM_KVER; the mtty.ko and vfio_cpr_mdev.ko
# provision.sh built, for a modules tree without its own; 6.1's
# run_kselftest.sh for a standalone install (.deps/linux).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/vm/defaults.sh
. "$top/scripts/vm/defaults.sh"
packer=$target/vmtest-initramfs.sh

out='' modroot=''
args=("$@")
while [ $# -gt 0 ]; do
	case $1 in
	-h|--help)
		sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
		echo
		exec "$packer" --help ;;
	-o|--output) out=${2:-} ;;
	--modroot|--modules) modroot=${2:-} ;;
	esac
	shift
done

pre=(--framework "$framework")
[ -n "$out" ] || pre+=(-o "$vmdir/initramfs.cpio.gz")
if [ -z "$modroot" ]; then
	VM_MODROOT='' VM_KVER=''
	if [ -r "$vmdir/current.env" ]; then
		# shellcheck disable=SC1091
		. "$vmdir/current.env"
	fi
	[ -n "$VM_MODROOT" ] ||
		{ echo "mkinitramfs: error: no modules tree: run scripts/vm/provision.sh or pass --modroot" >&2; exit 1; }
	pre+=(--modroot "$VM_MODROOT" --kver "$VM_KVER")
fi
mapfile -t post < <(provisioned_modules)
exec "$packer" "${pre[@]}" "${args[@]}" "${post[@]}"
