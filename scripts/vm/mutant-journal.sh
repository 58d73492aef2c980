# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# Sourced by scripts/check-kernel-mutants.sh and scripts/vm/build-kernel.sh:
# the journal that makes a kernel mutant's change to the own kernel's
# source tree undoable, whatever happens to the run that applied it.
#
# Before a mutant's patch touches the tree, journal_save copies every file
# it names into <own>/mutant-journal/files/ (and records the tree's path);
# journal_restore copies them back, with a fresh mtime so that the next
# make rebuilds what the mutant's build left in the object tree, removes
# the journal and marks the object tree dirty (<own>/mutant-journal.dirty)
# until journal_clean says it was rebuilt.  journal_recover restores a
# journal left by a run that died without its EXIT trap (kill -9, a crash
# of the machine) and, if the object tree is dirty, sets
# JOURNAL_RECOVERED=1: it must be rebuilt (then journal_clean).

journal_dir() { echo "$1/mutant-journal"; }

# journal_save OWN SRC FILE... (paths relative to SRC)
journal_save() {
	local j f
	j=$(journal_dir "$1")
	local src=$2
	shift 2
	rm -rf "$j.tmp"
	mkdir -p "$j.tmp/files"
	echo "$src" > "$j.tmp/tree"
	for f in "$@"; do
		mkdir -p "$j.tmp/files/$(dirname "$f")"
		cp -p "$src/$f" "$j.tmp/files/$f"
		echo "$f" >> "$j.tmp/list"
	done
	mv "$j.tmp" "$j"
}

# journal_restore OWN: put the journalled files back; no journal: nothing.
journal_restore() {
	local j src f
	j=$(journal_dir "$1")
	[ -d "$j" ] || return 0
	src=$(cat "$j/tree")
	while IFS= read -r f; do
		cp "$j/files/$f" "$src/$f"
		touch "$src/$f"
	done < "$j/list"
	touch "$j.dirty"
	rm -rf "$j"
}

journal_dirty() { [ -e "$(journal_dir "$1").dirty" ]; }
journal_clean() { rm -f "$(journal_dir "$1").dirty"; }

journal_recover() {
	local j
	j=$(journal_dir "$1")
	rm -rf "$j.tmp"
	if [ -d "$j" ]; then
		echo "mutant-journal: a kernel mutant was left applied in $(cat "$j/tree"): restoring $(tr '\n' ' ' < "$j/list")"
		journal_restore "$1"
	fi
	if journal_dirty "$1"; then
		echo "mutant-journal: the object tree holds a kernel mutant's modules: they must be rebuilt"
		# shellcheck disable=SC2034 # read by the sourcing script
		JOURNAL_RECOVERED=1
	fi
}
