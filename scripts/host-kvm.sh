#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Sourced by the host-side scripts: what they all mean by a host with KVM,
# and by a test skipped for want of it (such a host's KVM cases run in the
# VM tier's guest, nested KVM, where no skip is allowed).

# The host can run KVM: /dev/kvm there, readable and writable.
host_has_kvm() {
	[ -r /dev/kvm ] && [ -w /dev/kvm ]
}

# The number of KTAP skip lines of LOG that name /dev/kvm.
count_kvm_skips() {
	grep -cE '^(ok [0-9]+ .*# SKIP|1\.\.0 # SKIP).*/dev/kvm' "$1" || true
}
