#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Usage: scripts/vm/provision.sh [-q]
#
# Prepare everything the VM tier needs on a Debian 12 host, from Debian's
# apt repositories only, into the git-ignored folder .deps/vm/:
#
#   * installs qemu-system-x86, busybox-static, cpio, kmod, xz-utils, gcc,
#     make and linux-headers-<ver> (only what is missing);
#   * fetches linux-image-<ver> with `apt-get download` and unpacks it with
#     `dpkg-deb -x` into .deps/vm/kernel/<ver>/root (never installed on the
#     host), runs depmod on it and extracts the uncompressed ELF vmlinux
#     from its vmlinuz (the XZ payload), for a fast PVH boot;
#   * builds the mtty sample driver (samples/vfio-mdev/mtty.c, extracted by
#     scripts/setup-host.sh into .deps/linux) out of tree against
#     /usr/src/linux-headers-<ver>, in .deps/vm/mtty/<ver>/;
#   * records what it made in .deps/vm/kernel/<ver>/vm.env (shell
#     assignments), copies that to .deps/vm/current.env (the default of
#     mkinitramfs.sh) and prints the vm.env path on stdout (run.sh uses it).
#
# <ver> is the kernel ABI name Debian's linux-image-amd64 depends on (e.g.
# 6.1.0-56-amd64); override it with VFIO_CPR_KVER=<ver>.  Other overrides:
# VFIO_CPR_DEPS (default <top>/.deps), VFIO_CPR_LINUX_SRC (default
# $VFIO_CPR_DEPS/linux, where mtty.c is looked up).
#
# Idempotent: each step leaves a stamp file; a second run only checks the
# package list and the stamps.  -q: print nothing but errors.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
deps=${VFIO_CPR_DEPS:-$top/.deps}
vmdir=$deps/vm
linux_src=${VFIO_CPR_LINUX_SRC:-$deps/linux}
quiet=
[ "${1:-}" = -q ] && quiet=1

say() { [ -n "$quiet" ] || echo "provision: $*" >&2; }
die() { echo "provision: error: $*" >&2; exit 1; }

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
apt_updated=
apt_update() {
	[ -n "$apt_updated" ] && return 0
	say "apt-get update"
	$SUDO apt-get update -qq
	apt_updated=1
}

# Print the packages of "$@" that are not installed.
missing_pkgs() {
	local p st
	for p in "$@"; do
		st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
		case $st in *" ok installed") ;; *) echo "$p" ;; esac
	done
}

install_pkgs() {
	local miss
	miss=$(missing_pkgs "$@")
	[ -n "$miss" ] || return 0
	# shellcheck disable=SC2086
	say "installing" $miss
	# shellcheck disable=SC2086
	if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
			--no-install-recommends $miss >/dev/null; then
		apt_update
		# shellcheck disable=SC2086
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
			--no-install-recommends $miss >/dev/null
	fi
}

# The ABI name the metapackage linux-image-amd64 currently depends on.
apt_kver() {
	apt-cache show --no-all-versions linux-image-amd64 2>/dev/null |
		sed -n 's/^Depends:.*linux-image-\([0-9][^ ,]*-amd64\).*/\1/p' |
		head -n1
}

# One provisioning at a time (parallel runs of run.sh call this too).
mkdir -p "$vmdir"
exec 9>"$vmdir/.provision.lock"
flock 9

kver=${VFIO_CPR_KVER:-}
if [ -z "$kver" ]; then
	kver=$(apt_kver)
	if [ -z "$kver" ]; then
		apt_update
		kver=$(apt_kver)
	fi
	[ -n "$kver" ] || die "cannot derive the kernel version from apt; set VFIO_CPR_KVER"
fi

kdir=$vmdir/kernel/$kver
if [ ! -f "$kdir/.stamp-unpacked" ] || [ -n "$(missing_pkgs "linux-headers-$kver")" ]; then
	if ! apt-cache show "linux-image-$kver" >/dev/null 2>&1; then
		apt_update
		apt-cache show "linux-image-$kver" >/dev/null 2>&1 ||
			die "apt knows no linux-image-$kver (VFIO_CPR_KVER?)"
	fi
fi

install_pkgs qemu-system-x86 busybox-static cpio kmod xz-utils gcc make \
	coreutils "linux-headers-$kver"

root=$kdir/root
mkdir -p "$kdir" "$vmdir/debs"

# 1. Fetch and unpack the kernel image package.
if [ ! -f "$kdir/.stamp-unpacked" ]; then
	debs=("$vmdir/debs/linux-image-${kver}_"*.deb)
	deb=${debs[0]}
	if [ ! -f "$deb" ]; then
		say "downloading linux-image-$kver"
		if ! (cd "$vmdir/debs" && apt-get download -q "linux-image-$kver" \
				>/dev/null 2>&1); then
			apt_update
			(cd "$vmdir/debs" && apt-get download -q "linux-image-$kver" >/dev/null) ||
				die "apt-get download linux-image-$kver failed"
		fi
		debs=("$vmdir/debs/linux-image-${kver}_"*.deb)
		deb=${debs[0]}
		[ -f "$deb" ] || die "apt-get download left no linux-image-${kver}_*.deb"
	fi
	say "unpacking $(basename "$deb")"
	rm -rf "$root"
	mkdir -p "$root"
	dpkg-deb -x "$deb" "$root"
	# modprobe -d/depmod -b want <root>/lib/modules: cope with a usr-merged
	# package layout too.
	if [ ! -d "$root/lib/modules" ] && [ -d "$root/usr/lib/modules" ]; then
		ln -s usr/lib "$root/lib"
	fi
	[ -d "$root/lib/modules/$kver" ] || die "no lib/modules/$kver in $deb"
	echo "$deb" > "$kdir/.stamp-unpacked"
fi

vmlinuz=$root/boot/vmlinuz-$kver
[ -f "$vmlinuz" ] || die "missing $vmlinuz"

# 2. Uncompressed ELF vmlinux: find the XZ stream in the bzImage and
# decompress it; the first candidate that yields an ELF image wins.
is_elf() { [ "$(head -c4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }
if [ ! -f "$kdir/.stamp-vmlinux" ] || ! is_elf "$kdir/vmlinux"; then
	say "extracting vmlinux from $(basename "$vmlinuz")"
	ok=
	# shellcheck disable=SC2013 # one byte offset per line
	for off in $(LC_ALL=C grep -aboP '\xfd7zXZ\x00' "$vmlinuz" | cut -d: -f1); do
		# xz stops at the end of its stream, so tail may die of SIGPIPE:
		# only xz's status counts.
		if (set +o pipefail; tail -c +$((off + 1)) "$vmlinuz" |
				xz -dc --single-stream > "$kdir/vmlinux.tmp" 2>/dev/null) &&
				is_elf "$kdir/vmlinux.tmp"; then
			mv "$kdir/vmlinux.tmp" "$kdir/vmlinux"
			ok=1
			break
		fi
	done
	rm -f "$kdir/vmlinux.tmp"
	[ -n "$ok" ] || die "no XZ-compressed ELF payload found in $vmlinuz"
	touch "$kdir/.stamp-vmlinux"
fi

# 3. depmod, so that modprobe --show-depends can resolve the load order.
if [ ! -f "$kdir/.stamp-depmod" ] ||
		[ ! -s "$root/lib/modules/$kver/modules.dep" ]; then
	say "depmod $kver"
	depmod -b "$root" "$kver"
	touch "$kdir/.stamp-depmod"
fi

# 4. mtty.ko, out of tree against the matching headers.
mtty_src=$linux_src/samples/vfio-mdev/mtty.c
hdrs=/usr/src/linux-headers-$kver
mdir=$vmdir/mtty/$kver
if [ ! -f "$mtty_src" ] && [ -z "${VFIO_CPR_LINUX_SRC:-}" ]; then
	say "no $mtty_src yet: running scripts/setup-host.sh"
	VFIO_CPR_DEPS=$deps "$top/scripts/setup-host.sh" >&2
fi
[ -f "$mtty_src" ] || die "missing $mtty_src: run scripts/setup-host.sh first"
[ -d "$hdrs" ] || die "missing $hdrs"
sum=$(sha256sum "$mtty_src" | cut -d' ' -f1)
if [ ! -f "$mdir/mtty.ko" ] || [ "$(cat "$mdir/.stamp" 2>/dev/null)" != "$sum" ]; then
	say "building mtty.ko against $hdrs"
	rm -rf "$mdir"
	mkdir -p "$mdir"
	cp "$mtty_src" "$mdir/mtty.c"
	echo 'obj-m := mtty.o' > "$mdir/Kbuild"
	make -s -C "$hdrs" M="$mdir" modules >"$mdir/build.log" 2>&1 || {
		cat "$mdir/build.log" >&2
		die "mtty.ko build failed"
	}
	modinfo -F vermagic "$mdir/mtty.ko" | grep -q "^$kver " ||
		die "mtty.ko vermagic does not match $kver"
	echo "$sum" > "$mdir/.stamp"
fi

# 5. Record what was made.
cat > "$kdir/vm.env.tmp" <<EOF
# Written by scripts/vm/provision.sh; sourced by scripts/vm/run.sh.
VM_KVER='$kver'
VM_VMLINUX='$kdir/vmlinux'
VM_VMLINUZ='$vmlinuz'
VM_MODROOT='$root'
VM_MTTY_KO='$mdir/mtty.ko'
VM_MTTY_SRC='$mtty_src'
EOF
mv "$kdir/vm.env.tmp" "$kdir/vm.env"
cp "$kdir/vm.env" "$vmdir/current.env"
say "ready: kernel $kver in $kdir"
echo "$kdir/vm.env"
