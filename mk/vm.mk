# The VM test ring (tests/vm, docs/testing-vm.md): the Debian package in a
# Debian 12 guest under QEMU (TCG), disciplining the guest's own kernel
# clock against chronyd -x on the host. Included by the top-level Makefile.
#
#   make test-vm        the full suite: two boots (install, step and sync,
#                       timedatectl set-ntp/set-time, local RTC and hwclock,
#                       drift file, reboot, take-over of a kernel left
#                       slewing, leap second); root, about 10 minutes
#   make test-vm-image  only build (or find) the cached guest image
#   make bench-vm       gnomond against chronyd disciplining the guest's clock
#                       under netem (VM_NETEM, VM_BENCH_WARM, VM_BENCH_MEASURE
#                       seconds); reported, not asserted
#
# The short suite (one boot: install, step and sync, set-time) runs inside
# make test as part of go test ./... (tests/vm builds the .deb itself).

ifndef GNOMON_VM_MK
GNOMON_VM_MK := 1

VM_TIMEOUT ?= 40m

VM_NETEM         ?= delay 1ms 300us loss 2%
VM_BENCH_WARM    ?= 120
VM_BENCH_MEASURE ?= 120

.PHONY: test-vm test-vm-image bench-vm

test-vm-image:
	scripts/vm/image.sh

test-vm: deb
	GNOMON_VM_SUITE=full GNOMON_VM_DEB=$(abspath $(DEB_OUT))/gnomon_$(DEB_VERSION)_$$(dpkg --print-architecture).deb \
	  $(GO) test -count=1 -v -timeout $(VM_TIMEOUT) -run '^TestVM$$' ./tests/vm

bench-vm: deb
	GNOMON_VM_BENCH=1 GNOMON_VM_NETEM="$(VM_NETEM)" GNOMON_VM_BENCH_WARM=$(VM_BENCH_WARM) GNOMON_VM_BENCH_MEASURE=$(VM_BENCH_MEASURE) \
	  GNOMON_VM_DEB=$(abspath $(DEB_OUT))/gnomon_$(DEB_VERSION)_$$(dpkg --print-architecture).deb \
	  $(GO) test -count=1 -v -timeout $(VM_TIMEOUT) -run '^TestVMBench$$' ./tests/vm

endif
