#!/usr/bin/env bash
# bench.sh: `make bench`. gnomond, chronyd 4.3, NTPsec's ntpd and the floor
# (tests/ntpfloor: recvmmsg, stamp, sendmmsg, nothing else) side by side on
# this machine, several rounds, raw CSV per run, then docs/benchmarks.md's
# generated section and the plots (tools/benchreport, gnuplot).
#
#   scripts/bench.sh            # about 15 minutes with the defaults
#   SMOKE=1 scripts/bench.sh    # one short round: checks the harness (make test)
#
# Everything runs inside a network namespace this script creates
# (gn-obs-bench-PID, loopback only: NTPsec's ntpd can only serve port 123),
# and is stopped by PID when the script ends; the namespace is deleted.
# Every time daemon runs without CAP_SYS_TIME (setpriv) and never touches a
# clock: gnomond in observe mode, chronyd -x, ntpd with `disable ntp` and
# `disable kernel`. Rate limiting is off in every server.
#
# Phases:
#  1. server: for ROUNDS rounds (the order of the servers rotates), each
#     server answers ntpload at every rate of RATES (requests/s, 0 = as fast
#     as the generator can) for DURATION: answers/s, loss, p50/p99 latency,
#     server CPU per answer -> throughput.csv. With PIN=1 (the default on 2+
#     CPUs) the servers run on CPU 1 and the generator on CPU 0.
#  1b. NTS: the same with NTS-authenticated requests (gnomond, chronyd and
#     ntpd as NTS-KE + NTS servers with one self-signed certificate) at each
#     rate of NTS_RATES -> nts.csv ("" skips it).
#  2. client: gnomond, chronyd and ntpd each keep time from the same 4 local
#     servers (chronyd on 127.0.0.11-14:123) at a fixed poll of 2^P s for
#     each P of CLIENT_POLLS (4 and 10: 16 s and 1024 s): CLIENT_WARM s to
#     start, then CLIENT_SECS measured: CPU seconds and wake-ups per hour ->
#     client.csv.
#  3. first sync: for each round, each daemon starts as a client of the same
#     4 servers (iburst, default polling) and serves on loopback; the time
#     from its start to its first synchronized answer -> firstsync.csv.
#  Throughout, every daemon's RSS is sampled each second -> memory.csv, and
#  gnomond's Go heap after each GC (GODEBUG=gctrace=1) -> goheap.csv.
#
# Settings (environment):
#   ROUNDS=3  RATES="2000 5000 10000 20000 40000 80000 0"  DURATION=3s
#   SERVERS="floor gnomond chronyd ntpd"  CLIENT_SECS=300  CLIENTS=16
#   PIN=auto  WORKERS=1 (gnomond's and the floor's)  OUT=bench-results/DATE
#   REPORT=1 (0: leave docs/ alone)  SMOKE=0  NTPD=/opt/gnomon-peers/ntpsec/usr/sbin/ntpd
#   BIN=DIR (use DIR/gnomond, DIR/ntpload, DIR/ntpfloor instead of building)
#   GNOMOND_BIN=FILE (this gnomond instead, e.g. to compare two builds)
#   PHASES="server nts client firstsync" (any subset)
#   CLIENT_POLLS="4 10"  CLIENT_WARM=20 (s)
#   RCVBUF_EQUAL=0 (1: the server rounds again with chronyd and ntpd given
#     gnomond's 4 MiB receive buffer through an LD_PRELOAD shim,
#     scripts/bench-rcvbuf.c; labels chronyd-4m, ntpd-4m)
{
set -euo pipefail

SMOKE=${SMOKE:-0}
if [ "$SMOKE" = 1 ]; then
	ROUNDS=${ROUNDS:-1}
	RATES=${RATES:-2000}
	NTS_RATES=${NTS_RATES-1000}
	DURATION=${DURATION:-1s}
	CLIENT_SECS=${CLIENT_SECS:-5}
	CLIENT_WARM=${CLIENT_WARM:-2}
	REPORT=${REPORT:-0}
	CLIENTS=${CLIENTS:-4}
else
	ROUNDS=${ROUNDS:-3}
	RATES=${RATES:-2000 5000 10000 20000 40000 80000 0}
	NTS_RATES=${NTS_RATES-2000 5000 10000 20000 0}
	DURATION=${DURATION:-3s}
	CLIENT_SECS=${CLIENT_SECS:-300}
	REPORT=${REPORT:-1}
	CLIENTS=${CLIENTS:-16}
fi
SERVERS=${SERVERS:-floor gnomond chronyd ntpd}
PHASES=${PHASES:-server nts client firstsync}
CLIENT_POLLS=${CLIENT_POLLS:-4 10}
CLIENT_WARM=${CLIENT_WARM:-20}
RCVBUF_EQUAL=${RCVBUF_EQUAL:-0}
PIN=${PIN:-auto}
WORKERS=${WORKERS:-1}
GO=${GO:-go}
CHRONYD=${CHRONYD:-/usr/sbin/chronyd}
NTPD=${NTPD:-/opt/gnomon-peers/ntpsec/usr/sbin/ntpd}
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}

if [ "$(id -u)" != 0 ]; then
	echo "bench: run as root (network namespace, chronyd, setpriv)" >&2
	exit 2
fi
for tool in setpriv ip taskset "$GO"; do
	command -v "$tool" >/dev/null || { echo "bench: $tool not found" >&2; exit 2; }
done
want=()
for s in $SERVERS; do
	case $s in
	chronyd) if [ -x "$CHRONYD" ]; then want+=(chronyd); else echo "bench: $CHRONYD missing: chronyd left out" >&2; fi ;;
	ntpd) if [ -x "$NTPD" ]; then want+=(ntpd); else echo "bench: $NTPD missing (scripts/install-peers.sh unpacks it): ntpd left out" >&2; fi ;;
	floor | gnomond) want+=("$s") ;;
	*) echo "bench: unknown server $s" >&2; exit 2 ;;
	esac
done
[ -x "$CHRONYD" ] || { echo "bench: chronyd is needed as the upstream of the clients" >&2; exit 2; }

mkdir -p "$OUT"
# shellcheck source=scripts/bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"
bench_ns bench

ncpu=$(nproc)
[ "$PIN" = auto ] && { if [ "$ncpu" -ge 2 ]; then PIN=1; else PIN=0; fi; }
if [ "$PIN" = 1 ]; then
	srv=(taskset -c 1)
	gen=(taskset -c 0)
else
	srv=()
	gen=()
fi

if [ -n "${BIN:-}" ]; then
	echo "== using the binaries in $BIN"
	for b in gnomond ntpload ntpfloor; do cp "$BIN/$b" "$T/$b"; done
	[ -x "${GNOMOND_BIN:-}" ] && cp "$GNOMOND_BIN" "$T/gnomond"
else
	echo "== building into $T"
	if [ -x "${GNOMOND_BIN:-}" ]; then cp "$GNOMOND_BIN" "$T/gnomond"; else CGO_ENABLED=0 "$GO" build -trimpath -o "$T/gnomond" ./cmd/gnomond; fi
	CGO_ENABLED=0 "$GO" build -trimpath -o "$T/ntpload" ./tests/ntpload
	CGO_ENABLED=0 "$GO" build -trimpath -o "$T/ntpfloor" ./tests/ntpfloor
fi

{
	echo "date,$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "cpus,$ncpu"
	echo "cpu_model,\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')\""
	echo "kernel,$(uname -r)"
	echo "loadavg_before,\"$(cut -d' ' -f1-3 /proc/loadavg)\""
	echo "gnomond,$(git describe --always --dirty 2>/dev/null || echo unknown)"
	echo "chronyd,\"$("$CHRONYD" -v | head -1)\""
	[ -x "$NTPD" ] && echo "ntpd,\"$("$NTPD" --version 2>&1 | head -1)\""
	echo "pin,$PIN"
	echo "workers,$WORKERS"
	echo "rounds,$ROUNDS"
	echo "duration,$DURATION"
	echo "clients,$CLIENTS"
	echo "rmem_default,$(cat /proc/sys/net/core/rmem_default)"
	echo "smoke,$SMOKE"
	echo "phases,\"$PHASES\""
	echo "rcvbuf_equal,$RCVBUF_EQUAL"
} >"$OUT/machine.csv"

# --- processes -------------------------------------------------------------

declare -A PORT
phase=setup
echo "$phase" >"$T/phase"
set_phase() { phase=$1; echo "$1" >"$T/phase.new" && mv "$T/phase.new" "$T/phase"; }

# chrony_conf, start_chronyd, start_gnomond, start_ntpd, stop, cpu_ns,
# make_cert, build_shim: scripts/bench-lib.sh (sourced above).
has_phase() { case " $PHASES " in *" $1 "*) return 0 ;; esac; return 1; }

# The sampler: every second, each live daemon's RSS (kB) with the phase.
echo "t_s,phase,daemon,rss_kb" >"$OUT/memory.csv"
t0=$(date +%s.%N)
(
	for _ in $(seq 1 20000); do
		ph=$(cat "$T/phase" 2>/dev/null || echo ?)
		now=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
		for f in "$T"/pid.*; do
			[ -f "$f" ] || continue
			n=${f##*/pid.}
			p=$(cat "$f")
			r=$(awk '/^VmRSS/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
			[ -n "$r" ] && echo "$now,$ph,$n,$r" >>"$OUT/memory.csv"
		done
		sleep 1
	done
) &
sampler=$!
bg+=("$sampler")
track() { echo "${PID[$1]}" >"$T/pid.$1"; }
untrack() { rm -f "$T/pid.$1"; }

# --- phase 1: servers --------------------------------------------------------

port_of() { case $1 in ntpd | ntpd-4m) echo 123 ;; floor) echo 12301 ;; gnomond) echo 12302 ;; chronyd | chronyd-4m) echo 12303 ;; esac; }
if has_phase server; then
echo "== phase 1: servers (${want[*]}), $ROUNDS round(s), rates $RATES, $DURATION each, pin=$PIN"
chrony_conf upstream 127.0.0.20 12320 "local stratum 1"
start_chronyd upstream "${gen[@]}"
for s in "${want[@]}"; do
	p=$(port_of "$s")
	case $s in
	floor)
		"${inns[@]}" "${srv[@]}" "$T/ntpfloor" -listen "127.0.0.1:$p" -workers "$WORKERS" >"$T/floor.log" 2>&1 &
		PID[floor]=$!
		pids+=("$!")
		;;
	chronyd)
		chrony_conf chronyd 127.0.0.1 "$p" "local stratum 1"
		start_chronyd chronyd "${srv[@]}"
		;;
	gnomond)
		start_gnomond gnomond "$(gn_observe)$(gn_source 127.0.0.20:12320 0 2)$(gn_server "127.0.0.1:$p" "$WORKERS")" "${srv[@]}"
		;;
	ntpd)
		start_ntpd ntpd "tos orphan 5 orphanwait 1" "${srv[@]}"
		;;
	esac
	track "$s"
done
# await_server S: S answers synchronized (else its log and exit); what the
# kernel gave its server socket (skmem rb: the buffer in bytes, twice what
# was asked for) goes to machine.csv.
await_server() {
	"${inns[@]}" "$T/ntpload" -target "127.0.0.1:$(port_of "$1")" -clients 1 -wait 60s -duration 100ms -rate 50 -label "warmup-$1" >/dev/null ||
		{ echo "bench: $1 does not answer; its log:" >&2; tail -n 20 "$T/$1.log" >&2 || true; exit 1; }
	echo "rcvbuf_$1,$("${inns[@]}" ss -Huanm "sport = :$(port_of "$1")" | grep -o 'rb[0-9]*' | head -1)" >>"$OUT/machine.csv"
}
# serve_rates S R: server S under ntpload at every rate of RATES, round R.
serve_rates() {
	local rate
	for rate in $RATES; do
		set_phase "serve-$1-$rate"
		"${inns[@]}" "${gen[@]}" "$T/ntpload" -target "127.0.0.1:$(port_of "$1")" -clients "$CLIENTS" \
			-duration "$DURATION" -rate "$rate" -label "$1" -tag "$2" -server-pid "${PID[$1]}" \
			-csv "$OUT/throughput.csv" | sed "s/^/round $2: /" || true
		sleep 0.5
	done
}
for s in "${want[@]}"; do
	echo "-- waiting for $s to answer synchronized"
	await_server "$s"
done

n=${#want[@]}
for r in $(seq 1 "$ROUNDS"); do
	for i in $(seq 0 $((n - 1))); do
		serve_rates "${want[$(( (i + r - 1) % n ))]}" "$r"
	done
done
set_phase idle
[ -n "${PID[gnomond]:-}" ] && grep -E '^gc [0-9]+ @' "$T/gnomond.log" >"$T/gnomond-server.gc" || true
for s in "${want[@]}"; do untrack "$s"; stop "$s"; done

# The receive buffer both ways: gnomond asks for 4 MiB (SO_RCVBUFFORCE),
# chronyd and ntpd keep the kernel's default. With RCVBUF_EQUAL=1 the same
# rounds run again with chronyd and ntpd given gnomond's 4 MiB through an
# LD_PRELOAD shim (scripts/bench-rcvbuf.c), labelled chronyd-4m and ntpd-4m.
if [ "$RCVBUF_EQUAL" = 1 ]; then
	RCVBUF_SHIM=$(build_shim)
	if [ -z "$RCVBUF_SHIM" ]; then
		echo "bench: RCVBUF_EQUAL=1 needs a C compiler for the shim: skipped" >&2
	else
		eq=()
		for s in "${want[@]}"; do
			case $s in
			chronyd) chrony_conf chronyd-4m 127.0.0.1 12303 "local stratum 1"; start_chronyd chronyd-4m "${srv[@]}"; eq+=(chronyd-4m) ;;
			ntpd) start_ntpd ntpd-4m "tos orphan 5 orphanwait 1" "${srv[@]}"; eq+=(ntpd-4m) ;;
			esac
		done
		for s in "${eq[@]}"; do
			track "$s"
			await_server "$s"
		done
		for r in $(seq 1 "$ROUNDS"); do
			for s in "${eq[@]}"; do serve_rates "$s" "$r"; done
		done
		set_phase idle
		for s in "${eq[@]}"; do untrack "$s"; stop "$s"; done
		RCVBUF_SHIM=
	fi
fi
fi # server

# --- phase 1b: NTS servers ------------------------------------------------------

NTS_RATES=${NTS_RATES:-}
if has_phase nts && [ -n "$NTS_RATES" ] && command -v openssl >/dev/null; then
	echo "== phase 1b: NTS servers, $ROUNDS round(s), rates $NTS_RATES, $DURATION each"
	make_cert
	nts_want=()
	declare -A KE
	for s in "${want[@]}"; do
		case $s in
		gnomond)
			start_gnomond nts-gnomond "$(gn_observe)$(gn_source 127.0.0.20:12320 0 2)$(gn_server 127.0.0.1:12412 "$WORKERS")$(gn_ke 127.0.0.1:12413)" "${srv[@]}"
			KE[gnomond]=12413
			;;
		chronyd)
			chrony_conf nts-chronyd 127.0.0.1 12414 "local stratum 1" "ntsport 12415" "ntsserverkey $T/nts.key" \
				"ntsservercert $T/nts.crt" "ntsdumpdir $T/ntsdump" "ntsprocesses 1"
			start_chronyd nts-chronyd "${srv[@]}"
			KE[chronyd]=12415
			;;
		ntpd)
			start_ntpd nts-ntpd "tos orphan 5 orphanwait 1
nts enable
nts key $T/nts.key
nts cert $T/nts.crt
nts cookie $T/nts-cookies" "${srv[@]}"
			KE[ntpd]=4460
			;;
		*) continue ;;
		esac
		nts_want+=("$s")
	done
	for s in "${nts_want[@]}"; do
		"${inns[@]}" "$T/ntpload" -nts "127.0.0.1:${KE[$s]}" -ca "$T/nts.crt" -clients 1 -sessions 1 -wait 60s \
			-duration 100ms -rate 50 -label "warmup-nts-$s" >/dev/null ||
			{ echo "bench: $s gives no NTS answer; its log:" >&2; tail -n 20 "$T/nts-$s.log" >&2 || true; exit 1; }
	done
	n=${#nts_want[@]}
	for r in $(seq 1 "$ROUNDS"); do
		for i in $(seq 0 $((n - 1))); do
			s=${nts_want[$(( (i + r - 1) % n ))]}
			# chronyd's NTS-KE helper processes count too.
			spids=${PID[nts-$s]}
			kids=$({ ps -o pid= --ppid "${PID[nts-$s]}" || true; } | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
			[ -n "$kids" ] && spids="$spids,$kids"
			for rate in $NTS_RATES; do
				set_phase "nts-$s-$rate"
				"${inns[@]}" "${gen[@]}" "$T/ntpload" -nts "127.0.0.1:${KE[$s]}" -ca "$T/nts.crt" -clients "$CLIENTS" \
					-duration "$DURATION" -rate "$rate" -label "$s" -tag "$r" -server-pid "$spids" \
					-csv "$OUT/nts.csv" | sed "s/^/round $r: NTS /" || true
				sleep 0.5
			done
		done
	done
	set_phase idle
	for s in "${nts_want[@]}"; do stop "nts-$s"; done
fi

# --- phase 2: clients ---------------------------------------------------------

# The 4 upstreams of phases 2 and 3.
ups=()
if has_phase client || has_phase firstsync; then
	for i in 11 12 13 14; do
		chrony_conf "up$i" "127.0.0.$i" 123 "local stratum 1"
		start_chronyd "up$i" "${gen[@]}"
		ups+=("127.0.0.$i")
	done
	sleep 1
fi
# wakeups PID: voluntary context switches of PID's threads (each one a
# sleep ended: what a timer or a packet costs besides the work itself).
wakeups() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ { s += $2 } END { printf "%d\n", s }'; }
if has_phase client; then
echo "daemon,poll,seconds,cpu_s,cpu_s_per_hour,rss_kb,wakeups_per_hour" >"$OUT/client.csv"
for poll in $CLIENT_POLLS; do
echo "== phase 2: clients of 4 local servers at a fixed poll of 2^$poll s: ${CLIENT_WARM} s to start, then ${CLIENT_SECS} s measured"
set_phase "client-p$poll"
clients=()
for s in "${want[@]}"; do
	case $s in
	gnomond)
		conf=$(gn_observe)
		for a in "${ups[@]}"; do conf+=$(gn_source "$a:123" "$poll" "$poll"); done
		start_gnomond gnomond-client "$conf" "${srv[@]}"
		clients+=(gnomond-client)
		;;
	chronyd)
		lines=()
		for a in "${ups[@]}"; do lines+=("server $a iburst minpoll $poll maxpoll $poll"); done
		chrony_conf chronyd-client 127.0.0.1 0 "${lines[@]}"
		start_chronyd chronyd-client "${srv[@]}"
		clients+=(chronyd-client)
		;;
	ntpd)
		lines=""
		for a in "${ups[@]}"; do lines+="server $a iburst minpoll $poll maxpoll $poll"$'\n'; done
		start_ntpd ntpd-client "$lines" "${srv[@]}"
		clients+=(ntpd-client)
		;;
	esac
done
# The first seconds (start-up, the initial burst) are left out: the
# figure is the steady cost of keeping time.
sleep "$CLIENT_WARM"
declare -A C0 W0
for c in "${clients[@]}"; do track "$c"; C0[$c]=$(cpu_ns "${PID[$c]}"); W0[$c]=$(wakeups "${PID[$c]}"); done
sleep "$CLIENT_SECS"
for c in "${clients[@]}"; do
	p=${PID[$c]}
	if [ ! -r "/proc/$p/stat" ]; then
		echo "bench: $c exited during the client phase; its log:" >&2
		tail -n 20 "$T/$c.log" >&2 || true
		exit 1
	fi
	t1=$(cpu_ns "$p")
	w1=$(wakeups "$p")
	rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$p/status")
	awk -v d=$((t1 - ${C0[$c]})) -v w=$((w1 - ${W0[$c]})) -v s="$CLIENT_SECS" -v n="${c%-client}" -v r="$rss" -v p="$poll" \
		'BEGIN { printf "%s,%d,%d,%.4f,%.3f,%d,%.0f\n", n, p, s, d / 1e9, d / 1e9 * 3600 / s, r, w * 3600 / s }' | tee -a "$OUT/client.csv"
done
[ -f "$T/gnomond-client.log" ] && grep -E '^gc [0-9]+ @' "$T/gnomond-client.log" >>"$T/gnomond-client.gc" || true
for c in "${clients[@]}"; do untrack "$c"; stop "$c"; done
done
fi # client

# --- phase 3: time to first sync ----------------------------------------------

if has_phase firstsync; then
echo "== phase 3: time to first sync (each daemon a client of the same 4 servers, iburst), $ROUNDS round(s)"
set_phase firstsync
echo "round,daemon,seconds" >"$OUT/firstsync.csv"
fs_port() { case $1 in gnomond) echo 12402 ;; chronyd) echo 12403 ;; ntpd) echo 123 ;; esac; }
for r in $(seq 1 "$ROUNDS"); do
	for s in "${want[@]}"; do
		# ntpd is left out: it never answers synchronized here, neither
		# with `disable ntp` (it then never declares itself synchronized)
		# nor without it (its ntp_adjtime calls fail without CAP_SYS_TIME),
		# so its first sync cannot be read from outside on this host.
		[ "$s" = floor ] || [ "$s" = ntpd ] && continue
		p=$(fs_port "$s")
		t0=$(date +%s.%N)
		case $s in
		gnomond)
			conf="$(gn_observe)$(gn_server "127.0.0.1:$p")"
			for a in "${ups[@]}"; do conf+=$(gn_source "$a:123"); done
			start_gnomond fs-gnomond "$conf" "${srv[@]}"
			;;
		chronyd)
			lines=()
			for a in "${ups[@]}"; do lines+=("server $a iburst"); done
			chrony_conf fs-chronyd 127.0.0.1 "$p" "${lines[@]}"
			start_chronyd fs-chronyd "${srv[@]}"
			;;
		ntpd)
			lines=""
			for a in "${ups[@]}"; do lines+="server $a iburst"$'\n'; done
			start_ntpd fs-ntpd "$lines" "${srv[@]}"
			;;
		esac
		if "${inns[@]}" "${gen[@]}" "$T/ntpload" -target "127.0.0.1:$p" -clients 1 -wait 90s -duration 10ms -rate 100 \
			-label "firstsync-$s" >/dev/null 2>"$T/fs.err"; then
			t1=$(date +%s.%N)
			awk -v a="$t1" -v b="$t0" -v r="$r" -v s="$s" 'BEGIN { printf "%s,%s,%.2f\n", r, s, a - b }' | tee -a "$OUT/firstsync.csv"
		else
			echo "$r,$s," >>"$OUT/firstsync.csv"
			echo "bench: $s gave no synchronized answer within 90 s: $(cat "$T/fs.err")" >&2
		fi
		stop "fs-$s"
		sleep 0.5
	done
done
fi # firstsync
set_phase done
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
sampler=

# gctrace lines: "gc N @T s P%: ... A->B->C MB, G MB goal, ..." -> heap in use
# after the collection (C) over time.
echo "phase,t_s,heap_live_mb,heap_goal_mb" >"$OUT/goheap.csv"
for f in server client; do
	[ -f "$T/gnomond-$f.gc" ] || continue
	sed -nE 's/^gc [0-9]+ @([0-9.]+)s .* ([0-9]+)->([0-9]+)->([0-9]+) MB, ([0-9]+) MB goal.*/\1,\4,\5/p' "$T/gnomond-$f.gc" |
		sed "s/^/$f,/" >>"$OUT/goheap.csv"
done
echo "loadavg_after,\"$(cut -d' ' -f1-3 /proc/loadavg)\"" >>"$OUT/machine.csv"

echo "== raw data in $OUT:"
ls -l "$OUT"
if [ "$REPORT" = 1 ]; then
	"$GO" run ./tools/benchreport -in "$OUT" -doc docs/benchmarks.md -plots docs/bench
fi
}
