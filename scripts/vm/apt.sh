# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# Sourced by scripts/vm/provision.sh and scripts/vm/build-kernel.sh:
# installing Debian packages only when missing, and fetching a package's
# .deb without installing it.  The caller defines say() and die().

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

# The .deb of package $2 in folder $1 (fetched there with apt-get download
# unless one is there already): version $3 when given and apt has it, else
# apt's candidate, with an apt-get update before a second try.  $4, when
# given, says what it is for.  Sets apt_deb to its path; dies if there is
# none.
apt_deb=
apt_download() {
	local dir=$1 pkg=$2 ver=${3:-} why=${4:-} debs
	debs=("$dir/${pkg}_"*.deb)
	apt_deb=${debs[0]}
	[ -f "$apt_deb" ] && return 0
	say "downloading $pkg${ver:+ $ver}${why:+ ($why)}"
	if ! { [ -n "$ver" ] && (cd "$dir" && apt-get download -q "$pkg=$ver" >/dev/null 2>&1); } &&
			! (cd "$dir" && apt-get download -q "$pkg" >/dev/null 2>&1); then
		apt_update
		(cd "$dir" && apt-get download -q "$pkg" >/dev/null) ||
			die "apt-get download $pkg failed"
	fi
	debs=("$dir/${pkg}_"*.deb)
	apt_deb=${debs[0]}
	[ -f "$apt_deb" ] || die "apt-get download left no ${pkg}_*.deb"
}
