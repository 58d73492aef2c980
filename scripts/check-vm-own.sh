#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Usage: scripts/check-vm-own.sh [options of vmtest.sh]
#
# `make check-vm-iommufd`: the VM tier on our own kernel (Debian's
# linux-source-6.12 with CONFIG_IOMMUFD and CONFIG_VFIO_DEVICE_CDEV, which
# Debian's kernels lack), run exactly as a kernel developer runs it:
#   1. scripts/vm/build-kernel.sh: the tree in .deps/vm/own/src/linux-<v>,
#      built in .deps/vm/own/obj/linux-<v> with the target's config and
#      vmtest.config (cached: a second run takes seconds);
#   2. scripts/intree.sh into that tree;
#   3. there, tools/testing/selftests/vfio_cpr/vmtest.sh -d <that obj> -S
#      (strict, as CI: a skip fails unless the test does not apply to the
#      device; this kernel has iommufd, so the cdev_* variants must run),
#      with USERCFLAGS=-Werror and the machine's VM lock (.deps/vm/.vm.lock);
#      its workspace is build/vmtest-own, its KTAP build/vmtest-own.ktap;
#   4. the KTAP through the tree's own parser, tools/testing/kunit/kunit.py
#      parse: the whole stream and each program's part
#      (scripts/check-ktap.sh --kselftest).
# The own kernel's build lock (.deps/vm/own/.build.lock) is held from step 2
# on: the kernel mutant zoo patches that tree under it.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
deps=${VFIO_CPR_DEPS:-$top/.deps}
say() { echo "# check-vm-own: $*"; }
now() { date +%s; }

t0=$(now)
env_file=$("$top/scripts/vm/build-kernel.sh" -q | tail -n 1)
# shellcheck disable=SC1090
. "$env_file"
own=$(dirname "$(dirname "$env_file")")
say "own kernel $VM_KVER ready ($(($(now) - t0))s): tree $VM_KSRC, object tree $VM_KOBJ"
exec 8>"$own/.build.lock"
flock 8
"$top/scripts/intree.sh" "$VM_KSRC" >/dev/null

ws=$top/build/vmtest-own
ktap=$top/build/vmtest-own.ktap
mkdir -p "$ws"
rc=0
say "$VM_KSRC/tools/testing/selftests/vfio_cpr/vmtest.sh -d $VM_KOBJ -S -w $ws $*"
VFIO_CPR_VM_LOCK=$deps/vm/.vm.lock USERCFLAGS=-Werror \
	"$VM_KSRC/tools/testing/selftests/vfio_cpr/vmtest.sh" -d "$VM_KOBJ" -S \
	-w "$ws" "$@" | tee "$ktap" || rc=$?
[ "$rc" -eq 0 ] || { say "vmtest.sh failed (status $rc)"; exit "$rc"; }
"$top/scripts/check-ktap.sh" --kselftest "$ktap"
say "passed in $(($(now) - t0))s"
