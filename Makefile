# SPDX-License-Identifier: GPL-2.0-only
#
# vfio_cpr: kselftests and userspace reference for CPR live update of VFIO
# device interrupts.  See README.
#
#	make setup	install packages, extract kernel pieces (idempotent)
#	make		build the library and the selftests
#	make run	the main job: run the suite and print what it measured
#	make check	every test this machine can run, and the code checks

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

lib:
	$(MAKE) -s -C $(TOP)/user O=$(BUILD)/user USERCFLAGS=-Werror

selftests: $(KSFT_DIR)/lib.mk
	$(KSFT_MAKE) OUTPUT=$(BUILD)/selftests

selftests-llvm: $(KSFT_DIR)/lib.mk
	$(KSFT_MAKE) OUTPUT=$(BUILD)/selftests-llvm LLVM=1

# The main job: the suite against what this machine has.
run: setup selftests
	$(TOP)/scripts/run-host-tier.sh $(BUILD)/selftests

check-host: selftests
	$(TOP)/scripts/run-host-tier.sh $(BUILD)/selftests

check-intree: setup
	$(TOP)/scripts/check-intree.sh

checkpatch: setup
	$(TOP)/scripts/checkpatch.sh

check-kconfig: setup
	$(TOP)/scripts/check-kconfig.sh

# Every test, then the code checks (checkpatch, clang build, kconfig).
check: setup
	$(MAKE) -s lib selftests selftests-llvm
	$(MAKE) -s check-host
	$(MAKE) -s check-intree
	$(MAKE) -s checkpatch check-kconfig
	@echo "check: all passed"

clean:
	rm -rf $(BUILD)
	$(MAKE) -s -C $(TOP)/selftests/vfio_cpr KSFT_DIR=$(KSFT_DIR) clean \
		2>/dev/null || true

.PHONY: all setup lib selftests selftests-llvm run check check-host \
	check-intree checkpatch check-kconfig clean
