#!/usr/bin/env bash
# bench-nts-ab.sh: gnomond's NTS answer against the floor, and two gnomond
# builds against each other, in one session (docs/benchmarks.md, "The NTS
# answer at overload (2026-12-08)"). Every server runs at once, pinned to
# CPU 1; the generator (CPU 0) goes from one to the next, the order rotating
# each round, so that all of them meet the same machine.
#
#   BIN=DIR A=gnomond-a [B=gnomond-b] ROUNDS=5 scripts/bench-nts-ab.sh
#
# BIN holds ntpload and ntpfloor (go build ./tests/ntpload ./tests/ntpfloor).
# Targets, each one ntpload run of DURATION at RATE (0: flat out):
#   floor        ntpfloor: 48-byte requests and replies (bench.sh's floor)
#   floor-228    ntpfloor -echo under ntpload -pad 228: datagrams of an NTS
#                request's and reply's size (one cookie), both ways
#   floor-228t   the same with -rxts: receive timestamps, as gnomond's
#                server sockets have them
#   floor-228c   the same with -cmsg: both of gnomond's socket options
#                (receive timestamps, and PKTINFO in and out)
#   floor-228g   the same with gnomond's 4 MiB receive buffer too: the
#                socket as gnomond has it
#   A-ntp, A-nts gnomond A: plain NTP (48 bytes), NTS (ntpload -nts: closed
#                loop, 1 024 requests in flight)
#   A-ntsr       gnomond A, NTS requests replayed open loop (ntpload -nts
#                -replay): the server at overload, as the floor's flood
#                puts it, whatever the generator's own NTS work costs
#   B-ntp, B-nts, B-ntsr  the same for B, when B is set
# TARGETS selects (default: all of the above). PERF="A-nts floor-228g"
# records those targets' servers with perf record -g during round 1
# (OUT/perf-TARGET.data; perf report -i FILE).
# Output: OUT/ab.csv (ntpload's -csv rows: label = target, tag = round) and
# a summary: server CPU per answer, median (min-max) over the rounds, and
# each target's median over the floor's.
#
# Runs as root inside a network namespace it creates (gn-obs-ntsab-PID);
# gnomond in observe mode and chronyd -x, without CAP_SYS_TIME. Take
# /tmp/bench.lock around it on a shared machine:
#   flock /tmp/bench.lock env BIN=... A=... B=... scripts/bench-nts-ab.sh
{
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-3s}
RATE=${RATE:-0}
CLIENTS=${CLIENTS:-16}
WORKERS=${WORKERS:-1}
CHRONYD=${CHRONYD:-/usr/sbin/chronyd}
OUT=${OUT:-$ROOT/bench-results/ntsab-$(date -u +%Y%m%dT%H%M%SZ)}
: "${BIN:?BIN=DIR with ntpload and ntpfloor}"
: "${A:?A=the gnomond binary to measure}"
[ "$(id -u)" = 0 ] || { echo "bench-nts-ab: run as root (network namespace, setpriv)" >&2; exit 2; }
for f in "$BIN/ntpload" "$BIN/ntpfloor" "$A" ${B:+"$B"} "$CHRONYD"; do
	[ -x "$f" ] || { echo "bench-nts-ab: $f is not an executable" >&2; exit 2; }
done
if [ -n "${TARGETS:-}" ]; then
	read -r -a targets <<<"$TARGETS"
else
	targets=(floor floor-228 floor-228t floor-228c floor-228g A-ntp A-nts A-ntsr)
	[ -n "${B:-}" ] && targets+=(B-ntp B-nts B-ntsr)
fi
mkdir -p "$OUT"
# shellcheck source=scripts/bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"
bench_ns ntsab
srv=(taskset -c 1)
gen=(taskset -c 0)
cp "$BIN/ntpload" "$BIN/ntpfloor" "$T/"
make_cert

{
	echo "date,$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "kernel,$(uname -r)"
	echo "loadavg_before,\"$(cut -d' ' -f1-3 /proc/loadavg)\""
	echo "A,$A,$(sha256sum "$A" | cut -c1-12)"
	[ -n "${B:-}" ] && echo "B,$B,$(sha256sum "$B" | cut -c1-12)"
	echo "rounds,$ROUNDS"
	echo "duration,$DURATION"
	echo "rate,$RATE"
	echo "targets,\"${targets[*]}\""
} >"$OUT/machine.csv"

# The upstream of both gnomonds (on the generator's CPU, idle during runs).
chrony_conf upstream 127.0.0.20 12320 "local stratum 1"
start_chronyd upstream "${gen[@]}"

declare -A FLOORPORT=([floor]=12331 [floor-228]=12332 [floor-228t]=12334 [floor-228c]=12333 [floor-228g]=12335)
declare -A FLOOROPTS=([floor]="" [floor-228]="-echo" [floor-228t]="-echo -rxts" [floor-228c]="-echo -cmsg" [floor-228g]="-echo -cmsg -rcvbuf 4194304")
declare -A NTPPORT=([A]=12341 [B]=12351)
declare -A KEPORT=([A]=12342 [B]=12352)
for f in floor floor-228 floor-228t floor-228c floor-228g; do
	# shellcheck disable=SC2086
	"${inns[@]}" "${srv[@]}" "$T/ntpfloor" -listen "127.0.0.1:${FLOORPORT[$f]}" -workers "$WORKERS" ${FLOOROPTS[$f]} >"$T/$f.log" 2>&1 &
	PID[$f]=$!
	pids+=("$!")
done
builds=(A)
[ -n "${B:-}" ] && builds+=(B)
for b in "${builds[@]}"; do
	cp "${!b}" "$T/gnomond"
	mv "$T/gnomond" "$T/gnomond-$b"
	printf '%s\n' "$(gn_observe)$(gn_source 127.0.0.20:12320 0 2)$(gn_server "127.0.0.1:${NTPPORT[$b]}" "$WORKERS")$(gn_ke "127.0.0.1:${KEPORT[$b]}")" >"$T/$b.toml"
	"${inns[@]}" "${srv[@]}" "${safe[@]}" "$T/gnomond-$b" --config "$T/$b.toml" --no-dbus --observe --user "" --state-dir "" >"$T/$b.log" 2>&1 &
	PID[$b]=$!
	pids+=("$!")
done
for b in "${builds[@]}"; do
	"${inns[@]}" "$T/ntpload" -target "127.0.0.1:${NTPPORT[$b]}" -clients 1 -wait 60s -duration 100ms -rate 50 >/dev/null ||
		{ echo "bench-nts-ab: gnomond $b does not answer; its log:" >&2; tail -n 20 "$T/$b.log" >&2; exit 1; }
	"${inns[@]}" "$T/ntpload" -nts "127.0.0.1:${KEPORT[$b]}" -ca "$T/nts.crt" -clients 1 -sessions 1 -wait 60s \
		-duration 100ms -rate 50 >/dev/null ||
		{ echo "bench-nts-ab: gnomond $b gives no NTS answer; its log:" >&2; tail -n 20 "$T/$b.log" >&2; exit 1; }
done

# run TARGET ROUND: one ntpload run against TARGET.
run() {
	local t=$1 r=$2 args
	case $t in
	floor) args=(-target "127.0.0.1:${FLOORPORT[floor]}" -server-pid "${PID[floor]}") ;;
	floor-228 | floor-228t | floor-228c | floor-228g) args=(-target "127.0.0.1:${FLOORPORT[$t]}" -pad 228 -server-pid "${PID[$t]}") ;;
	A-ntp | B-ntp) args=(-target "127.0.0.1:${NTPPORT[${t%-ntp}]}" -server-pid "${PID[${t%-ntp}]}") ;;
	A-nts | B-nts) args=(-nts "127.0.0.1:${KEPORT[${t%-nts}]}" -ca "$T/nts.crt" -server-pid "${PID[${t%-nts}]}") ;;
	A-ntsr | B-ntsr) args=(-nts "127.0.0.1:${KEPORT[${t%-ntsr}]}" -ca "$T/nts.crt" -replay -server-pid "${PID[${t%-ntsr}]}") ;;
	*) echo "bench-nts-ab: unknown target $t" >&2; exit 2 ;;
	esac
	local perf=
	if [ "$r" = 1 ] && [[ " ${PERF:-} " == *" $t "* ]]; then
		local p=${args[*]}
		p=${p##*-server-pid }
		# Started a little after the generator (the NTS key exchanges
		# come first), stopped before it ends.
		(sleep 1 && exec perf record -q -g -p "${p%% *}" -o "$OUT/perf-$t.data" -- sleep 1.5) >/dev/null 2>&1 &
		perf=$!
	fi
	"${inns[@]}" "${gen[@]}" "$T/ntpload" "${args[@]}" -clients "$CLIENTS" -duration "$DURATION" -rate "$RATE" \
		-label "$t" -tag "$r" -csv "$OUT/ab.csv" | sed "s/^/round $r: /" || true
	[ -z "$perf" ] || wait "$perf" || true
	sleep 0.5
}
n=${#targets[@]}
for r in $(seq 1 "$ROUNDS"); do
	echo "== round $r ($(cut -d' ' -f1-3 /proc/loadavg))"
	for i in $(seq 0 $((n - 1))); do
		run "${targets[$(( (i + r - 1) % n ))]}" "$r"
	done
done
echo "loadavg_after,\"$(cut -d' ' -f1-3 /proc/loadavg)\"" >>"$OUT/machine.csv"

# The summary: per target, the rounds' µs per answer (column 12) and
# answers/s (column 8), median (min-max), and the median's multiple of the
# floor's median.
echo "== µs of server CPU per answer, median (min-max) of $ROUNDS rounds; answers/s median; × the floor's median"
awk -F, 'NR > 1 && $12 != "" { v[$2] = v[$2] " " $12; a[$2] = a[$2] " " $8 }
	function med(s,   x, k, i, j, t) {
		k = split(s, x, " ")
		for (i = 2; i <= k; i++) for (j = i; j > 1 && x[j-1] + 0 > x[j] + 0; j--) { t = x[j]; x[j] = x[j-1]; x[j-1] = t }
		lo = x[1]; hi = x[k]
		return k % 2 ? x[(k+1)/2] : (x[k/2] + x[k/2+1]) / 2
	}
	END {
		fm = ("floor" in v) ? med(v["floor"]) : 0
		for (t in v) {
			m = med(v[t]); l = lo; h = hi
			printf "%-11s %6.2f (%s-%s)  %7.0f/s  %5.2fx floor  [%s ]\n", t, m, l, h, med(a[t]), (fm > 0 ? m / fm : 0), v[t]
		}
	}' "$OUT/ab.csv" | sort | tee "$OUT/summary.txt"
echo "== raw data in $OUT"
}
