# SPDX-License-Identifier: GPL-2.0
#
# Out-of-tree build of nbd.ko.
#
#   make                      build against the running kernel
#   make KDIR=/path/to/build  build against another kernel's build tree
#   make install              install to /lib/modules/<release>/updates
#   make check                run every test in VMs (6.1 and 6.12)
#   make demo                 attach /dev/nbd0 in a VM and use it

KDIR ?= /lib/modules/$(shell uname -r)/build
KBUILD_ARGS := -C $(KDIR) M=$(CURDIR) CONFIG_BLK_DEV_NBD=m

all: modules

modules:
	$(MAKE) $(KBUILD_ARGS) modules

clean:
	$(MAKE) $(KBUILD_ARGS) clean

install: modules
	$(MAKE) $(KBUILD_ARGS) INSTALL_MOD_DIR=updates modules_install
	depmod -a $(shell $(MAKE) -s -C $(KDIR) kernelrelease 2>/dev/null || uname -r)

KERNEL ?= 6.12

setup:
	tools/testing/vm/setup.sh

check: setup
	tools/testing/run-all.sh

demo:
	tools/testing/demo.sh --kernel $(KERNEL)

.PHONY: all modules clean install setup check demo
