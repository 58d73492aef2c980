#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Usage: scripts/vm/guest-exec.sh OUTDIR 'COMMAND' ['COMMAND' ...]
#            [options of scripts/vm/run.sh]
#
# Run the reference program where the host has no /dev/kvm: boot the VM
# tier's guest (nested KVM under QEMU TCG) with build/user/vfio-cpr in
# /kselftest/vfio_cpr, run each COMMAND there with busybox sh, one after
# the other, in a scratch folder that holds ./vfio-cpr, and bring back:
#	OUTDIR/N.out	COMMAND N's stdout (N from 1)
#	OUTDIR/N.rc	its exit status
#	OUTDIR/files/*	the files the commands left in their folder
# COMMAND N's stderr goes to this script's stderr as it comes.  Exits 0
# when the guest ran every command (whatever their status: the caller
# judges them), non-zero when the guest or the transfer failed.  A
# COMMAND must not start with '-' (the first such argument begins the
# options of run.sh) nor contain double quotes.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
die() { echo "guest-exec: error: $*" >&2; exit 2; }

[ $# -ge 2 ] || die "usage: $0 OUTDIR 'COMMAND' ['COMMAND' ...] [run.sh options]"
outdir=$1
shift
cmds=()
while [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; do
	case $1 in *'"'*) die "a command must not contain double quotes: $1" ;; esac
	cmds+=("$1")
	shift
done
[ ${#cmds[@]} -gt 0 ] || die "no command"

make -s -C "$top" lib
stage=$(mktemp -d)
log=$(mktemp)
trap 'rm -rf "$stage" "$log"' EXIT
mkdir -p "$stage/vfio_cpr" "$outdir/files"
cp "$top/build/user/vfio-cpr" "$stage/vfio_cpr/"

# The guest side: KTAP, one test per command; stdout and the files left
# come back base64-encoded between marker lines on the console.
g=$stage/vfio_cpr/guest-exec.sh
cat > "$g" <<'GUEST'
#!/bin/sh
top=$(cd "$(dirname "$0")" && pwd)
w=/tmp/guest-exec
mkdir -p $w && cp "$top/vfio-cpr" $w/ && cd $w || exit 1
put() { echo "# guest-exec: begin $1"; base64 < "$2"; echo "# guest-exec: end $1"; }
echo "TAP version 13"
GUEST
echo "echo 1..${#cmds[@]}" >> "$g"
n=0
for c in "${cmds[@]}"; do
	n=$((n + 1))
	cat >> "$g" <<GUEST
( $c ) > /tmp/guest-exec.out.$n; rc=\$?
put $n.out /tmp/guest-exec.out.$n
echo "# guest-exec: rc $n \$rc"
echo "ok $n guest-exec command $n (exit \$rc)"
GUEST
done
cat >> "$g" <<'GUEST'
rm -f vfio-cpr
for f in *; do [ -f "$f" ] && put "files/$f" "$f"; done
exit 0
GUEST
chmod +x "$g"

rc=0
"$top/scripts/vm/run.sh" --kselftest-dir "$stage" \
	--cmd "sh vfio_cpr/guest-exec.sh" "$@" > "$log" || rc=$?
# The console's lines without carriage returns: decode each block.
tr -d '\r' < "$log" | awk -v dir="$outdir" '
	/^# guest-exec: begin / { name = $4; file = dir "/" name ".b64"; printf "" > file; on = 1; next }
	/^# guest-exec: end / { close(file); on = 0; next }
	/^# guest-exec: rc / { print $5 > (dir "/" $4 ".rc"); close(dir "/" $4 ".rc"); next }
	on { print >> file; next }
	{ print > "/dev/stderr" }'
for b in "$outdir"/*.b64 "$outdir"/files/*.b64; do
	[ -e "$b" ] || continue
	base64 -d < "$b" > "${b%.b64}" || die "could not decode ${b#"$outdir"/} from the guest's console"
	rm -f "$b"
done
[ "$rc" -eq 0 ] || die "the guest failed (run.sh exited $rc)"
for ((i = 1; i <= ${#cmds[@]}; i++)); do
	[ -s "$outdir/$i.rc" ] || die "command $i left no exit status: the guest stopped early"
done
