#!/usr/bin/env bash
# bench-long.sh: `make bench-long`, the memory (and CPU) soak. For
# BENCH_LONG_HOURS (default 6), all at once in a network namespace of its own
# (gn-obs-blong-PID, loopback only):
#   - gnomond, chronyd and NTPsec's ntpd as clients of the same 4 local
#     servers (chronyd, local stratum 1, 127.0.0.11-14:123) at a fixed poll
#     of 2^LONG_POLL s (default 4: 16 s);
#   - gnomond and chronyd each serving a steady LONG_RATE (10 000) NTP
#     requests/s from tests/ntpload (16 clients);
#   - gnomond and chronyd each as an NTS-KE server, given a burst of key
#     exchanges (tests/ntpload -ke, KE_CONCURRENCY in flight for KE_BURST)
#     every KE_PERIOD seconds.
# Every SAMPLE_S seconds each daemon's RSS (its process and children: chronyd's
# NTS-KE helper) and CPU time are sampled -> samples.csv; every gnomond runs
# with --trace-gc, whose lines give its live Go heap in bytes after each
# collection -> goheap.csv (MiB with decimals; gctrace's whole MB only rounded
# an idle gnomond's heap to 0); the load generator's runs -> load.csv, ke.log.
# Then tests/benchlong fits the second half of each daemon's RSS and heap
# (least squares) and compares its peak with its first hour's (the first
# sixth of a shorter run) -> growth.csv, plots (gnuplot) -> *.svg. It FAILS
# when a gnomond's memory grows without bound: an RSS slope over the second
# half above GROWTH_LIMIT_KB_PER_H (default 150 kB/h, i.e. under 1 MB over
# 6 hours), or a peak above PEAK_FACTOR (1.5) x its first hour's peak.
# CHECK=0 computes and prints the verdict without failing (the bounded run
# inside `make test` checks the machinery, never a figure).
#
# Settings: BENCH_LONG_HOURS=6  SAMPLE_S=10  LONG_RATE=10000  LONG_POLL=4
#   KE_PERIOD=5 KE_BURST=250ms KE_CONCURRENCY=1  PIN=auto (1: daemons on CPU 1,
#   load generators and upstreams on CPU 0)  GROWTH_LIMIT_KB_PER_H=150
#   PEAK_FACTOR=1.5  CHECK=1  REPORT=0 (1: copy the CSV and plots to
#   docs/bench/long/)  OUT=bench-results/long-DATE  BIN=DIR (prebuilt gnomond,
#   ntpload, benchlong)  GNOMOND_ENV="" (e.g. GOGC=50)  NICE=0
# Run as root. Every daemon runs without CAP_SYS_TIME and never touches a
# clock (gnomond --observe, chronyd -x, ntpd disable ntp / disable kernel).
{
set -euo pipefail

HOURS=${BENCH_LONG_HOURS:-6}
SAMPLE_S=${SAMPLE_S:-10}
LONG_RATE=${LONG_RATE:-10000}
LONG_POLL=${LONG_POLL:-4}
KE_PERIOD=${KE_PERIOD:-5}
KE_BURST=${KE_BURST:-250ms}
KE_CONCURRENCY=${KE_CONCURRENCY:-1}
PIN=${PIN:-auto}
GROWTH_LIMIT_KB_PER_H=${GROWTH_LIMIT_KB_PER_H:-150}
PEAK_FACTOR=${PEAK_FACTOR:-1.5}
CHECK=${CHECK:-1}
REPORT=${REPORT:-0}
NICE=${NICE:-0}
GO=${GO:-go}
CHRONYD=${CHRONYD:-/usr/sbin/chronyd}
NTPD=${NTPD:-/opt/gnomon-peers/ntpsec/usr/sbin/ntpd}
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/bench-results/long-$(date -u +%Y%m%dT%H%M%SZ)}
# shellcheck source=scripts/bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"

if [ "$(id -u)" != 0 ]; then
	echo "bench-long: run as root (network namespace, chronyd, setpriv)" >&2
	exit 2
fi
for tool in setpriv ip taskset openssl "$GO"; do
	command -v "$tool" >/dev/null || { echo "bench-long: $tool not found" >&2; exit 2; }
done
[ -x "$CHRONYD" ] || { echo "bench-long: $CHRONYD missing" >&2; exit 2; }
secs=$(awk -v h="$HOURS" 'BEGIN { s = int(h * 3600 + 0.5); if (s < 30 || h > 48) exit 1; print s }') ||
	{ echo "bench-long: BENCH_LONG_HOURS=$HOURS: want at least 30 s and at most 48 h" >&2; exit 2; }
have_ntpd=0
if [ -x "$NTPD" ]; then have_ntpd=1; else echo "bench-long: $NTPD missing (scripts/install-peers.sh unpacks it): ntpd left out" >&2; fi

mkdir -p "$OUT"
bench_ns blong
# Every gnomond writes its heap figures after each collection (gcstat).
GNOMOND_ARGS="--trace-gc ${GNOMOND_ARGS:-}"
[ "$PIN" = auto ] && { if [ "$(nproc)" -ge 2 ]; then PIN=1; else PIN=0; fi; }
if [ "$PIN" = 1 ]; then srv=(nice -n "$NICE" taskset -c 1); gen=(nice -n "$NICE" taskset -c 0); else srv=(nice -n "$NICE"); gen=(nice -n "$NICE"); fi

if [ -n "${BIN:-}" ]; then
	for b in gnomond ntpload benchlong; do cp "$BIN/$b" "$T/$b"; done
else
	echo "== building into $T"
	CGO_ENABLED=0 "$GO" build -trimpath -o "$T/gnomond" ./cmd/gnomond
	CGO_ENABLED=0 "$GO" build -trimpath -o "$T/ntpload" ./tests/ntpload
	CGO_ENABLED=0 "$GO" build -trimpath -o "$T/benchlong" ./tests/benchlong
fi
make_cert

{
	echo "date,$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "hours,$HOURS"
	echo "seconds,$secs"
	echo "cpus,$(nproc)"
	echo "kernel,$(uname -r)"
	echo "loadavg_before,\"$(cut -d' ' -f1-3 /proc/loadavg)\""
	echo "gnomond,$(git describe --always --dirty 2>/dev/null || echo unknown)"
	echo "gnomond_env,\"${GNOMOND_ENV:-}\""
	echo "chronyd,\"$("$CHRONYD" -v | head -1)\""
	[ "$have_ntpd" = 1 ] && echo "ntpd,\"$("$NTPD" --version 2>&1 | head -1)\""
	echo "pin,$PIN"
	echo "rate,$LONG_RATE"
	echo "poll,$LONG_POLL"
	echo "ke,\"$KE_CONCURRENCY in flight for $KE_BURST every $KE_PERIOD s\""
	echo "sample_s,$SAMPLE_S"
} >"$OUT/machine.csv"

# --- the upstreams and the daemons ----------------------------------------------

ups=()
for i in 11 12 13 14; do
	chrony_conf "up$i" "127.0.0.$i" 123 "local stratum 1"
	start_chronyd "up$i" "${gen[@]}"
	ups+=("127.0.0.$i")
done
sleep 1

# Clients of the 4 upstreams.
conf=$(gn_observe)
for a in "${ups[@]}"; do conf+=$(gn_source "$a:123" "$LONG_POLL" "$LONG_POLL"); done
start_gnomond gnomond-client "$conf" "${srv[@]}"
lines=()
for a in "${ups[@]}"; do lines+=("server $a iburst minpoll $LONG_POLL maxpoll $LONG_POLL"); done
chrony_conf chronyd-client 127.0.0.1 0 "${lines[@]}"
start_chronyd chronyd-client "${srv[@]}"
if [ "$have_ntpd" = 1 ]; then
	nl=""
	for a in "${ups[@]}"; do nl+="server $a iburst minpoll $LONG_POLL maxpoll $LONG_POLL"$'\n'; done
	start_ntpd ntpd-client "$nl" "${srv[@]}"
fi

# NTP servers under a steady load (their source: the first upstream).
start_gnomond gnomond-ntp "$(gn_observe)$(gn_source 127.0.0.11:123)$(gn_server 127.0.0.1:12502)" "${srv[@]}"
chrony_conf chronyd-ntp 127.0.0.1 12503 "server 127.0.0.11 iburst"
start_chronyd chronyd-ntp "${srv[@]}"

# NTS-KE servers (and their NTS NTP servers).
start_gnomond gnomond-ke "$(gn_observe)$(gn_source 127.0.0.12:123)$(gn_server 127.0.0.1:12512)$(gn_ke 127.0.0.1:12513)" "${srv[@]}"
chrony_conf chronyd-ke 127.0.0.1 12514 "server 127.0.0.12 iburst" "ntsport 12515" "ntsserverkey $T/nts.key" \
	"ntsservercert $T/nts.crt" "ntsdumpdir $T/ntsdump" "ntsprocesses 1"
start_chronyd chronyd-ke "${srv[@]}"

daemons=(gnomond-client chronyd-client)
[ "$have_ntpd" = 1 ] && daemons+=(ntpd-client)
daemons+=(gnomond-ntp chronyd-ntp gnomond-ke chronyd-ke)

echo "-- waiting for the servers to answer synchronized"
for p in 12502 12503; do
	"${inns[@]}" "$T/ntpload" -target "127.0.0.1:$p" -clients 1 -wait 60s -duration 100ms -rate 50 -label "warmup-$p" >/dev/null ||
		{ echo "bench-long: the server on port $p does not answer" >&2; tail -n 20 "$T"/*-ntp.log >&2 || true; exit 1; }
done
for p in 12513 12515; do
	"${inns[@]}" "$T/ntpload" -ke "127.0.0.1:$p" -ca "$T/nts.crt" -concurrency 1 -duration 100ms -label "warmup-ke-$p" >/dev/null ||
		{ echo "bench-long: the NTS-KE server on port $p does not answer" >&2; tail -n 20 "$T"/*-ke.log >&2 || true; exit 1; }
done

# --- load, for the whole soak -------------------------------------------------------

end=$(($(date +%s) + secs))
t0=$(date +%s.%N)
# ntp_load PORT NAME: LONG_RATE requests/s in runs of at most 10 minutes.
ntp_load() {
	local left d
	while :; do
		left=$((end - $(date +%s)))
		[ "$left" -gt 2 ] || break
		d=$((left < 600 ? left - 1 : 600))
		"${inns[@]}" "${gen[@]}" "$T/ntpload" -target "127.0.0.1:$1" -clients 16 -duration "${d}s" -rate "$LONG_RATE" \
			-label "$2" -tag "$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.0f", a - b }')" \
			-csv "$OUT/load.csv" >>"$T/load.out" 2>&1 || true
	done
}
# ke_load PORT NAME: a burst of key exchanges every KE_PERIOD seconds.
ke_load() {
	while [ "$(date +%s)" -lt "$end" ]; do
		"${inns[@]}" "${gen[@]}" "$T/ntpload" -ke "127.0.0.1:$1" -ca "$T/nts.crt" -concurrency "$KE_CONCURRENCY" \
			-duration "$KE_BURST" -label "$2" >>"$OUT/ke.log" 2>&1 || true
		sleep "$KE_PERIOD"
	done
}
echo "== soak: ${secs} s (BENCH_LONG_HOURS=$HOURS), ${LONG_RATE}/s to gnomond-ntp and chronyd-ntp, key exchanges to gnomond-ke and chronyd-ke, pin=$PIN; raw data in $OUT"
ntp_load 12502 gnomond-ntp & bg+=("$!")
ntp_load 12503 chronyd-ntp & bg+=("$!")
ke_load 12513 gnomond-ke & bg+=("$!")
ke_load 12515 chronyd-ke & bg+=("$!")

# --- the sampler (this shell) ---------------------------------------------------------

echo "t_s,daemon,rss_kb,cpu_s" >"$OUT/samples.csv"
n=0
while :; do
	now=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
	for d in "${daemons[@]}"; do
		p=${PID[$d]}
		if [ ! -r "/proc/$p/stat" ]; then
			echo "bench-long: $d (pid $p) exited during the soak; its log:" >&2
			tail -n 20 "$T/$d.log" >&2 || true
			exit 1
		fi
		# shellcheck disable=SC2046
		fam=$(family "$p")
		# shellcheck disable=SC2086
		echo "$now,$d,$(rss_kb $fam),$(awk -v n="$(cpu_ns $fam)" 'BEGIN { printf "%.4f", n / 1e9 }')" >>"$OUT/samples.csv"
	done
	n=$((n + 1))
	[ $((n % 60)) = 0 ] && echo "-- $(date -u +%H:%M:%S) ${now} s of ${secs}: $(grep -c . "$OUT/samples.csv") samples; load $(cut -d' ' -f1 /proc/loadavg)"
	[ "$(date +%s)" -lt "$end" ] || break
	sleep "$SAMPLE_S"
done
for p in "${bg[@]}"; do wait "$p" 2>/dev/null || true; done
bg=()
echo "loadavg_after,\"$(cut -d' ' -f1-3 /proc/loadavg)\"" >>"$OUT/machine.csv"

# The Go heap after each collection, in MiB with decimals: gnomond's
# --trace-gc lines ("gcstat: t=T cycle=N live=B goal=B ... total=B
# heap_released=B ..."); for a gnomond without that flag, gctrace's
# "gc N @T s P%: ... A->B->C MB, G MB goal" (whole MB only).
echo "daemon,t_s,heap_live_mb,heap_goal_mb,go_held_mb" >"$OUT/goheap.csv"
for d in "${daemons[@]}"; do
	case $d in gnomond-*) ;; *) continue ;; esac
	cp "$T/$d.log" "$OUT/$d.log"
	if grep -q '^gcstat: ' "$T/$d.log"; then
		awk -v d="$d" '$1 == "gcstat:" {
			for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
			if (v["cycle"] > 0) printf "%s,%s,%.4f,%.4f,%.4f\n", d, v["t"], v["live"] / 1048576, v["goal"] / 1048576, (v["total"] - v["heap_released"]) / 1048576
		}' "$T/$d.log" >>"$OUT/goheap.csv"
	else
		sed -nE 's/^gc [0-9]+ @([0-9.]+)s .* ([0-9]+)->([0-9]+)->([0-9]+) MB, ([0-9]+) MB goal.*/\1,\4,\5,/p' "$T/$d.log" |
			sed "s/^/$d,/" >>"$OUT/goheap.csv"
	fi
done
for d in "${daemons[@]}"; do stop "$d"; done

echo "== analysis"
args=(-in "$OUT" -growth-limit-kb-per-h "$GROWTH_LIMIT_KB_PER_H" -peak-factor "$PEAK_FACTOR")
[ "$CHECK" = 1 ] && args+=(-check)
status=0
"$T/benchlong" "${args[@]}" || status=$?
if command -v gnuplot >/dev/null; then
	for g in "$OUT"/*.gp; do (cd "$OUT" && gnuplot "$(basename "$g")") || echo "bench-long: gnuplot $g failed" >&2; done
fi
if [ "$REPORT" = 1 ]; then
	mkdir -p docs/bench/long
	cp "$OUT"/*.csv "$OUT"/*.svg docs/bench/long/ 2>/dev/null || true
fi
echo "== raw data in $OUT"
exit "$status"
}
