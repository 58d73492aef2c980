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
#     from its vmlinuz (the XZ payload of 6.1, the zstd one of 6.12; zstd
#     is installed when needed), for a fast PVH boot; when that fails,
#     run.sh boots the vmlinuz (bzImage) itself;
#   * builds the mtty sample driver (samples/vfio-mdev/mtty.c, extracted by
#     scripts/setup-host.sh into .deps/linux, of 6.1; for another major.minor
#     M.m, e.g. 6.12, the mtty.c of Debian's linux-source-M.m, fetched with
#     `apt-get download` and extracted alone into .deps/vm/src/M.m/) out of
#     tree against /usr/src/linux-headers-<ver>, in .deps/vm/mtty/<ver>/;
#   * builds the project's probe module vfio_cpr_mdev.ko (selftests/
#     vfio_cpr/mdev/) the same way, in .deps/vm/cpr-mdev/<ver>/;
#   * records what it made in .deps/vm/kernel/<ver>/vm.env (shell
#     assignments), copies that to .deps/vm/current.env (the default of
#     mkinitramfs.sh) and prints the vm.env path on stdout (run.sh uses it).
#
# <ver> is the kernel ABI name Debian's linux-image-amd64 depends on (e.g.
# 6.1.0-56-amd64); override it with VFIO_CPR_KVER=<ver> (e.g.
# 6.12.117+deb12-amd64, bookworm's 6.12: zstd vmlinuz, 6.12's mtty.c, which
# refuses an INTx unmask eventfd, so the library unmasks by ioctl).  Other
# overrides: VFIO_CPR_DEPS (default <top>/.deps), VFIO_CPR_LINUX_SRC
# (default $VFIO_CPR_DEPS/linux, where mtty.c is looked up; when set, used
# for any kernel version).
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

# shellcheck source=scripts/vm/apt.sh
. "$(dirname "$0")/apt.sh"

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
	apt_download "$vmdir/debs" "linux-image-$kver"
	deb=$apt_deb
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

# 2. Uncompressed ELF vmlinux, for a fast PVH boot: the bzImage header
# (boot protocol 2.08+) locates the compressed payload; its magic picks the
# decompressor (XZ for 6.1, zstd for 6.12, gzip).  The last 4 bytes of the
# payload are the kernel's appended size, not part of the stream.  Fallback
# for older headers: scan for XZ streams.  When nothing yields an ELF image,
# run.sh boots the bzImage itself (slower: it decompresses in the guest).
is_elf() { [ "$(head -c4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }
# le32/u8 of FILE at byte OFFSET
rd_u32() { od -An -t u4 -j "$2" -N 4 "$1" | tr -d ' '; }
rd_u8() { od -An -t u1 -j "$2" -N 1 "$1" | tr -d ' '; }
# Decompress FILE's payload into OUT; fails when it is not a known format
# or does not decompress to an ELF image.
extract_payload() { # FILE OUT
	local f=$1 out=$2 ss poff plen start magic dec
	[ "$(head -c 518 "$f" | tail -c 4)" = HdrS ] || return 1
	ss=$(rd_u8 "$f" $((0x1f1)))
	[ "$ss" -ne 0 ] || ss=4
	poff=$(rd_u32 "$f" $((0x248)))
	plen=$(rd_u32 "$f" $((0x24c)))
	[ "${plen:-0}" -gt 4 ] || return 1
	start=$(( (ss + 1) * 512 + poff ))
	magic=$(od -An -t x1 -j "$start" -N 4 "$f" | tr -d ' ')
	case $magic in
	fd377a58) dec='xz -dc --single-stream' ;;
	28b52ffd) dec='zstd -qdc'
		command -v zstd >/dev/null || install_pkgs zstd ;;
	1f8b*) dec='gzip -dc' ;;
	*) say "unsupported payload magic $magic in $(basename "$f")"; return 1 ;;
	esac
	# head may stop tail with SIGPIPE: only the decompressor's status counts.
	# shellcheck disable=SC2086
	(set +o pipefail; tail -c +$((start + 1)) "$f" | head -c $((plen - 4)) |
		$dec > "$out" 2>/dev/null) && is_elf "$out"
}
vmlinux=$kdir/vmlinux
if [ ! -f "$kdir/.stamp-vmlinux" ] || { [ "$(cat "$kdir/.stamp-vmlinux")" != bzImage ] && ! is_elf "$kdir/vmlinux"; }; then
	say "extracting vmlinux from $(basename "$vmlinuz")"
	ok=
	if extract_payload "$vmlinuz" "$kdir/vmlinux.tmp"; then
		ok=1
	else
		# shellcheck disable=SC2013 # one byte offset per line
		for off in $(LC_ALL=C grep -aboP '\xfd7zXZ\x00' "$vmlinuz" | cut -d: -f1); do
			# xz stops at the end of its stream, so tail may die of
			# SIGPIPE: only xz's status counts.
			if (set +o pipefail; tail -c +$((off + 1)) "$vmlinuz" |
					xz -dc --single-stream > "$kdir/vmlinux.tmp" 2>/dev/null) &&
					is_elf "$kdir/vmlinux.tmp"; then
				ok=1
				break
			fi
		done
	fi
	if [ -n "$ok" ]; then
		mv "$kdir/vmlinux.tmp" "$kdir/vmlinux"
		echo vmlinux > "$kdir/.stamp-vmlinux"
	else
		rm -f "$kdir/vmlinux"
		say "warning: no ELF vmlinux in $(basename "$vmlinuz"): booting the bzImage"
		echo bzImage > "$kdir/.stamp-vmlinux"
	fi
	rm -f "$kdir/vmlinux.tmp"
fi
[ "$(cat "$kdir/.stamp-vmlinux")" != bzImage ] || vmlinux=$vmlinuz

# 3. depmod, so that modprobe --show-depends can resolve the load order.
if [ ! -f "$kdir/.stamp-depmod" ] ||
		[ ! -s "$root/lib/modules/$kver/modules.dep" ]; then
	say "depmod $kver"
	depmod -b "$root" "$kver"
	touch "$kdir/.stamp-depmod"
fi

# 4. mtty.ko, out of tree against the matching headers, from the mtty.c of
# the kernel's major.minor: the tree of scripts/setup-host.sh (6.1) when it
# matches, else samples/vfio-mdev/mtty.c alone, extracted from Debian's
# linux-source-<major.minor> into .deps/vm/src/<major.minor>/ (the .deb is
# fetched with `apt-get download`, never installed, and deleted after).
# VFIO_CPR_LINUX_SRC, when set, is used whatever its version.
kmm=$(echo "$kver" | sed -n 's/^\([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p')
[ -n "$kmm" ] || die "cannot tell the major.minor of $kver"
tree_mm() { # TREE -> its VERSION.PATCHLEVEL
	[ -f "$1/Makefile" ] || return 0
	sed -n 's/^VERSION = \([0-9]*\)$/\1/p; s/^PATCHLEVEL = \([0-9]*\)$/\1/p' "$1/Makefile" |
		head -n 2 | paste -sd.
}
fetch_mtty_src() { # MAJOR.MINOR DESTDIR
	local mm=$1 dst=$2 ver pkg deb member
	pkg=linux-source-$mm
	[ -f "$dst/.stamp" ] && [ -f "$dst/samples/vfio-mdev/mtty.c" ] && return 0
	# The source version of the image, else apt's candidate.
	ver=$(dpkg-deb -f "$(cat "$kdir/.stamp-unpacked")" Version 2>/dev/null || true)
	apt_download "$vmdir/debs" "$pkg" "$ver" "for samples/vfio-mdev/mtty.c"
	deb=$apt_deb
	say "extracting mtty.c from $(basename "$deb")"
	member=$(dpkg-deb -c "$deb" | sed -n 's|.* \(\./usr/src/linux-source-[^ ]*\.tar\.xz\)$|\1|p' | head -n1)
	[ -n "$member" ] || die "$deb holds no usr/src/linux-source-*.tar.xz"
	rm -rf "$dst"
	mkdir -p "$dst.tmp"
	dpkg-deb --fsys-tarfile "$deb" | tar -xOf - "$member" |
		tar -xJf - -C "$dst.tmp" --wildcards '*/samples/vfio-mdev/mtty.c' ||
		die "cannot extract samples/vfio-mdev/mtty.c from $deb"
	mkdir -p "$dst/samples/vfio-mdev"
	mv "$dst.tmp"/*/samples/vfio-mdev/mtty.c "$dst/samples/vfio-mdev/mtty.c"
	rm -rf "$dst.tmp"
	basename "$deb" > "$dst/.stamp"
	rm -f "$deb"
}
if [ -z "${VFIO_CPR_LINUX_SRC:-}" ] && [ ! -f "$linux_src/samples/vfio-mdev/mtty.c" ]; then
	say "no $linux_src/samples/vfio-mdev/mtty.c yet: running scripts/setup-host.sh"
	VFIO_CPR_DEPS=$deps "$top/scripts/setup-host.sh" >&2
fi
if [ -z "${VFIO_CPR_LINUX_SRC:-}" ] && [ "$(tree_mm "$linux_src")" != "$kmm" ]; then
	linux_src=$vmdir/src/$kmm
	fetch_mtty_src "$kmm" "$linux_src"
fi
mtty_src=$linux_src/samples/vfio-mdev/mtty.c
hdrs=/usr/src/linux-headers-$kver
mdir=$vmdir/mtty/$kver
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

# 4b. vfio_cpr_mdev.ko, the project's probe mdev (selftests/vfio_cpr/mdev/),
# the same way, rebuilt when its source or Kbuild changes.
cpr_mdev_src=$top/selftests/vfio_cpr/mdev
cdir=$vmdir/cpr-mdev/$kver
for f in vfio_cpr_mdev.c Kbuild; do
	[ -f "$cpr_mdev_src/$f" ] || die "missing $cpr_mdev_src/$f"
done
sum=$(cat "$cpr_mdev_src/vfio_cpr_mdev.c" "$cpr_mdev_src/Kbuild" | sha256sum | cut -d' ' -f1)
if [ ! -f "$cdir/vfio_cpr_mdev.ko" ] || [ "$(cat "$cdir/.stamp" 2>/dev/null)" != "$sum" ]; then
	say "building vfio_cpr_mdev.ko against $hdrs"
	rm -rf "$cdir"
	mkdir -p "$cdir"
	cp "$cpr_mdev_src/vfio_cpr_mdev.c" "$cpr_mdev_src/Kbuild" "$cdir/"
	make -s -C "$hdrs" M="$cdir" modules >"$cdir/build.log" 2>&1 || {
		cat "$cdir/build.log" >&2
		die "vfio_cpr_mdev.ko build failed"
	}
	# Our own module builds without a warning.
	if grep -q 'warning:' "$cdir/build.log"; then
		cat "$cdir/build.log" >&2
		die "vfio_cpr_mdev.ko built with warnings (log: $cdir/build.log)"
	fi
	modinfo -F vermagic "$cdir/vfio_cpr_mdev.ko" | grep -q "^$kver " ||
		die "vfio_cpr_mdev.ko vermagic does not match $kver"
	echo "$sum" > "$cdir/.stamp"
fi

# 5. Record what was made.
cat > "$kdir/vm.env.tmp" <<EOF
# Written by scripts/vm/provision.sh; sourced by scripts/vm/run.sh.
VM_KVER='$kver'
VM_VMLINUX='$vmlinux'
VM_VMLINUZ='$vmlinuz'
VM_MODROOT='$root'
VM_MTTY_KO='$mdir/mtty.ko'
VM_MTTY_SRC='$mtty_src'
VM_CPR_MDEV_KO='$cdir/vfio_cpr_mdev.ko'
EOF
mv "$kdir/vm.env.tmp" "$kdir/vm.env"
cp "$kdir/vm.env" "$vmdir/current.env"
say "ready: kernel $kver in $kdir"
echo "$kdir/vm.env"
