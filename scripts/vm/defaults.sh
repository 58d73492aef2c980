# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# Sourced by scripts/vm/run.sh and scripts/vm/mkinitramfs.sh, the
# repository's fronts of the kselftest target's VM runner
# (selftests/vfio_cpr/vmtest-run.sh, vmtest-initramfs.sh): what only this
# repository has, given to the target's scripts as options.
#
# Needs $top; sets deps, vmdir and target (the target's folder).
deps=${VFIO_CPR_DEPS:-$top/.deps}
vmdir=$deps/vm
# shellcheck disable=SC2034 # used by the sourcing scripts
target=$top/selftests/vfio_cpr

# Prints, one per line, the --mtty and --cpr-mdev candidates: the modules
# provision.sh built for each Debian kernel (the current one first); the
# target's packer takes the one built for the release it packs, and only
# when the modules tree has none of its own.
provisioned_modules() {
	local env var ko
	for env in "$vmdir/current.env" "$vmdir"/kernel/*/vm.env; do
		[ -r "$env" ] || continue
		for var in VM_MTTY_KO:--mtty VM_CPR_MDEV_KO:--cpr-mdev; do
			ko=$(sed -n "s/^${var%%:*}='\(.*\)'\$/\1/p" "$env" | tail -n 1)
			if [ -z "$ko" ] || [ ! -f "$ko" ]; then
				continue
			fi
			printf '%s\n%s\n' "${var#*:}" "$ko"
		done
	done
}

# The runner of 6.1's kselftests (setup-host.sh extracts it): for a
# standalone install of the target, which has none.
# shellcheck disable=SC2034
framework=${VFIO_CPR_LINUX_SRC:-$deps/linux}/tools/testing/selftests
