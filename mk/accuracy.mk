# The engine's accuracy in the simulator (docs/accuracy.md). Included by
# the Makefile.
#
#   make accuracy        every scenario over 20 seeds, tables printed, bounds judged
#   make accuracy-table  rewrite docs/accuracy.md's tables from the simulator
#                        (TestAccuracyTable fails in `go test ./...` when they are stale)
#   make bench-bias      real time, as root, about 2 minutes: the served-time bias of a
#                        chronyd -x and a gnomond --observe, both clients of one chronyd on
#                        loopback at a 2 s poll (tests/bias_test.go; BIAS_SETTLE=90s;
#                        GNOMON_BENCH_BIAS_SOURCE='xleave = false' for gnomond's basic mode)
#   make bench-relay     real time, as root: chronyd -x against gnomond --observe, each a client of
#                        four chronyd through its own delaying relays (tests/relay_bench_test.go;
#                        RELAY_DURATION=10m RELAY_BASE=100us RELAY_JITTER=50us (each way) RELAY_LOSS=0
#                        RELAY_POLL=4,6 RELAY_EVERY=5s)
#   make bench-accuracy  real time, as root, about 35 minutes: gnomond --observe and chronyd -x, each a
#                        client of the same four chronyd through its own relays, in every scenario
#                        (LAN, WAN, 30 % loss, a falseticker; default and equal polling) at once,
#                        ACC_ROUNDS=3 rounds of ACC_DURATION=10m; raw CSV in ACC_RESULTS
#                        (bench-results/accuracy/DATE); ACC_SCENARIOS=lan,wan-equal,... picks some;
#                        served times read with kernel timestamps (tests/accuracy_query_test.go), the
#                        query's noise printed with kernel and with user-space stamps
#                        (tests/accuracy_bench_test.go; its bounded smoke runs in make test)

ifndef GNOMON_ACCURACY_MK
GNOMON_ACCURACY_MK := 1

GO    ?= go
SEEDS ?= 20

BIAS_SETTLE ?= 90s

.PHONY: accuracy accuracy-table bench-bias bench-relay bench-accuracy

accuracy:
	$(GO) test -count=1 ./engine/sim -run 'TestScenarios|TestSlewPolicies' -v -seeds $(SEEDS)

accuracy-table:
	$(GO) test -count=1 ./engine/sim -run TestAccuracyTable -update -v

bench-bias:
	GNOMON_BENCH_BIAS=1 GNOMON_BENCH_BIAS_SETTLE=$(BIAS_SETTLE) $(GO) test -count=1 ./tests -run TestServedTimeBias -v

bench-relay:
	GNOMON_BENCH_RELAY=1 $(GO) test -count=1 -timeout 3h ./tests -run TestRelayComparison -v

bench-accuracy:
	GNOMON_BENCH_ACCURACY=1 $(GO) test -count=1 -timeout 6h -parallel 16 ./tests -run 'TestAccuracyBench$$' -v

endif
