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
