# SPDX-License-Identifier: GPL-2.0
# Out-of-tree build of kvmfr. KVER/KDIR select the kernel, as with any DKMS
# module: make KVER=6.1.0-26-amd64, or make KDIR=/path/to/kernel/build.

KVER ?= $(shell uname -r)
KDIR ?= /lib/modules/$(KVER)/build
PREFIX ?= /usr
UDEVDIR ?= /lib/udev/rules.d

# The version is PACKAGE_VERSION in dkms.conf, the one place it is set.
VERSION := $(shell sed -n 's/^PACKAGE_VERSION="\([^"]*\)"$$/\1/p' dkms.conf)
# What DKMS builds from, i.e. what /usr/src/kvmfr-VERSION holds.
DKMS_FILES = dkms.conf Kbuild Makefile kvmfr.c kvmfr.h kvmfr_mem.c kvmfr_mem.h probes/run.sh \
	     $(sort $(wildcard probes/*.c))
# The release tarball: the DKMS source plus what the Debian package is built
# from and installs.
DIST_FILES = $(DKMS_FILES) LICENSE README.md docs/kvmfr.4 docs/user-guide.md \
	     docs/design.md udev/70-kvmfr.rules etc/modprobe.d/kvmfr.conf \
	     etc/modules-load.d/kvmfr.conf $(DEBIAN_FILES)
# The packaging (debian/): only its sources, never what a build leaves there.
DEBIAN_FILES = debian/changelog debian/control debian/copyright debian/rules \
	       debian/source/format debian/kvmfr-dkms.dkms \
	       debian/kvmfr-dkms.docs debian/kvmfr-dkms.install \
	       debian/kvmfr-dkms.manpages debian/kvmfr-dkms.lintian-overrides
DIST = kvmfr-$(VERSION)
# Output of dist and deb.
OUT ?= build

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

# The DKMS source tree into DKMS_DIR (default /usr/src/kvmfr-VERSION).
DKMS_DIR ?= $(DESTDIR)/usr/src/$(DIST)
dkms-source:
	install -d $(DKMS_DIR)/probes
	for f in $(DKMS_FILES); do install -m 0644 $$f $(DKMS_DIR)/$$f || exit; done

# $(OUT)/kvmfr-VERSION.tar.gz. Reproducible: sorted, owned by root, file
# times from SOURCE_DATE_EPOCH (default: the last commit, or outside git the
# newest file's time).
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || \
	stat -c %Y $(DIST_FILES) | sort -n | tail -n 1)
dist:
	rm -rf $(OUT)/$(DIST) && mkdir -p $(OUT)/$(DIST)
	tar -cf - $(DIST_FILES) | tar -xf - -C $(OUT)/$(DIST)
	tar -C $(OUT) --sort=name --owner=0 --group=0 --numeric-owner \
	    --mode=u+rw,go=rX --mtime=@$(SOURCE_DATE_EPOCH) -cf - $(DIST) | \
	    gzip -9n >$(OUT)/$(DIST).tar.gz
	rm -rf $(OUT)/$(DIST)
	@echo $(OUT)/$(DIST).tar.gz

# $(OUT)/deb/kvmfr-dkms_VERSION-REVISION_all.deb, built from the release
# tarball with dpkg-buildpackage (needs debhelper and dh-dkms).
deb: dist
	rm -rf $(OUT)/deb && mkdir -p $(OUT)/deb
	tar -xzf $(OUT)/$(DIST).tar.gz -C $(OUT)/deb
	cd $(OUT)/deb/$(DIST) && dpkg-buildpackage -us -uc -b
	@ls $(OUT)/deb/*.deb

# Boots the kernels of the test matrix in QEMU and runs the test suite.
check:
	tests/run

# The packaging tier of make check alone (tests/package/run.sh).
check-package:
	tests/package/run.sh tests/results/package-$$(date +%Y%m%d-%H%M%S)

# The debug kernel's hardening tier at soak sizes (tests/README.md).
soak:
	KVMFR_HARDENING=full KERNELS="debug debug-unplug" KVMFR_DEMO=0 tests/run

# Huge-page figures of kvmfr and its alternatives, one guest per kernel
# (tests/bench/run, docs/performance.md); KERNELS="6.1 6.12" by default.
bench:
	tests/bench/run

# The Looking Glass data path end to end, in nested QEMU (demo/README.md).
demo:
	demo/run

.PHONY: all modules clean install dkms-source dist deb check check-package soak demo \
	bench
