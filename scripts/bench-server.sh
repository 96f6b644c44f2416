#!/usr/bin/env bash
# bench-server.sh: gnomond's NTP server against chronyd 4.3, side by side on
# this machine, and gnomond's memory while it only keeps time.
#
#   scripts/bench-server.sh server   # throughput sweep: max answers/s under 1% loss, ratio
#   scripts/bench-server.sh rss      # RSS of gnomond with 4 sources, serving nothing
#   scripts/bench-server.sh nts      # the same sweep with NTS-authenticated requests
#   scripts/bench-server.sh ke       # NTS-KE handshakes/s (TLS 1.3 + records)
#
# Everything runs on loopback (127.0.0.0/8) on random high ports. Every time
# daemon runs without CAP_SYS_TIME (setpriv) and in observe mode (gnomond
# clock mode "observe", chronyd -x), so nothing can touch the system clock.
# Everything started here is stopped by PID when the script ends.
#
# Settings (environment):
#   DURATION=5s     length of each load run
#   CLIENTS=16      load-generator clients (sockets on 127.0.0.2, .3, ...)
#   START_RATE=20000  first rate of each sweep (requests/s)
#   MAX_LOSS=1      loss limit of the sweep, percent
#   PIN=auto        1: server on CPU 1, load generator (and helpers) on CPU 0;
#                   0: no pinning (everything shares every CPU); auto: 1 on >= 2 CPUs
#   WORKERS=        gnomond [[server]] workers (default: the CPUs it may use)
#   RATELIMIT=0     1: both servers rate-limit per client (generous limits
#                   the load stays under), to measure the limiter's cost
#   ROUNDS=1        repeat the pair of sweeps, alternating which goes first
#   RSS_WAIT=60     seconds before reading gnomond's RSS (rss mode)
#   RSS_LIMIT_MB=12 rss mode fails above this
#   NICE=0          nice value for the servers and the load generator (e.g. -15
#                   to keep other work on a shared machine from disturbing the
#                   comparison; both servers get the same)
#   RCVBUF=         what-if experiment, not a like-for-like run: hand gnomond
#                   its server socket through socket activation with this
#                   SO_RCVBUF (bytes; chronyd keeps the kernel default), to
#                   see how much of gnomond's loss is socket-buffer overflow
#   CPU_RATE=10000  rate of the CPU-cost run: CPU time (user+system, from
#                   /proc/PID/stat) each server spends per answer at a fixed
#                   load, which short stalls from other work hardly move
#   GNOMOND_BIN=    use this gnomond binary instead of building ./cmd/gnomond
#   PERF=0          1: record gnomond with `perf record -g` during one run at
#                   its highest rate and print where the time goes (server,
#                   nts), or during a key-exchange run (ke)
# NTS and NTS-KE (nts, ke): both servers use the same self-signed ECDSA P-256
# certificate (made here with openssl, SAN IP:127.0.0.1); chronyd with
# ntsprocesses 1 (its default: one NTS-KE helper process besides the main
# one), gnomond with one [[nts-ke-server]]. Settings:
#   NTS_START_RATE=5000  first rate of each NTS sweep
#   NTS_CPU_RATE=5000    rate of the NTS CPU-cost run
#   SESSIONS=64          NTS sessions per load-generator client
#   NTS_PROCESSES=1      chronyd's ntsprocesses
#   KE_CONCURRENCY="1 8 32"  key exchanges in flight, one run each
#   KE_DURATION=5s       length of each key-exchange run
#   KE_GROUPS="default x25519"  the generator's TLS key-exchange offer: Go's
#                   default (X25519MLKEM768 and X25519) and X25519 only
#                   (GODEBUG=tlsmlkem=0); each server picks what it supports
# The whole script is one { ... } block, so bash reads all of it before
# running any of it: editing the file during a run cannot change that run.
{
set -euo pipefail

mode=${1:-server}
DURATION=${DURATION:-5s}
CLIENTS=${CLIENTS:-16}
START_RATE=${START_RATE:-20000}
MAX_LOSS=${MAX_LOSS:-1}
PIN=${PIN:-auto}
RATELIMIT=${RATELIMIT:-0}
ROUNDS=${ROUNDS:-1}
RSS_WAIT=${RSS_WAIT:-60}
RSS_LIMIT_MB=${RSS_LIMIT_MB:-12}
PERF=${PERF:-0}
NICE=${NICE:-0}
RCVBUF=${RCVBUF:-}
CPU_RATE=${CPU_RATE:-10000}
NTS_START_RATE=${NTS_START_RATE:-5000}
NTS_CPU_RATE=${NTS_CPU_RATE:-5000}
SESSIONS=${SESSIONS:-64}
NTS_PROCESSES=${NTS_PROCESSES:-1}
KE_CONCURRENCY=${KE_CONCURRENCY:-1 8 32}
KE_DURATION=${KE_DURATION:-5s}
KE_GROUPS=${KE_GROUPS:-default x25519}
GO=${GO:-go}
CHRONYD=${CHRONYD:-/usr/sbin/chronyd}

cd "$(dirname "$0")/.."
case "$mode" in
server | rss | nts | ke) ;;
*) echo "usage: $0 [server|rss|nts|ke]" >&2; exit 2 ;;
esac
for tool in setpriv "$CHRONYD" "$GO"; do
	command -v "$tool" >/dev/null || { echo "bench-server: $tool not found" >&2; exit 2; }
done
if [ "$(id -u)" != 0 ]; then
	echo "bench-server: run as root (chronyd drops to _chrony; setpriv removes CAP_SYS_TIME)" >&2
	exit 2
fi

T=$(mktemp -d /tmp/gnomon-bench.XXXXXX)
chmod 0777 "$T" # chronyd runs as _chrony
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${GNOMOND_BIN:-}" ]; then
	echo "== using $GNOMOND_BIN ($("$GNOMOND_BIN" --version))"
	cp "$GNOMOND_BIN" "$T/gnomond"
else
	echo "== building gnomond and ntpload into $T"
	CGO_ENABLED=0 "$GO" build -trimpath -o "$T/gnomond" ./cmd/gnomond
fi
CGO_ENABLED=0 "$GO" build -trimpath -o "$T/ntpload" ./tests/ntpload

ncpu=$(nproc)
if [ "$PIN" = auto ]; then
	if [ "$ncpu" -ge 2 ]; then PIN=1; else PIN=0; fi
fi
if [ "$PIN" = 1 ]; then
	server_cpus=1
	load_cpus=0
	srv_pin=(nice -n "$NICE" taskset -c "$server_cpus")
	load_pin=(nice -n "$NICE" taskset -c "$load_cpus")
	server_ncpu=1
else
	srv_pin=(nice -n "$NICE")
	load_pin=(nice -n "$NICE")
	server_ncpu=$ncpu
fi
WORKERS=${WORKERS:-$server_ncpu}

# new_port sets PORT to a random high port not in use (UDP or TCP) on this
# machine.
used_ports=" "
new_port() {
	local p
	while :; do
		p=$(( 20000 + RANDOM % 40000 ))
		case "$used_ports" in *" $p "*) continue ;; esac
		if ! ss -Hluatn "sport = :$p" 2>/dev/null | grep -q .; then
			used_ports="$used_ports$p "
			PORT=$p
			return
		fi
	done
}

safe=(setpriv --bounding-set=-sys_time --inh-caps=-sys_time)

# start_chronyd NAME PORT [EXTRA_DIRECTIVE] [PIN...]: chronyd -x serving
# local stratum 1 on 127.0.0.1:PORT to all of 127.0.0.0/8. Sets LASTPID.
start_chronyd() {
	local name=$1 port=$2 extra=$3
	shift 3
	cat >"$T/$name.conf" <<EOF
port $port
bindaddress 127.0.0.1
allow 127.0.0.0/8
local stratum 1
cmdport 0
bindcmdaddress /
pidfile $T/$name.pid
$extra
EOF
	"$@" "${safe[@]}" "$CHRONYD" -x -d -f "$T/$name.conf" >"$T/$name.log" 2>&1 &
	LASTPID=$!
	pids+=("$LASTPID")
}

# activate.py ADDR PORT RCVBUF CMD...: binds a UDP socket with that receive
# buffer as fd 3 and execs CMD as if systemd had passed it (LISTEN_FDS=1,
# LISTEN_FDNAMES=ntp, LISTEN_PID = this process, which exec keeps).
write_shim() {
	cat >"$T/activate.py" <<'PY'
import os, socket, sys
addr, port, rcvbuf, argv = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, rcvbuf)  # SO_RCVBUFFORCE (root)
s.bind((addr, port))
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.environ.update(LISTEN_FDS="1", LISTEN_FDNAMES="ntp", LISTEN_PID=str(os.getpid()))
os.execvp(argv[0], argv)
PY
}

# start_gnomond NAME CONFIG_TEXT [PIN...]: sets LASTPID. With ACTIVATE set
# to "PORT RCVBUF", the server socket comes through activate.py.
start_gnomond() {
	local name=$1 text=$2 shim=()
	shift 2
	printf '%s\n' "$text" >"$T/$name.toml"
	"$T/gnomond" check-config "$T/$name.toml" >/dev/null
	if [ -n "${ACTIVATE:-}" ]; then
		write_shim
		# shellcheck disable=SC2086
		shim=(/usr/bin/python3 "$T/activate.py" 127.0.0.1 $ACTIVATE)
	fi
	"$@" "${shim[@]}" "${safe[@]}" "$T/gnomond" --config "$T/$name.toml" --no-dbus --user "" --state-dir "" \
		>"$T/$name.log" 2>&1 &
	LASTPID=$!
	pids+=("$LASTPID")
}

# cpu_ticks PID: user+system CPU time of PID (all its threads), in clock ticks.
cpu_ticks() {
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

loadgen() {
	"${load_pin[@]}" "$T/ntpload" -clients "$CLIENTS" -duration "$DURATION" "$@"
}

machine_note() {
	echo "== machine: $ncpu CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), kernel $(uname -r)"
	echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg) (the CPUs are shared with whatever else runs here)"
	echo "== chronyd: $("$CHRONYD" -v | head -1)"
}

bench_server() {
	machine_note
	if [ "$PIN" = 1 ]; then
		echo "== pinned: servers on CPU $server_cpus, load generator on CPU $load_cpus; gnomond workers=$WORKERS"
	else
		echo "== not pinned: servers and load generator share all $ncpu CPUs; gnomond workers=$WORKERS"
	fi
	echo "== nice $NICE for the servers and the load generator"
	local src_port chr_port gno_port rl_chrony="" rl_gnomond="rate-limit = { interval = 0 }"
	new_port; src_port=$PORT
	new_port; chr_port=$PORT
	new_port; gno_port=$PORT
	if [ "$RATELIMIT" = 1 ]; then
		# 2^-14 s = 16384 answers/s per client, burst 16: above what any
		# one client of the sweep sends, so it measures the limiter's
		# bookkeeping, not its drops.
		rl_chrony="ratelimit interval -14 burst 16"
		rl_gnomond="rate-limit = { interval = 0.00006103515625, burst = 16, kod = true, table-size = 65536 }"
		echo "== rate limiting on in both: one answer per 61 µs per client, burst 16"
	fi
	# gnomond serves what it knows: it syncs from an idle chronyd (on the
	# load generator's CPU) so that its answers are synchronized (stratum 2),
	# as chronyd's own (local stratum 1) are.
	start_chronyd source "$src_port" "" "${load_pin[@]}"
	start_chronyd chronyd "$chr_port" "$rl_chrony" "${srv_pin[@]}"
	local cpid=$LASTPID
	local gpid
	ACTIVATE=
	if [ -n "$RCVBUF" ]; then
		ACTIVATE="$gno_port $RCVBUF"
		echo "== WHAT-IF: gnomond's socket comes through socket activation with SO_RCVBUF=$RCVBUF; chronyd keeps the default ($(cat /proc/sys/net/core/rmem_default))"
	fi
	start_gnomond gnomond "[clock]
mode = \"observe\"
drift-file = \"\"

[[source]]
mode = \"server\"
address = \"127.0.0.1:$src_port\"
poll-interval-limits = { min = 0, max = 2 }

[[server]]
listen = \"127.0.0.1:$gno_port\"
$rl_gnomond
workers = $WORKERS

[log]
level = \"warn\"" "${srv_pin[@]}"
	gpid=$LASTPID

	echo "== waiting for both servers to answer synchronized"
	loadgen -target "127.0.0.1:$chr_port" -wait 30s -duration 100ms -rate 100 -label warmup-chronyd >/dev/null
	loadgen -target "127.0.0.1:$gno_port" -wait 60s -duration 100ms -rate 100 -label warmup-gnomond >/dev/null

	local sweep=(-sweep -rate "$START_RATE" -max-loss "$MAX_LOSS")
	local r order c_best=0 g_best=0 line
	for r in $(seq 1 "$ROUNDS"); do
		if [ $((r % 2)) = 1 ]; then order="chronyd gnomond"; else order="gnomond chronyd"; fi
		for s in $order; do
			local p=$chr_port
			[ "$s" = gnomond ] && p=$gno_port
			echo "== round $r: $s sweep (127.0.0.1:$p)"
			loadgen -target "127.0.0.1:$p" -label "$s" "${sweep[@]}" | tee "$T/$s.$r.out" || true
			line=$(grep '^RESULT' "$T/$s.$r.out" || true)
			v=$(sed -n 's/.*max_answers_per_s=\([0-9]*\).*/\1/p' <<<"$line")
			v=${v:-0}
			if [ "$s" = chronyd ]; then
				[ "$v" -gt "$c_best" ] && c_best=$v
			else
				[ "$v" -gt "$g_best" ] && g_best=$v
			fi
			sleep 1
		done
	done

	# Capacity at overload: the generator sends as fast as it can (on its
	# own CPU when pinned); answers/s is then what the server manages,
	# whatever it drops. Less sensitive than the sweep to short stalls
	# (a 212 kB default socket buffer holds only a few hundred requests).
	local c_sat=0 g_sat=0
	if [ "$PIN" = 1 ]; then
		for s in chronyd gnomond; do
			local p=$chr_port
			[ "$s" = gnomond ] && p=$gno_port
			echo "== $s at overload (as fast as the generator can send)"
			loadgen -target "127.0.0.1:$p" -label "$s-overload" -rate 0 | tee "$T/$s.sat.out" || true
			v=$(sed -n 's/.* answers\/s=\([0-9]*\).*/\1/p' "$T/$s.sat.out")
			if [ "$s" = chronyd ]; then c_sat=${v:-0}; else g_sat=${v:-0}; fi
			sleep 1
		done
	fi

	# CPU cost per answer at a fixed rate well under both maxima.
	local c_cpu="" g_cpu=""
	for s in chronyd gnomond; do
		local p=$chr_port pid=$cpid
		[ "$s" = gnomond ] && p=$gno_port && pid=$gpid
		[ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || continue
		local t0 t1
		t0=$(cpu_ticks "$pid")
		loadgen -target "127.0.0.1:$p" -label "$s-cpu" -rate "$CPU_RATE" | tee "$T/$s.cpu.out" || true
		t1=$(cpu_ticks "$pid")
		v=$(sed -n 's/.* answered=\([0-9]*\).*/\1/p' "$T/$s.cpu.out")
		local us
		us=$(awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="${v:-0}" 'BEGIN { if (n > 0) printf "%.2f", d / hz * 1e6 / n; else print "?" }')
		if [ "$s" = chronyd ]; then c_cpu=$us; else g_cpu=$us; fi
		sleep 1
	done

	local half=$(( c_best / 2 ))
	if [ "$half" -gt 0 ]; then
		echo "== gnomond at half of chronyd's maximum ($half requests/s)"
		loadgen -target "127.0.0.1:$gno_port" -label gnomond-half -rate "$half" | tee "$T/half.out" || true
	fi

	if [ "$PERF" = 1 ] && command -v perf >/dev/null && [ "$g_best" -gt 0 ]; then
		echo "== perf: gnomond at its maximum rate"
		perf record -q -g -o "$T/perf.data" -p "$gpid" -- sleep 4 >/dev/null 2>&1 &
		local perfpid=$!
		loadgen -target "127.0.0.1:$gno_port" -label gnomond-perf -rate "$g_best" -duration 5s || true
		wait "$perfpid" || true
		echo "-- inclusive time by function (children), user-space frames:"
		perf report -i "$T/perf.data" --children --sort symbol --stdio -g none 2>/dev/null |
			grep '%' | grep -F '[.]' | head -40 || true
		echo "-- self time, top symbols:"
		perf report -i "$T/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null |
			grep '%' | head -15 || true
	fi

	echo
	echo "== summary (max answers/s with < $MAX_LOSS% loss; best of $ROUNDS round(s); pin=$PIN workers=$WORKERS ratelimit=$RATELIMIT)"
	printf '%-10s %12s\n' server "answers/s"
	printf '%-10s %12s\n' chronyd "$c_best" gnomond "$g_best"
	if [ "$c_best" -gt 0 ]; then
		awk -v g="$g_best" -v c="$c_best" 'BEGIN { printf "ratio gnomond/chronyd = %.2f (target >= 1.0, aim 1.5)\n", g / c }'
	fi
	if [ "$c_sat" -gt 0 ]; then
		printf '%-10s %12s (at overload: answers/s while dropping the rest)\n' chronyd "$c_sat" gnomond "$g_sat"
		awk -v g="$g_sat" -v c="$c_sat" 'BEGIN { printf "overload ratio gnomond/chronyd = %.2f\n", g / c }'
	fi
	if [ -n "$c_cpu" ] && [ -n "$g_cpu" ]; then
		echo "CPU per answer at $CPU_RATE requests/s (user+system): chronyd $c_cpu µs, gnomond $g_cpu µs"
	fi
	if [ -f "$T/half.out" ]; then
		echo "gnomond at half of chronyd's maximum: $(grep -o 'loss=[0-9.]*%' "$T/half.out") (target: no loss)"
	fi
	echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

bench_rss() {
	machine_note
	local ports=() i conf
	conf='[clock]
mode = "observe"
drift-file = ""
'
	for i in 1 2 3 4; do
		new_port
		ports+=("$PORT")
		start_chronyd "src$i" "$PORT" ""
		conf+="
[[source]]
mode = \"server\"
address = \"127.0.0.1:${ports[-1]}\"
"
	done
	local gpid
	start_gnomond rss "$conf"
	gpid=$LASTPID
	echo "== gnomond (pid $gpid) with 4 chronyd sources on 127.0.0.1:${ports[*]}, no [[server]]; waiting ${RSS_WAIT} s"
	sleep "$RSS_WAIT"
	if ! kill -0 "$gpid" 2>/dev/null; then
		echo "gnomond exited:" >&2
		cat "$T/rss.log" >&2
		exit 1
	fi
	local rss hwm chr
	rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$gpid/status")
	hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$gpid/status")
	chr=$(awk '/^VmRSS/ { print $2 }' "/proc/$(cat "$T/src1.pid")/status" 2>/dev/null || echo "?")
	echo "== gnomond log (last lines):"
	tail -n 5 "$T/rss.log"
	echo
	echo "== summary"
	echo "gnomond RSS after ${RSS_WAIT} s: ${rss} kB ($(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }') MiB), peak (VmHWM) ${hwm} kB; target <= ${RSS_LIMIT_MB} MB"
	echo "for scale, one chronyd 4.3 (a source): ${chr} kB"
	if [ "$rss" -gt $(( RSS_LIMIT_MB * 1024 )) ]; then
		echo "bench-rss: gnomond's RSS is above the target" >&2
		return 1
	fi
}

pin_note() {
	if [ "$PIN" = 1 ]; then
		echo "== pinned: servers on CPU $server_cpus, load generator on CPU $load_cpus; gnomond workers=$WORKERS"
	else
		echo "== not pinned: servers and load generator share all $ncpu CPUs; gnomond workers=$WORKERS"
	fi
	echo "== nice $NICE for the servers and the load generator"
}

# nts_certificate: one self-signed ECDSA P-256 certificate for 127.0.0.1
# and localhost, for both servers; chronyd reads it as _chrony.
nts_certificate() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$T/nts.key" -out "$T/nts.crt" -days 2 -subj /CN=localhost \
		-addext subjectAltName=DNS:localhost,IP:127.0.0.1 >"$T/openssl.log" 2>&1 ||
		{ cat "$T/openssl.log" >&2; exit 1; }
	chown root:_chrony "$T/nts.key" "$T/nts.crt"
	chmod 0640 "$T/nts.key"
	chmod 0644 "$T/nts.crt"
	mkdir -p "$T/ntsdump"
	chown _chrony "$T/ntsdump"
}

# proc_family PID: PID and its children (chronyd's NTS-KE helper
# processes), comma-separated, for ntpload -server-pid.
proc_family() {
	local kids
	kids=$(ps -o pid= --ppid "$1" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
	echo "$1${kids:+,$kids}"
}

# nts_servers: the idle source chronyd (gnomond syncs from it, so that its
# answers are synchronized like chronyd's), then chronyd and gnomond as NTP
# + NTS-KE servers on the server CPU. Sets chr_ke, gno_ke, cpid, gpid.
nts_servers() {
	local src_port chr_ntp gno_ntp
	new_port; src_port=$PORT
	new_port; chr_ntp=$PORT
	new_port; chr_ke=$PORT
	new_port; gno_ntp=$PORT
	new_port; gno_ke=$PORT
	nts_certificate
	start_chronyd source "$src_port" "" "${load_pin[@]}"
	# bindaddress ::1 too: otherwise chronyd's NTS-KE also listens on [::].
	start_chronyd chronyd "$chr_ntp" "bindaddress ::1
ntsport $chr_ke
ntsserverkey $T/nts.key
ntsservercert $T/nts.crt
ntsdumpdir $T/ntsdump
ntsprocesses $NTS_PROCESSES" "${srv_pin[@]}"
	cpid=$LASTPID
	start_gnomond gnomond "[clock]
mode = \"observe\"
drift-file = \"\"

[[source]]
mode = \"server\"
address = \"127.0.0.1:$src_port\"
poll-interval-limits = { min = 0, max = 2 }

[[server]]
listen = \"127.0.0.1:$gno_ntp\"
rate-limit = { interval = 0 }
workers = $WORKERS

[[nts-ke-server]]
listen = \"127.0.0.1:$gno_ke\"
certificate-chain-path = \"$T/nts.crt\"
private-key-path = \"$T/nts.key\"
# the load generator is one address: no per-address limits
max-connections-per-address = 0
connection-rate-per-address = 0

[log]
level = \"warn\"" "${srv_pin[@]}"
	gpid=$LASTPID
	echo "== chronyd: NTP 127.0.0.1:$chr_ntp, NTS-KE 127.0.0.1:$chr_ke (ntsprocesses $NTS_PROCESSES); gnomond: NTP 127.0.0.1:$gno_ntp, NTS-KE 127.0.0.1:$gno_ke"
}

# field NAME LINE: the value of NAME=... in LINE.
field() {
	sed -n "s|.*[ ]$1=\\([^ ]*\\).*|\\1|p" <<<" $2"
}

# perf_report FILE: where the time goes, inclusive and self.
perf_report() {
	echo "-- inclusive time by function (children), user-space frames:"
	perf report -i "$1" --children --sort symbol --stdio -g none 2>/dev/null |
		grep '%' | grep -F '[.]' | head -40 || true
	echo "-- self time, top symbols:"
	perf report -i "$1" --no-children --sort symbol --stdio -g none 2>/dev/null |
		grep '%' | head -25 || true
}

bench_nts() {
	machine_note
	pin_note
	echo "== NTS: one ECDSA P-256 certificate; $CLIENTS clients x $SESSIONS sessions; chronyd ntsprocesses $NTS_PROCESSES"
	nts_servers
	echo "== waiting for both servers to give authenticated, synchronized NTS answers"
	loadgen -nts "127.0.0.1:$chr_ke" -ca "$T/nts.crt" -wait 30s -clients 1 -sessions 1 -duration 100ms -rate 100 -label warmup-chronyd >/dev/null
	loadgen -nts "127.0.0.1:$gno_ke" -ca "$T/nts.crt" -wait 60s -clients 1 -sessions 1 -duration 100ms -rate 100 -label warmup-gnomond >/dev/null
	local cpids gpids
	cpids=$(proc_family "$cpid")
	gpids=$gpid
	echo "== server processes: chronyd $cpids, gnomond $gpids"

	local r order s ke pids line v c_best=0 g_best=0
	for r in $(seq 1 "$ROUNDS"); do
		if [ $((r % 2)) = 1 ]; then order="chronyd gnomond"; else order="gnomond chronyd"; fi
		for s in $order; do
			ke=$chr_ke pids=$cpids
			[ "$s" = gnomond ] && ke=$gno_ke pids=$gpids
			echo "== round $r: $s NTS sweep (NTS-KE 127.0.0.1:$ke)"
			loadgen -nts "127.0.0.1:$ke" -ca "$T/nts.crt" -sessions "$SESSIONS" -server-pid "$pids" -label "$s" \
				-sweep -rate "$NTS_START_RATE" -max-loss "$MAX_LOSS" | tee "$T/$s.nts.$r.out" || true
			line=$(grep '^RESULT' "$T/$s.nts.$r.out" || true)
			v=$(field max_answers_per_s "$line")
			v=${v:-0}
			if [ "$s" = chronyd ]; then
				[ "$v" -gt "$c_best" ] && c_best=$v
			else
				[ "$v" -gt "$g_best" ] && g_best=$v
			fi
			sleep 1
		done
	done

	# At overload: every client keeps all its sessions busy (the most the
	# generator can send with $SESSIONS requests in flight per client).
	local c_sat=0 g_sat=0
	if [ "$PIN" = 1 ]; then
		for s in chronyd gnomond; do
			ke=$chr_ke pids=$cpids
			[ "$s" = gnomond ] && ke=$gno_ke pids=$gpids
			echo "== $s NTS at overload (as fast as the sessions allow)"
			loadgen -nts "127.0.0.1:$ke" -ca "$T/nts.crt" -sessions "$SESSIONS" -server-pid "$pids" -label "$s-overload" -rate 0 |
				tee "$T/$s.ntssat.out" || true
			v=$(field answers/s "$(grep ' answers/s=' "$T/$s.ntssat.out" || true)")
			if [ "$s" = chronyd ]; then c_sat=${v:-0}; else g_sat=${v:-0}; fi
			sleep 1
		done
	fi

	local c_cpu="?" g_cpu="?"
	for s in chronyd gnomond; do
		ke=$chr_ke pids=$cpids
		[ "$s" = gnomond ] && ke=$gno_ke pids=$gpids
		echo "== $s NTS CPU cost at $NTS_CPU_RATE requests/s"
		loadgen -nts "127.0.0.1:$ke" -ca "$T/nts.crt" -sessions "$SESSIONS" -server-pid "$pids" -label "$s-cpu" -rate "$NTS_CPU_RATE" |
			tee "$T/$s.ntscpu.out" || true
		v=$(field server-cpu/answer "$(grep ' answers/s=' "$T/$s.ntscpu.out" || true)")
		if [ "$s" = chronyd ]; then c_cpu=${v:-?}; else g_cpu=${v:-?}; fi
		sleep 1
	done

	local half=$(( c_best / 2 ))
	if [ "$half" -gt 0 ]; then
		echo "== gnomond NTS at half of chronyd's maximum ($half requests/s)"
		loadgen -nts "127.0.0.1:$gno_ke" -ca "$T/nts.crt" -sessions "$SESSIONS" -label gnomond-half -rate "$half" | tee "$T/ntshalf.out" || true
	fi

	if [ "$PERF" = 1 ] && command -v perf >/dev/null && [ "$g_best" -gt 0 ]; then
		echo "== perf: gnomond serving NTS at its maximum rate ($g_best/s)"
		# The generator sets up its sessions first (key exchanges,
		# priming): start recording once that is over.
		loadgen -nts "127.0.0.1:$gno_ke" -ca "$T/nts.crt" -sessions "$SESSIONS" -label gnomond-perf -rate "$g_best" -duration 8s >"$T/ntsperf.out" &
		local lpid=$!
		pids+=("$lpid")
		while ! grep -q 'nts: ' "$T/ntsperf.out" 2>/dev/null && kill -0 "$lpid" 2>/dev/null; do sleep 0.1; done
		sleep 1
		perf record -q -g -o "$T/perf.data" -p "$gpid" -- sleep 5 >/dev/null 2>&1 || true
		wait "$lpid" || true
		cat "$T/ntsperf.out"
		perf_report "$T/perf.data"
	fi

	echo
	echo "== summary: NTS (max authenticated answers/s with < $MAX_LOSS% loss; best of $ROUNDS round(s); pin=$PIN workers=$WORKERS; chronyd ntsprocesses $NTS_PROCESSES)"
	printf '%-10s %12s\n' server "answers/s"
	printf '%-10s %12s\n' chronyd "$c_best" gnomond "$g_best"
	if [ "$c_best" -gt 0 ]; then
		awk -v g="$g_best" -v c="$c_best" 'BEGIN { printf "NTS ratio gnomond/chronyd = %.2f (target >= 1.0)\n", g / c }'
	fi
	if [ "$c_sat" -gt 0 ]; then
		printf '%-10s %12s (at overload)\n' chronyd "$c_sat" gnomond "$g_sat"
		awk -v g="$g_sat" -v c="$c_sat" 'BEGIN { printf "NTS overload ratio gnomond/chronyd = %.2f\n", g / c }'
	fi
	echo "server CPU per NTS answer at $NTS_CPU_RATE requests/s (user+system): chronyd $c_cpu, gnomond $g_cpu"
	if [ -f "$T/ntshalf.out" ]; then
		echo "gnomond at half of chronyd's NTS maximum: $(grep -o 'loss=[0-9.]*%' "$T/ntshalf.out") (target: no loss)"
	fi
	echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

bench_ke() {
	machine_note
	pin_note
	echo "== NTS-KE: one ECDSA P-256 certificate; chronyd ntsprocesses $NTS_PROCESSES; concurrency $KE_CONCURRENCY; offers: $KE_GROUPS"
	nts_servers
	echo "== waiting for both NTS-KE servers"
	loadgen -ke "127.0.0.1:$chr_ke" -ca "$T/nts.crt" -wait 30s -concurrency 1 -duration 100ms -label warmup-chronyd >/dev/null
	loadgen -ke "127.0.0.1:$gno_ke" -ca "$T/nts.crt" -wait 30s -concurrency 1 -duration 100ms -label warmup-gnomond >/dev/null
	local cpids gpids
	cpids=$(proc_family "$cpid")
	gpids=$gpid
	echo "== server processes: chronyd $cpids, gnomond $gpids"

	declare -A best bestline bestcpu
	local g c s ke pids order line v n=0 kenv r
	for r in $(seq 1 "$ROUNDS"); do
	for g in $KE_GROUPS; do
		case "$g" in
		default) kenv=(env) ;;
		x25519) kenv=(env GODEBUG=tlsmlkem=0) ;;
		*) echo "bench-server: KE_GROUPS: unknown offer $g (default, x25519)" >&2; exit 2 ;;
		esac
		for c in $KE_CONCURRENCY; do
			n=$((n + 1))
			if [ $((n % 2)) = 1 ]; then order="chronyd gnomond"; else order="gnomond chronyd"; fi
			for s in $order; do
				ke=$chr_ke pids=$cpids
				[ "$s" = gnomond ] && ke=$gno_ke pids=$gpids
				echo "== round $r: $s NTS-KE, offer $g, concurrency $c"
				"${load_pin[@]}" "${kenv[@]}" "$T/ntpload" -ke "127.0.0.1:$ke" -ca "$T/nts.crt" -concurrency "$c" \
					-duration "$KE_DURATION" -server-pid "$pids" -label "$s-$g-c$c" | tee "$T/$s.ke.$g.$c.$r.out" || true
				line=$(grep '^RESULT' "$T/$s.ke.$g.$c.$r.out" || true)
				v=$(field ke_per_s "$line")
				v=${v:-0}
				if [ "$v" -gt "${best[$s.$g]:-0}" ]; then
					best[$s.$g]=$v
					bestcpu[$s.$g]=$(field server_cpu_us "$line")
					bestline[$s.$g]="$(grep ' ke: ' "$T/$s.ke.$g.$c.$r.out" | sed 's/^[^:]*: //; s/TLS 1.3 with 127.0.0.1: //')
         $line"
				fi
				sleep 1
			done
		done
	done
	done

	if [ "$PERF" = 1 ] && command -v perf >/dev/null; then
		c=${KE_CONCURRENCY##* }
		echo "== perf: gnomond serving key exchanges (Go's default offer, concurrency $c)"
		perf record -q -g -o "$T/perf.data" -p "$gpid" -- sleep 4 >/dev/null 2>&1 &
		local perfpid=$!
		pids+=("$perfpid")
		"${load_pin[@]}" "$T/ntpload" -ke "127.0.0.1:$gno_ke" -ca "$T/nts.crt" -concurrency "$c" -duration 5s -label gnomond-perf || true
		wait "$perfpid" || true
		perf_report "$T/perf.data"
		echo "== perf: chronyd's NTS-KE helper, the same load"
		local helper=${cpids#*,}
		if [ "$helper" != "$cpids" ]; then
			perf record -q -g -o "$T/perf-chronyd.data" -p "$helper" -- sleep 4 >/dev/null 2>&1 &
			perfpid=$!
			pids+=("$perfpid")
			"${load_pin[@]}" "$T/ntpload" -ke "127.0.0.1:$chr_ke" -ca "$T/nts.crt" -concurrency "$c" -duration 5s -label chronyd-perf || true
			wait "$perfpid" || true
			perf report -i "$T/perf-chronyd.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null | grep '%' | head -25 || true
		fi
	fi

	echo
	echo "== summary: NTS-KE handshakes/s (complete key exchanges; best over concurrency $KE_CONCURRENCY; pin=$PIN; chronyd ntsprocesses $NTS_PROCESSES)"
	for g in $KE_GROUPS; do
		for s in chronyd gnomond; do
			printf '%-8s offer %-8s %8s/s  %s\n' "$s" "$g" "${best[$s.$g]:-0}" "${bestline[$s.$g]:-}"
		done
		if [ "${best[chronyd.$g]:-0}" -gt 0 ]; then
			awk -v g="${best[gnomond.$g]:-0}" -v c="${best[chronyd.$g]}" -v o="$g" \
				'BEGIN { printf "NTS-KE ratio gnomond/chronyd, offer %s = %.2f (target >= 1.0)\n", o, g / c }'
		fi
		echo "server CPU per key exchange in those runs: chronyd ${bestcpu[chronyd.$g]:-?} µs, gnomond ${bestcpu[gnomond.$g]:-?} µs (a CPU's worth: $(awk -v c="${bestcpu[chronyd.$g]:-0}" -v g="${bestcpu[gnomond.$g]:-0}" 'BEGIN { printf "%.0f and %.0f/s", (c > 0 ? 1e6 / c : 0), (g > 0 ? 1e6 / g : 0) }'))"
	done
	echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

case "$mode" in
server) bench_server ;;
rss) bench_rss ;;
nts) bench_nts ;;
ke) bench_ke ;;
esac
exit
}
