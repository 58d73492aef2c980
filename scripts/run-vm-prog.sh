#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Usage: scripts/run-vm-prog.sh [--generations G] [options of scripts/vm/run.sh]
#
# The reference program in the VM tier: boot the guest of scripts/vm/run.sh
# (edu and e1000e bound to vfio-pci, a fresh mtty mdev, nested KVM) and run
#	vfio-cpr run --device DEV --irq IRQ --generations G --json
# for every device of VFIO_CPR_DEVICES and every IRQ type it has, then
# once more for every MSI-X and every MSI type with all the PCI devices
# that have it at once (two or more), under ping-pong load; each MSI/MSI-X
# run must attach all its vectors with one KVM_SET_GSI_ROUTING per
# generation.  Prints one KTAP line per run ("# DEV has no IRQ" where
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
n=0 fail=0 msix_devs='' msi_devs=''
echo "TAP version 13"
# run IRQ WHAT DEVICE-ARGS...: one vfio-cpr run, one KTAP line.  MSI and
# MSI-X vectors of all devices must be attached with one routing commit in
# every generation; INTx with none.
run() {
	irq=\$1 what=\$2; shift 2
	out=\$(./vfio-cpr run "\$@" --irq \$irq --generations $gens \\
		--dwell 30 --timeout 10000 --json 2>/tmp/err); rc=\$?
	if [ \$rc -eq 4 ] && grep -q "has no" /tmp/err; then
		echo "# \$what has no \$irq: not applicable"
		return 1
	fi
	n=\$((n + 1))
	echo "# \$out"
	sed 's/^/# /' /tmp/err
	commits='"routing_commits":{"min":1,"max":1}'
	[ \$irq != intx ] || commits='"routing_commits":{"min":0,"max":0}'
	if [ \$rc -ne 0 ] || ! echo "\$out" | grep -q '"result":"pass"'; then
		echo "not ok \$n vfio-cpr run \$what \$irq $gens generations (exit \$rc)"
		fail=\$((fail + 1))
	elif ! echo "\$out" | grep -qF "\$commits"; then
		got=\$(echo "\$out" | sed -n 's/.*"routing_commits":\\({[^}]*}\\).*/\\1/p')
		echo "# vfio-cpr attached the \$irq vectors of \$what with \$got KVM_SET_GSI_ROUTING calls per generation (fewest, most), not one"
		echo "not ok \$n vfio-cpr run \$what \$irq $gens generations"
		fail=\$((fail + 1))
	else
		echo "ok \$n vfio-cpr run \$what \$irq $gens generations"
	fi
	return 0
}
for dev in \$(echo "\$VFIO_CPR_DEVICES" | tr ',' ' '); do
	for irq in msix msi intx; do
		run \$irq "\$dev" --device "\$dev" || continue
		# PCI devices only: mtty on 6.1 enables MSI once per instance.
		case \$dev in
		[0-9a-f][0-9a-f][0-9a-f][0-9a-f]:*)
			[ \$irq != msix ] || msix_devs="\$msix_devs --device \$dev"
			[ \$irq != msi ] || msi_devs="\$msi_devs --device \$dev" ;;
		esac
	done
done
# A VMM holds its devices at once: every PCI device with that IRQ type in
# one run, handed over in one exec per generation.
for irq in msix msi; do
	[ \$irq = msix ] && devs=\$msix_devs || devs=\$msi_devs
	set -- \$devs
	[ \$# -ge 4 ] || continue
	run \$irq "\$((\$# / 2)) devices at once" \$devs || true
done
echo "1..\$n"
[ \$n -gt 0 ] || { echo "# no run happened: VFIO_CPR_DEVICES='\$VFIO_CPR_DEVICES'"; exit 1; }
[ \$fail -eq 0 ]
GUEST
chmod +x "$stage/vfio_cpr/prog-check.sh"
exec "$top/scripts/vm/run.sh" --kselftest-dir "$stage" \
	--cmd "sh vfio_cpr/prog-check.sh" "${args[@]}"
