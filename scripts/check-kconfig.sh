#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Check the kernel config fragments against linux-source-6.1's Kconfig:
# every option exists there, selftests/vfio_cpr/config holds exactly the
# options of Kconfig.snippet, and merge_config.sh merges the snippet into
# Debian's own kernel config without conflicts.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
ktree=${1:-$top/.deps/linux}
snippet=$top/Kconfig.snippet
frag=$top/selftests/vfio_cpr/config
bad=0

opts() { grep -E '^CONFIG_[A-Z0-9_]+=' "$1" | sort; }

if ! diff <(opts "$snippet") <(opts "$frag") >/dev/null; then
	echo "kconfig: Kconfig.snippet and selftests/vfio_cpr/config differ:" >&2
	diff <(opts "$snippet") <(opts "$frag") >&2 || true
	bad=1
fi

while IFS='=' read -r name _; do
	sym=${name#CONFIG_}
	if ! grep -rqE "^(menu)?config $sym\$" --include='Kconfig*' "$ktree"; then
		echo "kconfig: $name is not defined by any Kconfig in $ktree" >&2
		bad=1
	fi
done < <(opts "$snippet")

base=$(ls /usr/src/linux-config-6.1/config.amd64_none_amd64.xz 2>/dev/null || true)
if [ -n "$base" ]; then
	tmp=$(mktemp -d)
	xz -dc "$base" > "$tmp/.config"
	out=$(cd "$tmp" && KCONFIG_CONFIG=.config \
	      "$ktree/scripts/kconfig/merge_config.sh" -m .config "$snippet" 2>&1)
	if grep -q 'redefined' <<<"$out"; then
		echo "kconfig: note: the snippet changes these options of Debian's config:"
		grep -A1 'redefined' <<<"$out"
	fi
	rm -rf "$tmp"
	echo "kconfig: merge_config.sh -m into Debian's amd64 config: done"
fi
[ "$bad" -eq 0 ] && echo "kconfig: $(opts "$snippet" | wc -l) options, all defined"
exit $bad
