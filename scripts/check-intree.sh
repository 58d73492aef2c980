#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Prove the kselftest target works inside a kernel tree, the way kernel
# developers run it: put it into the tree with intree.sh, then
#	make -C tools/testing/selftests TARGETS=vfio_cpr run_tests
#	make -C tools/testing/selftests TARGETS=vfio_cpr install
#	run_kselftest.sh -c vfio_cpr
# and fail on any failed test, or any skip on a machine with /dev/kvm.
#
# Usage: check-intree.sh [KERNEL_TREE]  (default: .deps/linux, the parts of
# Debian's linux-source-6.1 extracted by setup-host.sh)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/host-kvm.sh"
ktree=$(cd "${1:-$top/.deps/linux}" && pwd)
out=$top/build/intree
make_args=()
[ -n "${LLVM:-}" ] && make_args+=("LLVM=$LLVM")

"$top/scripts/intree.sh" "$ktree"
rm -rf "$out"
mkdir -p "$out"

judge() {
	local what=$1 log=$2 bad=0

	if grep -E '^(not )?ok [0-9]+ ' "$log" | grep -q '^not ok'; then
		echo "# intree: $what: a test failed" >&2
		bad=1
	fi
	# vfio_cpr_test and vmm_cpr_test need VFIO and kvm_cpr_test KVM, which
	# this host may lack (then the VM tier's guest runs them, with no skip
	# allowed); every other program must run.
	skips=$(grep -E '^ok [0-9]+ .*# SKIP' "$log" || true)
	allowed=' '
	[ -e /dev/vfio/vfio ] || allowed+='vfio_cpr_test vmm_cpr_test '
	host_has_kvm || allowed+='kvm_cpr_test '
	while read -r line; do
		[ -n "$line" ] || continue
		prog=$(sed -E 's/^ok [0-9]+ selftests: vfio_cpr: ([a-z_]+).*/\1/' <<<"$line")
		if [[ $allowed != *" $prog "* ]] &&
		   { host_has_kvm || [ "${VFIO_CPR_NO_SKIP:-0}" = 1 ]; }; then
			echo "# intree: $what: $prog skipped although this machine can run it" >&2
			bad=1
		fi
	done <<<"$skips"
	if [ "$(grep -E '^ok [0-9]+ selftests: vfio_cpr: ' "$log" | grep -vc '# SKIP')" -lt 3 ]; then
		echo "# intree: $what: expected the 3 host-tier programs to pass" >&2
		bad=1
	fi
	return $bad
}

echo "# intree: make -C tools/testing/selftests TARGETS=vfio_cpr run_tests"
make -s -C "$ktree/tools/testing/selftests" TARGETS=vfio_cpr \
	USERCFLAGS=-Werror "${make_args[@]}" run_tests 2>&1 |
	tee "$out/run_tests.log"
judge run_tests "$out/run_tests.log"

echo "# intree: make install + run_kselftest.sh -c vfio_cpr"
make -s -C "$ktree/tools/testing/selftests" TARGETS=vfio_cpr \
	USERCFLAGS=-Werror "${make_args[@]}" \
	INSTALL_PATH="$out/install" install >/dev/null
"$out/install/run_kselftest.sh" -c vfio_cpr 2>&1 | tee "$out/run_kselftest.log"
judge run_kselftest.sh "$out/run_kselftest.log"
echo "# intree: kernel-tree run and installed run passed"
