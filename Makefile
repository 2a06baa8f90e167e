# SPDX-License-Identifier: GPL-2.0
#
# Out-of-tree build of nbd.ko.
#
#   make                      build against the running kernel
#   make KDIR=/path/to/build  build against another kernel's build tree
#   make install              install to /lib/modules/<release>/updates
#   make check                run every test (VMs on 6.1, 6.12, debug; KUnit)
#   make check-long           the same with the long versions of some suites
#   make demo                 attach /dev/nbd0 in a VM and use it
#   make firstrun             test setup.sh and the first-run paths (no VM)
#   make kunit                run the KUnit tests under UML (KUNIT_ARGS=...)
#   make kunit-coverage       the same with gcov, and an lcov report
#   make fuzz                 the KUnit fuzz suite nbd_fuzz alone, long
#                             (FUZZ_STREAMS=1000000 FUZZ_SEED=1)
#   make soak                 the soak on the debug kernel (DURATION=3600 s)
#   make vm-fuzz              the fuzzing proxy before nbdkit on the debug
#                             kernel (FUZZ_SECONDS=600)
#   make swap                 swap over nbd in a small VM (SWAP_KERNEL=6.12)
#   make ceph                 Ceph's rbd-nbd in full, ours and stock
#                             (CEPH_KERNELS="6.1 6.12")
#   make debug-kernel         build the KASAN + lockdep kernel for the VMs
#   make bench                benchmark against the stock nbd.ko (BENCH_ARGS=),
#                             then structured replies (BENCH_SR_ARGS=) and
#                             TLS (BENCH_TLS_ARGS=)
#   make bench-sr             only the structured-reply benchmark
#   make bench-tls            only the TLS benchmark (kTLS against
#                             nbd-client's userspace TLS proxy)
#   make deb                  the Debian packages nbd-dkms and nbdctl into
#                             build/deb/ (DEB_OUT=DIR), then lintian on them
#                             (DEB_LINT=0: not)
#   make deb-lint             lintian on the packages in build/deb/
#   make deb-vm               make deb, then the packages installed, used and
#                             removed with apt in a VM (DEB_KERNELS="6.1 6.12")

KDIR ?= /lib/modules/$(shell uname -r)/build
# srcversion lets users check that the module loaded is the one built:
# modinfo -F srcversion nbd.ko vs /sys/module/nbd/srcversion.
KBUILD_ARGS := -C $(KDIR) M=$(CURDIR) CONFIG_BLK_DEV_NBD=m \
	       CONFIG_MODULE_SRCVERSION_ALL=y

# The release modules are installed for.  Distribution header packages may
# report another string from `make kernelrelease`, so prefer the path.
ifneq ($(filter /lib/modules/%/build,$(KDIR)),)
KRELEASE ?= $(patsubst /lib/modules/%/build,%,$(KDIR))
else
KRELEASE ?= $(shell $(MAKE) -s -C $(KDIR) kernelrelease)
endif

all: modules

# The first `make` on a machine without the kernel's headers: say what to
# install rather than let make stop at a missing directory.
kdir_check = @test -d $(KDIR) || { echo "nbd: no kernel build tree at \
$(KDIR): install the headers of the kernel (apt-get install \
linux-headers-$$(uname -r)), or build for another one with make KDIR=DIR" >&2; \
exit 1; }

modules:
	$(kdir_check)
	$(MAKE) $(KBUILD_ARGS) modules

clean:
	$(kdir_check)
	$(MAKE) $(KBUILD_ARGS) clean

# updates/ is searched before the kernel's own modules.  No signing: an
# out-of-tree build has no key (load it with module signing not enforced).
install: modules
	$(MAKE) $(KBUILD_ARGS) INSTALL_MOD_DIR=updates CONFIG_MODULE_SIG_ALL= \
		modules_install
	depmod $(if $(INSTALL_MOD_PATH),-b $(INSTALL_MOD_PATH)) -a $(KRELEASE)

KERNEL ?= 6.12

setup:
	tools/testing/vm/setup.sh

check: setup
	tools/testing/run-all.sh

# The same with the long versions of the shortened suites (over an hour).
check-long: setup
	NBD_LONG=1 tools/testing/run-all.sh

demo:
	tools/testing/demo.sh --kernel $(KERNEL)

firstrun:
	tools/testing/firstrun/run.sh

# Extra arguments for kunit.py run, e.g. KUNIT_ARGS="--raw_output".
KUNIT_ARGS ?=

kunit:
	tools/testing/kunit/run.sh $(KUNIT_ARGS)

kunit-coverage:
	tools/testing/kunit/run.sh --coverage $(KUNIT_ARGS)

debug-kernel:
	tools/testing/vm/debug-kernel.sh

# Outside make check: make check runs 100,000 streams of nbd_fuzz (in
# make kunit), 3 minutes of soak and 90 s of the fuzzing proxy.
FUZZ_STREAMS ?= 1000000
FUZZ_SEED ?= 1
FUZZ_TIMEOUT ?= 36000
DURATION ?= 3600
FUZZ_SECONDS ?= 600
# One kernel's VM job of run-all.sh, with only the named test.
vm_one = NBD_KERNELS=debug NBD_KUNIT=0 NBD_NBDCTL_TESTS=0 NBD_FIRSTRUN_TESTS=0

fuzz:
	tools/testing/kunit/run.sh nbd_fuzz --timeout=$(FUZZ_TIMEOUT) \
		--kernel_args=nbd_kunit.fuzz_streams=$(FUZZ_STREAMS) \
		--kernel_args=nbd_kunit.fuzz_seed=$(FUZZ_SEED)

soak: setup
	$(vm_one) NBD_TESTS=nbd_soak NBD_SOAK_SECONDS=$(DURATION) \
		tools/testing/run-all.sh

# Swap over nbd (nbd_swap, five phases) in a 512 MiB VM with this module,
# then with the stock one for the record (its result does not fail).
SWAP_KERNEL ?= 6.12
swap_vm = tools/testing/vm/vm-run.sh --kernel $(SWAP_KERNEL) --smp 2 \
	--mem 512 --timeout 2700 --env NBDCTL=$(CURDIR)/tools/nbdctl/nbdctl \
	--env NBD_SWAP=1

swap: setup
	$(MAKE) -C tools/nbdctl
	$(swap_vm) -- tools/testing/selftests/nbd/run_tests.sh nbd_swap
	-$(swap_vm) --stock -- tools/testing/selftests/nbd/run_tests.sh nbd_swap

# kmemleak on for the fuzzing proxy's leak check (the debug kernel has it
# built in, off by default).
vm-fuzz: setup
	$(vm_one) NBD_TESTS=nbd_fuzz_proxy NBD_FUZZ_PROXY=1 \
		NBD_FUZZ_SECONDS=$(FUZZ_SECONDS) NBD_VM_APPEND=kmemleak=on \
		tools/testing/run-all.sh

# Ceph's rbd-nbd in full (nbd_ceph with NBD_CEPH_FULL=1: --exclusive, the
# ioctl resize, the re-attach timeout, three OSDs) on each kernel, with
# this module and then with the stock one for the record (its result
# does not fail).
CEPH_KERNELS ?= 6.1 6.12
ceph_vm = tools/testing/vm/vm-run.sh --smp 2 --timeout 3600 \
	--env NBDCTL=$(CURDIR)/tools/nbdctl/nbdctl --env NBD_CEPH_FULL=1 \
	--env NBD_SELFTEST_TIMEOUT=3000

ceph: setup
	$(MAKE) -C tools/nbdctl
	@rc=0; for k in $(CEPH_KERNELS); do \
		$(ceph_vm) --kernel $$k -- \
			tools/testing/selftests/nbd/run_tests.sh nbd_ceph || rc=1; \
		$(ceph_vm) --kernel $$k --stock -- \
			tools/testing/selftests/nbd/run_tests.sh nbd_ceph; \
	done; exit $$rc

# Not a test (never fails on a number, not in make check), e.g.
# BENCH_ARGS="--kernel 6.12 --quick".
BENCH_ARGS ?=

# bench runs all three; bench-sr only structured against simple replies,
# bench-tls only kernel TLS against the userspace proxy and plaintext.
BENCH_SR_ARGS ?=
BENCH_TLS_ARGS ?=

bench:
	tools/testing/bench/bench.sh $(BENCH_ARGS)
	tools/testing/bench/bench-sr.sh $(BENCH_SR_ARGS)
	tools/testing/bench/bench-tls.sh $(BENCH_TLS_ARGS)

bench-sr:
	tools/testing/bench/bench-sr.sh $(BENCH_SR_ARGS)

bench-tls:
	tools/testing/bench/bench-tls.sh $(BENCH_TLS_ARGS)

# Debian packages (debian/), built by dpkg-buildpackage from a copy of the
# tree under DEB_OUT; lintian errors and warnings fail the build.
DEB_OUT ?= build/deb
DEB_LINT ?= 1

deb:
	tools/deb/make-deb.sh $(if $(filter 0,$(DEB_LINT)),--no-lint) $(DEB_OUT)

deb-lint:
	tools/deb/make-deb.sh --lint-only $(DEB_OUT)

# nbd_deb in a stock guest per kernel: DKMS compiles all of the module
# there (about 9 minutes a kernel under TCG; make check's nbd_deb
# compiles through a ccache filled on the host).
DEB_KERNELS ?= 6.1 6.12
deb_vm = tools/testing/vm/vm-run.sh --smp 2 --stock --timeout 1500 \
	--env NBD_DEB_DIR=$(abspath $(DEB_OUT)) --env NBD_SELFTEST_TIMEOUT=1200

deb-vm: setup deb
	@rc=0; for k in $(DEB_KERNELS); do \
		$(deb_vm) --kernel $$k -- \
			tools/testing/selftests/nbd/run_tests.sh nbd_deb || rc=1; \
	done; exit $$rc

.PHONY: all modules clean install setup check check-long demo firstrun kunit \
	kunit-coverage debug-kernel bench bench-sr bench-tls fuzz soak vm-fuzz swap \
	ceph deb deb-lint deb-vm
