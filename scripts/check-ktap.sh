#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Usage: scripts/check-ktap.sh FILE...
#        scripts/check-ktap.sh --kselftest FILE
#
# Parse each file - one test program's output - with the kernel's own KTAP
# parser (tools/testing/kunit/kunit.py parse, from the newest kernel tree
# under .deps: the own kernel's linux-source-6.12) and fail unless every
# one parses: no "crashed" test, no parser error.  Failed tests are not a
# parse error: the tiers judge results; this judges the format a bot reads.
#
# --kselftest FILE: FILE is the output of run_kselftest.sh (e.g. the KTAP
# vmtest.sh streams from the guest): the whole stream is parsed, then each
# program's own output, cut out of it ("# selftests: C: NAME" up to its
# result line) and stripped of the runner's "# " prefix.
#
# The 6.1 kselftest harness prints a skipped test case without its name
# ("ok 4 # SKIP reason"), which kunit.py reads as a crash: check the output
# of programs built against a newer harness (scripts/check-newer-harness.sh
# does, for the host tier).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
deps=${VFIO_CPR_DEPS:-$top/.deps}
[ $# -gt 0 ] || { echo "usage: $0 FILE... | --kselftest FILE" >&2; exit 2; }
split=
if [ "$1" = --kselftest ]; then
	[ $# -eq 2 ] || { echo "usage: $0 --kselftest FILE" >&2; exit 2; }
	split=$(mktemp -d)
	trap 'rm -rf "$split"' EXIT
	# The stream from its "TAP version" line on (a guest's init prints
	# before it), then each program's part.
	sed -n '/^TAP version /,$p' "$2" > "$split/run_kselftest.ktap"
	awk -v dir="$split" '
	/^# selftests: [^ ]+: [^ ]+$/ { name = $4; out = dir "/" name ".ktap"; printf "" > out; next }
	name != "" && $0 ~ ("^(not )?ok [0-9]+ selftests: [^ ]+: " name "( |$)") { close(out); name = ""; next }
	name != "" { sub(/^# ?/, ""); print > out }' "$split/run_kselftest.ktap"
	set -- "$split"/*.ktap
fi
find_kunit() {
	find "$deps/vm/own/src" -maxdepth 5 -path '*/tools/testing/kunit/kunit.py' \
		2>/dev/null | sort -V | tail -n 1
}
kunit=$(find_kunit)
if [ -z "$kunit" ]; then
	"$top/scripts/vm/build-kernel.sh" -q > /dev/null
	kunit=$(find_kunit)
fi
bad=0
for f in "$@"; do
	f=$(cd "$(dirname "$f")" && pwd)/$(basename "$f")
	# kunit.py changes directory: give it an absolute path.  Its status
	# says whether the tests passed (a skip is not a pass): not ours.
	out=$(cd "$(dirname "$kunit")" && python3 ./kunit.py parse "$f" 2>&1) || true
	summary=$(grep -E 'Testing complete\.' <<< "$out" | tail -n 1 | sed 's/^\[[0-9:]*\] //')
	if [ -z "$summary" ] || grep -qE 'crashed: [1-9]|errors: [1-9]' <<< "$summary"; then
		bad=1
		echo "check-ktap: $(basename "$f"): not valid KTAP for the kernel's parser: ${summary:-no summary}" >&2
		grep -E '\[ERROR\]|\[CRASHED\]' <<< "$out" | head -n 5 >&2 || true
	else
		echo "check-ktap: $(basename "$f"): $summary"
	fi
done
exit $bad
