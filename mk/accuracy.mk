# The engine's accuracy in the simulator (docs/accuracy.md). Included by
# the Makefile.
#
#   make accuracy        every scenario over 20 seeds, tables printed, bounds judged
#   make accuracy-table  rewrite docs/accuracy.md's tables from the simulator
#                        (TestAccuracyTable fails in `go test ./...` when they are stale)
#   make bench-bias      real time, as root, about 2 minutes: the served-time bias of a
#                        chronyd -x and a gnomond --observe, both clients of one chronyd on
#                        loopback at a 2 s poll (tests/bias_test.go; BIAS_SETTLE=90s)

ifndef GNOMON_ACCURACY_MK
GNOMON_ACCURACY_MK := 1

GO    ?= go
SEEDS ?= 20

BIAS_SETTLE ?= 90s

.PHONY: accuracy accuracy-table bench-bias

accuracy:
	$(GO) test -count=1 ./engine/sim -run 'TestScenarios|TestSlewPolicies' -v -seeds $(SEEDS)

accuracy-table:
	$(GO) test -count=1 ./engine/sim -run TestAccuracyTable -update -v

bench-bias:
	GNOMON_BENCH_BIAS=1 GNOMON_BENCH_BIAS_SETTLE=$(BIAS_SETTLE) $(GO) test -count=1 ./tests -run TestServedTimeBias -v

endif
