#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# /init of the VM tier's initramfs (installed there by vmtest-initramfs.sh;
# runs under busybox sh in the guest, never on the host).
#
# Usage (kernel command line, all optional):
#   vfio_cpr.bind=VVVV:DDDD[,VVVV:DDDD...]  PCI ids to bind to vfio-pci
#                                           (default: /etc/vfio_cpr/bind)
#   vfio_cpr.mdev_type=mtty-2               mtty type to create (or "none")
#   vfio_cpr.cmd="COMMAND ARGS"             test command, run with sh -c in
#                  /kselftest (default: ./run_kselftest.sh -c vfio_cpr)
#   vfio_cpr.tty=ttyS0                      where the tests print (default:
#                  the kernel's console); when it is not the console,
#                  the kernel's messages stay at the console's loglevel
#                  there, else they are kept off it (dmesg -n 1)
#   vfio_cpr.nofile=SOFT[:HARD]             RLIMIT_NOFILE of the test command
#                  (default 65536:65536; the kernel gives init 1024:4096,
#                  too few for kvm_cpr_test's 2048-vector variant, which
#                  holds two eventfds per vector and does not raise its
#                  own soft limit)
#
# It mounts proc/sys/dev/tmp, loads the modules listed in
# /etc/vfio_cpr/modules in order ("file.ko [params]" per line; kvm-amd only
# on a CPU with svm, kvm-intel only with vmx), binds the
# listed PCI devices to vfio-pci, creates a fresh mtty instance, exports
# VFIO_CPR_DEVICES (bound BDFs, then the mdev UUID, comma-separated) and
# VFIO_CPR_MDEV, creates a vfio_cpr_mdev instance and exports its UUID as
# VFIO_CPR_PROBE_MDEV (empty if it could not be made; the probe of
# selftests/vfio_cpr/mdev is a tool, not a device under test, so it is not
# in VFIO_CPR_DEVICES), prints the start marker, runs the test command,
# prints the end marker with its exit status and powers off.  Diagnostics
# are lines starting with '# ', so the output between the markers stays
# valid KTAP.
# shellcheck disable=SC3040 # busybox ash has pipefail
set -euo pipefail

BEGIN_MARK='<<<VFIO_CPR_VM_BEGIN>>>'
END_MARK='<<<VFIO_CPR_VM_END'

export PATH=/kselftest:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root

# shellcheck disable=SC2317 # run by the EXIT trap
finish() {
	rc=$?
	if [ "${ended:-0}" != 1 ]; then
		echo "# guest init: aborted with status $rc"
		echo "$END_MARK rc=${rc:-1} init-aborted>>>"
	fi
	sync 2>/dev/null || true
	poweroff -f
}
trap finish EXIT

mkdir -p /proc /sys /dev /tmp /root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
# The tests' console (vmtest-run.sh gives the kernel's log a serial port of its
# own, so that KTAP is never cut by a kernel line).
tty=$(sed -n 's/.*vfio_cpr\.tty=\([^ ]*\).*/\1/p' /proc/cmdline)
tty=${tty:-console}
exec <"/dev/$tty" >"/dev/$tty" 2>&1
# devtmpfs has no /dev/std{in,out,err} or /dev/fd; kselftest's runner.sh
# writes the tests' output to /dev/stdout and loses it without them.
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
# Keep kernel messages off the console while KTAP is being printed.
[ "$tty" != console ] || dmesg -n 1 2>/dev/null || true

diag() { echo "# $*"; }

# One kernel command-line word per line, honouring double quotes.
cmdline_words() {
	awk '{
		s = $0; w = ""; q = 0
		for (i = 1; i <= length(s); i++) {
			c = substr(s, i, 1)
			if (c == "\"") { q = !q; continue }
			if (c == " " && !q) { if (w != "") print w; w = ""; continue }
			w = w c
		}
		if (w != "") print w
	}' /proc/cmdline
}
cmdline_get() {
	cmdline_words | sed -n "s/^$1=//p" | tail -n 1
}

echo "$BEGIN_MARK"
read -r up _ < /proc/uptime
diag "guest: $(uname -r), userspace at ${up}s, $(grep -c ^processor /proc/cpuinfo) cpu(s)"

# Modules, in the order resolved on the host.  The image holds KVM's
# modules for both vendors: the guest's CPU is QEMU's "max" (svm) under TCG,
# the host's under KVM.
loaded=
failed=
cpu_has() { grep -qw "$1" /proc/cpuinfo; }
if [ -r /etc/vfio_cpr/modules ]; then
	while read -r ko params; do
		[ -n "$ko" ] || continue
		case ${ko%.ko} in
		kvm_amd|kvm-amd) cpu_has svm || continue ;;
		kvm_intel|kvm-intel) cpu_has vmx || continue ;;
		esac
		# shellcheck disable=SC2086
		if out=$(insmod "/lib/modules/vfio_cpr/$ko" $params 2>&1); then
			loaded="$loaded ${ko%.ko}${params:+($params)}"
		else
			failed="$failed ${ko%.ko}"
			diag "module ${ko%.ko}: insmod failed: $out"
		fi
	done < /etc/vfio_cpr/modules
fi
diag "modules loaded:${loaded:- none}"
[ -z "$failed" ] || diag "modules FAILED:$failed"
if [ -r /etc/vfio_cpr/modules.missing ]; then
	diag "modules not in the image (missing or built in): $(tr '\n' ' ' < /etc/vfio_cpr/modules.missing)"
fi

if [ -c /dev/kvm ]; then
	vendor=kvm_amd
	[ -d /sys/module/kvm_amd ] || vendor=kvm_intel
	nested=$(cat "/sys/module/$vendor/parameters/nested" 2>/dev/null || echo '?')
	diag "/dev/kvm: present ($vendor nested=$nested)"
else
	svm=no vmx=no
	cpu_has svm && svm=yes
	cpu_has vmx && vmx=yes
	diag "/dev/kvm: MISSING (cpu svm flag: $svm, vmx flag: $vmx)"
fi

# Bind the listed PCI devices to vfio-pci.
bind=$(cmdline_get vfio_cpr.bind)
[ -n "$bind" ] || bind=$(cat /etc/vfio_cpr/bind 2>/dev/null || true)
bind=$(echo "$bind" | tr 'A-F,' 'a-f ')
devices=
for id in $bind; do
	matched=
	for d in /sys/bus/pci/devices/*; do
		[ -e "$d/vendor" ] || continue
		v=$(cat "$d/vendor") p=$(cat "$d/device")
		[ "${v#0x}:${p#0x}" = "$id" ] || continue
		matched=1
		bdf=${d##*/}
		old=
		if [ -e "$d/driver" ]; then
			old=$(readlink "$d/driver")
			old=${old##*/}
		fi
		if [ "$old" != vfio-pci ]; then
			echo vfio-pci > "$d/driver_override" 2>/dev/null || true
			[ -z "$old" ] || echo "$bdf" > "$d/driver/unbind" 2>/dev/null || true
			echo "$bdf" > /sys/bus/pci/drivers_probe 2>/dev/null || true
		fi
		now=
		if [ -e "$d/driver" ]; then
			now=$(readlink "$d/driver")
			now=${now##*/}
		fi
		grp=$(readlink "$d/iommu_group" 2>/dev/null || true)
		grp=${grp##*/}
		if [ "$now" = vfio-pci ]; then
			devices="$devices${devices:+,}$bdf"
			diag "bind $bdf [$id] ${old:-no driver} -> vfio-pci, iommu group ${grp:-none}, /dev/vfio/${grp:-?} $([ -c "/dev/vfio/$grp" ] && echo present || echo MISSING)"
		else
			diag "bind $bdf [$id] FAILED: driver is '${now:-none}' (was '${old:-none}', iommu group '${grp:-none}')"
		fi
	done
	[ -n "$matched" ] || diag "bind $id: no such PCI device"
done

# mdev_create LABEL PARENT TYPE: an instance of TYPE of mdev parent PARENT,
# its uuid in $created (empty on failure); what happened logged as LABEL.
mdev_create() {
	created=
	m_types=/sys/class/mdev_bus/$2/mdev_supported_types
	if [ ! -d "$m_types/$3" ]; then
		diag "$1: $m_types/$3 not found ($2.ko not loaded?)"
		return 0
	fi
	m_uuid=$(cat /proc/sys/kernel/random/uuid)
	if echo "$m_uuid" > "$m_types/$3/create" 2>/dev/null &&
			[ -e "/sys/bus/mdev/devices/$m_uuid" ]; then
		created=$m_uuid
		m_grp=$(readlink "/sys/bus/mdev/devices/$m_uuid/iommu_group" 2>/dev/null || true)
		m_grp=${m_grp##*/}
		diag "$1: created $3 instance $m_uuid, iommu group ${m_grp:-none}, /dev/vfio/${m_grp:-?} $([ -c "/dev/vfio/$m_grp" ] && echo present || echo MISSING)"
	else
		diag "$1: creating $3 instance $m_uuid FAILED"
	fi
}

# A fresh mtty instance (mtty keeps stale IRQ state across re-opens).
mdev=
mtype=$(cmdline_get vfio_cpr.mdev_type)
mtype=${mtype:-mtty-2}
if [ "$mtype" = none ]; then
	diag "mtty: not requested"
else
	mdev_create mtty mtty "$mtype"
	mdev=$created
	[ -z "$mdev" ] || devices="$devices${devices:+,}$mdev"
fi

# A vfio_cpr_mdev instance: the tests' probe of type1's DMA addresses and
# of KVM-VFIO (selftests/vfio_cpr/mdev), never a device under test.
mdev_create VFIO_CPR_PROBE_MDEV vfio_cpr_mdev vfio_cpr_mdev-1
probe=$created

export VFIO_CPR_DEVICES="$devices"
export VFIO_CPR_MDEV="$mdev"
export VFIO_CPR_PROBE_MDEV="$probe"
diag "VFIO_CPR_DEVICES=$VFIO_CPR_DEVICES"
diag "VFIO_CPR_PROBE_MDEV=$VFIO_CPR_PROBE_MDEV"

# Open-file limit of the test command.
nofile=$(cmdline_get vfio_cpr.nofile)
# Debian's stock limits by default: tests must cope with a 1024 soft limit.
nofile=${nofile:-1024:524288}
soft=${nofile%%:*} hard=${nofile#*:}
# shellcheck disable=SC3045 # busybox ash has ulimit -H/-S
if ulimit -n "$hard" 2>/dev/null && ulimit -S -n "$soft" 2>/dev/null; then
	:
else
	diag "RLIMIT_NOFILE: cannot set $soft:$hard"
fi
# shellcheck disable=SC3045
diag "RLIMIT_NOFILE: soft $(ulimit -S -n), hard $(ulimit -H -n)"

cmd=$(cmdline_get vfio_cpr.cmd)
cmd=${cmd:-./run_kselftest.sh -c vfio_cpr}
diag "running: $cmd"
rc=0
t0=$(cut -d' ' -f1 /proc/uptime)
cd /kselftest 2>/dev/null || cd /
sh -c "$cmd" || rc=$?
t1=$(cut -d' ' -f1 /proc/uptime)
cd /
diag "test command took $(awk "BEGIN { print $t1 - $t0 }")s (guest clock), status $rc"
ended=1
echo "$END_MARK rc=$rc>>>"

# After the end marker (kept in the console log only): kernel warnings.
dmesg -r 2>/dev/null | grep '^<[0-4]>' | sed 's/^/# dmesg: /' | tail -n 40 || true
exit "$rc"
