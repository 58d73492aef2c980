#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Usage: scripts/soak.sh [GENERATIONS]
#
# Soak: GENERATIONS (default 10000) exec handoffs on host KVM with
# ping-pong interrupts (build/user/vfio-cpr run, no device: 64 eventfd
# vectors), then checks what a long-lived VMM needs: zero raises lost, the
# same number of open fds in the last generation as in the first, and a
# flat RSS (the last within 25% + 512 kB of the first).  Prints both.
# On a host without /dev/kvm the runs go to the VM tier's guest (nested
# KVM: scripts/vm/guest-exec.sh).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/host-kvm.sh"
gens=${1:-10000}
[[ $gens =~ ^[1-9][0-9]*$ ]] || { echo "soak: GENERATIONS must be a positive number" >&2; exit 2; }
make -s -C "$top" lib
out=$(mktemp)
trap 'rm -rf "$out" "$out.guest"' EXIT

echo "# soak: vfio-cpr run --generations $gens --dwell 1 --json"
t0=$(date +%s)
rc=0
if host_has_kvm; then
	"$top/build/user/vfio-cpr" run --generations "$gens" --dwell 1 --json > "$out" || rc=$?
else
	echo "# soak: no /dev/kvm here: the runs go to the VM tier's guest (nested KVM)"
	"$top/scripts/vm/guest-exec.sh" "$out.guest" \
		"./vfio-cpr run --generations $gens --dwell 1 --json"
	cp "$out.guest/1.out" "$out"
	rc=$(cat "$out.guest/1.rc")
fi
t1=$(date +%s)
# One JSON object; pull the figures out with sed (no jq needed).
num() { sed -n "s/.*\"$1\":{\"first\":\([0-9]*\),\"last\":\([0-9]*\)}.*/\1 \2/p" "$out"; }
val() { sed -n "s/.*\"$1\":\([0-9.]*\)[,}].*/\1/p" "$out"; }
read -r fd0 fd1 <<< "$(num open_fds)"
read -r rss0 rss1 <<< "$(num rss_kb)"
echo "# soak: $(val generations) generations in $((t1 - t0)) s: raised $(val raised), delivered $(val delivered), unacknowledged $(val unacknowledged), longest wait $(val longest_wait_ms) ms"
echo "# soak: open fds first $fd0, last $fd1; RSS first $rss0 kB, last $rss1 kB"
problems=()
[ "$rc" -eq 0 ] || problems+=("vfio-cpr run exited $rc: $(sed -n 's/.*"load_error":\("[^"]*"\).*/\1/p' "$out")")
[ "$(val generations)" = "$gens" ] || problems+=("only $(val generations) of $gens generations ran")
[ "$(val unacknowledged)" = 0 ] || problems+=("$(val unacknowledged) raise(s) lost")
[ -n "$fd0" ] && [ "$fd0" = "$fd1" ] || problems+=("open fds grew from $fd0 to $fd1: a leak per handoff")
if [ -n "$rss0" ] && [ "$rss1" -gt $((rss0 + rss0 / 4 + 512)) ]; then
	problems+=("RSS grew from $rss0 kB to $rss1 kB")
fi
if [ ${#problems[@]} -gt 0 ]; then
	for p in "${problems[@]}"; do echo "soak: FAIL: $p" >&2; done
	exit 1
fi
echo "soak: passed"
