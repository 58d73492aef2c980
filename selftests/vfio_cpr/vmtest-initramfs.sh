#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Usage: vmtest-initramfs.sh --kselftest-dir DIR -o FILE
#            --modroot DIR|none [--kver RELEASE] [--mtty FILE|none]...
#            [--cpr-mdev FILE|none]... [--bind VVVV:DDDD,...] [--init FILE]
#            [--framework DIR] [--gen-init-cpio FILE] [--bash]
#
# Part of the vfio_cpr kselftest target's VM runner (vmtest.sh): build the
# gzip'd cpio initramfs the guest boots with:
#   /init               vmtest-init.sh beside this script (or --init FILE)
#   /bin/busybox        the host's busybox (busybox-static), with its applet
#                       symlinks
#   /usr/bin/timeout    coreutils' timeout: kselftest's runner.sh calls
#                       `/usr/bin/timeout --foreground`, which busybox's
#                       applet rejects
#   /lib/modules/vfio_cpr/*.ko and /etc/vfio_cpr/modules (load order)
#                       vfio, vfio_iommu_type1, vfio_pci_core, vfio-pci, mdev,
#                       irqbypass, kvm, kvm-amd and kvm-intel (nested=1;
#                       init loads the one the guest's CPU has), ccp and
#                       their dependencies, resolved on the host with
#                       `modprobe -d MODROOT -S RELEASE --show-depends`;
#                       then mtty.ko, then vfio_cpr_mdev.ko (the target's
#                       probe mdev, mdev/)
#   /kselftest          a copy of DIR, the output of `make -C
#                       tools/testing/selftests TARGETS=vfio_cpr install
#                       INSTALL_PATH=DIR` (run_kselftest.sh, kselftest/,
#                       kselftest-list.txt, vfio_cpr/...)
#   the shared libraries (and the dynamic loader) that `ldd` lists for
#   every ELF file in DIR and for the extra host binaries.
#
# --modroot: a tree holding lib/modules/RELEASE (INSTALL_MOD_PATH of
# modules_install; a lib/modules/RELEASE folder itself is accepted too), or
# "none" (everything built in).  --kver: the release, when the tree holds
# several.  --mtty and --cpr-mdev (repeatable): modules to use when MODROOT
# has no mtty or vfio_cpr_mdev of its own; the first whose vermagic names
# RELEASE is taken ("none": do not add that module at all).
# --bind writes the default PCI id list (/etc/vfio_cpr/bind; the kernel
# command line's vfio_cpr.bind= wins).  --framework: a kernel tree's
# tools/testing/selftests to take run_kselftest.sh and kselftest/ from when
# DIR lacks them (a standalone install of the target; default: the folder
# above this script, when it has run_kselftest.sh).  --gen-init-cpio: a
# kernel build's usr/gen_init_cpio, used to pack when the host has no cpio.
# --bash also installs the host's bash as /bin/bash (run_kselftest.sh and
# runner.sh run fine under busybox sh, so it is not needed by default).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

die() { echo "vmtest-initramfs: error: $*" >&2; exit 1; }
usage() { sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit "${1:-0}"; }

ksft='' out='' modroot='' kver='' mttys=() cpr_mdevs=()
init=$here/vmtest-init.sh bindlist='' want_bash='' framework='' gen_cpio=''
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || case $1 in --bash|-h|--help) ;; *) die "$1 needs a value" ;; esac
	case $1 in
	--kselftest-dir) ksft=$2; shift 2 ;;
	-o|--output) out=$2; shift 2 ;;
	--modroot|--modules) modroot=$2; shift 2 ;;
	--kver) kver=$2; shift 2 ;;
	--mtty) mttys+=("$2"); shift 2 ;;
	--cpr-mdev) cpr_mdevs+=("$2"); shift 2 ;;
	--bind) bindlist=$2; shift 2 ;;
	--init) init=$2; shift 2 ;;
	--framework) framework=$2; shift 2 ;;
	--gen-init-cpio) gen_cpio=$2; shift 2 ;;
	--bash) want_bash=1; shift ;;
	-h|--help) usage 0 ;;
	*) echo "vmtest-initramfs: unknown argument '$1'" >&2; usage 1 >&2 ;;
	esac
done
[ -n "$ksft" ] || die "--kselftest-dir is required"
[ -d "$ksft" ] || die "no such directory: $ksft"
[ -n "$out" ] || die "-o FILE is required"
[ -r "$init" ] || die "no such init script: $init"
[ -n "$modroot" ] || die "--modroot DIR (or none) is required"
if [ -z "$framework" ] && [ -f "$here/../run_kselftest.sh" ]; then
	framework=$here/..
fi

# What the image is made of, from the host: name the package to install.
need() { # COMMAND DEBIAN-PACKAGE
	command -v "$1" >/dev/null ||
		die "$1 not found: install it (Debian/Ubuntu package $2)"
}
need busybox busybox-static
need timeout coreutils
need ldd libc-bin
need gzip gzip
[ "$modroot" = none ] || { need modprobe kmod; need depmod kmod; need modinfo kmod; }
if ! command -v cpio >/dev/null; then
	[ -n "$gen_cpio" ] ||
		die "cpio not found: install it (Debian/Ubuntu package cpio), or pass --gen-init-cpio (a kernel build's usr/gen_init_cpio)"
	[ -x "$gen_cpio" ] || die "no such program: $gen_cpio"
fi
nomods=
if [ "$modroot" = none ]; then
	nomods=1
else
	[ -d "$modroot" ] || die "no such directory: $modroot"
	modroot=$(cd "$modroot" && pwd)
fi

stage=
cleanup() { [ -z "$stage" ] || rm -rf "$stage" "$stage.modroot" "$stage.list"; }
trap cleanup EXIT
mkdir -p "$(dirname "$out")"
stage=$(mktemp -d "$(dirname "$out")/.initramfs-stage.XXXXXX")

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
		echo "vmtest-initramfs: running depmod for $kver in $modroot" >&2
		depmod -b "$modroot" "$kver"
	fi
}
[ -n "$nomods" ] || resolve_modroot

# --- busybox and its applets.
bb=$(command -v busybox)
cp -L "$bb" "$stage/bin/busybox"
# A dynamic busybox (Debian's package busybox) works too: its libraries
# go in with the others'.
elfs=("$bb")
while read -r applet; do
	[ -n "$applet" ] || continue
	case $applet in bin/busybox|usr/bin/timeout) continue ;; esac
	mkdir -p "$stage/$(dirname "$applet")"
	ln -sf /bin/busybox "$stage/$applet"
done < <("$stage/bin/busybox" --list-full)

# --- host binaries, and libraries for everything dynamic.
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
	fw=$framework
	if [ -z "$fw" ] || [ ! -f "$fw/run_kselftest.sh" ]; then
		die "$ksft has no run_kselftest.sh: install the target from a kernel tree (make -C tools/testing/selftests TARGETS=vfio_cpr install), or pass --framework TREE/tools/testing/selftests"
	fi
	if [ ! -d "$kst/vfio_cpr" ]; then
		mkdir "$stage/vfio_cpr.tmp"
		find "$kst" -mindepth 1 -maxdepth 1 -exec mv -t "$stage/vfio_cpr.tmp" {} +
		mv "$stage/vfio_cpr.tmp" "$kst/vfio_cpr"
	fi
	mkdir -p "$kst/kselftest"
	cp "$fw/run_kselftest.sh" "$kst/"
	cp "$fw/kselftest/runner.sh" "$fw/kselftest/prefix.pl" "$kst/kselftest/"
	echo "vmtest-initramfs: warning: $ksft had no run_kselftest.sh: added the runner of $fw" >&2
fi
if [ ! -f "$kst/kselftest-list.txt" ]; then
	for c in "$kst"/*/; do
		c=$(basename "$c")
		[ "$c" != kselftest ] || continue
		for t in "$kst/$c"/*; do
			[ -f "$t" ] && [ -x "$t" ] && echo "$c:$(basename "$t")"
		done
	done > "$kst/kselftest-list.txt"
	echo "vmtest-initramfs: warning: $ksft had no kselftest-list.txt: listed the executables of its folders: $(tr '\n' ' ' < "$kst/kselftest-list.txt" | grep . || echo none)" >&2
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
	kvm_amd|kvm-amd|kvm_intel|kvm-intel) echo nested=1 ;;
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
		command -v zstd >/dev/null || die "$src: install zstd (Debian/Ubuntu package zstd)"
		zstd -qdc "$src" > "$stage/lib/modules/vfio_cpr/$base" ;;
	*.ko.gz) base=${base%.gz}; gzip -dc "$src" > "$stage/lib/modules/vfio_cpr/$base" ;;
	*) die "unknown module file type: $src" ;;
	esac
	name=${base%.ko}
	echo "$base $(params_for "$name")" >> "$stage/etc/vfio_cpr/modules"
}
# The first of the FILE arguments built for $kver (its vermagic's first
# word), or nothing.
pick_for_kver() { # FILE...
	local f rel
	for f in "$@"; do
		[ -f "$f" ] || die "no such module: $f"
		rel=$(modinfo -F vermagic "$f" 2>/dev/null | awk '{ print $1; exit }')
		if [ "$rel" = "$kver" ]; then
			echo "$f"
			return
		fi
	done
}
wants() { # LIST...: 0 unless the list is "none"
	[ $# -ne 1 ] || [ "$1" != none ]
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
	for m in "${mttys[@]}" "${cpr_mdevs[@]}"; do
		[ "$m" = none ] || add_ko "$m"
	done
else
	for m in irqbypass vfio vfio_iommu_type1 vfio_pci_core vfio-pci mdev kvm ccp kvm-amd kvm-intel; do
		add_with_deps "$m" || echo "$m" >> "$stage/etc/vfio_cpr/modules.missing"
	done
	# mtty: the tree's own if it has one, else a --mtty built for kver.
	# vfio_cpr_mdev (needs vfio and mdev, loaded above) likewise.
	for m in mtty vfio_cpr_mdev; do
		if [ "$m" = mtty ]; then
			cands=("${mttys[@]}") opt=--mtty
		else
			cands=("${cpr_mdevs[@]}") opt=--cpr-mdev
		fi
		if ! wants "${cands[@]}" || add_with_deps "$m"; then
			continue
		fi
		ko=
		[ ${#cands[@]} -eq 0 ] || ko=$(pick_for_kver "${cands[@]}")
		if [ -n "$ko" ]; then
			add_ko "$ko"
		else
			echo "$m" >> "$stage/etc/vfio_cpr/modules.missing"
			echo "vmtest-initramfs: warning: no $m.ko for $kver (none in $modroot; pass $opt FILE)" >&2
		fi
	done
fi
[ -s "$stage/etc/vfio_cpr/modules.missing" ] || rm -f "$stage/etc/vfio_cpr/modules.missing"
[ -z "$bindlist" ] || echo "$bindlist" > "$stage/etc/vfio_cpr/bind"

# --- init, and a console node for the kernel to open before devtmpfs.
install -m 0755 "$init" "$stage/init"
if [ "$(id -u)" -eq 0 ]; then
	mknod -m 0600 "$stage/dev/console" c 5 1
fi

if command -v cpio >/dev/null; then
	(cd "$stage" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc -R 0:0 --quiet) | gzip -1 -n > "$out.tmp"
else
	# The kernel's own packer reads a list: type, path, source, mode, ids.
	(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | while IFS= read -r f; do
		p=${f#.}
		m=$(stat -c %a "$f")
		if [ -L "$f" ]; then
			echo "slink $p $(readlink "$f") $m 0 0"
		elif [ -d "$f" ]; then
			echo "dir $p $m 0 0"
		elif [ -c "$f" ]; then
			read -r ma mi < <(stat -c '%t %T' "$f")
			echo "nod $p $m 0 0 c $((16#$ma)) $((16#$mi))"
		else
			echo "file $p $stage/${f#./} $m 0 0"
		fi
	done) > "$stage.list"
	"$gen_cpio" "$stage.list" | gzip -1 -n > "$out.tmp"
	rm -f "$stage.list"
fi
mv "$out.tmp" "$out"
echo "vmtest-initramfs: $out ($(du -k "$out" | cut -f1) KiB, kernel modules for $kver: $(cut -d' ' -f1 "$stage/etc/vfio_cpr/modules" | sed 's/\.ko$//' | tr '\n' ' '))" >&2
