#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Run the kernel's checkpatch.pl (from the extracted linux-source-6.1) over
# every C source and header of the project: --strict, no errors, warnings
# or checks allowed.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cp_pl=${CHECKPATCH:-$top/.deps/linux/scripts/checkpatch.pl}
if [ ! -f "$cp_pl" ]; then
	echo "checkpatch: $cp_pl missing: run scripts/setup-host.sh" >&2
	exit 1
fi

cd "$top"
mapfile -t files < <(git ls-files -co --exclude-standard '*.c' '*.h')
bad=0
for f in "${files[@]}"; do
	# The header that defines __printf/__noreturn for userspace spells out
	# the __attribute__ those macros stand for: the one place where
	# checkpatch's "use the macro" (PREFER_DEFINED_ATTRIBUTE_MACRO) cannot
	# apply - it fires on the kernel's own compiler_attributes.h too.
	ignore=()
	[ "$f" != user/include/vfio_cpr/compiler.h ] ||
		ignore=(--ignore PREFER_DEFINED_ATTRIBUTE_MACRO)
	out=$(perl "$cp_pl" --no-tree --strict --quiet --show-types "${ignore[@]}" -f "$f" 2>&1) || true
	if [ -n "$out" ]; then
		echo "$out"
		bad=$((bad + 1))
	fi
done
echo "checkpatch: ${#files[@]} files, $bad with findings"
[ "$bad" -eq 0 ]
