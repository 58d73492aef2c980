#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Usage: scripts/run-vm-tier.sh [options of scripts/vm/run.sh]
#
# The VM tier: install the vfio_cpr kselftests the way a kernel developer
# does (scripts/intree.sh into .deps/linux, then
#	make -C tools/testing/selftests TARGETS=vfio_cpr \
#	     O=build/vm-ksft-obj install INSTALL_PATH=build/vm-ksft
# ), boot them in a QEMU TCG guest with scripts/vm/run.sh (edu and e1000e
# bound to vfio-pci behind an emulated intel-iommu, a fresh mtty mdev,
# nested KVM) and run `run_kselftest.sh -c vfio_cpr` there.  Every program
# the install lists in kselftest-list.txt runs; none is named here.
#
# Prints the guest's KTAP stream, the time each program took (host clock,
# from its "# selftests: vfio_cpr: NAME" header to its result line), then
#	vfio_cpr-vm: N passed, N failed, N skipped
# (test cases, counted like run-host-tier.sh does; a program that fails or
# skips without reporting a case counts once), then the blackout
# diagnostics ("# [DEVICE ...] generation N...: blackout ..." lines) of
# every test case.
#
# Options of this script:
#   --uapi DIR         build the kselftests against these uapi headers
#                      (KHDR_INCLUDES=-isystem DIR; the usr/include of
#                      `make headers_install`): needed for the cdev/iommufd
#                      variants, which the host's 6.1 headers lack
#   --kconfig FILE     the --kernel's .config (default: "config" beside it)
# Options passed to scripts/vm/run.sh (see its usage for all of them):
#   --kernel FILE      boot this bzImage/vmlinux instead of Debian's 6.1
#   --modules DIR      its modules (INSTALL_MOD_PATH root or lib/modules/REL)
#   --device SPEC      extra QEMU -device (repeatable); give it a --bind
#   --bind VVVV:DDDD   extra PCI id to bind to vfio-pci (repeatable)
#   --append ARGS      extra kernel arguments (e.g. vfio_cpr.nofile=1024:4096)
#   --keep-log FILE    keep the whole console log there
#   --timeout SECONDS  stop the guest after this long (default 480)
#   --silence SECONDS  a hang: the guest printed nothing for this long
#                      (default 200); run.sh then dumps the guest's state
#                      and fails naming the test case that was running
#   --smp N            guest CPUs (default 1)
#   --tcg-thread MODE  single (default) or multi (see run.sh's usage)
#   --cmd CMD          another test command (no program list check then)
#
# Exits non-zero when run.sh fails (a `not ok`, a timeout, a crash, the test
# command's status), when a listed program reported no result, or when
# anything skipped although the tier can run: always on Debian's kernel
# (the guest has KVM, vfio-pci and mtty), and with VFIO_CPR_NO_SKIP=1 on
# any kernel; a --kernel of your own may lack what a test needs, and its
# skips are then only reported.  Two exceptions, counted and shown, not
# failures: a test that does not apply to the device it runs on (edu has
# no MSI-X, mtty is no vfio-pci device...) SKIPs saying "not applicable: "
# and why; and when the kernel's config shows no CONFIG_IOMMUFD or no
# CONFIG_VFIO_DEVICE_CDEV (all of Debian's kernels), the vfio_cpr_test
# cdev_* variants SKIP with "vfio cdev/iommufd unavailable"; on a kernel
# that has both, they must run (build with --uapi).  vfio_cpr_test's
# per-device subtests are counted case by case.  QEMU, the kernel and
# mtty come from scripts/vm/provision.sh.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
inst=$top/build/vm-ksft
# One run at a time in this checkout: the install folder is shared.
mkdir -p "$top/build"
exec 9>"$top/build/.vm-tier.lock"
if ! flock -n 9; then
	echo "run-vm-tier: waiting for another VM-tier run of this checkout to finish" >&2
	flock 9
fi

custom_cmd='' own_kernel='' uapi='' kconfig=''
run_args=()
while [ $# -gt 0 ]; do
	case $1 in
	--uapi) uapi=$2; shift 2; continue ;;
	--kconfig) kconfig=$2; shift 2; continue ;;
	--kernel) own_kernel=$2 ;;
	-h|--help) sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	--kselftest-dir) echo "run-vm-tier: --kselftest-dir is this script's job" >&2; exit 2 ;;
	--cmd) custom_cmd=1 ;;
	esac
	run_args+=("$1")
	shift
done
[ -z "$uapi" ] || [ -f "$uapi/linux/vfio.h" ] ||
	{ echo "run-vm-tier: --uapi $uapi holds no linux/vfio.h" >&2; exit 2; }

# The kernel's config decides whether the cdev/iommufd variants can run.
if [ -n "$own_kernel" ]; then
	[ -n "$kconfig" ] || kconfig=$(dirname "$own_kernel")/config
else
	env_file=$("$top/scripts/vm/provision.sh" -q | tail -n 1)
	# shellcheck disable=SC1090
	. "$env_file"
	kconfig=$VM_MODROOT/boot/config-$VM_KVER
fi
# Skips that are not failures, '|'-separated: a device without what a test
# checks (vfio_cpr_test says "not applicable: ..."), and the cdev variants
# on a kernel without iommufd.
skip_ok_list='not applicable: '
cdev_skip_ok=
if [ -r "$kconfig" ]; then
	if ! grep -qE '^CONFIG_IOMMUFD=[ym]$' "$kconfig" ||
			! grep -qE '^CONFIG_VFIO_DEVICE_CDEV=y$' "$kconfig"; then
		cdev_skip_ok='vfio cdev/iommufd unavailable'
		skip_ok_list="$skip_ok_list|$cdev_skip_ok"
		echo "# vfio_cpr-vm: $kconfig: no CONFIG_IOMMUFD or CONFIG_VFIO_DEVICE_CDEV: the cdev_* variants will skip"
	else
		echo "# vfio_cpr-vm: $kconfig has CONFIG_IOMMUFD and CONFIG_VFIO_DEVICE_CDEV: the cdev_* variants must run"
	fi
else
	echo "# vfio_cpr-vm: no kernel config found ($kconfig): skips are judged as usual"
fi

now() { echo "${EPOCHREALTIME/,/.}"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
t_start=$(now)

# --- Build and install the kselftests, as in a kernel tree.
echo "# vfio_cpr-vm: make -C tools/testing/selftests TARGETS=vfio_cpr install"
uapi_args=()
[ -z "$uapi" ] || uapi_args=(--uapi "$uapi")
installed=$("$top/scripts/vm/install-kselftests.sh" "$inst" "${uapi_args[@]}")
mapfile -t listed < <(sed -n 's/^vfio_cpr://p' "$inst/kselftest-list.txt")
echo "# vfio_cpr-vm: $installed"
t_built=$(now)

# --- Run them in the guest; follow the KTAP stream as it comes.
pass=0 fail=0 skip=0 skip_ok=0
prog='' case_name='' t_prog='' nested='' sub_fail=0
declare -A p_pass=() p_fail=() p_skip=() p_time=() p_result=()
blackouts=()
sentinel='@@run-vm-tier: run.sh status '
run_rc=''
hdr_re='^# selftests: vfio_cpr: ([^ ]+)$'
res_re='^(not )?ok [0-9]+ selftests: vfio_cpr: ([^ ]+)(.*)$'
case_re='^# (not )?ok [0-9]+ (.*)$'
# A program's per-device subtests (vfio_cpr_test): its cases indented.
sub_re='^#[[:space:]]+# Subtest: (.*)$'
subcase_re='^#     (not )?ok [0-9]+ (.*)$'
run_re='^#[[:space:]]+#[[:space:]]+RUN +([^ ]+)'
# "# generation 1, 64 vectors: blackout ..." (kvm_cpr_test) or
# "# 0000:00:03.0 [...] MSI-X generation 1: blackout ..." (a device first)
black_re='^#[[:space:]]+(# (.* )?generation [0-9]+.*blackout [0-9].*)$'
# Does a skip line name a reason that is not a failure?
skip_is_ok() {
	local p
	IFS='|' read -ra pats <<< "$skip_ok_list"
	for p in "${pats[@]}"; do
		[[ $1 != *"$p"* ]] || return 0
	done
	return 1
}
# Count one test case's result line (its text after "ok N ").
count_case() { # NOT TEXT
	if [[ $2 == *'# SKIP'* ]]; then
		skip=$((skip + 1)) p_skip[$prog]=$((p_skip[$prog] + 1))
		if skip_is_ok "$2"; then
			skip_ok=$((skip_ok + 1))
		fi
	elif [ -n "$1" ]; then
		fail=$((fail + 1)) p_fail[$prog]=$((p_fail[$prog] + 1))
		sub_fail=$((sub_fail + 1))
	else
		pass=$((pass + 1)) p_pass[$prog]=$((p_pass[$prog] + 1))
	fi
}
while IFS= read -r line; do
	if [[ $line == "$sentinel"* ]]; then
		run_rc=${line#"$sentinel"}
		continue
	fi
	printf '%s\n' "$line"
	if [[ $line =~ $hdr_re ]]; then
		prog=${BASH_REMATCH[1]} case_name='' t_prog=$(now) nested=''
		p_pass[$prog]=0 p_fail[$prog]=0 p_skip[$prog]=0
	elif [[ $line =~ $res_re ]]; then
		p=${BASH_REMATCH[2]} rest=${BASH_REMATCH[3]}
		[ -n "${p_pass[$p]+x}" ] || { p_pass[$p]=0 p_fail[$p]=0 p_skip[$p]=0; }
		if [ -n "${BASH_REMATCH[1]}" ]; then
			p_result[$p]="not ok$rest"
			[ "${p_fail[$p]}" -gt 0 ] || fail=$((fail + 1))
		elif [[ $rest == *'# SKIP'* ]]; then
			p_result[$p]=skip
			[ "${p_skip[$p]}" -gt 0 ] || skip=$((skip + 1))
		else
			p_result[$p]=ok
			[ $((p_pass[$p] + p_skip[$p])) -gt 0 ] || pass=$((pass + 1))
		fi
		[ "$p" != "$prog" ] || [ -z "$t_prog" ] || p_time[$p]=$(secs "$t_prog" "$(now)")
		prog='' t_prog=''
	elif [ -n "$prog" ] && [[ $line =~ $sub_re ]]; then
		nested=1 sub_fail=0
	elif [ -n "$prog" ] && [[ $line =~ $subcase_re ]]; then
		count_case "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
	elif [ -n "$prog" ] && [[ $line =~ $case_re ]]; then
		# With subtests, this is a device's summary: a failure not
		# seen in its cases (a crash) still counts once.
		if [ -z "$nested" ]; then
			count_case "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
		elif [ -n "${BASH_REMATCH[1]}" ] && [ "$sub_fail" -eq 0 ]; then
			count_case 1 "${BASH_REMATCH[2]}"
		fi
	elif [ -n "$prog" ] && [[ $line =~ ^'# 1..0 # SKIP' ]]; then
		skip=$((skip + 1)) p_skip[$prog]=$((p_skip[$prog] + 1))
	elif [ -n "$prog" ] && [[ $line =~ $run_re ]]; then
		case_name=${BASH_REMATCH[1]}
	elif [ -n "$prog" ] && [[ $line =~ $black_re ]]; then
		blackouts+=("$prog${case_name:+ $case_name}|${BASH_REMATCH[1]}")
	fi
done < <(
	rc=0
	VFIO_CPR_SKIP_OK=$skip_ok_list \
		"$top/scripts/vm/run.sh" --kselftest-dir "$inst" "${run_args[@]}" || rc=$?
	echo "$sentinel$rc"
)
t_end=$(now)

problems=()
[ "${run_rc:-x}" = 0 ] || problems+=("scripts/vm/run.sh exited with status ${run_rc:-unknown}")
if [ -n "$prog" ]; then
	problems+=("$prog started but reported no result")
	fail=$((fail + 1))
fi
if [ -z "$custom_cmd" ]; then
	for p in "${listed[@]}"; do
		if [ -z "${p_result[$p]+x}" ]; then
			problems+=("$p (in kselftest-list.txt) reported no result")
			[ "$p" = "$prog" ] || fail=$((fail + 1))
		fi
	done
fi
[ "$fail" -eq 0 ] || problems+=("$fail failed")
bad_skip=$((skip - skip_ok))
if [ "$bad_skip" -gt 0 ]; then
	if [ "${VFIO_CPR_NO_SKIP:-0}" = 1 ]; then
		problems+=("$bad_skip skipped with VFIO_CPR_NO_SKIP=1")
	elif [ -z "$own_kernel" ]; then
		problems+=("$bad_skip skipped on Debian's kernel, where the guest has everything the tests need")
	else
		echo "# vfio_cpr-vm: $bad_skip skipped on your kernel (a failure with VFIO_CPR_NO_SKIP=1)" >&2
	fi
fi

times=
for p in "${listed[@]}"; do
	if [ -n "${p_time[$p]+x}" ]; then
		times="$times${times:+,} $p ${p_time[$p]}s"
		unset "p_time[$p]"
	fi
done
for p in "${!p_time[@]}"; do
	times="$times${times:+,} $p ${p_time[$p]}s"
done
echo "# vfio_cpr-vm: program times (host clock):${times:- none}"
echo "# vfio_cpr-vm: total $(secs "$t_start" "$t_end")s (build and install $(secs "$t_start" "$t_built")s, VM $(secs "$t_built" "$t_end")s)"
echo "vfio_cpr-vm: $pass passed, $fail failed, $skip skipped ($skip_ok of them not applicable to the device${cdev_skip_ok:+ or cdev/iommufd, absent from this kernel})"
if [ ${#blackouts[@]} -gt 0 ]; then
	echo "# vfio_cpr-vm: blackout diagnostics (TCG guest, nested KVM: one run, not benchmarks)"
	last=''
	for b in "${blackouts[@]}"; do
		where=${b%%|*}
		[ "$where" = "$last" ] || echo "# $where:"
		last=$where
		echo "${b#*|}"
	done
fi
if [ ${#problems[@]} -gt 0 ]; then
	for p in "${problems[@]}"; do
		echo "# vfio_cpr-vm: FAIL: $p" >&2
	done
	exit 1
fi
