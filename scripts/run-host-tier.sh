#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Run the host-tier selftests (no VFIO needed) from a build folder and
# summarise their KTAP.  Usage: run-host-tier.sh BUILD_DIR
#
# Exits non-zero if any test failed, or if a test skipped although this
# machine has what it needs (/dev/kvm): a tier that can run must run.
# With VFIO_CPR_NO_SKIP=1 (CI) any skip is a failure but, on a host without
# /dev/kvm, the skips that name /dev/kvm: those cases run in the VM tier's
# guest (nested KVM), where no skip is allowed.  Each program's output is
# kept in BUILD_DIR/ktap/PROGRAM.ktap.
set -uo pipefail

dir=${1:?usage: $0 BUILD_DIR}
. "$(dirname "$0")/host-kvm.sh"
tests=(cpr_state_test cpr_input_test cpr_exec_test cpr_transfer_test kvm_cpr_test
	cpr_lockdown_test)
pass=0 fail=0 skip=0 rc=0

must_run=0 kvm=0 no_kvm_skips=0
host_has_kvm && must_run=1 kvm=1
[ "${VFIO_CPR_NO_SKIP:-0}" = 1 ] && must_run=1

for t in "${tests[@]}"; do
	echo "# ===== $t"
	mkdir -p "$dir/ktap"
	log=$dir/ktap/$t.ktap
	(cd "$dir" && "./$t") 2>&1 | tee "$log"
	status=${PIPESTATUS[0]}
	p=$(grep -cE '^ok [0-9]+ ' "$log" | head -1)
	s=$(grep -cE '^ok [0-9]+ .*# SKIP' "$log" | head -1)
	f=$(grep -cE '^not ok [0-9]+ ' "$log" | head -1)
	if grep -qE '^1\.\.0 # SKIP' "$log"; then
		s=$((s + 1))
	fi
	pass=$((pass + p - s)) skip=$((skip + s)) fail=$((fail + f))
	if [ "$status" -ne 0 ] && [ "$status" -ne 4 ]; then
		echo "# $t exited with status $status"
		[ "$f" -gt 0 ] || fail=$((fail + 1))
		rc=1
	fi
	# Skips for want of /dev/kvm are the environment's on a host without it.
	k=0
	[ "$kvm" -eq 1 ] || k=$(count_kvm_skips "$log")
	no_kvm_skips=$((no_kvm_skips + k))
	if [ "$((s - k))" -gt 0 ] && [ "$must_run" -eq 1 ]; then
		echo "# $t skipped $((s - k)) test(s) although the host tier must run here (/dev/kvm usable or VFIO_CPR_NO_SKIP=1)"
		rc=1
	fi
done
[ "$fail" -eq 0 ] || rc=1
echo "# host tier done"
[ "$no_kvm_skips" -eq 0 ] ||
	echo "# this host has no usable /dev/kvm: its $no_kvm_skips KVM test(s) skipped here run in the VM tier's guest"
echo "vfio_cpr: $pass passed, $fail failed, $skip skipped"
exit $rc
