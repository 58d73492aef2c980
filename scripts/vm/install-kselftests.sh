#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Usage: scripts/vm/install-kselftests.sh DIR [--uapi INCLUDE_DIR]
#
# Install the vfio_cpr kselftests the way a kernel developer does, for the
# VM tier: scripts/intree.sh into .deps/linux, then
#	make -C tools/testing/selftests TARGETS=vfio_cpr O=DIR-obj \
#	     install INSTALL_PATH=DIR
# (USERCFLAGS=-Werror; LLVM= from the environment is passed on).  --uapi
# builds against those uapi headers (KHDR_INCLUDES=-isystem DIR, the
# usr/include of `make headers_install`): the cdev/iommufd variants need
# 6.6+ headers, which the host's 6.1 ones are not.  DIR is emptied first.
# On failure the make log is shown.  Prints the installed programs, one
# line, as "installed in DIR: NAME...".
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
ktree=${VFIO_CPR_DEPS:-$top/.deps}/linux
inst=${1:?usage: $0 DIR [--uapi INCLUDE_DIR]}
shift
uapi=''
while [ $# -gt 0 ]; do
	case $1 in
	--uapi) uapi=$2; shift 2 ;;
	*) echo "install-kselftests: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
[ -z "$uapi" ] || [ -f "$uapi/linux/vfio.h" ] ||
	{ echo "install-kselftests: --uapi $uapi holds no linux/vfio.h" >&2; exit 2; }

"$top/scripts/setup-host.sh"
# The target is copied into the shared tree, then built from there: one
# install at a time (two checkouts of the project may share .deps).
exec 8>"$ktree/.install-kselftests.lock"
flock 8
"$top/scripts/intree.sh" "$ktree" >/dev/null
inst=$(mkdir -p "$inst" && cd "$inst" && pwd)
obj=$inst-obj
log=$inst-install.log
rm -rf "$inst" "$obj"
make_args=()
[ -z "${LLVM:-}" ] || make_args+=("LLVM=$LLVM")
[ -z "$uapi" ] || make_args+=("KHDR_INCLUDES=-isystem $(cd "$uapi" && pwd)")
if ! make -s -C "$ktree/tools/testing/selftests" TARGETS=vfio_cpr \
		USERCFLAGS=-Werror "${make_args[@]}" O="$obj" \
		INSTALL_PATH="$inst" install > "$log" 2>&1; then
	cat "$log" >&2
	echo "install-kselftests: building/installing the kselftests failed" >&2
	exit 1
fi
mapfile -t listed < <(sed -n 's/^vfio_cpr://p' "$inst/kselftest-list.txt")
if [ ${#listed[@]} -eq 0 ]; then
	echo "install-kselftests: $inst/kselftest-list.txt lists no vfio_cpr program" >&2
	exit 1
fi
echo "installed in $inst: ${listed[*]}"
