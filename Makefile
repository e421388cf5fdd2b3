# SPDX-License-Identifier: GPL-2.0
# Out-of-tree build of kvmfr. KVER/KDIR select the kernel, as with any DKMS
# module: make KVER=6.1.0-26-amd64, or make KDIR=/path/to/kernel/build.

KVER ?= $(shell uname -r)
KDIR ?= /lib/modules/$(KVER)/build
PREFIX ?= /usr
UDEVDIR ?= /lib/udev/rules.d

# A kernel built with clang (CONFIG_CC_IS_CLANG, e.g. CachyOS) wants its
# modules built with the LLVM toolchain too: pass LLVM=1 unless told.
ifeq ($(origin LLVM),undefined)
ifneq ($(shell grep -s '^CONFIG_CC_IS_CLANG=y' $(KDIR)/.config),)
export LLVM := 1
endif
endif

all: modules

modules:
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules

clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) clean

# The module, the UAPI header and the udev rule.
install: modules
	$(MAKE) -C $(KDIR) M=$(CURDIR) INSTALL_MOD_PATH=$(DESTDIR) modules_install
	install -D -m 0644 kvmfr.h $(DESTDIR)$(PREFIX)/include/linux/kvmfr.h
	install -D -m 0644 udev/70-kvmfr.rules $(DESTDIR)$(UDEVDIR)/70-kvmfr.rules

# Boots the kernels of the test matrix in QEMU and runs the test suite.
check:
	tests/run

# The debug kernel's hardening tier at soak sizes (tests/README.md).
soak:
	KVMFR_HARDENING=full KERNELS="debug debug-unplug" KVMFR_DEMO=0 tests/run

# The Looking Glass data path end to end, in nested QEMU (demo/README.md).
demo:
	demo/run

.PHONY: all modules clean install check soak demo
