#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Usage: scripts/vm/build-kernel.sh [-q] [--jobs N]
#
# Build the VM tier's own guest kernel, with iommufd and the vfio cdev
# (CONFIG_IOMMUFD, CONFIG_VFIO_DEVICE_CDEV), which Debian's kernels lack,
# from Debian's linux-source-6.12, into the git-ignored folder .deps/vm/own/:
#
#   * installs bc, bison, flex, libelf-dev, libssl-dev, cpio, xz-utils, kmod,
#     rsync, gcc and make (only what is missing);
#   * fetches linux-source-6.12 with `apt-get download` (never installed;
#     the .deb is deleted once extracted) and extracts its tarball into
#     .deps/vm/own/src/linux-<version>/ (delete that folder to pick up a
#     newer linux-source-6.12);
#   * configures out of tree in .deps/vm/own/obj/linux-<version>/: an
#     allnoconfig preseeded (merge_config.sh -n) with selftests/vfio_cpr/
#     config and selftests/vfio_cpr/vmtest.config (the fragment the target's
#     vmtest.sh merges too: one fragment for both), then olddefconfig; fails
#     unless every line of vmtest.config ended up in .config as written and
#     every option selftests/vfio_cpr/config enables is enabled;
#   * builds vmlinux (PVH-bootable ELF), bzImage and the modules (mtty.ko
#     among them, from samples/), logging to <obj>/build.log (its tail is
#     shown on failure);
#   * installs into <out> = .deps/vm/own/<kernelrelease>/: vmlinux, bzImage,
#     config, modroot/lib/modules/<kernelrelease>/ (modules_install,
#     stripped) and usr/include/ (headers_install: the 6.12 uapi, with
#     linux/iommufd.h);
#   * builds the project's probe module vfio_cpr_mdev.ko (selftests/
#     vfio_cpr/mdev/) out of tree against <obj>, in .deps/vm/own/cpr-mdev/
#     <kernelrelease>/, and installs it into the modroot's extra/ (with
#     depmod), so that modprobe -d <out>/modroot finds it;
#   * writes <out>/vm.env in provision.sh's format (VM_KVER, VM_VMLINUX,
#     VM_VMLINUZ, VM_MODROOT, VM_MTTY_KO, VM_MTTY_SRC, VM_CPR_MDEV_KO) plus
#     VM_UAPI_INCLUDE, VM_KSRC and VM_KOBJ (the source and object trees),
#     and prints its path as the last line on stdout.  .deps/vm/current.env
#     (Debian's kernel, the default of run.sh) is left alone.
#
# Boot it with: scripts/vm/run.sh --kselftest-dir DIR --kernel <out>/vmlinux
# --modules <out>/modroot; `make check-vm-iommufd` (scripts/check-vm-own.sh)
# runs the target's vmtest.sh in <src> with -d <obj> instead, which finds
# the object tree configured and built.
#
# Idempotent: each step leaves a stamp (a hash of its inputs); a second run
# with nothing changed only checks the package list and the stamps.
# --jobs N: parallel make jobs (default: nproc).  -q: print nothing but
# errors and the vm.env path.  VFIO_CPR_DEPS overrides <top>/.deps.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
deps=${VFIO_CPR_DEPS:-$top/.deps}
vmdir=$deps/vm
own=$vmdir/own
pkg=linux-source-6.12
frag=$top/selftests/vfio_cpr/vmtest.config
ksft_frag=$top/selftests/vfio_cpr/config
quiet=
jobs=$(nproc)

say() { [ -n "$quiet" ] || echo "build-kernel: $*" >&2; }
die() { echo "build-kernel: error: $*" >&2; exit 1; }
usage() { sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
	case $1 in
	-q) quiet=1; shift ;;
	--jobs|-j) [ $# -ge 2 ] || die "$1 needs a number"; jobs=$2; shift 2 ;;
	--jobs=*) jobs=${1#--jobs=}; shift ;;
	-h|--help) usage 0 ;;
	*) echo "build-kernel: unknown argument '$1'" >&2; usage 2 >&2 ;;
	esac
done
[[ $jobs =~ ^[1-9][0-9]*$ ]] || die "--jobs takes a positive integer, not '$jobs'"
[ -r "$frag" ] || die "missing $frag"

# shellcheck source=scripts/vm/apt.sh
. "$(dirname "$0")/apt.sh"

now() { date +%s; }
t0=$(now)
since() { echo "$(( $(now) - $1 ))s"; }

# One build at a time.
mkdir -p "$own"
exec 9>"$own/.build.lock"
flock 9

# A kernel mutant (scripts/check-kernel-mutants.sh) left applied by a run
# that was killed outright: put the sources back before anything is built.
# shellcheck source=scripts/vm/mutant-journal.sh
. "$(dirname "$0")/mutant-journal.sh"
journal_recover "$own" >&2

install_pkgs bc bison flex libelf-dev libssl-dev cpio xz-utils rsync gcc \
	make kmod

# 1. The source: linux-source-6.12's tarball, extracted once.
src=
for d in "$own"/src/linux-*/; do
	[ -f "$d.stamp-extracted" ] && src=${d%/}
done
if [ -z "$src" ]; then
	mkdir -p "$vmdir/debs" "$own/src"
	# provision.sh fetches (and deletes) the same .deb for mtty.c: hold
	# its lock while this one is in .deps/vm/debs.
	exec 8>"$vmdir/.provision.lock"
	flock 8
	apt_download "$vmdir/debs" "$pkg"
	deb=$apt_deb
	debver=$(dpkg-deb -f "$deb" Version) || die "cannot read the version of $deb"
	src=$own/src/linux-${debver%%-*}
	member=$(dpkg-deb -c "$deb" | sed -n 's|.* \(\./usr/src/linux-source-[^ ]*\.tar\.xz\)$|\1|p' | head -n1)
	[ -n "$member" ] || die "$deb holds no usr/src/linux-source-*.tar.xz"
	say "extracting $(basename "$deb") into $src"
	t=$(now)
	rm -rf "$src" "$src.tmp"
	mkdir -p "$src.tmp"
	dpkg-deb --fsys-tarfile "$deb" | tar -xOf - "$member" |
		tar -xJf - -C "$src.tmp" || die "cannot extract $member from $deb"
	top_dirs=("$src.tmp"/*/)
	if [ ${#top_dirs[@]} -ne 1 ] || [ ! -f "${top_dirs[0]}Makefile" ]; then
		die "$member does not hold one kernel tree"
	fi
	mv "${top_dirs[0]}" "$src"
	rmdir "$src.tmp"
	basename "$deb" > "$src/.stamp-extracted"
	rm -f "$deb"
	exec 8>&-
	say "extracted in $(since "$t")"
fi
srcname=$(basename "$src")
obj=$own/obj/$srcname
log=$obj/build.log
mkdir -p "$obj"

# x86_64 whatever the environment says; LOCALVERSION= keeps
# setlocalversion from appending a "+" (the tree sits in our git work tree).
export ARCH=x86_64
kmake() { make -C "$src" O="$obj" LOCALVERSION= "$@"; }
# Run a make step, its output appended to the log; show the log's tail on
# failure.
logged() { # WHAT MAKE-ARGS...
	local what=$1
	shift
	echo "### $(date '+%F %T') make $*" >> "$log"
	if ! kmake "$@" >> "$log" 2>&1; then
		echo "build-kernel: error: $what failed; the last 40 lines of $log:" >&2
		tail -n 40 "$log" >&2
		exit 1
	fi
}
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# 2. Configure: allnoconfig preseeded with the fragments, olddefconfig,
# then check that every requested value is in .config.
frags=()
[ -r "$ksft_frag" ] && frags+=("$ksft_frag")
frags+=("$frag")
# The config's inputs: the fragments, the source and this step's recipe.
cfg_sum=$(hash_of "${frags[@]}" "$src/.stamp-extracted" <(echo "allnoconfig+merge_config-n+olddefconfig v1"))

# Does .config hold every line of FILE (a "# CONFIG_X is not set" line:
# X must be neither y nor m)?  Names each missing one.
check_exact() { # FILE
	local line name want have bad=0 fname=${1##*/}
	while IFS= read -r line; do
		case $line in
		CONFIG_*=*) name=${line%%=*}; want=${line#*=} ;;
		"# CONFIG_"*" is not set") name=${line#\# }; name=${name%% *}; want=n ;;
		*) continue ;;
		esac
		have=$(sed -n "s/^$name=//p" "$obj/.config")
		[ -n "$have" ] || have=n
		if [ "$have" != "$want" ]; then
			echo "build-kernel: error: $name is '$have' in $obj/.config, $fname wants '$want'" >&2
			bad=1
		fi
	done < "$1"
	return $bad
}
# Is every option FILE sets to y or m enabled (y or m) in .config?
check_enabled() { # FILE
	local name have bad=0
	while IFS= read -r name; do
		have=$(sed -n "s/^$name=//p" "$obj/.config")
		case $have in
		y|m) ;;
		*) echo "build-kernel: error: $name is '${have:-n}' in $obj/.config, $1 enables it" >&2
			bad=1 ;;
		esac
	done < <(sed -n 's/^\(CONFIG_[A-Za-z0-9_]*\)=[ym]$/\1/p' "$1")
	return $bad
}

if [ ! -f "$obj/.config" ] || [ "$(cat "$obj/.stamp-config" 2>/dev/null)" != "$cfg_sum" ]; then
	say "configuring $srcname (allnoconfig + ${frags[*]##*/})"
	rm -f "$obj/.stamp-config"
	echo "### $(date '+%F %T') configure" > "$log"
	# merge_config.sh -n: allnoconfig with KCONFIG_ALLCONFIG = the merged
	# fragments, in $obj; it warns about values that did not stick.
	if ! (cd "$src" && scripts/kconfig/merge_config.sh -n -O "$obj" \
			"${frags[@]}") >> "$log" 2>&1; then
		tail -n 40 "$log" >&2
		die "merge_config.sh failed (log: $log)"
	fi
	logged "make olddefconfig" olddefconfig
	ok=1
	check_exact "$frag" || ok=
	[ "${#frags[@]}" -eq 1 ] || check_enabled "$ksft_frag" || ok=
	[ -n "$ok" ] || die "$obj/.config lacks required options (see above; log: $log)"
	echo "$cfg_sum" > "$obj/.stamp-config"
fi
krel=$(kmake -s --no-print-directory kernelrelease 2>/dev/null) || die "make kernelrelease failed"
[ -n "$krel" ] || die "make kernelrelease printed nothing"

# 3. Build.
build_sum=$(hash_of "$obj/.config" "$src/.stamp-extracted")
# Sources put back from a mutant's journal: rebuild what it left in $obj.
[ -z "${JOURNAL_RECOVERED:-}" ] || rm -f "$obj/.stamp-build"
if [ "$(cat "$obj/.stamp-build" 2>/dev/null)" != "$build_sum" ] ||
		[ ! -f "$obj/vmlinux" ] || [ ! -f "$obj/arch/x86/boot/bzImage" ]; then
	say "building $krel with -j$jobs (log: $log)"
	t=$(now)
	rm -f "$obj/.stamp-build"
	logged "the kernel build" -j"$jobs" vmlinux bzImage modules
	echo "$build_sum" > "$obj/.stamp-build"
	journal_clean "$own"
	say "built in $(since "$t")"
fi

# 4. Install into <out>.
out=$own/$krel
if [ "$(cat "$out/.stamp-install" 2>/dev/null)" != "$build_sum" ]; then
	say "installing into $out"
	rm -rf "$out"
	mkdir -p "$out"
	logged "modules_install" modules_install INSTALL_MOD_PATH="$out/modroot" \
		INSTALL_MOD_STRIP=1
	logged "headers_install" headers_install INSTALL_HDR_PATH="$out/usr"
	cp "$obj/vmlinux" "$out/vmlinux"
	cp "$obj/arch/x86/boot/bzImage" "$out/bzImage"
	cp "$obj/.config" "$out/config"
	# No build/source links to the tree: the modroot is copied around.
	rm -f "$out/modroot/lib/modules/$krel/build" "$out/modroot/lib/modules/$krel/source"
	echo "$build_sum" > "$out/.stamp-install"
fi
moddir=$out/modroot/lib/modules/$krel
[ -s "$moddir/modules.dep" ] || die "no $moddir/modules.dep"
[ -f "$out/usr/include/linux/iommufd.h" ] || die "no $out/usr/include/linux/iommufd.h"
mtty_ko=$(find "$moddir/kernel" -name mtty.ko -print -quit)

# 4b. vfio_cpr_mdev.ko, the project's probe mdev: built out of tree against
# $obj in a folder of ours (never in selftests/), installed into the
# modroot's extra/ (modules_install runs depmod); redone when the kernel or
# the module's source changes.
cpr_mdev_src=$top/selftests/vfio_cpr/mdev
cpr_mdev_dir=$own/cpr-mdev/$krel
cpr_mdev_ko=$moddir/extra/vfio_cpr_mdev.ko
for f in vfio_cpr_mdev.c Kbuild; do
	[ -f "$cpr_mdev_src/$f" ] || die "missing $cpr_mdev_src/$f"
done
cpr_mdev_sum=$(hash_of "$cpr_mdev_src/vfio_cpr_mdev.c" "$cpr_mdev_src/Kbuild" <(echo "$build_sum"))
if [ "$(cat "$out/.stamp-cpr-mdev" 2>/dev/null)" != "$cpr_mdev_sum" ] ||
		[ ! -f "$cpr_mdev_ko" ]; then
	say "building vfio_cpr_mdev.ko against $obj"
	rm -f "$out/.stamp-cpr-mdev"
	rm -rf "$cpr_mdev_dir"
	mkdir -p "$cpr_mdev_dir"
	cp "$cpr_mdev_src/vfio_cpr_mdev.c" "$cpr_mdev_src/Kbuild" "$cpr_mdev_dir/"
	cpr_mdev_log=$cpr_mdev_dir/build.log
	if ! make -C "$obj" M="$cpr_mdev_dir" modules > "$cpr_mdev_log" 2>&1; then
		tail -n 40 "$cpr_mdev_log" >&2
		die "vfio_cpr_mdev.ko build failed (log: $cpr_mdev_log)"
	fi
	if grep -q 'warning:' "$cpr_mdev_log"; then
		cat "$cpr_mdev_log" >&2
		die "vfio_cpr_mdev.ko built with warnings (log: $cpr_mdev_log)"
	fi
	if ! make -C "$obj" M="$cpr_mdev_dir" modules_install \
			INSTALL_MOD_PATH="$out/modroot" INSTALL_MOD_DIR=extra \
			INSTALL_MOD_STRIP=1 >> "$cpr_mdev_log" 2>&1; then
		tail -n 40 "$cpr_mdev_log" >&2
		die "vfio_cpr_mdev.ko modules_install failed (log: $cpr_mdev_log)"
	fi
	[ -f "$cpr_mdev_ko" ] || die "modules_install left no $cpr_mdev_ko"
	# modules_install ran depmod (-ae -F System.map) on the modroot.
	modprobe -d "$out/modroot" -S "$krel" --show-depends vfio_cpr_mdev >/dev/null ||
		die "modprobe -d $out/modroot does not find vfio_cpr_mdev"
	echo "$cpr_mdev_sum" > "$out/.stamp-cpr-mdev"
fi

# 5. Record what was made.
cat > "$out/vm.env.tmp" <<EOF
# Written by scripts/vm/build-kernel.sh; for scripts/vm/run.sh --kernel
# \$VM_VMLINUX --modules \$VM_MODROOT.
VM_KVER='$krel'
VM_VMLINUX='$out/vmlinux'
VM_VMLINUZ='$out/bzImage'
VM_MODROOT='$out/modroot'
VM_MTTY_KO='$mtty_ko'
VM_MTTY_SRC='$src/samples/vfio-mdev/mtty.c'
VM_CPR_MDEV_KO='$cpr_mdev_ko'
VM_UAPI_INCLUDE='$out/usr/include'
VM_KSRC='$src'
VM_KOBJ='$obj'
EOF
mv "$out/vm.env.tmp" "$out/vm.env"
say "ready: kernel $krel in $out ($(since "$t0"))"
echo "$out/vm.env"
