#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Usage: scripts/run-valgrind.sh BUILD_DIR
#
# The host tier under valgrind memcheck, through every exec and fork
# (--trace-children): any memory error or definite leak in any generation
# or successor fails.  This catches what LeakSanitizer cannot: the
# kselftest harness ends each test's process with _exit(), which skips
# LSan's exit-time check, while valgrind checks at every exit.  On a host
# without /dev/kvm the KVM cases skip (valgrind does not run in the VM
# tier's guest).
set -euo pipefail

build=${1:?usage: $0 BUILD_DIR}
. "$(dirname "$0")/host-kvm.sh"
tests=(cpr_state_test cpr_input_test cpr_exec_test cpr_transfer_test kvm_cpr_test)
command -v valgrind > /dev/null || { echo "run-valgrind: valgrind not installed (scripts/setup-host.sh)" >&2; exit 1; }
bad=() skipped=0
for t in "${tests[@]}"; do
	log=$(mktemp)
	rc=0
	valgrind --trace-children=yes --error-exitcode=99 --leak-check=full \
		--errors-for-leak-kinds=definite --show-leak-kinds=definite -q \
		"$build/$t" > "$log" 2>&1 || rc=$?
	summary=$(grep -E '^# Totals' "$log" | tail -n 1 || true)
	# Exit 4: every case skipped, which only a host without /dev/kvm
	# excuses (those cases run in the VM tier's guest, unsanitised).
	if [ "$rc" -eq 4 ] && ! host_has_kvm &&
	   [ "$(count_kvm_skips "$log")" -gt 0 ]; then
		echo "# valgrind $t: every case skipped: this host has no /dev/kvm"
		skipped=$((skipped + 1))
		rm -f "$log"
		continue
	fi
	if [ "$rc" -ne 0 ] || grep -qE '==[0-9]+== (Invalid|Conditional|Use of|Syscall param|.*definitely lost)' "$log"; then
		grep -E '==[0-9]+==|not ok' "$log" | head -n 60 >&2
		bad+=("$t (exit $rc)")
	fi
	echo "# valgrind $t: exit $rc ${summary#\# }"
	rm -f "$log"
done
if [ ${#bad[@]} -gt 0 ]; then
	echo "run-valgrind: FAILED: ${bad[*]}" >&2
	exit 1
fi
echo "run-valgrind: $((${#tests[@]} - skipped)) programs clean (no memory error, no definite leak), $skipped skipped (no /dev/kvm)"
