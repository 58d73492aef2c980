#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Usage: scripts/run-vm-prog.sh [--generations G] [options of scripts/vm/run.sh]
#
# The reference program in the VM tier: boot the guest of scripts/vm/run.sh
# (edu and e1000e bound to vfio-pci, a fresh mtty mdev, nested KVM) and run
#	vfio-cpr run --device DEV --irq IRQ --generations G --json
# for every device of VFIO_CPR_DEVICES and every IRQ type it has, under
# ping-pong load.  Prints one KTAP line per run ("# DEV has no IRQ" where
# the device lacks that type) and each run's JSON result.  Fails on any
# unacknowledged raise, any failed run, or when no run happened.
# Default G: 5 (TCG is slow; `make check` uses it).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
stage=$top/build/vm-prog
gens=5
args=()
while [ $# -gt 0 ]; do
	case $1 in
	--generations) gens=$2; shift 2 ;;
	-h|--help) sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) args+=("$1"); shift ;;
	esac
done
[[ $gens =~ ^[0-9]+$ ]] || { echo "run-vm-prog: --generations wants a number" >&2; exit 2; }

"$top/scripts/setup-host.sh" >/dev/null
make -s -C "$top" lib
rm -rf "$stage"
mkdir -p "$stage/vfio_cpr"
cp "$top/build/user/vfio-cpr" "$stage/vfio_cpr/"
# The guest side: busybox sh in /kselftest/vfio_cpr (a kselftest layout).
cat > "$stage/vfio_cpr/prog-check.sh" <<GUEST
#!/bin/sh
cd "\$(dirname "\$0")" || exit 1
n=0 fail=0
echo "TAP version 13"
for dev in \$(echo "\$VFIO_CPR_DEVICES" | tr ',' ' '); do
	for irq in msix msi intx; do
		out=\$(./vfio-cpr run --device "\$dev" --irq \$irq --generations $gens \\
			--dwell 30 --timeout 10000 --json 2>/tmp/err); rc=\$?
		if [ \$rc -eq 4 ] && grep -q "has no" /tmp/err; then
			echo "# \$dev has no \$irq: not applicable"
			continue
		fi
		n=\$((n + 1))
		echo "# \$out"
		sed 's/^/# /' /tmp/err
		if [ \$rc -eq 0 ] && echo "\$out" | grep -q '"result":"pass"'; then
			echo "ok \$n vfio-cpr run \$dev \$irq $gens generations"
		else
			echo "not ok \$n vfio-cpr run \$dev \$irq $gens generations (exit \$rc)"
			fail=\$((fail + 1))
		fi
	done
done
echo "1..\$n"
[ \$n -gt 0 ] || { echo "# no run happened: VFIO_CPR_DEVICES='\$VFIO_CPR_DEVICES'"; exit 1; }
[ \$fail -eq 0 ]
GUEST
chmod +x "$stage/vfio_cpr/prog-check.sh"
exec "$top/scripts/vm/run.sh" --kselftest-dir "$stage" \
	--cmd "sh vfio_cpr/prog-check.sh" "${args[@]}"
