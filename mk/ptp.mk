# PTP targets (docs/ptp.md).

.PHONY: test-ptp capture-ptp

## test-ptp: every PTP interoperability test against ptp4l and pmc: make test
## runs UDPv4 E2E and Ethernet P2P; this adds UDPv6 E2E and P2P, Ethernet E2E,
## UDPv4 P2P and the link-down test (about 1.5 minutes).
test-ptp:
	GNOMON_PTP_FULL=1 $(GO) test -count=1 -v -timeout 5m ./tests/ptp ./service/ptp ./engine/ptp
	$(GO) test -count=1 -v -run 'PTP' ./engine/sim

## capture-ptp: recapture the golden packets from ptp4l (root, tshark).
capture-ptp:
	./engine/ptp/testdata/capture.sh

## bench-ptp: gnomond and ptp4l as slaves of one ptp4l master at the same time:
## offset and path-delay statistics, CPU per second, RSS (GNOMON_PTP_BENCH_SECONDS,
## GNOMON_PTP_BENCH_SYNC to change the run). Root; about 2.5 minutes.
.PHONY: bench-ptp
bench-ptp:
	GNOMON_PTP_BENCH=1 $(GO) test -count=1 -v -timeout 30m -run '^TestBenchPTP$$' ./tests/ptp

## test-ptp-vm: in a qemu guest with an emulated e1000e (its /dev/ptp0
## accepts every call but does not advance): service/ptp's TestVMHardware
## and TestVMPHCFollow, gnomond's hardware port following the system clock,
## and ptp4l (free_running 0, steering the guest's clock) as slave of gnomond
## until s2, with ptp4l->ptp4l as the yardstick (tests/ptp/vm.sh, guest.sh).
## Needs a guest image (vm.sh says which); GNOMON_VM_DEB=file.deb runs the
## package's gnomond. About 3 to 4 minutes under TCG: not part of make test.
.PHONY: test-ptp-vm
test-ptp-vm:
	./tests/ptp/vm.sh
