#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Usage: scripts/check-newer-harness.sh
#
# The selftests must build and run against the 6.1 kselftest harness
# (Debian's linux-source-6.1, what the other checks use) and newer ones.
# This builds them, with gcc and with LLVM=1, -Werror, against the
# tools/testing/selftests of Debian's linux-source-6.12 (the tree
# scripts/vm/build-kernel.sh extracts; run here if it is not there yet)
# and runs the host tier with the gcc build; every program's KTAP must
# then parse with the kernel's own parser (scripts/check-ktap.sh: the 6.1
# harness prints skipped cases without their name, newer ones do not).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
deps=${VFIO_CPR_DEPS:-$top/.deps}
find_ksft() { ls -d "$deps"/vm/own/src/linux-6.12*/tools/testing/selftests 2>/dev/null | head -n 1; }
ksft=$(find_ksft || true)
if [ -z "$ksft" ]; then
	"$top/scripts/vm/build-kernel.sh" -q > /dev/null
	ksft=$(find_ksft)
fi
[ -f "$ksft/kselftest_harness.h" ] || { echo "check-newer-harness: no harness in $ksft" >&2; exit 1; }
ver=$(sed -n 's/^VERSION = //p; s/^PATCHLEVEL = //p' "$ksft/../../../Makefile" | paste -sd.)
for llvm in 0 1; do
	out=$top/build/selftests-harness-$ver-llvm$llvm
	rm -rf "$out"
	echo "# check-newer-harness: $ver harness, $([ $llvm = 1 ] && echo clang || echo gcc), -Werror"
	make -s -C "$top/selftests/vfio_cpr" KSFT_DIR="$ksft" OUTPUT="$out" \
		USERCFLAGS=-Werror $([ $llvm = 1 ] && echo LLVM=1)
done
"$top/scripts/run-host-tier.sh" "$top/build/selftests-harness-$ver-llvm0"
"$top/scripts/check-ktap.sh" "$top/build/selftests-harness-$ver-llvm0"/ktap/*.ktap
