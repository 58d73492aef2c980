#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Usage: scripts/vm/mkinitramfs.sh --kselftest-dir DIR [-o FILE]
#            [--modroot DIR] [--kver RELEASE] [--mtty FILE|none]
#            [--cpr-mdev FILE|none] [--bind VVVV:DDDD,...] [--init FILE]
#            [--bash]
#
# Build the gzip'd cpio initramfs of the VM tier:
#   /init               scripts/vm/guest-init.sh (or --init FILE)
#   /bin/busybox        busybox-static, with its applet symlinks
#   /usr/bin/timeout    coreutils' timeout: kselftest's runner.sh calls
#                       `/usr/bin/timeout --foreground`, which busybox's
#                       applet rejects
#   /lib/modules/vfio_cpr/*.ko and /etc/vfio_cpr/modules (load order)
#                       vfio, vfio_iommu_type1, vfio_pci_core, vfio-pci, mdev,
#                       irqbypass, kvm, kvm-amd (nested=1), ccp and their
#                       dependencies, resolved on the host with
#                       `modprobe -d MODROOT -S RELEASE --show-depends`;
#                       then mtty.ko, then vfio_cpr_mdev.ko (the project's
#                       probe mdev, selftests/vfio_cpr/mdev/)
#   /kselftest          a copy of DIR, the output of `make -C
#                       tools/testing/selftests TARGETS=vfio_cpr install
#                       INSTALL_PATH=DIR` (run_kselftest.sh, kselftest/,
#                       kselftest-list.txt, vfio_cpr/...)
#   the shared libraries (and the dynamic loader) that `ldd` lists for
#   every ELF file in DIR and for the extra host binaries.
#
# Defaults come from .deps/vm/current.env, written by provision.sh:
# MODROOT = Debian's unpacked linux-image (a tree with lib/modules/RELEASE;
# a lib/modules/RELEASE folder itself is accepted too), RELEASE = its only
# release, mtty = the mtty.ko provision.sh built (used only when MODROOT
# has no mtty module of its own and RELEASE is the one it was built for),
# vfio_cpr_mdev = the one provision.sh built for RELEASE (VM_CPR_MDEV_KO of
# .deps/vm/kernel/RELEASE/vm.env, else of current.env when it is for
# RELEASE; used only when MODROOT has no vfio_cpr_mdev module of its own,
# as build-kernel.sh's has).
# --bind writes the default PCI id list (/etc/vfio_cpr/bind; the kernel
# command line's vfio_cpr.bind= wins).  --bash also installs the host's
# bash as /bin/bash (6.1's run_kselftest.sh and runner.sh run fine under
# busybox sh, so it is not needed by default).
# -o defaults to .deps/vm/initramfs.cpio.gz.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
deps=${VFIO_CPR_DEPS:-$top/.deps}
vmdir=$deps/vm

die() { echo "mkinitramfs: error: $*" >&2; exit 1; }
usage() { sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit "${1:-0}"; }

ksft='' out=$vmdir/initramfs.cpio.gz modroot='' kver='' mtty=default
cpr_mdev=default
init=$here/guest-init.sh bindlist='' want_bash=''
while [ $# -gt 0 ]; do
	case $1 in
	--kselftest-dir) ksft=$2; shift 2 ;;
	-o|--output) out=$2; shift 2 ;;
	--modroot|--modules) modroot=$2; shift 2 ;;
	--kver) kver=$2; shift 2 ;;
	--mtty) mtty=$2; shift 2 ;;
	--cpr-mdev) cpr_mdev=$2; shift 2 ;;
	--bind) bindlist=$2; shift 2 ;;
	--init) init=$2; shift 2 ;;
	--bash) want_bash=1; shift ;;
	-h|--help) usage 0 ;;
	*) echo "mkinitramfs: unknown argument '$1'" >&2; usage 1 >&2 ;;
	esac
done
[ -n "$ksft" ] || die "--kselftest-dir is required"
[ -d "$ksft" ] || die "no such directory: $ksft"
[ -r "$init" ] || die "no such init script: $init"

VM_MODROOT='' VM_KVER='' VM_MTTY_KO='' VM_CPR_MDEV_KO=''
if [ -r "$vmdir/current.env" ]; then
	# shellcheck disable=SC1091
	. "$vmdir/current.env"
fi
if [ -z "$modroot" ]; then
	modroot=$VM_MODROOT
	kver=${kver:-$VM_KVER}
fi
[ -n "$modroot" ] || die "no modules tree: run scripts/vm/provision.sh or pass --modroot"
nomods=
if [ "$modroot" = none ]; then
	nomods=1
else
	[ -d "$modroot" ] || die "no such directory: $modroot"
	modroot=$(cd "$modroot" && pwd)
fi

stage=
cleanup() { [ -z "$stage" ] || rm -rf "$stage" "$stage.modroot"; }
trap cleanup EXIT
mkdir -p "$vmdir"
stage=$(mktemp -d "$vmdir/initramfs-stage.XXXXXX")

mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,etc/vfio_cpr,lib/modules/vfio_cpr,proc,sys,dev,tmp,root,kselftest}

# Accept either a root holding lib/modules/RELEASE or the RELEASE folder;
# sets modroot and kver.
resolve_modroot() {
	local rel rels
	if [ ! -d "$modroot/lib/modules" ]; then
		[ -f "$modroot/modules.dep" ] || [ -d "$modroot/kernel" ] ||
			die "$modroot holds neither lib/modules/ nor modules.dep"
		rel=$(basename "$modroot")
		mkdir -p "$stage.modroot/lib/modules"
		ln -s "$modroot" "$stage.modroot/lib/modules/$rel"
		modroot=$stage.modroot
		kver=${kver:-$rel}
	fi
	if [ -z "$kver" ]; then
		rels=$(ls "$modroot/lib/modules")
		[ "$(echo "$rels" | wc -l)" -eq 1 ] ||
			die "several releases under $modroot/lib/modules: pass --kver"
		kver=$rels
	fi
	[ -d "$modroot/lib/modules/$kver" ] || die "no $modroot/lib/modules/$kver"
	if [ ! -s "$modroot/lib/modules/$kver/modules.dep" ]; then
		echo "mkinitramfs: running depmod for $kver in $modroot" >&2
		depmod -b "$modroot" "$kver"
	fi
}
[ -n "$nomods" ] || resolve_modroot

# --- busybox and its applets.
bb=$(command -v busybox) || die "busybox not found: run provision.sh"
cp -L "$bb" "$stage/bin/busybox"
while read -r applet; do
	[ -n "$applet" ] || continue
	case $applet in bin/busybox|usr/bin/timeout) continue ;; esac
	mkdir -p "$stage/$(dirname "$applet")"
	ln -sf /bin/busybox "$stage/$applet"
done < <("$stage/bin/busybox" --list-full)

# --- host binaries, and libraries for everything dynamic.
elfs=()
is_elf() { [ "$(head -c4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }
add_host_bin() { # SRC DST
	cp -L "$1" "$stage$2"
	elfs+=("$1")
}
add_host_bin "$(command -v timeout)" /usr/bin/timeout
if [ -n "$want_bash" ]; then
	add_host_bin "$(command -v bash)" /bin/bash
fi

cp -a "$ksft/." "$stage/kselftest/"
# A standalone `make install` of the target (outside a kernel tree) copies
# only its own files: add 6.1's runner and a test list when missing.  DIR
# may then be the vfio_cpr folder itself.
kst=$stage/kselftest
if [ ! -f "$kst/run_kselftest.sh" ]; then
	fw=${VFIO_CPR_LINUX_SRC:-$deps/linux}/tools/testing/selftests
	[ -f "$fw/run_kselftest.sh" ] ||
		die "$ksft has no run_kselftest.sh, nor has $fw one to add (run scripts/setup-host.sh)"
	if [ ! -d "$kst/vfio_cpr" ]; then
		mkdir "$stage/vfio_cpr.tmp"
		find "$kst" -mindepth 1 -maxdepth 1 -exec mv -t "$stage/vfio_cpr.tmp" {} +
		mv "$stage/vfio_cpr.tmp" "$kst/vfio_cpr"
	fi
	mkdir -p "$kst/kselftest"
	cp "$fw/run_kselftest.sh" "$kst/"
	cp "$fw/kselftest/runner.sh" "$fw/kselftest/prefix.pl" "$kst/kselftest/"
	echo "mkinitramfs: warning: $ksft had no run_kselftest.sh: added 6.1's runner from $fw" >&2
fi
if [ ! -f "$kst/kselftest-list.txt" ]; then
	for c in "$kst"/*/; do
		c=$(basename "$c")
		[ "$c" != kselftest ] || continue
		for t in "$kst/$c"/*; do
			[ -f "$t" ] && [ -x "$t" ] && echo "$c:$(basename "$t")"
		done
	done > "$kst/kselftest-list.txt"
	echo "mkinitramfs: warning: $ksft had no kselftest-list.txt: listed the executables of its folders: $(tr '\n' ' ' < "$kst/kselftest-list.txt" | grep . || echo none)" >&2
fi
ksft_abs=$(cd "$ksft" && pwd -P)
while IFS= read -r -d '' f; do
	is_elf "$f" && elfs+=("$f")
done < <(find "$ksft_abs" -type f -print0)

libs=$(for f in "${elfs[@]}"; do
	ldd "$f" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\) (0x.*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (0x.*/\1/p' || true
done | sort -u)
for lib in $libs; do
	case $lib in "$ksft_abs"/*) continue ;; esac
	mkdir -p "$stage$(dirname "$lib")"
	cp -L "$lib" "$stage$lib"
done

# --- modules in load order (none with --modroot none: all built in).
params_for() {
	case $1 in
	kvm_amd|kvm-amd) echo nested=1 ;;
	esac
}
: > "$stage/etc/vfio_cpr/modules"
: > "$stage/etc/vfio_cpr/modules.missing"
seen=" "
add_ko() { # PATH
	local src=$1 base name
	base=$(basename "$src")
	case $base in
	*.ko) cp "$src" "$stage/lib/modules/vfio_cpr/$base" ;;
	*.ko.xz) base=${base%.xz}; xz -dc "$src" > "$stage/lib/modules/vfio_cpr/$base" ;;
	*.ko.zst) base=${base%.zst}
		command -v zstd >/dev/null || die "$src: install zstd"
		zstd -qdc "$src" > "$stage/lib/modules/vfio_cpr/$base" ;;
	*.ko.gz) base=${base%.gz}; gzip -dc "$src" > "$stage/lib/modules/vfio_cpr/$base" ;;
	*) die "unknown module file type: $src" ;;
	esac
	name=${base%.ko}
	echo "$base $(params_for "$name")" >> "$stage/etc/vfio_cpr/modules"
}
# RELEASE -> the vfio_cpr_mdev.ko provision.sh built for it, or nothing.
provisioned_cpr_mdev() {
	local env=$vmdir/kernel/$1/vm.env ko=''
	if [ -r "$env" ]; then
		ko=$(sed -n "s/^VM_CPR_MDEV_KO='\(.*\)'\$/\1/p" "$env" | tail -n 1)
	fi
	if [ -z "$ko" ] && [ "$1" = "$VM_KVER" ]; then
		ko=$VM_CPR_MDEV_KO
	fi
	echo "$ko"
}
# MODULE -> its dependencies and itself, each once, in load order.
add_with_deps() {
	local deps kind path key
	if ! deps=$(modprobe -d "$modroot" -S "$kver" --show-depends "$1" 2>/dev/null); then
		return 1
	fi
	while read -r kind path _; do
		case $kind in
		insmod) ;;
		builtin) echo "$path(builtin)" >> "$stage/etc/vfio_cpr/modules.missing"; continue ;;
		*) continue ;;
		esac
		key=$(basename "$path")
		case $seen in *" $key "*) continue ;; esac
		seen="$seen$key "
		add_ko "$path"
	done <<< "$deps"
}

if [ -n "$nomods" ]; then
	kver=none
	[ "$mtty" = default ] || [ "$mtty" = none ] || add_ko "$mtty"
	[ "$cpr_mdev" = default ] || [ "$cpr_mdev" = none ] || add_ko "$cpr_mdev"
else
	for m in irqbypass vfio vfio_iommu_type1 vfio_pci_core vfio-pci mdev kvm ccp kvm-amd; do
		add_with_deps "$m" || echo "$m" >> "$stage/etc/vfio_cpr/modules.missing"
	done
	# mtty: the tree's own if it has one, else the one provision.sh built.
	if [ "$mtty" = none ] || add_with_deps mtty; then
		:
	else
		if [ "$mtty" = default ]; then
			mtty=
			if [ -n "$VM_MTTY_KO" ] && [ "$kver" = "$VM_KVER" ]; then
				mtty=$VM_MTTY_KO
			fi
		fi
		if [ -n "$mtty" ]; then
			[ -f "$mtty" ] || die "no such module: $mtty"
			add_ko "$mtty"
		else
			echo "mtty" >> "$stage/etc/vfio_cpr/modules.missing"
			echo "mkinitramfs: warning: no mtty.ko for $kver (pass --mtty)" >&2
		fi
	fi
	# vfio_cpr_mdev (needs vfio and mdev, loaded above): the tree's own
	# if it has one, else the one provision.sh built for this release.
	if [ "$cpr_mdev" = none ] || add_with_deps vfio_cpr_mdev; then
		:
	else
		if [ "$cpr_mdev" = default ]; then
			cpr_mdev=$(provisioned_cpr_mdev "$kver")
		fi
		if [ -n "$cpr_mdev" ]; then
			[ -f "$cpr_mdev" ] || die "no such module: $cpr_mdev"
			add_ko "$cpr_mdev"
		else
			echo "vfio_cpr_mdev" >> "$stage/etc/vfio_cpr/modules.missing"
			echo "mkinitramfs: warning: no vfio_cpr_mdev.ko for $kver (pass --cpr-mdev)" >&2
		fi
	fi
fi
[ -s "$stage/etc/vfio_cpr/modules.missing" ] || rm -f "$stage/etc/vfio_cpr/modules.missing"
[ -z "$bindlist" ] || echo "$bindlist" > "$stage/etc/vfio_cpr/bind"

# --- init, and a console node for the kernel to open before devtmpfs.
install -m 0755 "$init" "$stage/init"
if [ "$(id -u)" -eq 0 ]; then
	mknod -m 0600 "$stage/dev/console" c 5 1
fi

mkdir -p "$(dirname "$out")"
(cd "$stage" && find . -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc -R 0:0 --quiet) | gzip -1 -n > "$out.tmp"
mv "$out.tmp" "$out"
echo "mkinitramfs: $out ($(du -k "$out" | cut -f1) KiB, kernel modules for $kver: $(cut -d' ' -f1 "$stage/etc/vfio_cpr/modules" | sed 's/\.ko$//' | tr '\n' ' '))" >&2
