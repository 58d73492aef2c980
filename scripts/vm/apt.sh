# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# Sourced by scripts/vm/provision.sh and scripts/vm/build-kernel.sh:
# installing Debian packages only when missing.  The caller defines say().

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
apt_updated=
apt_update() {
	[ -n "$apt_updated" ] && return 0
	say "apt-get update"
	$SUDO apt-get update -qq
	apt_updated=1
}

# Print the packages of "$@" that are not installed.
missing_pkgs() {
	local p st
	for p in "$@"; do
		st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
		case $st in *" ok installed") ;; *) echo "$p" ;; esac
	done
}

install_pkgs() {
	local miss
	miss=$(missing_pkgs "$@")
	[ -n "$miss" ] || return 0
	# shellcheck disable=SC2086
	say "installing" $miss
	# shellcheck disable=SC2086
	if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
			--no-install-recommends $miss >/dev/null; then
		apt_update
		# shellcheck disable=SC2086
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
			--no-install-recommends $miss >/dev/null
	fi
}
