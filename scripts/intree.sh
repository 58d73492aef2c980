#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Put the vfio_cpr kselftest target into a kernel tree, self-contained:
#	scripts/intree.sh /path/to/linux
# gives tools/testing/selftests/vfio_cpr with the tests, config, settings,
# the library it needs under vfio_cpr/lib (sources, its private headers,
# the API's headers, .mk), and the source of the vfio_cpr_mdev probe module
# under vfio_cpr/mdev (built out of tree: make -C <kernel build tree>
# M=<a copy of it> modules), and the VM runner (vmtest.sh and its helpers
# vmtest-run.sh, vmtest-initramfs.sh, vmtest-init.sh, vmtest.config).
# Then, in the kernel tree:
#	make -C tools/testing/selftests TARGETS=vfio_cpr run_tests
# or, everything on the tree's kernel in a QEMU guest:
#	tools/testing/selftests/vfio_cpr/vmtest.sh
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
ktree=${1:?usage: $0 KERNEL_TREE}
sdir=$ktree/tools/testing/selftests

if [ ! -f "$sdir/lib.mk" ]; then
	echo "intree: $sdir/lib.mk not found: is $ktree a kernel tree?" >&2
	exit 1
fi

dst=$sdir/vfio_cpr
dirs=("$dst" "$dst/lib" "$dst/lib/include/vfio_cpr" "$dst/mdev")
mkdir -p "${dirs[@]}"
# Only a file whose content changed is written, and then with the time of
# the copy: a build of the target in an object tree of its own (make O=...)
# stays incremental across copies, and never takes an older source (from
# another checkout or branch) for one it already built.
declare -A put_files=()
put() {
	local to=${*: -1} f
	for f in "${@:1:$#-1}"; do
		put_files["$to/${f##*/}"]=1
		cmp -s "$f" "$to/${f##*/}" || cp "$f" "$to/"
	done
}
put "$top"/selftests/vfio_cpr/{Makefile,config,settings,vmtest.config} "$dst"
put "$top"/selftests/vfio_cpr/vmtest*.sh "$dst"
put "$top"/selftests/vfio_cpr/*.c "$top"/selftests/vfio_cpr/*.h "$dst"
put "$top"/user/lib/*.[ch] "$top"/user/lib/libvfio_cpr.mk "$dst/lib"
put "$top"/user/include/vfio_cpr/*.h "$dst/lib/include/vfio_cpr"
put "$top"/selftests/vfio_cpr/mdev/{Kbuild,vfio_cpr_mdev.c} "$dst/mdev"
# Whatever else is there (a removed source, an in-tree build's output) goes.
for d in "${dirs[@]}" "$dst/lib/include"; do
	for f in "$d"/* "$d"/.[!.]*; do
		[ -e "$f" ] || continue
		case $f in "$dst/lib" | "$dst/lib/include" | "$dst/lib/include/vfio_cpr" | "$dst/mdev") continue ;; esac
		[ -n "${put_files[$f]:-}" ] || rm -rf "$f"
	done
done
echo "intree: vfio_cpr target in $dst"
