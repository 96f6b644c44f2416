#!/usr/bin/env bash
# bench-scale.sh: `make bench-scale`, how answers/s and CPU per answer change
# with the number of server workers (issue 17, item 7). The server is pinned
# to a subset of the CPUs and the load generator (tests/ntpload) to the
# others, so that the generator is not what limits the answers/s.
#
#   scripts/bench-scale.sh                                  # this 2-core machine
#   SERVER_POOL=0-7 GEN_CPUS=8-31 WORKERS_LIST="1 2 4 8" CLIENTS=64 \
#       scripts/bench-scale.sh                              # a 32-core machine
#
# For each W of WORKERS_LIST and each server of SERVERS (gnomond with
# `workers = W`, the floor tests/ntpfloor with -workers W), the server runs on
# the first W CPUs of SERVER_POOL (all of SERVER_POOL when it has fewer), the
# generator on GEN_CPUS; the generator offers each rate of RATES (0: as fast
# as it can) for DURATION, ROUNDS times: answers/s, loss, CPU per answer, the
# generator's own CPU share -> scale.csv (ntpload's columns, plus workers and
# server_cpus, "1+2+3"). On 2 cores (the defaults: server on CPU 1, generator on CPU 0)
# W > 1 puts several workers on one core, which shows what extra workers cost
# there, not how they scale; that needs the many-core run above.
# Everything in a network namespace of its own (gn-obs-scale-PID), loopback
# only, gnomond in observe mode without CAP_SYS_TIME. Run as root.
{
set -euo pipefail
WORKERS_LIST=${WORKERS_LIST:-1 2}
SERVERS=${SERVERS:-floor gnomond}
SERVER_POOL=${SERVER_POOL:-1}
GEN_CPUS=${GEN_CPUS:-0}
RATES=${RATES:-20000 0}
DURATION=${DURATION:-3s}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-16}
GO=${GO:-go}
CHRONYD=${CHRONYD:-/usr/sbin/chronyd}
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/bench-results/scale-$(date -u +%Y%m%dT%H%M%SZ)}
# shellcheck source=scripts/bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"
[ "$(id -u)" = 0 ] || { echo "bench-scale: run as root" >&2; exit 2; }
[ -x "$CHRONYD" ] || { echo "bench-scale: $CHRONYD missing (gnomond's source)" >&2; exit 2; }

# cpus LIST: the CPU numbers of a taskset list ("0-3,8").
cpus() {
	local part out=()
	IFS=, read -ra parts <<<"$1"
	for part in "${parts[@]}"; do
		if [[ $part == *-* ]]; then out+=($(seq "${part%-*}" "${part#*-}")); else out+=("$part"); fi
	done
	echo "${out[@]}"
}
pool=($(cpus "$SERVER_POOL"))

mkdir -p "$OUT"
bench_ns scale

if [ -n "${BIN:-}" ]; then
	for b in gnomond ntpload ntpfloor; do cp "$BIN/$b" "$T/$b"; done
else
	CGO_ENABLED=0 "$GO" build -trimpath -o "$T/gnomond" ./cmd/gnomond
	CGO_ENABLED=0 "$GO" build -trimpath -o "$T/ntpload" ./tests/ntpload
	CGO_ENABLED=0 "$GO" build -trimpath -o "$T/ntpfloor" ./tests/ntpfloor
fi
{
	echo "date,$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "cpus,$(nproc)"
	echo "cpu_model,\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')\""
	echo "server_pool,$SERVER_POOL"
	echo "gen_cpus,$GEN_CPUS"
	echo "workers,\"$WORKERS_LIST\""
	echo "loadavg_before,\"$(cut -d' ' -f1-3 /proc/loadavg)\""
} >"$OUT/machine.csv"

chrony_conf upstream 127.0.0.20 12320 "local stratum 1"
start_chronyd upstream taskset -c "$GEN_CPUS"
echo "== scaling: workers $WORKERS_LIST, server CPUs from $SERVER_POOL, generator on $GEN_CPUS, rates $RATES, $DURATION, $ROUNDS round(s)"
for r in $(seq 1 "$ROUNDS"); do
	for w in $WORKERS_LIST; do
		n=$((w < ${#pool[@]} ? w : ${#pool[@]}))
		scpus=$(echo "${pool[@]:0:$n}" | tr ' ' ,)
		for s in $SERVERS; do
			case $s in
			floor)
				"${inns[@]}" taskset -c "$scpus" "$T/ntpfloor" -listen 127.0.0.1:12301 -workers "$w" >"$T/floor.log" 2>&1 &
				PID[floor]=$!
				pids+=("$!")
				port=12301
				;;
			gnomond)
				start_gnomond gnomond "$(gn_observe)$(gn_source 127.0.0.20:12320 0 2)$(gn_server 127.0.0.1:12302 "$w")" taskset -c "$scpus"
				port=12302
				;;
			*) echo "bench-scale: unknown server $s" >&2; exit 2 ;;
			esac
			"${inns[@]}" "$T/ntpload" -target "127.0.0.1:$port" -clients 1 -wait 60s -duration 100ms -rate 50 -label warmup >/dev/null ||
				{ echo "bench-scale: $s does not answer" >&2; tail -n 20 "$T/$s.log" >&2 || true; exit 1; }
			for rate in $RATES; do
				"${inns[@]}" taskset -c "$GEN_CPUS" "$T/ntpload" -target "127.0.0.1:$port" -clients "$CLIENTS" -duration "$DURATION" \
					-rate "$rate" -label "$s" -tag "$r" -server-pid "${PID[$s]}" -csv "$T/run.csv" | sed "s/^/round $r workers $w cpus $scpus: /" || true
				# ntpload's row, with the workers and the server's CPUs.
				if [ -f "$T/run.csv" ]; then
					[ -f "$OUT/scale.csv" ] || echo "workers,server_cpus,$(head -1 "$T/run.csv")" >"$OUT/scale.csv"
					tail -n +2 "$T/run.csv" | sed "s/^/$w,${scpus//,/+},/" >>"$OUT/scale.csv"
					rm -f "$T/run.csv"
				fi
				sleep 0.5
			done
			stop "$s"
		done
	done
done
echo "loadavg_after,\"$(cut -d' ' -f1-3 /proc/loadavg)\"" >>"$OUT/machine.csv"

# Summary: medians over rounds per server, workers and rate.
echo "== medians over $ROUNDS round(s) (answers/s; CPU µs per answer; generator CPU %)"
awk -F, 'NR > 1 {
	k = $4 " w=" $1 " rate=" ($6 == 0 ? "max" : $6)
	n[k]++; a[k, n[k]] = $10; c[k, n[k]] = $14; g[k, n[k]] = $15; keys[k] = 1
}
function med(arr, k, m,   i, j, t, v) {
	for (i = 1; i <= m; i++) v[i] = arr[k, i]
	for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
	return v[int((m + 1) / 2)]
}
END { for (k in keys) printf "%-28s answers/s %8.0f  cpu/answer %6s µs  gen-cpu %s%%\n", k, med(a, k, n[k]), med(c, k, n[k]), med(g, k, n[k]) }' "$OUT/scale.csv" | sort
echo "== raw data in $OUT"
}
