#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Build the selftests with clang and the given sanitizers, then run the host
# tier on that build; any sanitizer report fails the run.
#
# Usage: run-sanitized.sh SANITIZERS	(e.g. address,undefined)
#
# Output goes to build/selftests-san-<SANITIZERS with ',' turned into '-'>.
# The sanitizer options travel in the environment, so a successor that a
# test exec()s runs under them too; a report aborts the process, whose exit
# status (the successor's, after an exec) is the test's result.
# LeakSanitizer is probed first: if it cannot run here, leak detection is
# turned off with a message instead of failing every test.
set -euo pipefail

usage() {
	echo "usage: $0 SANITIZERS   (e.g. address,undefined)" >&2
	exit 2
}
if [ $# -ne 1 ] || [ -z "$1" ]; then
	usage
fi
sans=$1
case $sans in
*[!a-z,]*) usage ;;
esac

top=$(cd "$(dirname "$0")/.." && pwd)
ksft=$top/.deps/linux/tools/testing/selftests
out=$top/build/selftests-san-${sans//,/-}
[ -f "$ksft/lib.mk" ] || {
	echo "$0: $ksft/lib.mk missing: run 'make setup' first" >&2
	exit 1
}
command -v clang >/dev/null || { echo "$0: clang not found" >&2; exit 1; }

sanflags="-fsanitize=$sans -fno-omit-frame-pointer -fno-sanitize-recover=all -g"
# lib.mk links with $(CC) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS): USERCFLAGS
# reaches both compile and link, USERLDFLAGS the link.  The target's
# Makefile appends -O2 after USERCFLAGS; CPPFLAGS comes after CFLAGS on
# every compile line (lib.mk's and libvfio_cpr.mk's), so -O1 goes there.
start=$SECONDS
echo "# ===== build ($sans) into $out"
make -s -C "$top/selftests/vfio_cpr" KSFT_DIR="$ksft" OUTPUT="$out" LLVM=1 \
	USERCFLAGS="-Werror $sanflags" USERLDFLAGS="-fsanitize=$sans" \
	CPPFLAGS=-O1
echo "# build took $((SECONDS - start))s"

# Common to ASan, UBSan and LSan: stop at the first report, abort (so the
# harness sees a signal even where the process would exit 0), symbolise.
common="halt_on_error=1:abort_on_error=1:print_stacktrace=1:symbolize=1"
symb=$(command -v llvm-symbolizer || true)
[ -n "$symb" ] && common="$common:external_symbolizer_path=$symb"

leaks=0
case ,$sans, in
*,address,* | *,leak,*)
	probe=$(mktemp -d)
	trap 'rm -rf "$probe"' EXIT
	printf '%s\n' '#include <stdlib.h>' \
		'void *volatile p;' \
		'int main(void) { p = malloc(7); p = 0; return 0; }' \
		>"$probe/leak.c"
	clang -fsanitize="$sans" -g "$probe/leak.c" -o "$probe/leak"
	prc=0
	ASAN_OPTIONS=detect_leaks=1:exitcode=23 LSAN_OPTIONS=exitcode=23 \
		"$probe/leak" >"$probe/log" 2>&1 || prc=$?
	if [ "$prc" -eq 23 ] &&
	   grep -q 'LeakSanitizer: detected memory leaks' "$probe/log"; then
		leaks=1
		echo "# LeakSanitizer works here: leak detection on"
	else
		echo "# NOTE: LeakSanitizer cannot run in this environment (probe exit $prc):"
		sed 's/^/#   /' "$probe/log"
		echo "# NOTE: leak detection is OFF for this run (detect_leaks=0)"
	fi
	;;
esac

export ASAN_OPTIONS="$common:detect_leaks=$leaks:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export LSAN_OPTIONS="$common"
export UBSAN_OPTIONS="$common"
echo "# ASAN_OPTIONS=$ASAN_OPTIONS"
echo "# UBSAN_OPTIONS=$UBSAN_OPTIONS"

start=$SECONDS
rc=0
"$top/scripts/run-host-tier.sh" "$out" || rc=$?
echo "# run took $((SECONDS - start))s"
if [ "$rc" -eq 0 ]; then
	echo "run-sanitized ($sans): passed"
else
	echo "run-sanitized ($sans): FAILED"
fi
exit "$rc"
