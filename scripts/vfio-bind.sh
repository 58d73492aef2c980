#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Bind PCI devices to vfio-pci for the vfio_cpr tests on real hardware, and
# give them back to their own driver afterwards.
#
#   scripts/vfio-bind.sh bind BDF...     remember the current driver, bind
#                                        to vfio-pci (driver_override)
#   scripts/vfio-bind.sh restore BDF...  unbind from vfio-pci, clear the
#                                        override, reprobe the remembered
#                                        driver
#   scripts/vfio-bind.sh status BDF...
#
# POSIX sh (runs under busybox too).  BDFs are full PCI addresses (0000:03:00.0); nothing else is accepted, so
# no path outside /sys/bus/pci/devices can be reached.  The original driver
# is remembered in $VFIO_CPR_BIND_DIR (default /run/vfio_cpr/bind).  After
# binding, run the tests with VFIO_CPR_DEVICES=BDF,... (see README).
set -eu

sys=${VFIO_CPR_SYSFS:-/sys}
state=${VFIO_CPR_BIND_DIR:-/run/vfio_cpr/bind}

die() { echo "vfio-bind: $*" >&2; exit 1; }

x='[0-9a-fA-F]'
check_bdf() {
	# A case pattern matches the whole word: no newline, '/' or '..'.
	# shellcheck disable=SC2254 # $x is meant as a pattern
	case $1 in
	$x$x$x$x:$x$x:$x$x.[0-7]) ;;
	*) die "'$1' is not a PCI address like 0000:03:00.0" ;;
	esac
	[ -d "$sys/bus/pci/devices/$1" ] || die "$1: no such PCI device"
}

driver_of() {
	if [ -e "$sys/bus/pci/devices/$1/driver" ]; then
		basename "$(readlink -f "$sys/bus/pci/devices/$1/driver")"
	fi
}

bind_one() {
	bdf=$1 dev="$sys/bus/pci/devices/$1"

	drv=$(driver_of "$bdf")
	if [ "$drv" = vfio-pci ]; then
		echo "vfio-bind: $bdf already on vfio-pci"
		return
	fi
	[ -e "$dev/iommu_group" ] ||
		die "$bdf: no IOMMU group (IOMMU off? boot with intel_iommu=on / amd_iommu=on)"
	modprobe vfio-pci 2>/dev/null || true
	mkdir -p "$state"
	echo "${drv:-}" > "$state/$bdf"
	if [ -n "$drv" ]; then
		echo "$bdf" > "$dev/driver/unbind" || die "$bdf: unbind from $drv failed"
	fi
	echo vfio-pci > "$dev/driver_override"
	echo "$bdf" > "$sys/bus/pci/drivers_probe" || true
	[ "$(driver_of "$bdf")" = vfio-pci ] ||
		die "$bdf: vfio-pci did not take it (dmesg says why); was on '${drv:-none}'"
	echo "vfio-bind: $bdf: ${drv:-no driver} -> vfio-pci (group $(basename "$(readlink "$dev/iommu_group")"))"
}

restore_one() {
	bdf=$1 dev="$sys/bus/pci/devices/$1" orig=

	[ -f "$state/$bdf" ] && orig=$(cat "$state/$bdf")
	if [ "$(driver_of "$bdf")" = vfio-pci ]; then
		echo "$bdf" > "$dev/driver/unbind" || die "$bdf: unbind from vfio-pci failed"
	fi
	echo > "$dev/driver_override"
	echo "$bdf" > "$sys/bus/pci/drivers_probe" || true
	rm -f "$state/$bdf"
	echo "vfio-bind: $bdf: vfio-pci -> ${orig:-no driver} (now: $(driver_of "$bdf"))"
	if [ -n "$orig" ] && [ "$(driver_of "$bdf")" != "$orig" ]; then
		die "$bdf: $orig did not take the device back"
	fi
}

cmd=${1:-}
[ $# -ge 2 ] || die "usage: $0 bind|restore|status BDF..."
shift
for bdf in "$@"; do
	check_bdf "$bdf"
	case $cmd in
	bind) bind_one "$bdf" ;;
	restore) restore_one "$bdf" ;;
	status)
		drv=$(driver_of "$bdf")
		echo "$bdf: driver ${drv:-none}"
		;;
	*) die "unknown command '$cmd' (bind, restore, status)" ;;
	esac
done
