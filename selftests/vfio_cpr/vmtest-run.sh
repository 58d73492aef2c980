#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Usage: vmtest-run.sh --kernel FILE --modules DIR|none
#            (--kselftest-dir DIR | --initrd FILE) [options]
#
# The vfio_cpr kselftest target's VM runner (vmtest.sh uses it; so do the
# project's scripts, through scripts/vm/run.sh, which adds its defaults):
# boot a QEMU guest (q35, intel-iommu with interrupt remapping, devices edu,
# e1000e and nvme; TCG with -cpu max, or KVM with -cpu host) on the kernel
# given, with a busybox initramfs (vmtest-initramfs.sh) holding the
# installed kselftests of DIR and the kernel's modules, bind the devices to
# vfio-pci, create an mtty instance, run `run_kselftest.sh -c vfio_cpr` in
# the guest (vmtest-init.sh) and stream its KTAP output to stdout.
#
#   --kernel FILE         the bzImage, or a PVH-capable vmlinux, to boot
#   --modules DIR         its modules: a root holding lib/modules/RELEASE (as
#                         made by INSTALL_MOD_PATH=DIR) or that folder itself;
#                         "none": no module goes in (all must be built in)
#   --kselftest-dir DIR   installed kselftests (make -C tools/testing/selftests
#                         TARGETS=vfio_cpr install INSTALL_PATH=DIR)
#   --kver RELEASE        the modules' release (when DIR holds several)
#   --mtty FILE, --cpr-mdev FILE   mtty.ko and vfio_cpr_mdev.ko to use when
#                         the modules have none of their own (repeatable:
#                         the first built for RELEASE is taken)
#   --framework DIR       a tools/testing/selftests to take run_kselftest.sh
#                         from when DIR lacks it (a standalone install)
#   --gen-init-cpio FILE  pack with the kernel's usr/gen_init_cpio when the
#                         host has no cpio
#   --device SPEC         extra `-device SPEC` for QEMU (repeatable), e.g.
#                         virtio-net-pci,vectors=33 (give it a --bind too)
#   --bind VVVV:DDDD      extra PCI id to bind to vfio-pci (repeatable); the
#                         defaults are 1234:11e8 (edu), 8086:10d3 (e1000e)
#                         and 1b36:0010 (nvme)
#   --append ARGS         extra kernel command-line arguments (vmtest-init.sh
#                         reads vfio_cpr.bind=, .mdev_type=, .nofile=)
#   --cmd CMD             test command instead of ./run_kselftest.sh -c
#                         vfio_cpr (run with sh -c in the guest's /kselftest;
#                         no double quotes)
#   --initrd FILE         boot this initramfs (vmtest-initramfs.sh's) instead
#                         of building one; --kselftest-dir is then not needed
#   --initrd-extra FILE   a further gzip'd cpio archive appended to the
#                         initramfs (repeatable): its files replace those of
#                         the same path, e.g. a kernel mutant's modules in
#                         /lib/modules/vfio_cpr/
#   --timeout SECONDS     stop the guest after this long (default 480),
#                         diagnosing it first as a hang (below)
#   --silence SECONDS     a hang: the tests' console printed nothing for
#                         this long (default 200, or VFIO_CPR_SILENCE: above
#                         the longest harness timeout of a test case, 180 s,
#                         so that the harness reports a hung case itself)
#   --keep-log FILE       keep the whole console log there (default: kept
#                         only on failure, in --log-dir, path shown)
#   --smp N               guest CPUs (default 1)
#   --tcg-thread MODE     single (default) or multi: how QEMU runs the vCPUs
#                         (-accel tcg,thread=MODE).  multi runs each vCPU on
#                         a host thread of its own, but QEMU 7.2 then keeps
#                         running stale code after the guest kernel patches
#                         itself (a static key flipped by KVM_CREATE_VM: an
#                         int3 that is gone from memory traps forever, and
#                         the guest hangs or oopses); single runs all vCPUs
#                         in turn on one host thread and has not hung
#   --mem MB              guest memory (default 1024)
#   --accel MODE          tcg (default), kvm (-cpu host: needs /dev/kvm, and
#                         the host's nested virtualisation for the guest's
#                         KVM) or auto (kvm where /dev/kvm is usable)
#   --lock FILE           one guest at a time on this machine: wait for the
#                         flock on FILE (default $VFIO_CPR_VM_LOCK, else
#                         ${TMPDIR:-/tmp}/vfio_cpr-vm.lock)
#   --work-dir DIR        where the run's scratch folder goes (default
#                         ${TMPDIR:-/tmp})
#   --log-dir DIR         where a failed run's console log is kept (default:
#                         the --work-dir)
#
# Exits non-zero on any `not ok` line, a QEMU timeout or crash, a missing
# end marker, a non-zero status of the test command, or - when
# VFIO_CPR_NO_SKIP=1 - any SKIP result but those whose line contains one
# of the '|'-separated texts of VFIO_CPR_SKIP_OK (when set: what the
# device or the kernel is known to lack, e.g. "not applicable: " or
# "vfio cdev/iommufd unavailable"; such skips are counted and shown).  On
# failure the last 60 lines of the tests' console and the last 30 of the
# guest kernel's log go to stderr.
#
# Consoles: the tests print on the guest's ttyS0 (this script's stdout),
# the guest kernel logs on ttyS1 (loglevel 7, never interleaved with KTAP);
# the kept console log holds both, the kernel's after the tests'.
#
# Hangs: the kernel reports soft lockups (with every CPU's backtrace),
# tasks blocked for 30 s and RCU stalls on ttyS1, and takes sysrq keys.
# When the tests' console stays silent for --silence seconds, or --timeout
# is reached, this script presses alt-sysrq-w, -l and -t (blocked tasks,
# every CPU's backtrace, all tasks) through QEMU's monitor (a unix socket),
# reads the vCPUs' state (info cpus, info registers -a; each CPU's local
# APIC, code at RIP, stack top and RIP 1 s and 2 s later; info pic) and
# the interrupts and exceptions they take in 1 s (TCG's -d int), stops
# QEMU and fails within a minute, naming the program, device and test
# case (the last "#  RUN" line) that was running and what the guest's
# kernel and vCPUs were doing; the dumps go to stderr and to the console
# log.
#
# Environment: VFIO_CPR_QEMU (QEMU binary), VFIO_CPR_NO_SKIP,
# VFIO_CPR_SKIP_OK, VFIO_CPR_SILENCE, VFIO_CPR_VM_LOCK.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

usage() { sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit "${1:-0}"; }
die() { echo "vmtest-run: error: $*" >&2; exit 2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

t_start=$(now)
mon_dir='' ksft='' kernel='' modules='' timeout_s=480 keep_log='' smp=1 mem=1024 append='' cmd=''
silence_s=${VFIO_CPR_SILENCE:-200} tcg_thread=single
initrd_in='' kver='' framework='' gen_cpio='' accel=tcg
lock=${VFIO_CPR_VM_LOCK:-${TMPDIR:-/tmp}/vfio_cpr-vm.lock}
workdir=${TMPDIR:-/tmp} logdir=''
devices=() binds=(1234:11e8 8086:10d3 1b36:0010) extras=() pack_extra=()
while [ $# -gt 0 ]; do
	case $1 in -h|--help) ;; *) [ $# -ge 2 ] || die "$1 needs a value" ;; esac
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
	--silence) silence_s=$2; shift 2 ;;
	--keep-log) keep_log=$2; shift 2 ;;
	--smp) smp=$2; shift 2 ;;
	--tcg-thread) tcg_thread=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--kver) kver=$2; shift 2 ;;
	--mtty|--cpr-mdev) pack_extra+=("$1" "$2"); shift 2 ;;
	--framework) framework=$2; shift 2 ;;
	--gen-init-cpio) gen_cpio=$2; shift 2 ;;
	--accel) accel=$2; shift 2 ;;
	--lock) lock=$2; shift 2 ;;
	--work-dir) workdir=$2; shift 2 ;;
	--log-dir) logdir=$2; shift 2 ;;
	-h|--help) usage 0 ;;
	*) echo "vmtest-run: unknown argument '$1'" >&2; usage 2 >&2 ;;
	esac
done
[ -n "$kernel" ] || die "--kernel FILE is required"
[ -f "$kernel" ] || die "no such kernel: $kernel"
if [ -n "$initrd_in" ]; then
	[ -f "$initrd_in" ] || die "no such initramfs: $initrd_in"
else
	[ -n "$ksft" ] || die "--kselftest-dir (or --initrd) is required"
	[ -d "$ksft" ] || die "no such directory: $ksft"
	[ -n "$modules" ] || die "--modules DIR (or none) is required"
fi
for x in "${extras[@]}"; do
	[ -f "$x" ] || die "no such --initrd-extra archive: $x"
done
case $cmd in *'"'*) die "--cmd must not contain double quotes" ;; esac
for n in "$timeout_s" "$silence_s" "$smp" "$mem"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "--timeout, --silence, --smp and --mem take positive integers, not '$n'"
done
case $tcg_thread in
single|multi) ;;
*) die "--tcg-thread takes single or multi, not '$tcg_thread'" ;;
esac
qemu=${VFIO_CPR_QEMU:-qemu-system-x86_64}
command -v "$qemu" >/dev/null ||
	die "$qemu not found: install it (Debian/Ubuntu package qemu-system-x86)"
for c in timeout:coreutils flock:util-linux perl:perl-base; do
	command -v "${c%%:*}" >/dev/null ||
		die "${c%%:*} not found: install it (Debian/Ubuntu package ${c#*:})"
done
case $accel in
tcg|kvm) ;;
auto) accel=tcg; [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ] || accel=kvm ;;
*) die "--accel takes tcg, kvm or auto, not '$accel'" ;;
esac
if [ "$accel" = kvm ] && { [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; }; then
	die "--accel kvm: /dev/kvm is not usable here (use tcg)"
fi
[ -d "$workdir" ] || die "no such directory: $workdir (--work-dir)"
logdir=${logdir:-$workdir}
for id in "${binds[@]}"; do
	[[ $id =~ ^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$ ]] || die "bad --bind id '$id' (want VVVV:DDDD)"
done
# A --bind of a default id (1b36:0010 for a second nvme) would list each
# such device twice in VFIO_CPR_DEVICES, and every test would run twice.
mapfile -t binds < <(printf '%s\n' "${binds[@]}" | tr 'A-F' 'a-f' | awk '!seen[$0]++')

# One guest at a time on this machine: two TCG guests on its cores make
# each other's timings and timeouts lie.
mkdir -p "$(dirname "$lock")"
exec 7>>"$lock"
if ! flock -n 7; then
	echo "vmtest-run: waiting for another VM run on this machine to finish ($lock)" >&2
	flock 7
	echo "vmtest-run: waited $(elapsed "$t_start" "$(now)")s for it" >&2
	t_start=$(now)
fi

work=$(mktemp -d "$workdir/vmtest-run.XXXXXX")
log=${keep_log:-$work/console.log}
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	# Stop the QEMU this run started (through its `timeout` wrapper,
	# which passes the signal on) if we are interrupted.
	if [ -s "$work/qemu.pid" ]; then
		kill "$(cat "$work/qemu.pid")" 2>/dev/null || true
	fi
	rm -rf "$work" ${mon_dir:+"$mon_dir"}
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

initrd=$work/initramfs.cpio.gz
if [ -n "$initrd_in" ]; then
	cp "$initrd_in" "$initrd"
else
	mkargs=(--kselftest-dir "$ksft" -o "$initrd" --modroot "$modules"
		"${pack_extra[@]}")
	[ -z "$kver" ] || mkargs+=(--kver "$kver")
	[ -z "$framework" ] || mkargs+=(--framework "$framework")
	[ -z "$gen_cpio" ] || mkargs+=(--gen-init-cpio "$gen_cpio")
	"$here/vmtest-initramfs.sh" "${mkargs[@]}" 2>"$work/initramfs.log" || {
		cat "$work/initramfs.log" >&2
		die "vmtest-initramfs.sh failed"
	}
	grep -v '^vmtest-initramfs: /' "$work/initramfs.log" >&2 || true
fi
# The kernel unpacks concatenated compressed cpio archives in order.
for x in "${extras[@]}"; do
	cat "$x" >> "$initrd"
done
t_built=$(now)

bindarg=$(IFS=,; echo "${binds[*]}" | tr 'A-F' 'a-f')
# The kernel logs on ttyS1, the tests print on ttyS0 (vmtest-init.sh reads
# vfio_cpr.tty=): KTAP is never cut by a kernel line, and the kernel's log
# is whole.  What a hang needs: soft lockups with every CPU's backtrace,
# tasks blocked for 30 s, and the sysrq keys this script presses.
kargs="panic=-1 console=ttyS1 vfio_cpr.tty=ttyS0 loglevel=7 intel_iommu=on"
kargs="$kargs softlockup_all_cpu_backtrace=1 sysctl.kernel.hung_task_timeout_secs=30"
kargs="$kargs sysrq_always_enabled vfio_cpr.bind=$bindarg"
[ -z "$cmd" ] || kargs="$kargs vfio_cpr.cmd=\"$cmd\""
kargs="$kargs$append"

# shellcheck disable=SC2054 # commas belong to QEMU's option syntax
if [ "$accel" = kvm ]; then
	# Interrupt remapping under KVM needs the split irqchip.
	qargs=(-machine q35,kernel-irqchip=split -accel kvm -cpu host)
else
	qargs=(-machine q35 -accel "tcg,thread=$tcg_thread" -cpu max)
fi
# shellcheck disable=SC2054
qargs+=(-smp "$smp" -m "$mem"
	-device intel-iommu,intremap=on
	-device edu
	-device e1000e,netdev=n0 -netdev user,id=n0,restrict=on
	-device nvme,serial=vfio-cpr-nvme)
for d in "${devices[@]}"; do
	qargs+=(-device "$d")
done
klog=$work/kernel.log mon_out=$work/monitor.txt
: > "$klog"
: > "$mon_out"
# A unix socket's path has at most 107 bytes.
mon_sock=$work/monitor.sock
if [ ${#mon_sock} -gt 100 ]; then
	mon_dir=$(mktemp -d /tmp/vfio-cpr-mon.XXXXXX)
	mon_sock=$mon_dir/monitor.sock
fi
# QEMU's option syntax doubles commas in a value.
qargs+=(-kernel "$kernel" -initrd "$initrd" -append "$kargs"
	-display none -no-reboot -serial stdio -serial "file:${klog//,/,,}"
	-monitor "unix:${mon_sock//,/,,},server=on,wait=off")

begin_re='<<<VFIO_CPR_VM_BEGIN>>>'
end_re='<<<VFIO_CPR_VM_END rc=([0-9]+)'
qemu_sentinel='@@vmtest-run: qemu exit status '
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
# --- Hangs: where the tests were, and what the guest was doing.
cur_prog='' cur_sub='' cur_case='' case_done='' last_line=''
prog_re='^# selftests: [^ ]+: ([^ ]+)$'
sub_re='^[#[:space:]]*# Subtest: (.+)$'
run_re='^#[#[:space:]]*RUN[[:space:]]+([^[:space:]]+)'
result_re='^[#[:space:]]*(not )?ok [0-9]+ ([^[:space:]]+)'
# Where the guest is: the program, device and test case of the last
# "#  RUN" line of the tests' console.
where() {
	local s
	case $state in
	boot) echo "before the guest's init printed its start marker"; return ;;
	ended) echo "after the test command ended (powering off)"; return ;;
	esac
	s="in ${cur_prog:-the test command}"
	[ -z "$cur_sub" ] || s="$s [$cur_sub]"
	if [ -z "$cur_case" ]; then
		s="$s, before its first test case"
	elif [ -n "$case_done" ]; then
		s="$s, after test case $cur_case ended (teardown or between cases)"
	else
		s="$s, test case $cur_case"
	fi
	echo "$s"
}
# HMP commands to QEMU's monitor socket; prints what each answers.
# shellcheck disable=SC2016 # perl's variables
mon_pl='use strict; use warnings; use IO::Socket::UNIX; use IO::Select;
my ($path, @cmds) = @ARGV;
my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $path)
	or die "connecting to $path: $!\n";
my $sel = IO::Select->new($s);
sub answer {
	my ($buf, $end) = ("", time + 30);
	while ($buf !~ /\(qemu\) \z/ && time < $end && $sel->can_read($end - time)) {
		sysread($s, my $c, 65536) or last;
		$buf .= $c;
	}
	$buf =~ s/\e\[[0-9;?]*[A-Za-z]//g;
	$buf =~ s/\r//g;
	$buf =~ s/\(qemu\) \z//;
	return $buf;
}
answer();
for my $c (@cmds) {
	print $s "$c\n";
	my $a = answer();
	$a =~ s/\A[^\n]*\n//;
	print "(qemu) $c\n$a";
}'
monitor() {
	perl -e "$mon_pl" "$mon_sock" "$@" 2>&1 ||
		echo "(QEMU's monitor did not answer: $*)"
}
# Wait until the kernel's log stops growing for 2 s, at most $1 s.
klog_settle() {
	local end=$((SECONDS + $1)) size=-1 quiet=0 s
	while [ "$SECONDS" -lt "$end" ] && [ "$quiet" -lt 2 ]; do
		sleep 1
		s=$(stat -c %s "$klog")
		if [ "$s" = "$size" ]; then
			quiet=$((quiet + 1))
		else
			quiet=0 size=$s
		fi
	done
}
# Ask the guest's kernel (sysrq keys) and QEMU (vCPUs) what the guest is
# doing, then stop QEMU.
diagnose() { # WHAT
	local k i cmds=("info cpus" "info registers -a")
	hang=$1 hang_where=$(where) hang_last=$last_line
	echo "# vm: $hang, $hang_where: asking the guest (sysrq) and QEMU (vCPUs) what it is doing" >&2
	for k in w l t; do
		monitor "sendkey alt-sysrq-$k" > /dev/null
		klog_settle 20
	done
	# Each vCPU: its local APIC, the code at its RIP, the top of its
	# stack (an exception's frame), and where its RIP is 1 s and 2 s on.
	for ((i = 0; i < smp; i++)); do
		cmds+=("cpu $i" "info lapic" "x/4i \$pc" "x/6gx \$esp")
	done
	cmds+=("info pic")
	monitor "${cmds[@]}" >> "$mon_out"
	for k in 1 2; do
		sleep 1
		cmds=()
		for ((i = 0; i < smp; i++)); do
			cmds+=("cpu $i" "print \$pc")
		done
		monitor "${cmds[@]}" >> "$mon_out"
	done
	# The interrupts and exceptions the vCPUs take in 1 s (TCG's -d int):
	# a storm of one exception, or no timer interrupt, shows here.
	monitor "logfile $work/events.log" "log int" > /dev/null
	sleep 1
	monitor "log none" > /dev/null
	events_summary >> "$mon_out"
	monitor quit > /dev/null
	t_quit=$SECONDS
}
# The vCPUs' interrupts and exceptions of events.log, most frequent first,
# and the code at the top one's address (for an int3, the byte before it).
events_summary() {
	local top ip v
	echo "(vmtest-run) interrupts and exceptions in 1 s (vector, error code, software, CPL, CS:RIP):"
	[ -s "$work/events.log" ] || { echo "none"; return; }
	grep -o ' v=[0-9a-f]* e=[0-9a-f]* i=[01] cpl=[0-3] IP=[0-9a-f]*:[0-9a-f]*' "$work/events.log" |
		sort | uniq -c | sort -rn | head -n 8 > "$work/events.top" || true
	cat "$work/events.top"
	top=$(head -n 1 "$work/events.top")
	[[ $top =~ v=([0-9a-f]+).*IP=[0-9a-f]+:([0-9a-f]+) ]] || return 0
	v=${BASH_REMATCH[1]} ip=0x${BASH_REMATCH[2]}
	[ "$v" != 03 ] || ip="$ip - 1"
	monitor "x/3i $ip"
}
# One line: what the guest's kernel reported and what its vCPUs were at.
guest_state() {
	tr -d '\r' < "$klog" | awk '
	function add(list, item) { return list (list == "" ? "" : ", ") item }
	{ sub(/^\[ *[0-9.]+\] /, "") }
	/soft lockup - CPU#/ {
		nsl++
		if (match($0, /CPU#[0-9]+ stuck for [0-9]+s! \[[^]]*\]/)) {
			t = substr($0, RSTART, RLENGTH)
			sub(/ stuck for [0-9]+s!/, "", t)
			if (!(t in sl)) { sl[t]; sls = add(sls, t) }
		}
	}
	/INFO: task .* blocked for more than/ {
		nht++
		if (!($3 in ht)) { ht[$3]; hts = add(hts, $3) }
	}
	/rcu: INFO: .*(detected stalls|self-detected stall)/ { nrcu++ }
	/kthread starved for/ { nstarved++ }
	oops == "" && /Kernel panic|Oops|general protection fault|BUG: (kernel|unable|scheduling|sleeping)|WARNING: CPU: / { oops = $0 }
	/sysrq: Show Blocked State/ { flush(); sec = "w"; ans = add(ans, "w"); next }
	/sysrq: Show backtrace of all active CPUs/ { flush(); sec = "l"; ans = add(ans, "l"); next }
	/sysrq: Show State/ { flush(); sec = "t"; ans = add(ans, "t"); next }
	/sysrq: / { flush(); sec = "" }
	sec == "w" && match($0, /task:[^ ]+ +state:[A-Z]/) {
		t = substr($0, RSTART + 5, RLENGTH - 5); sub(/ +state:/, " ", t)
		nblk++; if (nblk <= 8) blk = add(blk, t)
	}
	# sysrq-l: "NMI backtrace for cpu N" and its registers (RIP first),
	# or "... skipped: idling at FN"; the CPU that took the key dumps
	# its own stack (Call Trace first), then the RIP it interrupted.
	function flush() {
		if (bcpu != "") cpus = add(cpus, "cpu " bcpu (comm != "" ? " (" comm ")" : "") (key ? " took the key" : "") (at != "" ? " at " at : ""))
		bcpu = ""; comm = ""; key = 0; at = ""
	}
	sec == "l" && /NMI backtrace for cpu [0-9]+ skipped: idling at / {
		flush(); cpus = add(cpus, "cpu " $5 " idling at " $NF); next
	}
	sec == "l" && /NMI backtrace for cpu [0-9]+/ { flush(); bcpu = $5; next }
	sec == "l" && bcpu != "" && /^CPU: [0-9]+ PID: [0-9]+ Comm: / { comm = $6 }
	sec == "l" && bcpu != "" && /^Call Trace:/ { key = at == "" }
	sec == "l" && bcpu != "" && at == "" && /^RIP: [0-9a-f]+:/ { at = $2; sub(/^[0-9a-f]+:/, "", at) }
	END {
		flush()
		s = "guest kernel: "
		s = s (nsl ? nsl " soft lockup report(s) (" sls ")" : "no soft lockup")
		s = s ", " (nht ? nht " hung-task report(s) (" hts ")" : "no hung task")
		s = s ", " (nrcu ? nrcu " RCU stall report(s)" : "no RCU stall")
		if (nstarved) s = s " (" nstarved " of a starved RCU kthread)"
		if (oops != "") s = s ", first error: \"" oops "\""
		if (ans == "") s = s "; sysrq not answered (no keyboard interrupt taken?)"
		else {
			s = s "; sysrq " ans " answered: " (nblk ? nblk " blocked task(s) (" blk (nblk > 8 ? ", ..." : "") ")" : "no blocked task")
			if (cpus != "") s = s "; CPUs: " cpus
		}
		print s
	}'
	awk '
	function add(list, item) { return list (list == "" ? "" : ", ") item }
	/^CPU#[0-9]+$/ { cpu = $1 }
	/^[RE]IP=/ && cpu != "" {
		rip[cpu] = substr($1, 5); order = add(order, cpu)
		hlt[cpu] = ($0 ~ /HLT=1/) ? "halted" : "running"
		f = index("0123456789abcdef", tolower(substr($2, 10, 1))) - 1
		if ($2 ~ /^[RE]FL=/) hlt[cpu] = hlt[cpu] (int(f / 2) % 2 ? " with IF=1" : " with IF=0")
	}
	/^\(vmtest-run\) interrupts and exceptions/ { ev = 1; next }
	ev == 1 && /^ *[0-9]+ +v=/ && nev++ < 3 { n = $1; $1 = ""; evs = evs (evs == "" ? "" : ", ") n " x" $0 }
	/^\(qemu\) x\/3i / { ev = 2; next }
	ev == 2 && /^0x[0-9a-f]+: / { $1 = $1; evc = evc (evc == "" ? "" : "; ") $0 }
	/^\(qemu\) cpu [0-9]+$/ { mcpu = "CPU#" $3 }
	/^\(qemu\) / { what = $2; next }
	what == "x/4i" && mcpu != "" && !(mcpu in insn) && /^0x[0-9a-f]+: / {
		$1 = ""; sub(/^ +/, ""); insn[mcpu] = " (" $0 ")"
	}
	what == "print" && /^0x[0-9a-f]+$/ { pcs[mcpu] = pcs[mcpu] ", " $1; what = "" }
	/^dumping local APIC state for CPU [0-9]+/ { lcpu = "CPU#" $NF }
	/^(ISR|IRR)[ \t]/ && lcpu != "" { $1 = $1; ap[lcpu] = ap[lcpu] ", " $0 }
	END {
		n = split(order, cs, ", ")
		for (i = 1; i <= n; i++) {
			c = cs[i]
			t = c " " hlt[c] " at RIP " rip[c] insn[c]
			if (pcs[c] != "") t = t " then" substr(pcs[c], 2)
			s = s (s == "" ? "" : "; ") t ap[c]
		}
		print "vCPUs (QEMU): " (s == "" ? "unknown (the monitor did not answer)" : s)
		if (evs != "") print "their interrupts and exceptions in 1 s, most frequent: " evs (evc != "" ? "; the code at the first: " evc : "")
		else if (ev) print "they took no interrupt or exception in 1 s"
	}' "$mon_out"
}

: > "$log"
echo "# vm: $qemu ${qargs[*]}" >> "$log"
# One line of the tests' console.
handle_line() {
	if [[ $line == "$qemu_sentinel"* ]]; then
		qemu_rc=${line#"$qemu_sentinel"}
		qemu_rc=${qemu_rc%@@}
		return
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
			return
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
		last_line=$line
		if [[ $line =~ $prog_re ]]; then
			cur_prog=${BASH_REMATCH[1]} cur_sub='' cur_case='' case_done=''
		elif [[ $line =~ $sub_re ]]; then
			cur_sub=${BASH_REMATCH[1]} cur_case='' case_done=''
		elif [[ $line =~ $run_re ]]; then
			cur_case=${BASH_REMATCH[1]} case_done=''
		elif [[ $line =~ $result_re ]] && [ "${BASH_REMATCH[2]}" = "$cur_case" ]; then
			case_done=1
		fi
		;;
	esac
}
hang='' t_quit='' partial='' eof='' t_qemu=$SECONDS t_out=$SECONDS
# While QEMU runs: a guest silent for too long, or overdue, is diagnosed
# once and stopped; a QEMU that does not stop when asked is killed.
watch_guest() {
	if [ -z "$hang" ]; then
		if [ $((SECONDS - t_out)) -ge "$silence_s" ]; then
			diagnose "hang: the tests' console printed nothing for ${silence_s}s (--silence)"
		elif [ $((SECONDS - t_qemu)) -ge "$timeout_s" ]; then
			diagnose "timeout: the guest did not finish within ${timeout_s}s (--timeout)"
		fi
	elif [ -n "$t_quit" ] && [ $((SECONDS - t_quit)) -ge 20 ] && [ -s "$work/qemu.pid" ]; then
		kill "$(cat "$work/qemu.pid")" 2>/dev/null || true
		t_quit=''
	fi
}
while :; do
	chunk=''
	if IFS= read -r -t 2 chunk; then
		line=$partial$chunk partial=''
	elif [ $? -gt 128 ]; then
		# No whole line for 2 s: keep what came of one.
		if [ -n "$chunk" ]; then
			partial=$partial$chunk t_out=$SECONDS
		fi
		watch_guest
		continue
	elif [ -n "$partial$chunk" ]; then
		line=$partial$chunk partial='' eof=1
	else
		break
	fi
	t_out=$SECONDS
	line=${line//$'\r'/}
	handle_line
	[ -z "$eof" ] || break
	watch_guest
done < <(
	rc=0
	# The loop above stops QEMU itself; this is the backstop.
	timeout -k 10 "$((timeout_s + 120))" "$qemu" "${qargs[@]}" </dev/null 2>&1 &
	echo $! > "$work/qemu.pid"
	wait $! || rc=$?
	: 2>/dev/null > "$work/qemu.pid" || true
	echo "$qemu_sentinel$rc@@"
)
t_end=$(now)
{
	echo "# vm: ---- the guest kernel's log (ttyS1) ----"
	tr -d '\r' < "$klog"
	if [ -s "$mon_out" ]; then
		echo "# vm: ---- QEMU's monitor, asked at the hang ----"
		cat "$mon_out"
	fi
} >> "$log"

problems=()
[ -z "$hang" ] ||
	problems+=("$hang, $hang_where; its last line: '${hang_last:-none}'; $(guest_state | paste -sd '|' - | sed 's/|/; /g')")
case ${qemu_rc:-unknown} in
0) ;;
124|137) problems+=("QEMU did not stop when asked: killed after $((timeout_s + 120))s") ;;
*) [ -n "$hang" ] || problems+=("QEMU exited with status ${qemu_rc:-unknown}") ;;
esac
if [ -z "$hang" ]; then
	[ "$state" != boot ] || problems+=("no start marker: the guest never reached its init")
	[ "$state" != run ] || problems+=("no end marker: the guest died while testing, $(where)")
fi
[ -z "$rc_guest" ] || [ "$rc_guest" = 0 ] ||
	problems+=("the test command exited with status $rc_guest")
[ "$n_notok" -eq 0 ] || problems+=("$n_notok 'not ok' line(s)")
if [ "${VFIO_CPR_NO_SKIP:-0}" = 1 ] && [ "$n_skip" -gt 0 ]; then
	problems+=("$n_skip SKIP result(s) with VFIO_CPR_NO_SKIP=1")
fi

# The lines of each failed test case, from its RUN line to its 'not ok'
# (the first 8 cases, 40 lines each at most): printed last, where a CI
# log's tail shows them.
failed_cases() {
	[ "$n_notok" -gt 0 ] || return 0
	echo "# vm: the failed test cases ($n_notok 'not ok' line(s); the first 8, from RUN to 'not ok'):"
	sed '/^# vm: ---- the guest kernel/,$d' "$log" | awk '
		/#  RUN / { n = 0; run = 1 }
		{ buf[n++ % 40] = $0 }
		/^[# ]*not ok [0-9]+ / && run {
			if (++cases > 8)
				exit
			for (i = n > 40 ? n - 40 : 0; i < n; i++)
				print buf[i % 40]
			run = 0
			next
		}
		/^[# ]*not ok [0-9]+ / && !run { print }'
}

boot_s=-
[ -z "$t_begin" ] || boot_s=$(elapsed "$t_built" "$t_begin")
# shellcheck disable=SC2016 # the quotes are text, inside double quotes
echo "# vm: top-level results: $n_ok_top ok, $n_notok_top not ok; SKIP lines: $n_skip${skip_ok:+ (and $n_skip_ok naming '$skip_ok')}"
echo "# vm: wall time $(elapsed "$t_start" "$t_end")s (initramfs $(elapsed "$t_start" "$t_built")s, boot to init ${boot_s}s, total QEMU $(elapsed "$t_built" "$t_end")s)"
if [ ${#problems[@]} -gt 0 ]; then
	for p in "${problems[@]}"; do
		echo "# vm: FAIL: $p" >&2
	done
	if [ -z "$keep_log" ]; then
		mkdir -p "$logdir"
		keep=$(mktemp "$logdir/console-$(date +%Y%m%d-%H%M%S).XXXXXX")
		cp "$log" "$keep"
		log=$keep
	fi
	echo "# vm: console log (the tests', then the guest kernel's): $log" >&2
	echo "# vm: the tests' console, last 60 lines:" >&2
	sed '/^# vm: ---- the guest kernel/,$d' "$log" | tail -n 60 >&2
	if [ -n "$hang" ]; then
		echo "# vm: the guest kernel's first hang reports (80 lines at most):" >&2
		tr -d '\r' < "$klog" | awk '/soft lockup - CPU#|blocked for more than|detected stalls|self-detected stall|Kernel panic|Oops|BUG: / { on = 1 }
			on && n++ < 80' >&2
		echo "# vm: the guest kernel's answers to sysrq-w and sysrq-l (150 lines at most; sysrq-t in the console log):" >&2
		tr -d '\r' < "$klog" | awk '/sysrq: Show Blocked State|sysrq: Show backtrace of all active CPUs/ { on = 1 }
			/sysrq: Show State/ { on = 0 }
			on && n++ < 150' >&2
		echo "# vm: QEMU's monitor (FPU and vector registers in the console log):" >&2
		grep -Ev '^(FPR|XMM|YMM|ZMM|Opmask)[0-9]' "$mon_out" >&2 || true
	else
		echo "# vm: the guest kernel's log, last 30 lines:" >&2
		tr -d '\r' < "$klog" | tail -n 30 >&2
	fi
	failed_cases >&2
	exit 1
fi
exit 0
