#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Usage: scripts/vm/run.sh --kselftest-dir DIR [options]
#
# Boot a QEMU TCG guest (q35, -cpu max, intel-iommu with interrupt
# remapping, devices edu, e1000e and nvme) on Debian's kernel with a busybox
# initramfs holding the installed kselftests of DIR, bind the devices to
# vfio-pci, create an mtty instance, run `run_kselftest.sh -c vfio_cpr` in
# the guest and stream its KTAP output to stdout.
#
#   --kselftest-dir DIR   installed kselftests (make -C tools/testing/selftests
#                         TARGETS=vfio_cpr install INSTALL_PATH=DIR); required
#   --kernel FILE         boot this bzImage or PVH-capable vmlinux instead of
#                         Debian's; with
#   --modules DIR         its modules: a root holding lib/modules/RELEASE (as
#                         made by INSTALL_MOD_PATH=DIR) or that folder itself;
#                         without it no module goes in (all must be built in)
#   --device SPEC         extra `-device SPEC` for QEMU (repeatable), e.g.
#                         virtio-net-pci,vectors=33 (give it a --bind too)
#   --bind VVVV:DDDD      extra PCI id to bind to vfio-pci (repeatable); the
#                         defaults are 1234:11e8 (edu), 8086:10d3 (e1000e)
#                         and 1b36:0010 (nvme)
#   --append ARGS         extra kernel command-line arguments (guest-init.sh
#                         reads vfio_cpr.bind=, .mdev_type=, .nofile=)
#   --cmd CMD             test command instead of ./run_kselftest.sh -c
#                         vfio_cpr (run with sh -c in the guest's /kselftest;
#                         no double quotes)
#   --initrd FILE         boot this initramfs (made by mkinitramfs.sh) instead
#                         of building one; --kselftest-dir is then not needed
#   --initrd-extra FILE   a further gzip'd cpio archive appended to the
#                         initramfs (repeatable): its files replace those of
#                         the same path, e.g. a kernel mutant's modules in
#                         /lib/modules/vfio_cpr/
#   --timeout SECONDS     kill QEMU after this long (default 480)
#   --keep-log FILE       keep the whole console log there (default: kept
#                         only on failure, in .deps/vm/logs/, path shown)
#   --smp N               guest CPUs (default 1)
#   --mem MB              guest memory (default 1024)
#
# Exits non-zero on any `not ok` line, a QEMU timeout or crash, a missing
# end marker, a non-zero status of the test command, or - when
# VFIO_CPR_NO_SKIP=1 - any SKIP result but those whose line contains one
# of the '|'-separated texts of VFIO_CPR_SKIP_OK (when set: what the
# device or the kernel is known to lack, e.g. "not applicable: " or
# "vfio cdev/iommufd unavailable"; such skips are counted and shown).  On failure the last 60 lines of the console log go to stderr.
# Environment: VFIO_CPR_KVER (Debian kernel ABI, see provision.sh),
# VFIO_CPR_NO_PROVISION=1 (do not call provision.sh; use
# .deps/vm/current.env as it is), VFIO_CPR_QEMU (QEMU binary),
# VFIO_CPR_NO_SKIP, VFIO_CPR_SKIP_OK.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
deps=${VFIO_CPR_DEPS:-$top/.deps}
vmdir=$deps/vm

usage() { sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit "${1:-0}"; }
die() { echo "run.sh: error: $*" >&2; exit 2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

t_start=$(now)
ksft='' kernel='' modules='' timeout_s=480 keep_log='' smp=1 mem=1024 append='' cmd=''
initrd_in=''
devices=() binds=(1234:11e8 8086:10d3 1b36:0010) extras=()
while [ $# -gt 0 ]; do
	case $1 in
	--kselftest-dir) ksft=$2; shift 2 ;;
	--kernel) kernel=$2; shift 2 ;;
	--modules) modules=$2; shift 2 ;;
	--device) devices+=("$2"); shift 2 ;;
	--bind) binds+=("$2"); shift 2 ;;
	--append) append="$append $2"; shift 2 ;;
	--cmd) cmd=$2; shift 2 ;;
	--initrd) initrd_in=$2; shift 2 ;;
	--initrd-extra) extras+=("$2"); shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--keep-log) keep_log=$2; shift 2 ;;
	--smp) smp=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	-h|--help) usage 0 ;;
	*) echo "run.sh: unknown argument '$1'" >&2; usage 2 >&2 ;;
	esac
done
if [ -n "$initrd_in" ]; then
	[ -f "$initrd_in" ] || die "no such initramfs: $initrd_in"
	[ -n "$kernel" ] || die "--initrd needs --kernel (its modules are in it)"
else
	[ -n "$ksft" ] || die "--kselftest-dir is required"
	[ -d "$ksft" ] || die "no such directory: $ksft"
fi
for x in "${extras[@]}"; do
	[ -f "$x" ] || die "no such --initrd-extra archive: $x"
done
[ -z "$modules" ] || [ -n "$kernel" ] || die "--modules needs --kernel"
[ -z "$kernel" ] || [ -f "$kernel" ] || die "no such kernel: $kernel"
case $cmd in *'"'*) die "--cmd must not contain double quotes" ;; esac
for n in "$timeout_s" "$smp" "$mem"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "--timeout, --smp and --mem take positive integers, not '$n'"
done
for id in "${binds[@]}"; do
	[[ $id =~ ^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$ ]] || die "bad --bind id '$id' (want VVVV:DDDD)"
done

env_file=$vmdir/current.env
if [ "${VFIO_CPR_NO_PROVISION:-0}" != 1 ]; then
	env_file=$("$here/provision.sh" -q | tail -n 1)
fi
[ -r "$env_file" ] || die "no $env_file: run scripts/vm/provision.sh"
# shellcheck disable=SC1090
. "$env_file"

# One guest at a time on this machine: two TCG guests on its cores make
# each other's timings and timeouts lie.
mkdir -p "$vmdir"
exec 7>"$vmdir/.vm.lock"
if ! flock -n 7; then
	echo "run.sh: waiting for another VM run on this machine to finish" >&2
	flock 7
fi

work=$(mktemp -d "$vmdir/run.XXXXXX")
log=${keep_log:-$work/console.log}
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	# Stop the QEMU this run started (through its `timeout` wrapper,
	# which passes the signal on) if we are interrupted.
	if [ -s "$work/qemu.pid" ]; then
		kill "$(cat "$work/qemu.pid")" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

initrd=$work/initramfs.cpio.gz
if [ -n "$initrd_in" ]; then
	cp "$initrd_in" "$initrd"
else
	mkargs=(--kselftest-dir "$ksft" -o "$initrd")
	if [ -z "$kernel" ]; then
		mkargs+=(--modroot "$VM_MODROOT" --kver "$VM_KVER" --mtty "$VM_MTTY_KO")
	elif [ -n "$modules" ]; then
		mkargs+=(--modroot "$modules")
	else
		mkargs+=(--modroot none)
	fi
	"$here/mkinitramfs.sh" "${mkargs[@]}" 2>"$work/mkinitramfs.log" || {
		cat "$work/mkinitramfs.log" >&2
		die "mkinitramfs.sh failed"
	}
	grep -v '^mkinitramfs: /' "$work/mkinitramfs.log" >&2 || true
fi
# The kernel unpacks concatenated compressed cpio archives in order.
for x in "${extras[@]}"; do
	cat "$x" >> "$initrd"
done
t_built=$(now)

bindarg=$(IFS=,; echo "${binds[*]}" | tr 'A-F' 'a-f')
kargs="panic=-1 console=ttyS0 intel_iommu=on loglevel=4 vfio_cpr.bind=$bindarg"
[ -z "$cmd" ] || kargs="$kargs vfio_cpr.cmd=\"$cmd\""
kargs="$kargs$append"

qemu=${VFIO_CPR_QEMU:-qemu-system-x86_64}
# shellcheck disable=SC2054 # commas belong to QEMU's option syntax
qargs=(-machine q35,accel=tcg -cpu max -smp "$smp" -m "$mem"
	-device intel-iommu,intremap=on
	-device edu
	-device e1000e,netdev=n0 -netdev user,id=n0,restrict=on
	-device nvme,serial=vfio-cpr-nvme)
for d in "${devices[@]}"; do
	qargs+=(-device "$d")
done
qargs+=(-kernel "${kernel:-$VM_VMLINUX}" -initrd "$initrd" -append "$kargs"
	-nographic -no-reboot)

begin_re='<<<VFIO_CPR_VM_BEGIN>>>'
end_re='<<<VFIO_CPR_VM_END rc=([0-9]+)'
qemu_sentinel='@@run.sh: qemu exit status '
notok_re='^[#[:space:]]*not ok[[:space:]]'
skip_re='^[#[:space:]]*((not )?ok[[:space:]]+[0-9]+|1\.\.0).*#[[:space:]]*[Ss][Kk][Ii][Pp]'
top_re='^(not )?ok [0-9]+'

state=boot rc_guest='' qemu_rc='' n_notok=0 n_skip=0 n_skip_ok=0 n_ok_top=0 n_notok_top=0 t_begin=''
skip_ok=${VFIO_CPR_SKIP_OK:-}
# Does a SKIP line contain one of VFIO_CPR_SKIP_OK's '|'-separated texts?
skip_is_ok() {
	local p
	[ -n "$skip_ok" ] || return 1
	IFS='|' read -ra pats <<< "$skip_ok"
	for p in "${pats[@]}"; do
		[[ $1 != *"$p"* ]] || return 0
	done
	return 1
}
: > "$log"
echo "# vm: $qemu ${qargs[*]}" >> "$log"
while IFS= read -r line || [ -n "$line" ]; do
	line=${line//$'\r'/}
	if [[ $line == "$qemu_sentinel"* ]]; then
		qemu_rc=${line#"$qemu_sentinel"}
		qemu_rc=${qemu_rc%@@}
		continue
	fi
	printf '%s\n' "$line" >> "$log"
	case $state in
	boot)
		if [[ $line == *"$begin_re"* ]]; then
			state=run
			t_begin=$(now)
		fi
		;;
	run)
		if [[ $line =~ $end_re ]]; then
			rc_guest=${BASH_REMATCH[1]}
			state=ended
			continue
		fi
		printf '%s\n' "$line"
		[[ $line =~ $notok_re ]] && n_notok=$((n_notok + 1))
		if [[ $line =~ $skip_re ]]; then
			if skip_is_ok "$line"; then
				n_skip_ok=$((n_skip_ok + 1))
			else
				n_skip=$((n_skip + 1))
			fi
		fi
		if [[ $line =~ $top_re ]]; then
			if [ -n "${BASH_REMATCH[1]}" ]; then
				n_notok_top=$((n_notok_top + 1))
			else
				n_ok_top=$((n_ok_top + 1))
			fi
		fi
		;;
	esac
done < <(
	rc=0
	timeout -k 10 "$timeout_s" "$qemu" "${qargs[@]}" </dev/null 2>&1 &
	echo $! > "$work/qemu.pid"
	wait $! || rc=$?
	: 2>/dev/null > "$work/qemu.pid" || true
	echo "$qemu_sentinel$rc@@"
)
t_end=$(now)

problems=()
case ${qemu_rc:-unknown} in
0) ;;
124|137) problems+=("QEMU timed out after ${timeout_s}s") ;;
*) problems+=("QEMU exited with status ${qemu_rc:-unknown}") ;;
esac
[ "$state" != boot ] || problems+=("no start marker: the guest never reached its init")
[ "$state" != run ] || problems+=("no end marker: the guest died or hung while testing")
[ -z "$rc_guest" ] || [ "$rc_guest" = 0 ] ||
	problems+=("the test command exited with status $rc_guest")
[ "$n_notok" -eq 0 ] || problems+=("$n_notok 'not ok' line(s)")
if [ "${VFIO_CPR_NO_SKIP:-0}" = 1 ] && [ "$n_skip" -gt 0 ]; then
	problems+=("$n_skip SKIP result(s) with VFIO_CPR_NO_SKIP=1")
fi

boot_s=-
[ -z "$t_begin" ] || boot_s=$(elapsed "$t_built" "$t_begin")
echo "# vm: top-level results: $n_ok_top ok, $n_notok_top not ok; SKIP lines: $n_skip${skip_ok:+ (and $n_skip_ok naming '$skip_ok')}"
echo "# vm: wall time $(elapsed "$t_start" "$t_end")s (initramfs $(elapsed "$t_start" "$t_built")s, boot to init ${boot_s}s, total QEMU $(elapsed "$t_built" "$t_end")s)"
if [ ${#problems[@]} -gt 0 ]; then
	for p in "${problems[@]}"; do
		echo "# vm: FAIL: $p" >&2
	done
	if [ -z "$keep_log" ]; then
		mkdir -p "$vmdir/logs"
		keep=$(mktemp "$vmdir/logs/console-$(date +%Y%m%d-%H%M%S).XXXXXX")
		cp "$log" "$keep"
		log=$keep
	fi
	echo "# vm: console log: $log; its last 60 lines:" >&2
	tail -n 60 "$log" >&2
	exit 1
fi
exit 0
