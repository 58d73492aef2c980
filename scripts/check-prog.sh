#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Usage: scripts/check-prog.sh [GENERATIONS]
#
# The reference program on the host (no device: eventfds stand in for
# one, delivered into host KVM):
#   1. vfio-cpr run --generations N (default 100) --json under ping-pong
#      load: must pass with zero unacknowledged raises;
#   2. run --dump-state, then inspect: the state must decode; one flipped
#      byte must make inspect refuse it (exit 1, checksum);
#   3. make install into a scratch DESTDIR: binary and man page land, the
#      man page renders without warnings.
# On a host without /dev/kvm the two runs of 1. and 2. go to the VM tier's
# guest (nested KVM: scripts/vm/guest-exec.sh); inspect and install stay
# here.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/host-kvm.sh"
gens=${1:-100}
prog=$top/build/user/vfio-cpr
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "check-prog: FAIL: $*" >&2; exit 1; }

make -s -C "$top" lib
[ -x "$prog" ] || fail "no $prog"

rc=0
if host_has_kvm; then
	echo "# vfio-cpr run --generations $gens --json"
	"$prog" run --generations "$gens" --json > "$tmp/run.json" || rc=$?
	echo "# vfio-cpr run --generations 2 --dump-state"
	"$prog" run --generations 2 --quiet --dump-state "$tmp/state" > /dev/null ||
		fail "run with --dump-state"
else
	echo "# no /dev/kvm here: vfio-cpr run --generations $gens --json and --dump-state in the VM tier's guest"
	"$top/scripts/vm/guest-exec.sh" "$tmp/guest" \
		"./vfio-cpr run --generations $gens --json" \
		"./vfio-cpr run --generations 2 --quiet --dump-state state"
	cp "$tmp/guest/1.out" "$tmp/run.json"
	rc=$(cat "$tmp/guest/1.rc")
	[ "$(cat "$tmp/guest/2.rc")" = 0 ] || fail "run with --dump-state (in the guest) exited $(cat "$tmp/guest/2.rc")"
	cp "$tmp/guest/files/state" "$tmp/state"
fi
cat "$tmp/run.json"
[ "$rc" -eq 0 ] || fail "vfio-cpr run exited $rc"
grep -q '"result":"pass"' "$tmp/run.json" || fail "result is not pass"
grep -q '"unacknowledged":0,' "$tmp/run.json" || fail "unacknowledged raises"
grep -q "\"generations\":$gens," "$tmp/run.json" || fail "not all $gens generations ran"

echo "# vfio-cpr inspect"
"$prog" inspect "$tmp/state" > "$tmp/inspect.txt" || fail "inspect of a good state"
head -n 3 "$tmp/inspect.txt"
grep -q 'valid' "$tmp/inspect.txt" || fail "inspect did not call the state valid"
"$prog" inspect --json "$tmp/state" | grep -q '"valid":true' || fail "inspect --json"
# Flip one byte in the middle of the records.
size=$(stat -c %s "$tmp/state")
cp "$tmp/state" "$tmp/bad"
printf '\xff' | dd of="$tmp/bad" bs=1 seek=$((size / 2)) conv=notrunc status=none
rc=0
"$prog" inspect "$tmp/bad" > "$tmp/bad.txt" || rc=$?
cat "$tmp/bad.txt"
[ "$rc" -eq 1 ] || fail "inspect of a corrupted state exited $rc, want 1"

echo "# make -C user install DESTDIR=... PREFIX=/usr"
make -s -C "$top/user" O="$top/build/user" install DESTDIR="$tmp/root" PREFIX=/usr
[ -x "$tmp/root/usr/bin/vfio-cpr" ] || fail "install: no usr/bin/vfio-cpr"
[ -f "$tmp/root/usr/share/man/man8/vfio-cpr.8" ] || fail "install: no man page"
if command -v man > /dev/null; then
	warn=$(MANWIDTH=80 man --warnings -l "$tmp/root/usr/share/man/man8/vfio-cpr.8" 2>&1 >/dev/null || true)
	[ -z "$warn" ] || fail "man page warnings: $warn"
fi
"$tmp/root/usr/bin/vfio-cpr" --help > /dev/null || fail "installed vfio-cpr --help"
echo "check-prog: all passed"
