#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Usage: scripts/vm/run.sh --kselftest-dir DIR [options]
#
# The repository's front of the kselftest target's VM runner,
# selftests/vfio_cpr/vmtest-run.sh (the one runner vmtest.sh uses in a
# kernel tree; see its usage for the options: run.sh -h prints both).  It
# adds what only this repository has:
#   * scripts/vm/provision.sh (unless VFIO_CPR_NO_PROVISION=1: then
#     .deps/vm/current.env as it is), and without --kernel the Debian
#     kernel it provisioned: --kernel VM_VMLINUX --modules VM_MODROOT
#     --kver VM_KVER (VFIO_CPR_KVER picks it, see provision.sh);
#   * --kernel without --modules: --modules none (all built in);
#   * the mtty.ko and vfio_cpr_mdev.ko provision.sh built, for a modules
#     tree without its own;
#   * one guest at a time: the lock .deps/vm/.vm.lock; scratch folders in
#     .deps/vm, a failed run's console log in .deps/vm/logs/;
#   * 6.1's run_kselftest.sh for a standalone install (.deps/linux).
# Then it runs vmtest-run.sh, whose exit status it returns.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/vm/defaults.sh
. "$top/scripts/vm/defaults.sh"
runner=$target/vmtest-run.sh
die() { echo "run.sh: error: $*" >&2; exit 2; }

kernel='' modules=''
args=("$@")
while [ $# -gt 0 ]; do
	case $1 in
	-h|--help)
		sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
		echo
		exec "$runner" --help ;;
	--kernel) kernel=${2:-} ;;
	--modules) modules=${2:-} ;;
	esac
	shift
done
[ -z "$modules" ] || [ -n "$kernel" ] || die "--modules needs --kernel"

env_file=$vmdir/current.env
if [ "${VFIO_CPR_NO_PROVISION:-0}" != 1 ]; then
	env_file=$("$top/scripts/vm/provision.sh" -q | tail -n 1)
fi
[ -r "$env_file" ] || die "no $env_file: run scripts/vm/provision.sh"
# shellcheck disable=SC1090
. "$env_file"

pre=(--lock "$vmdir/.vm.lock" --work-dir "$vmdir" --log-dir "$vmdir/logs"
	--framework "$framework")
if [ -z "$kernel" ]; then
	pre+=(--kernel "$VM_VMLINUX" --modules "$VM_MODROOT" --kver "$VM_KVER")
elif [ -z "$modules" ]; then
	pre+=(--modules none)
fi
mapfile -t post < <(provisioned_modules)
exec "$runner" "${pre[@]}" "${args[@]}" "${post[@]}"
