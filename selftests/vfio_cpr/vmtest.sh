#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Usage: tools/testing/selftests/vfio_cpr/vmtest.sh [options] [-- RUNNER-OPTIONS]
#
# Run the vfio_cpr kselftests - the VFIO tier included - on this kernel
# tree's kernel, in a QEMU guest, with one command; KTAP on stdout, the exit
# status is the result (0: everything passed).
#
#   1. Kernel: built out of tree in BUILD_DIR (-d): `make x86_64_defconfig`
#      when BUILD_DIR has no .config yet; then, only if an option is
#      missing, the target's config and vmtest.config (what the guest needs
#      to boot, iommufd and the vfio cdev, mtty from samples/vfio-mdev)
#      merged in with scripts/kconfig/merge_config.sh and olddefconfig; it
#      fails naming every option that did not land; `make bzImage modules`
#      (make's own incrementality: an unchanged tree takes seconds), and
#      modules_install into the workspace.  Or a prebuilt kernel: -k, -m.
#   2. The target, with this tree's kselftest framework, against BUILD_DIR's
#      headers (make headers): make -C tools/testing/selftests O=BUILD_DIR
#      TARGETS=vfio_cpr install INSTALL_PATH=WORKSPACE/kselftest
#      (USERCFLAGS and LLVM from the environment apply).
#   3. The probe module mdev/ (vfio_cpr_mdev.ko), built against BUILD_DIR.
#   4. vmtest-run.sh: an initramfs (busybox, the kselftests, the modules;
#      vmtest-initramfs.sh), then QEMU (q35, intel-iommu with interrupt
#      remapping; KVM where /dev/kvm is usable, else TCG) with edu, e1000e,
#      nvme bound to vfio-pci and an mtty instance; run_kselftest.sh -c
#      vfio_cpr in the guest (vmtest-init.sh), its KTAP streamed to stdout.
#      A guest that stops printing is diagnosed (sysrq and vCPU dumps
#      through QEMU's monitor, naming the test case that was running) and
#      stopped: the run never hangs.
#
# Options:
#   -d BUILD_DIR  the kernel's object tree (default: .vfio_cpr_vmtest in
#                 the kernel tree); an existing one is reused as it is
#                 when it has every option
#   -k KERNEL     boot this prebuilt bzImage (or PVH vmlinux): no kernel
#                 build; BUILD_DIR then only gives the headers (and the
#                 probe module, when it holds the kernel's build)
#   -m MODDIR     the prebuilt kernel's modules: an INSTALL_MOD_PATH root
#                 or its lib/modules/RELEASE (default: none, all built in)
#   -c CONFIG     the prebuilt kernel's .config (default: BUILD_DIR/.config
#                 when BUILD_DIR holds KERNEL's build, else "config" or
#                 ".config" beside KERNEL); tells which skips are expected
#   -T TEST       run only this program of the target (repeatable), e.g.
#                 -T vfio_cpr_test
#   -s N          guest CPUs (default 1)
#   -t SECONDS    stop the guest after this long (default 480)
#   -w DIR        the workspace (default: a new folder in ${TMPDIR:-/tmp});
#                 its parts are removed after a passing run unless -K
#   -K            keep the workspace (modules, kselftests, console log)
#   -j N          make jobs (default: nproc)
#   -S            strict, as CI runs (also VFIO_CPR_NO_SKIP=1): a SKIP
#                 fails, unless the test says it does not apply to the
#                 device ("not applicable: ") or, on a kernel without
#                 CONFIG_IOMMUFD or CONFIG_VFIO_DEVICE_CDEV, it is a
#                 cdev_* variant ("vfio cdev/iommufd unavailable")
#   -h            this text
#   -- ...        options of vmtest-run.sh, e.g. --device SPEC --bind
#                 VVVV:DDDD, --append ARGS, --silence S, --keep-log FILE,
#                 --accel tcg, --mem MB (vmtest-run.sh -h lists them)
#
# -k is the kernel (as in -k bzImage), so keeping the workspace is -K.
#
# Needs: qemu-system-x86_64 (Debian/Ubuntu package qemu-system-x86),
# busybox (busybox-static), cpio (or the tree's usr/gen_init_cpio), kmod,
# rsync, and to build the kernel gcc, make, flex, bison, bc, libelf-dev,
# libssl-dev.  One guest at a time per machine: the runner waits for the
# flock on $VFIO_CPR_VM_LOCK (default ${TMPDIR:-/tmp}/vfio_cpr-vm.lock).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
ktree=$(cd "$here/../../../.." && pwd)

die() { echo "vmtest: error: $*" >&2; exit 2; }
say() { echo "vmtest: $*" >&2; }
usage() { sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit "${1:-0}"; }
now() { date +%s; }

bdir='' kernel='' moddir='' kconfig='' tests=() smp=1 timeout_s=480 ws=''
keep='' jobs=$(nproc) strict=${VFIO_CPR_NO_SKIP:-0}
while getopts 'd:k:m:c:T:s:t:w:Kj:Sh' opt; do
	case $opt in
	d) bdir=$OPTARG ;;
	k) kernel=$OPTARG ;;
	m) moddir=$OPTARG ;;
	c) kconfig=$OPTARG ;;
	T) tests+=("$OPTARG") ;;
	s) smp=$OPTARG ;;
	t) timeout_s=$OPTARG ;;
	w) ws=$OPTARG ;;
	K) keep=1 ;;
	j) jobs=$OPTARG ;;
	S) strict=1 ;;
	h) usage 0 ;;
	*) usage 2 >&2 ;;
	esac
done
shift $((OPTIND - 1))
runner_opts=("$@")

for n in "$smp" "$timeout_s" "$jobs"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "-s, -t and -j take positive integers, not '$n'"
done
[ -z "$moddir" ] || [ -n "$kernel" ] || die "-m needs -k (a built kernel's modules are installed by this script)"
[ -z "$kconfig" ] || [ -n "$kernel" ] || die "-c needs -k (a built kernel's config is BUILD_DIR/.config)"
if [ ! -f "$ktree/Makefile" ] || [ ! -f "$ktree/tools/testing/selftests/lib.mk" ] ||
		[ ! -x "$ktree/scripts/kconfig/merge_config.sh" ]; then
	die "$here is not inside a kernel tree (tools/testing/selftests/vfio_cpr): put it there with the vfio_cpr project's scripts/intree.sh /path/to/linux, then run /path/to/linux/tools/testing/selftests/vfio_cpr/vmtest.sh"
fi
for f in Makefile config vmtest.config vmtest-run.sh vmtest-initramfs.sh vmtest-init.sh mdev/Kbuild mdev/vfio_cpr_mdev.c; do
	[ -e "$here/$f" ] || die "$here/$f is missing: copy the whole target (scripts/intree.sh)"
done

# What the host needs, before anything long runs: name the package.
need() { # COMMAND PACKAGE
	command -v "$1" >/dev/null ||
		die "$1 not found: install it (Debian/Ubuntu package $2)"
}
need "${VFIO_CPR_QEMU:-qemu-system-x86_64}" qemu-system-x86
need busybox busybox-static
need make make
need rsync rsync
need flock util-linux
need modprobe kmod
need depmod kmod
if [ -z "$kernel" ]; then
	for c in gcc:gcc flex:flex bison:bison bc:bc perl:perl-base; do
		need "${c%%:*}" "${c#*:}"
	done
	[ -f /usr/include/libelf.h ] || [ -f /usr/include/gelf.h ] ||
		die "libelf's headers not found: install them (Debian/Ubuntu package libelf-dev)"
	[ -f /usr/include/openssl/opensslv.h ] ||
		die "OpenSSL's headers not found: install them (Debian/Ubuntu package libssl-dev)"
else
	[ -f "$kernel" ] || die "no such kernel: $kernel"
	kernel=$(cd "$(dirname "$kernel")" && pwd)/$(basename "$kernel")
	[ -z "$moddir" ] || [ -d "$moddir" ] || die "no such directory: $moddir"
	[ -z "$moddir" ] || moddir=$(cd "$moddir" && pwd)
fi

bdir=$(realpath -m "${bdir:-$ktree/.vfio_cpr_vmtest}")
# kbuild builds out of tree only from a tree not configured in place.
if [ "$bdir" != "$ktree" ] && { [ -f "$ktree/.config" ] || [ -d "$ktree/include/config" ]; }; then
	die "$ktree is configured in place (.config): kbuild cannot build it in $bdir; run 'make mrproper' there, or pass -d $ktree to use the in-place build (its .config then gets the options vmtest.sh needs merged in)"
fi
mkdir -p "$bdir" || die "cannot create $bdir"

made_ws=
if [ -z "$ws" ]; then
	ws=$(mktemp -d "${TMPDIR:-/tmp}/vfio_cpr-vmtest.XXXXXX")
	made_ws=1
else
	mkdir -p "$ws" || die "cannot create $ws"
	ws=$(cd "$ws" && pwd)
fi
log=$ws/build.log
: > "$log"
rc=1
# shellcheck disable=SC2317 # run by the EXIT trap
finish() {
	if [ -n "$keep" ] || [ "$rc" -ne 0 ]; then
		say "workspace kept: $ws"
	elif [ -n "$made_ws" ]; then
		rm -rf "$ws"
	else
		rm -rf "$ws/modroot" "$ws/kselftest" "$ws/cpr-mdev" "$ws/build.log" \
			"$ws/vmtest.ktap"
	fi
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A make step, its output in the log; the log's tail on failure.
logged() { # WHAT COMMAND...
	local what=$1
	shift
	echo "### $(date '+%F %T') $*" >> "$log"
	if ! "$@" >> "$log" 2>&1; then
		echo "vmtest: error: $what failed; the last 40 lines of $log:" >&2
		tail -n 40 "$log" >&2
		exit 1
	fi
}
kmake() { make -C "$ktree" O="$bdir" ARCH=x86_64 "$@"; }
# shellcheck disable=SC2317 # called through logged
in_dir() { (cd "$1" && shift && "$@"); }

# One build at a time in BUILD_DIR.
exec 9>>"$bdir/.vmtest.lock"
if ! flock -n 9; then
	say "waiting for another vmtest.sh building in $bdir"
	flock 9
fi

# --- 1. The kernel.
frags=("$here/config" "$here/vmtest.config")
# Prints "NAME HAVE WANT FRAGMENT" for each option of the fragments that
# .config lacks: =y wants y, =m wants m or y, "is not set" wants it off,
# any other value that value.
config_missing() { # CONFIG
	awk '
	FNR == 1 { frag = FILENAME; sub(/.*\//, "", frag) }
	FILENAME == ARGV[1] {
		if (match($0, /^CONFIG_[A-Za-z0-9_]+=/))
			have[substr($0, 1, RLENGTH - 1)] = substr($0, RLENGTH + 1)
		next
	}
	/^CONFIG_[A-Za-z0-9_]+=/ {
		n = index($0, "="); name = substr($0, 1, n - 1); want = substr($0, n + 1)
		h = (name in have) ? have[name] : "n"
		if (h == want || (want == "m" && h == "y")) next
		print name, h, want, frag; next
	}
	/^# CONFIG_[A-Za-z0-9_]+ is not set$/ {
		name = $2; h = (name in have) ? have[name] : "n"
		if (h != "y" && h != "m") next
		print name, h, "n", frag
	}' "$1" "${frags[@]}"
}
t0=$(now)
if [ -z "$kernel" ]; then
	if [ ! -f "$bdir/.config" ]; then
		say "configuring $bdir: x86_64_defconfig"
		logged "make x86_64_defconfig" kmake x86_64_defconfig
	fi
	if [ -n "$(config_missing "$bdir/.config")" ]; then
		say "merging $(basename "${frags[0]}") and $(basename "${frags[1]}") into $bdir/.config"
		logged "merge_config.sh" in_dir "$bdir" "$ktree/scripts/kconfig/merge_config.sh" -m -y -O "$bdir" \
			"$bdir/.config" "${frags[@]}"
		logged "make olddefconfig" kmake olddefconfig
	fi
	missing=$(config_missing "$bdir/.config")
	if [ -n "$missing" ]; then
		# An option this tree does not define cannot land: older
		# kernels lack some (the tests that need them skip, saying so).
		defined=$(grep -rhoE '^[[:space:]]*(menu)?config [A-Za-z0-9_]+' \
			--include='Kconfig*' "$ktree" | awk '{ print "CONFIG_" $2 }' | sort -u)
		bad=0
		while read -r name have want frag; do
			if ! grep -qx "$name" <<< "$defined"; then
				say "warning: $name ($frag wants $want) is not defined in this tree's Kconfig"
				continue
			fi
			echo "vmtest: error: $name is '$have' in $bdir/.config, $frag wants '$want'" >&2
			bad=1
		done <<< "$missing"
		[ "$bad" -eq 0 ] || die "$bdir/.config lacks the options above (a dependency of theirs is off?); see $log"
	fi
	say "building the kernel in $bdir with -j$jobs (log: $log)"
	logged "the kernel build" kmake -j"$jobs" bzImage modules
	kernel=$bdir/arch/x86/boot/bzImage
	kconfig=$bdir/.config
	krel=$(kmake -s --no-print-directory kernelrelease)
	rm -rf "$ws/modroot"
	logged "modules_install" kmake modules_install INSTALL_MOD_PATH="$ws/modroot" \
		INSTALL_MOD_STRIP=1
	rm -f "$ws/modroot/lib/modules/$krel/build" "$ws/modroot/lib/modules/$krel/source"
	moddir=$ws/modroot
	say "kernel $krel built and installed in $(($(now) - t0))s"
else
	if [ -z "$kconfig" ]; then
		if [ -f "$bdir/.config" ] && [ -f "$bdir/arch/x86/boot/bzImage" ] &&
				{ [ "$kernel" = "$bdir/arch/x86/boot/bzImage" ] || [ "$kernel" = "$bdir/vmlinux" ]; }; then
			kconfig=$bdir/.config
		else
			for c in "$(dirname "$kernel")/config" "$(dirname "$kernel")/.config"; do
				[ -f "$c" ] && kconfig=$c && break
			done
		fi
	fi
	krel=''
	say "booting the prebuilt $kernel${moddir:+ with the modules of $moddir}"
fi

# --- 2. The target, against BUILD_DIR's headers.
t1=$(now)
logged "make headers" kmake headers
rm -rf "$ws/kselftest"
logged "building and installing the target" make -C "$ktree/tools/testing/selftests" \
	O="$bdir" TARGETS=vfio_cpr install INSTALL_PATH="$ws/kselftest"
mapfile -t listed < <(sed -n 's/^vfio_cpr://p' "$ws/kselftest/kselftest-list.txt")
[ ${#listed[@]} -gt 0 ] || die "$ws/kselftest/kselftest-list.txt lists no vfio_cpr program"
for t in "${tests[@]}"; do
	printf '%s\n' "${listed[@]}" | grep -qx "$t" ||
		die "-T $t: no such program of the target (it has: ${listed[*]})"
done
[ ${#tests[@]} -eq 0 ] || listed=("${tests[@]}")
say "target built and installed in $(($(now) - t1))s: ${listed[*]}"

# --- 3. The probe module, against the kernel's build.
probe=()
if [ -f "$bdir/Module.symvers" ] && [ -f "$bdir/scripts/mod/modpost" ]; then
	t2=$(now)
	rm -rf "$ws/cpr-mdev"
	mkdir -p "$ws/cpr-mdev"
	cp "$here/mdev/Kbuild" "$here/mdev/vfio_cpr_mdev.c" "$ws/cpr-mdev/"
	logged "building the probe module (mdev/)" make -C "$bdir" M="$ws/cpr-mdev" modules
	probe=(--cpr-mdev "$ws/cpr-mdev/vfio_cpr_mdev.ko")
	say "probe module built in $(($(now) - t2))s"
else
	say "warning: $bdir holds no kernel build: no vfio_cpr_mdev.ko (the tests that need the probe skip, unless the modules have it)"
fi

# --- 4. Boot; the KTAP streams through.
skip_ok='not applicable: '
if [ -n "$kconfig" ] && [ -r "$kconfig" ]; then
	if ! grep -qE '^CONFIG_IOMMUFD=[ym]$' "$kconfig" ||
			! grep -qE '^CONFIG_VFIO_DEVICE_CDEV=y$' "$kconfig"; then
		skip_ok="$skip_ok|vfio cdev/iommufd unavailable"
		say "$kconfig: no CONFIG_IOMMUFD or CONFIG_VFIO_DEVICE_CDEV: the cdev_* variants skip"
	fi
else
	say "no kernel config known (-c): skips are judged as usual"
fi
cmd=''
if [ ${#tests[@]} -gt 0 ]; then
	cmd=./run_kselftest.sh
	for t in "${tests[@]}"; do
		cmd="$cmd -t vfio_cpr:$t"
	done
fi
run=(--kernel "$kernel" --modules "${moddir:-none}" --kselftest-dir "$ws/kselftest"
	--smp "$smp" --timeout "$timeout_s" --accel auto --work-dir "$ws"
	--log-dir "$ws" "${probe[@]}")
[ -z "$krel" ] || run+=(--kver "$krel")
[ ! -x "$bdir/usr/gen_init_cpio" ] || run+=(--gen-init-cpio "$bdir/usr/gen_init_cpio")
[ -z "$cmd" ] || run+=(--cmd "$cmd")
exec 9>&-
t3=$(now)
set +e
VFIO_CPR_NO_SKIP=$strict VFIO_CPR_SKIP_OK=$skip_ok \
	"$here/vmtest-run.sh" "${run[@]}" "${runner_opts[@]}" |
	tee "$ws/vmtest.ktap"
run_rc=${PIPESTATUS[0]}
set -e

# Every program asked for reported a result (run_kselftest.sh's own line).
problems=()
[ "$run_rc" -eq 0 ] || problems+=("vmtest-run.sh exited with status $run_rc")
for p in "${listed[@]}"; do
	grep -qE "^(not )?ok [0-9]+ selftests: vfio_cpr: $p( |$)" "$ws/vmtest.ktap" ||
		problems+=("$p reported no result")
done
n_ok=$(grep -cE '^ok [0-9]+ selftests: vfio_cpr: [^ ]+$' "$ws/vmtest.ktap" || true)
n_skip=$(grep -cE '^ok [0-9]+ selftests: vfio_cpr: [^ ]+ # SKIP' "$ws/vmtest.ktap" || true)
n_fail=$(grep -cE '^not ok [0-9]+ selftests: vfio_cpr: ' "$ws/vmtest.ktap" || true)
echo "# vmtest: programs: $n_ok passed, $n_fail failed, $n_skip skipped; guest run $(($(now) - t3))s, total $(($(now) - t0))s"
if [ ${#problems[@]} -gt 0 ]; then
	for p in "${problems[@]}"; do
		echo "vmtest: FAIL: $p" >&2
	done
	rc=1
else
	rc=0
fi
exit "$rc"
