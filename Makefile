# SPDX-License-Identifier: GPL-2.0-only
#
# vfio_cpr: kselftests and userspace reference for CPR live update of VFIO
# device interrupts.  See README.
#
#	make setup	install packages, extract kernel pieces (idempotent)
#	make		build the library and the selftests
#	make run	the main job: host tier, then VM tier; prints the results
#			and the blackout figures
#	make check	every test, both tiers, and the code checks

TOP := $(CURDIR)
BUILD := $(TOP)/build
KSFT_DIR := $(TOP)/.deps/linux/tools/testing/selftests
KSFT_MAKE := $(MAKE) -s -C $(TOP)/selftests/vfio_cpr KSFT_DIR=$(KSFT_DIR) \
	     USERCFLAGS=-Werror

all: lib selftests

setup:
	$(TOP)/scripts/setup-host.sh

$(KSFT_DIR)/lib.mk:
	$(TOP)/scripts/setup-host.sh

# The library and the reference program vfio-cpr (build/user/vfio-cpr).
lib:
	$(MAKE) -s -C $(TOP)/user O=$(BUILD)/user USERCFLAGS=-Werror

lib-llvm:
	$(MAKE) -s -C $(TOP)/user O=$(BUILD)/user-llvm USERCFLAGS=-Werror LLVM=1

# vfio-cpr and its man page: make install [DESTDIR=] [PREFIX=/usr/local]
install: lib
	$(MAKE) -s -C $(TOP)/user O=$(BUILD)/user install

selftests: $(KSFT_DIR)/lib.mk
	$(KSFT_MAKE) OUTPUT=$(BUILD)/selftests

selftests-llvm: $(KSFT_DIR)/lib.mk
	$(KSFT_MAKE) OUTPUT=$(BUILD)/selftests-llvm LLVM=1

# The main job: the host tier, then the VM tier (edu, e1000e, nvme, mtty
# in a QEMU guest); both run even if the first fails, then a summary of both.
run: setup selftests
	@bash -c 'set -o pipefail; rc=0; \
	$(TOP)/scripts/run-host-tier.sh $(BUILD)/selftests | \
		tee $(BUILD)/run-host-tier.log || rc=1; \
	$(TOP)/scripts/run-vm-tier.sh | tee $(BUILD)/run-vm-tier.log || rc=1; \
	echo "# ===== make run: summary (host tier, then VM tier)"; \
	grep -hE "^vfio_cpr(-vm)?: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped" \
		$(BUILD)/run-host-tier.log $(BUILD)/run-vm-tier.log; \
	exit $$rc'

check-host: selftests
	$(TOP)/scripts/run-host-tier.sh $(BUILD)/selftests

# The reference program: on the host (100 handoffs under ping-pong load,
# inspect, install), and in the VM on edu, e1000e, nvme, mtty and the
# 2048-entry device (5 handoffs per device and IRQ type, then all PCI
# devices of an IRQ type at once, one routing commit per generation).
PROG_GENERATIONS ?= 100
check-prog: setup
	$(TOP)/scripts/check-prog.sh $(PROG_GENERATIONS)

check-vm-prog: setup
	$(TOP)/scripts/run-vm-prog.sh $(WIDE_MSIX)

# The blackout benchmark (not a test): the library's exec handoff, the bare
# floor and a naive successor at 1, 64, 512 and 2048 vectors; table, CSV
# and plot in build/bench/.  Take figures on a quiet machine.
# Part 4, in the VM tier: reclaim from inherited fds vs re-setup (new
# eventfds + VFIO_DEVICE_SET_IRQS) on e1000e and virtio-net-pci vectors=129.
bench: bench-host bench-vm

bench-host: lib
	$(TOP)/user/bench/run-bench.sh

bench-vm: setup
	@mkdir -p $(BUILD)/bench
	@bash -c 'set -o pipefail; $(TOP)/scripts/run-vm-bench.sh | \
		grep -vE "^# (dmesg|bind|modules|guest|mtty|/dev|RLIMIT|running|VFIO_CPR)" | \
		tee $(BUILD)/bench/vm-resetup.txt'

# Soak: exec handoffs on host KVM under ping-pong load; nothing lost, open
# fds and RSS flat from the first generation to the last.
#	make soak [SOAK_GENERATIONS=10000]	(make check runs 200)
SOAK_GENERATIONS ?= 10000
soak: setup
	$(TOP)/scripts/soak.sh $(SOAK_GENERATIONS)

# The VM tier: QEMU, kernel and mtty come from scripts/vm/provision.sh.
# check-vm, check-vm-newer and check-vm-iommufd add a device with a
# 2048-entry MSI-X table (more than a guest's vector budget: the tests go
# on with a sparse set that spans it).
WIDE_MSIX = --device virtio-net-pci,vectors=2048 --bind 1af4:1000
# On x86 the tests do not ask for a whole table wider than 224 vectors a
# CPU; one of 420 entries is asked for on 2 CPUs and always refused (each
# CPU has at most 204 vectors for devices): the refused-then-sparse path.
OVER_2CPUS_MSIX = --device virtio-net-pci,vectors=420
check-vm: setup
	$(TOP)/scripts/run-vm-tier.sh $(WIDE_MSIX)
	$(TOP)/scripts/check-vfio-bind.sh

# The host tier again, built with clang's sanitizers (a report in any
# generation, successors included, fails the test):
#	make check-san [SANITIZE=address,undefined]
SANITIZE ?= address,undefined
check-san: $(KSFT_DIR)/lib.mk
	$(TOP)/scripts/run-sanitized.sh $(SANITIZE)

# The host tier under valgrind memcheck through every exec and fork: LSan
# misses leaks in test bodies (the harness leaves them with _exit()).
check-valgrind: selftests
	$(TOP)/scripts/run-valgrind.sh $(BUILD)/selftests

# libFuzzer on cpr_state_parse(), the loader a successor runs on what its
# predecessor wrote:  make fuzz [FUZZ_SECONDS=600]   make fuzz-smoke (20 s)
FUZZ_SECONDS ?= 60
fuzz: setup
	$(MAKE) -s -C $(TOP)/user/fuzz O=$(BUILD)/fuzz run \
		FUZZ_SECONDS=$(FUZZ_SECONDS)

fuzz-smoke: setup
	$(MAKE) -s -C $(TOP)/user/fuzz O=$(BUILD)/fuzz smoke

# The VM tier again on the newest 6.12 kernel Debian 12 ships (mtty there
# refuses the INTx unmask eventfd: the ioctl path runs), on 2 guest CPUs:
# the SMP run of `make check` (check-vm and check-vm-iommufd keep 1), with
# the 420-entry device too.
NEWER_KVER = $(shell apt-cache search --names-only \
	'^linux-image-6\.12\.[0-9]+\+deb12-amd64$$' 2>/dev/null | \
	awk '{print $$1}' | sort -V | tail -1 | sed 's/^linux-image-//')

check-vm-newer: setup
	@test -n "$(NEWER_KVER)" || { echo "check-vm-newer: apt knows no linux-image-6.12.*+deb12-amd64 (apt-get update?)" >&2; exit 1; }
	VFIO_CPR_KVER=$(NEWER_KVER) $(TOP)/scripts/run-vm-tier.sh --smp 2 $(WIDE_MSIX) $(OVER_2CPUS_MSIX)

# The VM tier on our own guest kernel (Debian's linux-source-6.12 with
# CONFIG_IOMMUFD and CONFIG_VFIO_DEVICE_CDEV, which Debian's kernels lack;
# ~3.5 min to build on 2 cores, then cached in .deps/vm/own), run as a
# kernel developer runs it: scripts/intree.sh into that tree, then its
# tools/testing/selftests/vfio_cpr/vmtest.sh (strict: the cdev_* variants
# of vfio_cpr_test must run here) with the 2048-entry MSI-X device too, and
# the KTAP through the tree's kunit.py parser.
check-vm-iommufd: setup
	$(TOP)/scripts/check-vm-own.sh -- $(WIDE_MSIX)

# The kernel mutant zoo: each patch in scripts/kernel-mutants breaks one
# behaviour CPR relies on in the own kernel (modules rebuilt, tree restored
# at once and checked byte-identical at the end); the VM tier must fail on
# each, saying what broke.  Prints "kernel mutants: N caught of N".
check-kernel-mutants: setup
	$(TOP)/scripts/check-kernel-mutants.sh

check-intree: setup
	$(TOP)/scripts/check-intree.sh

# Build (gcc and clang) and run the host tier against 6.12's kselftest
# harness too (the tree of our own kernel; the rest uses 6.1's).
check-newer-harness: setup
	$(TOP)/scripts/check-newer-harness.sh

checkpatch: setup
	$(TOP)/scripts/checkpatch.sh

check-kconfig: setup
	$(TOP)/scripts/check-kconfig.sh

# Every test, then the code checks (checkpatch, clang build, kconfig).
check: setup
	$(MAKE) -s lib lib-llvm selftests selftests-llvm
	$(MAKE) -s check-host
	$(MAKE) -s check-prog
	$(MAKE) -s soak SOAK_GENERATIONS=200
	$(MAKE) -s check-san
	$(MAKE) -s check-valgrind
	$(MAKE) -s fuzz-smoke
	$(MAKE) -s check-vm
	$(MAKE) -s check-vm-prog
	$(MAKE) -s check-vm-newer
	$(MAKE) -s check-vm-iommufd
	$(MAKE) -s check-kernel-mutants
	$(MAKE) -s check-newer-harness
	$(MAKE) -s check-intree
	$(MAKE) -s checkpatch check-kconfig
	@echo "check: all passed"

clean:
	rm -rf $(BUILD)
	$(MAKE) -s -C $(TOP)/selftests/vfio_cpr KSFT_DIR=$(KSFT_DIR) clean \
		2>/dev/null || true

.PHONY: all setup lib lib-llvm install bench bench-host bench-vm check-prog check-vm-prog soak check-valgrind selftests selftests-llvm run check check-host \
	check-san fuzz fuzz-smoke check-vm check-vm-newer check-vm-iommufd check-kernel-mutants check-newer-harness check-intree checkpatch check-kconfig clean
