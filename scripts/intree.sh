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
rm -rf "$dst"
mkdir -p "$dst/lib/include/vfio_cpr" "$dst/mdev"
# cp -p: the sources keep their times, so that a build of the target in
# an object tree of its own (make O=...) stays incremental across copies.
cp -p "$top"/selftests/vfio_cpr/{Makefile,config,settings,vmtest.config} "$dst/"
cp -p "$top"/selftests/vfio_cpr/vmtest*.sh "$dst/"
cp -p "$top"/selftests/vfio_cpr/*.c "$top"/selftests/vfio_cpr/*.h "$dst/"
cp -p "$top"/user/lib/*.[ch] "$top"/user/lib/libvfio_cpr.mk "$dst/lib/"
cp -p "$top"/user/include/vfio_cpr/*.h "$dst/lib/include/vfio_cpr/"
cp -p "$top"/selftests/vfio_cpr/mdev/{Kbuild,vfio_cpr_mdev.c} "$dst/mdev/"
echo "intree: vfio_cpr target in $dst"
