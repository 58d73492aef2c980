#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Usage: scripts/run-vm-bench.sh [--vectors N] [--rounds R] [run.sh options]
#
# Part 4 of `make bench`, in the VM tier: on real vfio-pci devices in the
# QEMU guest - e1000e (5 MSI-X vectors) and a wide virtio-net-pci
# (vectors=N, default 129) - how long a successor needs to get the MSI-X
# vectors into its new VM by reclaiming the inherited eventfds (CPR)
# against setting them up again (new eventfds + VFIO_DEVICE_SET_IRQS).
# Prints resetup_bench's table (median, p10, p90, ratio).  TCG guest with
# nested KVM: the ratio is the figure to quote, not the absolute times.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
stage=$top/build/vm-bench
vectors=129 rounds=20
args=()
while [ $# -gt 0 ]; do
	case $1 in
	--vectors) vectors=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	-h|--help) sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) args+=("$1"); shift ;;
	esac
done
[[ $vectors =~ ^[0-9]+$ && $rounds =~ ^[0-9]+$ ]] ||
	{ echo "run-vm-bench: --vectors and --rounds take numbers" >&2; exit 2; }

"$top/scripts/setup-host.sh" >/dev/null
make -s -C "$top" lib
make -s -C "$top/user/bench" O="$top/build/bench"
rm -rf "$stage"
mkdir -p "$stage/vfio_cpr"
cp "$top/build/bench/resetup_bench" "$stage/vfio_cpr/"
exec "$top/scripts/vm/run.sh" --kselftest-dir "$stage" \
	--device "virtio-net-pci,vectors=$vectors" --bind 1af4:1000 \
	--cmd "./vfio_cpr/resetup_bench -r $rounds" "${args[@]}"
