#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Install what the host tier needs from Debian's apt repositories and
# extract the pieces of linux-source-6.1 the project uses (kselftest
# framework, checkpatch, the headers build, the mtty sample) into the
# git-ignored folder .deps/.  Idempotent: a second run does nothing.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
deps=${VFIO_CPR_DEPS:-$top/.deps}
ktree=$deps/linux
stamp=$ktree/.vfio_cpr-extracted
# Bump when the set of extracted paths changes.
layout=2

pkgs=(build-essential make gcc clang llvm lld libclang-rt-14-dev linux-source-6.1 linux-libc-dev
      rsync xz-utils bc flex bison perl python3 kmod cpio valgrind man-db)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "setup-host: installing ${missing[*]}"
	SUDO=
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
		--no-install-recommends "${missing[@]}" >/dev/null
fi

tarball=$(ls /usr/src/linux-source-6.1.tar.xz 2>/dev/null || true)
if [ -z "$tarball" ]; then
	echo "setup-host: /usr/src/linux-source-6.1.tar.xz missing after install" >&2
	exit 1
fi

if [ -f "$stamp" ] && [ "$stamp" -nt "$tarball" ] &&
   [ "$(cat "$stamp")" = "$layout" ]; then
	exit 0
fi

echo "setup-host: extracting kselftest framework, checkpatch and uapi from $tarball"
rm -rf "$ktree.new"
mkdir -p "$ktree.new"
# One pass over the xz stream: everything we need at once.
tar -C "$ktree.new" --strip-components=1 -xJf "$tarball" \
	--wildcards \
	'linux-source-6.1/Makefile' \
	'linux-source-6.1/scripts/*' \
	'linux-source-6.1/include/uapi/*' \
	'linux-source-6.1/include/linux/kconfig.h' \
	'linux-source-6.1/arch/x86/include/uapi/*' \
	'linux-source-6.1/arch/x86/entry/syscalls/*' \
	'linux-source-6.1/arch/x86/Makefile*' \
	'linux-source-6.1/arch/x86/tools/*' \
	'linux-source-6.1/tools/include/*' \
	'linux-source-6.1/tools/scripts/*' \
	'linux-source-6.1/tools/testing/selftests/Makefile' \
	'linux-source-6.1/tools/testing/selftests/lib.mk' \
	'linux-source-6.1/tools/testing/selftests/kselftest*' \
	'linux-source-6.1/tools/testing/selftests/run_kselftest.sh' \
	'linux-source-6.1/tools/testing/selftests/gen_kselftest_tar.sh' \
	'linux-source-6.1/samples/vfio-mdev/*' \
	'linux-source-6.1/*Kconfig*'
echo "$layout" > "$ktree.new/.vfio_cpr-extracted"
rm -rf "$ktree"
mv "$ktree.new" "$ktree"
echo "setup-host: kernel pieces in $ktree"
