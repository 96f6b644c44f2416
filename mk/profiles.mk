# PTP profile targets: client-server PTP, gPTP, automotive (docs/ptp.md).

.PHONY: test-profiles bench-csptp

## test-profiles: CSPTP/SPTP against ptp4u and sptp, gPTP and automotive against
## ptp4l (also in make test). Root; about 1.5 minutes.
test-profiles:
	$(GO) test -count=1 -v -timeout 5m ./tests/csptp ./tests/gptp

## bench-csptp: SPTP exchanges/s and CPU of gnomond's [[csptp-server]] and of
## ptp4u under the same load on the same veth link. Root; about 30 s.
bench-csptp:
	GNOMON_CSPTP_BENCH=1 $(GO) test -count=1 -v -timeout 10m -run '^TestBenchCSPTP$$' ./tests/csptp

## test-gptp-vm: ptp4l as an automotive slave that locks and asks for the
## operational Sync interval (automotive-slave.cfg), against gnomond's
## automotive grandmaster, inside a qemu guest (ptp4l steers the guest's
## clock; on the host it may only run free). Needs a guest image
## (tests/gptp/vm.sh says which); about 2 minutes.
.PHONY: test-gptp-vm
test-gptp-vm:
	./tests/gptp/vm.sh
