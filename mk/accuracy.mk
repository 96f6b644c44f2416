# The engine's accuracy in the simulator (docs/accuracy.md). Included by
# the Makefile.
#
#   make accuracy        every scenario over 20 seeds, tables printed, bounds judged
#   make accuracy-table  rewrite docs/accuracy.md's tables from the simulator
#                        (TestAccuracyTable fails in `go test ./...` when they are stale)

ifndef GNOMON_ACCURACY_MK
GNOMON_ACCURACY_MK := 1

GO    ?= go
SEEDS ?= 20

.PHONY: accuracy accuracy-table

accuracy:
	$(GO) test -count=1 ./engine/sim -run 'TestScenarios|TestSlewPolicies' -v -seeds $(SEEDS)

accuracy-table:
	$(GO) test -count=1 ./engine/sim -run TestAccuracyTable -update -v

endif
