# The VM test ring (tests/vm, docs/testing-vm.md): the Debian package in a
# Debian 12 guest under QEMU (TCG), disciplining the guest's own kernel
# clock against chronyd -x on the host. Included by the top-level Makefile.
#
#   make test-vm        the full suite: two boots (install, step and sync,
#                       timedatectl set-ntp/set-time, local RTC and hwclock,
#                       drift file, reboot, take-over of a kernel left
#                       slewing, leap second); root, about 10 minutes
#   make test-vm-image  only build (or find) the cached guest image
#   make bench-vm       gnomond against chronyd, each disciplining the guest's
#                       kernel clock under the same netem (LAN-like, WAN-like,
#                       30 % loss, one server 100 ms off), VM_BENCH_RUNS turns
#                       each of VM_BENCH_PERIOD seconds; reported, not asserted
#                       (docs/testing-vm.md). With the defaults one boot of about
#                       105 minutes (4 × 3 × 2 × 240 s and set-up), bounded at 200 minutes
#                       VM_BENCH_VIEW=5 adds gnomond's and the kernel's state every
#                       5 s to the console; VM_BENCH_OUT=file keeps the table and the raw data;
#                       VM_BENCH_TRACE=1 adds each turn's gnomond engine trace and chronyd
#                       measurements/tracking logs beside it (file.trace_DAEMON_SCENARIO_RUN)
#
# The short suite (one boot: install, step and sync, set-time) runs inside
# make test as part of go test ./... (tests/vm builds the .deb itself).

ifndef GNOMON_VM_MK
GNOMON_VM_MK := 1

VM_TIMEOUT ?= 40m
VM_BENCH_TIMEOUT ?= 200m

VM_BENCH_SCENARIOS ?= lan wan loss falseticker
VM_BENCH_RUNS      ?= 3
VM_BENCH_PERIOD    ?= 240
VM_BENCH_SETTLE    ?= 120
VM_BENCH_POLL      ?= 1
VM_BENCH_SERVERS   ?= 3
VM_BENCH_OUT       ?=
VM_BENCH_VIEW      ?= 0
VM_BENCH_TRACE     ?= 0

.PHONY: test-vm test-vm-image bench-vm

test-vm-image:
	scripts/vm/image.sh

test-vm: deb
	GNOMON_VM_SUITE=full GNOMON_VM_DEB=$(abspath $(DEB_OUT))/gnomon_$(DEB_VERSION)_$$(dpkg --print-architecture).deb \
	  $(GO) test -count=1 -v -timeout $(VM_TIMEOUT) -run '^TestVM$$' ./tests/vm

bench-vm: deb
	GNOMON_VM_BENCH=1 GNOMON_VM_BENCH_SCENARIOS="$(VM_BENCH_SCENARIOS)" GNOMON_VM_BENCH_RUNS=$(VM_BENCH_RUNS) \
	  GNOMON_VM_BENCH_PERIOD=$(VM_BENCH_PERIOD) GNOMON_VM_BENCH_SETTLE=$(VM_BENCH_SETTLE) GNOMON_VM_BENCH_POLL=$(VM_BENCH_POLL) \
	  GNOMON_VM_BENCH_SERVERS=$(VM_BENCH_SERVERS) GNOMON_VM_BENCH_OUT=$(VM_BENCH_OUT) GNOMON_VM_BENCH_VIEW=$(VM_BENCH_VIEW) GNOMON_VM_BENCH_TRACE=$(VM_BENCH_TRACE) \
	  GNOMON_VM_DEB=$(abspath $(DEB_OUT))/gnomon_$(DEB_VERSION)_$$(dpkg --print-architecture).deb \
	  nice $(GO) test -count=1 -v -timeout $(VM_BENCH_TIMEOUT) -run '^TestVMBench$$' ./tests/vm

endif
