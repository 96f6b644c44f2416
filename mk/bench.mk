# Benchmarks of gnomond against chronyd 4.3 on this machine (loopback only;
# every daemon without CAP_SYS_TIME, in observe mode). Run as root.
# Included by the Makefile; settings are environment variables of
# scripts/bench-server.sh (DURATION, CLIENTS, START_RATE, PIN, WORKERS,
# RATELIMIT, ROUNDS, RSS_WAIT, RSS_LIMIT_MB, PERF; for NTS: NTS_START_RATE,
# NTS_CPU_RATE, SESSIONS, NTS_PROCESSES, KE_CONCURRENCY, KE_DURATION,
# KE_GROUPS). Figures: docs/benchmarks.md.

.PHONY: bench-server bench-rss bench-nts bench-ke bench-xleave

## bench-server: NTP server throughput, gnomond vs chronyd side by side: the
## highest answers/s each gives with < 1% loss, the ratio, and gnomond's loss
## at half of chronyd's maximum.
bench-server:
	./scripts/bench-server.sh server

## bench-rss: gnomond's RSS with 4 sources (4 chronyd on loopback), serving
## nothing, after 60 s (target <= 12 MB).
bench-rss:
	./scripts/bench-server.sh rss

## bench-nts: the same throughput sweep with NTS-authenticated requests
## (gnomond vs chronyd as NTS servers, same certificate): max authenticated
## answers/s under 1% loss, the ratio, CPU per answer.
bench-nts:
	./scripts/bench-server.sh nts

## bench-ke: NTS-KE handshakes/s (TLS 1.3 + NTS-KE records), gnomond vs
## chronyd, at several concurrencies and with two TLS key-exchange offers.
bench-ke:
	./scripts/bench-server.sh ke

## bench-xleave: the interleaved mode's gain: two chronyd clients (xleave and
## basic) measure gnomond's server at 16 Hz while ntpload keeps it busy at 0,
## 20000 and 60000 requests/s; median and p95 |offset| per mode (DURATION,
## default 20s per load).
bench-xleave:
	cd tests && GNOMON_BENCH=xleave go test -count=1 -run '^TestBenchXleave$$' -v -timeout 10m . | grep -v '^=== '

.PHONY: bench-side bench-smoke

## bench-side: gnomond, chronyd 4.3, NTPsec's ntpd and the floor
## (tests/ntpfloor) side by side, about 15 minutes (scripts/bench.sh):
## answers/s, loss, latency and CPU per answer against offered load, RSS and
## Go heap over time, client CPU; raw CSV in bench-results/, then
## docs/benchmarks.md's generated section and the SVG plots in docs/bench/
## (gnuplot, installed here if missing). Run as root.
bench-side:
	@command -v gnuplot >/dev/null || flock /tmp/apt.lock apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends gnuplot-nox
	./scripts/bench.sh

## bench-smoke: one short round of the same harness (no docs changed); make
## test runs it through tests/bench_smoke_test.go.
bench-smoke:
	SMOKE=1 ./scripts/bench.sh

.PHONY: bench-long bench-scale

## bench-long: the memory (and CPU) soak, BENCH_LONG_HOURS (default 6) hours:
## gnomond, chronyd and ntpd as clients of 4 local servers; gnomond and
## chronyd serving a steady 10 000 requests/s and NTS-KE handshakes; RSS, CPU
## and gnomond's Go heap sampled (CSV, SVG plots); fails when a gnomond's RSS
## grows (slope over the second half > GROWTH_LIMIT_KB_PER_H, default 150, or
## a peak > PEAK_FACTOR, 1.5, x the first hour's). scripts/bench-long.sh.
BENCH_LONG_HOURS ?= 6
bench-long:
	@command -v gnuplot >/dev/null || flock /tmp/apt.lock apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends gnuplot-nox
	BENCH_LONG_HOURS=$(BENCH_LONG_HOURS) REPORT=1 ./scripts/bench-long.sh

## bench-scale: answers/s and CPU per answer against the server's worker
## count, the server pinned to SERVER_POOL's first W CPUs and the load
## generator to GEN_CPUS (defaults for 2 cores: 1 and 0; see
## docs/benchmarks.md for a many-core machine). scripts/bench-scale.sh.
bench-scale:
	./scripts/bench-scale.sh
