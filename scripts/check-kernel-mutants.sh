#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Usage: scripts/check-kernel-mutants.sh [--only NAME]... [--timeout S]
#
# The kernel mutant zoo: does the suite fail when the kernel breaks what
# CPR relies on?  Each file scripts/kernel-mutants/*.patch is a small patch
# against the VM tier's own kernel (Debian's linux-source-6.12, built by
# scripts/vm/build-kernel.sh) with a header:
#
#   Invariant: the CPR invariant the patch breaks
#   Slip: the kind of mistake it is (a dropped line, an inverted test...)
#   Expect: text the suite's failure output must contain when it catches it
#   (or, for a behaviour variant that the suite must pass:)
#   Expect-result: pass
#
# For each, in file order:
#   1. the files it touches are saved in a journal (scripts/vm/
#      mutant-journal.sh), the patch applied, `make modules` rebuilds what
#      changed, and the changed modules (stripped) are installed into the
#      mutant's own folder, .deps/vm/own/mutants/NAME/, and packed as an
#      initramfs overlay;
#   2. the sources are put back from the journal at once (so the tree
#      holds a mutant only for its build) - also when the run is
#      interrupted (EXIT trap) or killed (build-kernel.sh recovers the
#      journal first thing);
#   3. the VM tier boots the own kernel with the normal modules and the
#      mutant's over them, and runs kvm_cpr_test, vfio_cpr_test and
#      cpr_transfer_test (a variant: every program).  A mutant is caught
#      when a test case fails and the output holds its Expect text (the
#      guest is stopped as soon as both are seen); otherwise it survived.
#      A variant passes when every program passes.
# At the end `make modules` rebuilds the restored sources, and the sources
# the mutants touch, the object tree's modules and the installed modules
# the normal VM tier uses (make check-vm-iommufd) are compared with their
# checksums from before the first mutant: they must be byte-identical.
#
# Prints a table (mutant, invariant, caught by, failure line, seconds) and
# "kernel mutants: C caught of N", then the variants' results.  Exits 1
# if a mutant survived, a variant failed, or a checksum differs.  Console
# logs: build/kernel-mutants/NAME.log.
#   --only NAME     run only this mutant or variant (repeatable; the file
#                   name without .patch, or its number prefix)
#   --timeout S     QEMU limit per mutant (default 300)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
zoo=$top/scripts/kernel-mutants
logs=$top/build/kernel-mutants
only=() timeout_s=300
while [ $# -gt 0 ]; do
	case $1 in
	--only) only+=("$2"); shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	-h|--help) sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) echo "check-kernel-mutants: unknown argument '$1'" >&2; exit 2 ;;
	esac
done

say() { echo "# kernel-mutants: $*"; }
die() { echo "check-kernel-mutants: error: $*" >&2; exit 1; }
now() { echo "${EPOCHREALTIME/,/.}"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }'; }

# --- The mutants and their headers.
mapfile -t patches < <(find "$zoo" -maxdepth 1 -name '*.patch' | LC_ALL=C sort)
[ ${#patches[@]} -gt 0 ] || die "no mutants in $zoo"
header() { # FILE FIELD
	sed -n "/^--- /q;s/^$2: *//p" "$1" | head -n 1
}
touched() { # FILE: paths the patch changes, relative to the tree
	sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p' "$1"
}
selected() { # NAME
	local o
	[ ${#only[@]} -gt 0 ] || return 0
	for o in "${only[@]}"; do
		[ "$1" = "$o" ] || [[ $1 == "$o"-* ]] && return 0
	done
	return 1
}
all_files=()
for p in "${patches[@]}"; do
	n=$(basename "$p" .patch)
	[ -n "$(header "$p" Invariant)" ] || die "$n: no Invariant: header"
	if [ "$(header "$p" Expect-result)" != pass ]; then
		[ -n "$(header "$p" Expect)" ] || die "$n: no Expect: header"
	fi
	mapfile -t f < <(touched "$p")
	[ ${#f[@]} -gt 0 ] || die "$n: the patch touches no file"
	all_files+=("${f[@]}")
done
mapfile -t all_files < <(printf '%s\n' "${all_files[@]}" | LC_ALL=C sort -u)

# --- The own kernel, built (or checked) first; then held for this run.
env_file=$("$top/scripts/vm/build-kernel.sh" -q | tail -n 1)
# shellcheck disable=SC1090
. "$env_file"
own=$(dirname "$(dirname "$env_file")")
src=$VM_KSRC obj=$VM_KOBJ
if [ ! -d "$src" ] || [ ! -d "$obj" ]; then
	die "$env_file names no source/object tree"
fi
exec 9>"$own/.build.lock"
flock 9
# shellcheck source=scripts/vm/mutant-journal.sh
. "$top/scripts/vm/mutant-journal.sh"
journal_recover "$own"

kmake() { make -C "$src" O="$obj" LOCALVERSION= ARCH=x86_64 "$@"; }
work=$(mktemp -d "$own/zoo.XXXXXX")
mkdir -p "$logs"
build_log=$logs/build.log
: > "$build_log"
# Put the sources back and, if a mutant's build left modules in the object
# tree, rebuild them (journal_clean then forgets the object tree is dirty).
restore_tree() {
	journal_restore "$own"
	if journal_dirty "$own"; then
		say "rebuilding the modules from the restored sources"
		if kmake -j"$(nproc)" modules >> "$build_log" 2>&1; then
			journal_clean "$own"
		else
			echo "check-kernel-mutants: error: the rebuild after restoring failed (see $build_log)" >&2
			return 1
		fi
	fi
}
# shellcheck disable=SC2317 # run by the traps
on_exit() {
	if [ -n "${build_pid:-}" ]; then
		kill -TERM -- "-$build_pid" 2>/dev/null || true
		wait "$build_pid" 2>/dev/null || true
	fi
	restore_tree
	rm -rf "$work"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
restore_tree || die "cannot rebuild the object tree a killed run left dirty"

# Checksums of what no mutant may leave changed.
sums() {
	(cd "$src" && sha256sum "${all_files[@]}")
	(cd "$obj" && find . -name '*.ko' -print0 | LC_ALL=C sort -z |
		xargs -0 sha256sum | sed 's|^|obj |')
	(cd "$VM_MODROOT" && find . -name '*.ko' -print0 | LC_ALL=C sort -z |
		xargs -0 sha256sum | sed 's|^|installed |')
}
sums > "$work/sums.before"
say "$(wc -l < "$work/sums.before") checksums taken ($(printf '%s ' "${all_files[@]}")and every module)"

# --- The kselftests, against the own kernel's uapi, and the base initramfs.
"$top/scripts/vm/install-kselftests.sh" "$work/ksft" \
	--uapi "$VM_UAPI_INCLUDE" >/dev/null
"$top/scripts/vm/mkinitramfs.sh" --kselftest-dir "$work/ksft" \
	--modroot "$VM_MODROOT" -o "$work/base.cpio.gz" 2>"$work/mkinitramfs.log" ||
	{ cat "$work/mkinitramfs.log" >&2; die "mkinitramfs.sh failed"; }

# --- Build one mutant: apply, make modules, pack the changed ones, restore.
# Sets "changed" (module names); returns 1 with "why" on failure.
build_mutant() { # PATCH NAME JOBS
	local p=$1 n=$2 jobs=$3 stamp ko dest files
	mapfile -t files < <(touched "$p")
	journal_save "$own" "$src" "${files[@]}"
	if ! patch -p1 -d "$src" --dry-run --forward -s < "$p" >> "$build_log" 2>&1; then
		journal_restore "$own"
		why="the patch does not apply to $(basename "$src")"
		return 1
	fi
	if ! patch -p1 -d "$src" --forward -s --no-backup-if-mismatch < "$p" >> "$build_log" 2>&1; then
		restore_tree
		why="applying the patch failed (see $build_log)"
		return 1
	fi
	stamp=$work/stamp.$n
	touch "$stamp"
	sleep 1
	echo "### $n: make -j$jobs modules" >> "$build_log"
	if ! kmake -j"$jobs" modules >> "$build_log" 2>&1; then
		restore_tree
		why="its build failed (see $build_log)"
		return 1
	fi
	journal_restore "$own"
	dest=$own/mutants/$n
	rm -rf "$dest" "$work/ovl.$n"
	mkdir -p "$dest" "$work/ovl.$n/lib/modules/vfio_cpr"
	changed=''
	while IFS= read -r ko; do
		strip --strip-debug -o "$dest/$(basename "$ko")" "$ko"
		cp "$dest/$(basename "$ko")" "$work/ovl.$n/lib/modules/vfio_cpr/"
		changed="$changed${changed:+ }$(basename "$ko" .ko)"
	done < <(find "$obj" -name '*.ko' -newer "$stamp")
	if [ -z "$changed" ]; then
		why="no module changed (built into vmlinux?)"
		return 1
	fi
	(cd "$work/ovl.$n" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc -R 0:0 --quiet) | gzip -1 -n > "$work/$n.cpio.gz"
	return 0
}

# The next mutant builds while the guest tests this one: in the
# background, in a process group of its own (set -m) so that an
# interrupted run can stop all of it before the tree is restored, with
# one make job (the guest, a TCG vCPU, has the other core).  Writes
# $work/NAME.status: "ok MODULES..." or "fail WHY".
build_pid=''
build_start() { # PATCH NAME JOBS
	set -m
	(
		trap - EXIT INT TERM HUP
		why='' changed=''
		if build_mutant "$1" "$2" "$3"; then
			echo "ok $changed"
		else
			echo "fail $why"
		fi > "$work/$2.status"
	) &
	build_pid=$!
	set +m
}
build_wait() {
	[ -n "$build_pid" ] || return 0
	wait "$build_pid" || true
	build_pid=''
}

# --- Boot the VM tier on a mutant; follow its KTAP.
# Sets result (caught / survived / passed / failed), case, line.
run_mutant() { # NAME EXPECT PATCH (EXPECT empty: a variant, must pass)
	local n=$1 expect=$2 log=$logs/$1.log cmd pid l prog='' sub='' cur=''
	local seen_case='' t progs
	local notok='' rc=0
	# The programs that exercise irqfds, routes and devices; the one
	# closest to the code the patch touches first (a caught mutant
	# stops the guest early).  A variant runs all three to the end.
	progs='kvm_cpr_test vfio_cpr_test cpr_transfer_test'
	if grep -qE '^\+\+\+ b/(drivers/|virt/kvm/vfio\.c)' "$3"; then
		progs='vfio_cpr_test kvm_cpr_test cpr_transfer_test'
	fi
	cmd='./run_kselftest.sh'
	for t in $progs; do
		cmd="$cmd -t vfio_cpr:$t"
	done
	result='' case='' line=''
	: > "$log"
	rm -f "$work/vm.fifo"
	mkfifo "$work/vm.fifo"
	# The own kernel has everything: only a device's "not applicable"
	# skips are its nature (with VFIO_CPR_NO_SKIP=1, as in CI, any other
	# skip fails a variant's run; as run-vm-tier.sh judges them).
	VFIO_CPR_SKIP_OK='not applicable: ' VFIO_CPR_NO_PROVISION=1 \
		"$top/scripts/vm/run.sh" --kernel "$VM_VMLINUX" \
		--initrd "$work/base.cpio.gz" --initrd-extra "$work/$n.cpio.gz" \
		--timeout "$timeout_s" --cmd "$cmd" > "$work/vm.fifo" 2>&1 &
	pid=$!
	while IFS= read -r l; do
		printf '%s\n' "$l" >> "$log"
		# run_kselftest.sh prefixes "# "; a program's per-device
		# subtests (vfio_cpr_test) are indented further.
		if [[ $l =~ ^#\ selftests:\ vfio_cpr:\ ([^ ]+)$ ]]; then
			prog=${BASH_REMATCH[1]} sub=''
		elif [[ $l =~ ^#[[:space:]]+#\ Subtest:\ ([^ ]+) ]]; then
			sub=${BASH_REMATCH[1]}
		elif [[ $l =~ ^#[[:space:]]+#[[:space:]]+RUN[[:space:]]+([^ ]+) ]]; then
			cur=$prog${sub:+[$sub]}:${BASH_REMATCH[1]}
		elif [[ $l =~ ^#[[:space:]]+not\ ok\ [0-9]+\ ([^ ]+) ]]; then
			notok=${notok:-$prog${sub:+[$sub]}:${BASH_REMATCH[1]}}
			if [ -n "$seen_case" ] && [ -z "$result" ]; then
				result=caught
				case=$seen_case
				kill -TERM "$pid" 2>/dev/null || true
				break
			fi
		elif [[ $l =~ ^not\ ok\ [0-9]+\ selftests:\ vfio_cpr:\ ([^ ]+) ]]; then
			notok=${notok:-${BASH_REMATCH[1]}}
		fi
		if [ -n "$expect" ] && [ -z "$seen_case" ] && [[ $l == *"$expect"* ]]; then
			seen_case=${cur:-$prog}
			line=${l#"${l%%[!# ]*}"}
			line=${line#FAIL *: }
		fi
	done < "$work/vm.fifo"
	wait "$pid" 2>/dev/null || rc=$?
	if [ -n "$expect" ]; then
		if [ -z "$result" ] && [ -n "$seen_case" ] && [ -n "$notok" ]; then
			result=caught case=$seen_case
		fi
		if [ -z "$result" ]; then
			result=survived
			case=${notok:-none}
			[ -n "$line" ] || line="(no line says \"$expect\")"
		fi
	elif [ "$rc" -eq 0 ] && [ -z "$notok" ]; then
		result=passed case=all line="every program passed"
	else
		result=failed case=${notok:-run.sh} line="run.sh status $rc; see $log"
	fi
}

# --- The zoo.
rows=() vrows=() caught=0 total=0 vbad=0 vtotal=0 todo=()
for p in "${patches[@]}"; do
	! selected "$(basename "$p" .patch)" || todo+=("$p")
done
t_zoo=$(now)
[ ${#todo[@]} -eq 0 ] || build_start "${todo[0]}" "$(basename "${todo[0]}" .patch)" "$(nproc)"
for i in "${!todo[@]}"; do
	p=${todo[$i]}
	n=$(basename "$p" .patch)
	t0=$(now)
	inv=$(header "$p" Invariant)
	expect=$(header "$p" Expect)
	variant=
	[ "$(header "$p" Expect-result)" != pass ] || variant=1 expect=''
	build_wait
	read -r status changed < "$work/$n.status" || status=fail changed='no build status'
	if [ $((i + 1)) -lt ${#todo[@]} ]; then
		next=${todo[$((i + 1))]}
		build_start "$next" "$(basename "$next" .patch)" 1
	fi
	if [ "$status" = ok ]; then
		say "$n: built ($changed); booting"
		run_mutant "$n" "$expect" "$p"
	else
		result=${variant:+failed}
		result=${result:-survived}
		case=none line="not run: $changed"
	fi
	t=$(secs "$t0" "$(now)")
	say "$n: $result${case:+ by $case} (${t}s)"
	if [ -n "$variant" ]; then
		vtotal=$((vtotal + 1))
		[ "$result" = passed ] || vbad=$((vbad + 1))
		vrows+=("$n|$inv|$result|$line|$t")
	else
		total=$((total + 1))
		[ "$result" != caught ] || caught=$((caught + 1))
		[ "$result" = caught ] || case="SURVIVED"
		rows+=("$n|$inv|$case|$line|$t")
	fi
done
build_wait

# --- Back to the normal kernel, byte for byte.
restore_tree || die "the final rebuild failed"
sums > "$work/sums.after"
sums_ok=1
if ! cmp -s "$work/sums.before" "$work/sums.after"; then
	sums_ok=
	echo "check-kernel-mutants: error: the tree or the modules differ from before the zoo:" >&2
	diff "$work/sums.before" "$work/sums.after" >&2 || true
fi

cut80() { awk -v w="$2" '{ s = $0; if (length(s) > w) s = substr(s, 1, w - 3) "..."; print s }' <<< "$1"; }
printf '\n| mutant | invariant | caught by | failure line | s |\n|---|---|---|---|---|\n'
for r in "${rows[@]}"; do
	IFS='|' read -r n inv c l t <<< "$r"
	printf '| %s | %s | %s | %s | %s |\n' "$n" "$inv" "$c" "$(cut80 "$l" 200)" "$t"
done
echo
echo "kernel mutants: $caught caught of $total"
for r in "${vrows[@]}"; do
	IFS='|' read -r n inv c l t <<< "$r"
	echo "kernel variant $n ($inv): $c in ${t}s"
done
say "zoo took $(secs "$t_zoo" "$(now)")s; checksums $([ -n "$sums_ok" ] && echo identical || echo DIFFER) after the restore"
[ "$caught" -eq "$total" ] && [ "$vbad" -eq 0 ] && [ -n "$sums_ok" ]
