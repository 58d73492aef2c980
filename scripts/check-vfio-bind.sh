#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Prove scripts/vfio-bind.sh in the VM tier's guest (busybox sh): a
# pci-serial device, which the guest's init binds to vfio-pci, is given
# back to its own driver (serial), bound again, restored again (the
# remembered driver must take it back), and bound once more with its group
# node present.  Usage: check-vfio-bind.sh  (needs build/vm-ksft, made by
# run-vm-tier.sh)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
ksft=$top/build/vm-ksft
[ -x "$ksft/run_kselftest.sh" ] ||
	{ echo "check-vfio-bind: $ksft missing: run scripts/run-vm-tier.sh first" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$ksft/." "$work/"
cp "$top/scripts/vfio-bind.sh" "$work/"
cat > "$work/vfio_bind_check.sh" <<'GUEST'
set -e
bdf=
for d in /sys/bus/pci/devices/*; do
	[ "$(cat "$d/vendor"):$(cat "$d/device")" = 0x1b36:0x0002 ] && bdf=${d##*/}
done
[ -n "$bdf" ] || { echo "not ok 1 no pci-serial device in the guest"; exit 1; }
drv() { basename "$(readlink -f "/sys/bus/pci/devices/$bdf/driver")"; }
sh ./vfio-bind.sh restore "$bdf"
[ "$(drv)" = serial ] || { echo "not ok 1 restore: $(drv)"; exit 1; }
sh ./vfio-bind.sh bind "$bdf"
[ "$(drv)" = vfio-pci ] || { echo "not ok 1 bind: $(drv)"; exit 1; }
sh ./vfio-bind.sh restore "$bdf"
[ "$(drv)" = serial ] || { echo "not ok 1 remembered driver: $(drv)"; exit 1; }
sh ./vfio-bind.sh bind "$bdf"
grp=$(basename "$(readlink "/sys/bus/pci/devices/$bdf/iommu_group")")
[ -e "/dev/vfio/$grp" ] || { echo "not ok 1 /dev/vfio/$grp missing"; exit 1; }
if sh ./vfio-bind.sh status "$bdf/../../x" 2>/dev/null; then
	echo "not ok 1 a path was accepted as a BDF"; exit 1
fi
echo "ok 1 vfio-bind.sh: $bdf serial <-> vfio-pci round trips"
GUEST
"$top/scripts/vm/run.sh" --kselftest-dir "$work" --device pci-serial \
	--bind 1b36:0002 --cmd 'sh ./vfio_bind_check.sh'
