# bench-lib.sh: helpers shared by scripts/bench.sh, bench-long.sh and
# bench-scale.sh (sourced, not run). They use the caller's globals:
#   T (work dir), inns (ip netns exec NS), safe (setpriv without
#   CAP_SYS_TIME), CHRONYD, NTPD, the arrays PID (name -> pid) and pids (every
#   pid to stop), and optionally RCVBUF_SHIM (an LD_PRELOAD library that gives
#   every UDP socket of chronyd/ntpd the receive buffer BENCH_RCVBUF) and
#   GNOMOND_ENV (extra environment for gnomond, e.g. "GOGC=50") and
#   GNOMOND_ARGS (extra flags, e.g. "--trace-gc").
# Every daemon runs without CAP_SYS_TIME and never touches a clock.

# bench_ns NAME: a work directory $T and a network namespace $NS
# (gn-obs-NAME-PID, loopback up) that last as long as the script: on exit
# every pid in the arrays bg and pids is stopped, the namespace deleted and
# $T removed. Sets T, NS, inns (ip netns exec NS), safe (setpriv without
# CAP_SYS_TIME), and empty pids, bg and PID.
bench_ns() {
	T=$(mktemp -d "/tmp/gnomon-$1.XXXXXX")
	chmod 0777 "$T"
	NS=gn-obs-$1-$$
	pids=()
	bg=()
	declare -gA PID=()
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
	ip netns add "$NS"
	ip -n "$NS" link set lo up
	inns=(ip netns exec "$NS")
	safe=(setpriv --bounding-set=-sys_time --inh-caps=-sys_time)
}

bench_cleanup() {
	local p
	for p in "${bg[@]}" "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${bg[@]}" "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$T"
}

# chrony_conf NAME ADDR PORT EXTRA-LINES...
chrony_conf() {
	local name=$1 addr=$2 port=$3
	shift 3
	{
		echo "port $port"
		[ "$port" != 0 ] && echo "bindaddress $addr"
		echo "allow 127.0.0.0/8"
		echo "cmdport 0"
		echo "bindcmdaddress /"
		echo "pidfile $T/$name.pid"
		printf '%s\n' "$@"
	} >"$T/$name.conf"
}

# preload: the environment that hands chronyd/ntpd the receive-buffer shim.
preload() {
	if [ -n "${RCVBUF_SHIM:-}" ]; then
		echo "LD_PRELOAD=$RCVBUF_SHIM"
		echo "BENCH_RCVBUF=${BENCH_RCVBUF:-4194304}"
	fi
}

# start_chronyd NAME PIN...: chronyd -x -d with $T/NAME.conf.
start_chronyd() {
	local name=$1
	shift
	# shellcheck disable=SC2046
	"${inns[@]}" "$@" "${safe[@]}" env $(preload) "$CHRONYD" -x -d -f "$T/$name.conf" >"$T/$name.log" 2>&1 &
	PID[$name]=$!
	pids+=("$!")
}

# TOML fragments for gnomond's configurations, each starting with a newline
# (command substitution keeps leading newlines): join them in one string,
# e.g. "$(gn_observe)$(gn_source 127.0.0.20:12320 0 2)$(gn_server 127.0.0.1:123 1)".
# gn_observe: observe mode, no drift file, warnings only.
gn_observe() {
	printf '\n[clock]\nmode = "observe"\ndrift-file = ""\n[log]\nlevel = "warn"\n'
}
# gn_source ADDR [MINPOLL MAXPOLL]: an NTP server as a source.
gn_source() {
	printf '\n[[source]]\nmode = "server"\naddress = "%s"\n' "$1"
	[ $# -lt 3 ] || printf 'poll-interval-limits = { min = %s, max = %s }\n' "$2" "$3"
}
# gn_server LISTEN [WORKERS]: an NTP server without rate limiting.
gn_server() {
	printf '\n[[server]]\nlisten = "%s"\nrate-limit = { interval = 0 }\n' "$1"
	[ $# -lt 2 ] || printf 'workers = %s\n' "$2"
}
# gn_ke LISTEN: an NTS-KE server with $T/nts.crt and $T/nts.key (make_cert),
# without per-address limits (a load generator is one address).
gn_ke() {
	printf '\n[[nts-ke-server]]\nlisten = "%s"\ncertificate-chain-path = "%s"\nprivate-key-path = "%s"\n' "$1" "$T/nts.crt" "$T/nts.key"
	printf 'max-connections-per-address = 0\nconnection-rate-per-address = 0\n'
}

# start_gnomond NAME CONFIG PIN...: gnomond --observe without D-Bus, with
# GODEBUG=gctrace=1 (its log then has a line per garbage collection).
start_gnomond() {
	local name=$1
	printf '%s\n' "$2" >"$T/$name.toml"
	shift 2
	# shellcheck disable=SC2086
	"${inns[@]}" "$@" "${safe[@]}" env GODEBUG=gctrace=1 ${GNOMOND_ENV:-} "$T/gnomond" --config "$T/$name.toml" --no-dbus \
		--observe --user "" --state-dir "" ${GNOMOND_ARGS:-} >"$T/$name.log" 2>&1 &
	PID[$name]=$!
	pids+=("$!")
}

# start_ntpd NAME CONFIG-LINES PIN...: NTPsec's ntpd that never disciplines
# a clock (disable ntp, disable kernel), listening on 127.0.0.1 only.
start_ntpd() {
	local name=$1
	printf '%s\n' "driftfile $T/$name.drift" "disable ntp" "disable kernel" "disable stats" \
		"interface ignore wildcard" "interface listen 127.0.0.1" \
		"restrict default nomodify noquery" "restrict 127.0.0.0 mask 255.0.0.0 nomodify" "$2" >"$T/$name.conf"
	shift 2
	# shellcheck disable=SC2046
	"${inns[@]}" "$@" "${safe[@]}" env $(preload) "$NTPD" -n -c "$T/$name.conf" -p "$T/$name.pid" -l "$T/$name.log" >"$T/$name.out" 2>&1 &
	PID[$name]=$!
	pids+=("$!")
}

# stop NAME: stop the daemon by its PID and wait for it.
stop() {
	local p=${PID[$1]:-}
	[ -n "$p" ] || return 0
	kill "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
	unset "PID[$1]"
}

# cpu_ns PID...: on-CPU nanoseconds of the PIDs' threads (schedstat: exact,
# where /proc/PID/stat counts 10 ms ticks).
cpu_ns() {
	local p
	for p in "$@"; do cat /proc/"$p"/task/*/schedstat 2>/dev/null || true; done | awk '{ s += $1 } END { printf "%.0f\n", s }'
}

# family PID: PID and its children (chronyd's NTS-KE helper), space-separated.
family() {
	echo "$1" $(ps -o pid= --ppid "$1" 2>/dev/null || true)
}

# rss_kb PID...: the sum of the PIDs' VmRSS.
rss_kb() {
	local p
	for p in "$@"; do awk '/^VmRSS/ { print $2 }' "/proc/$p/status" 2>/dev/null || true; done | awk '{ s += $1 } END { printf "%d\n", s }'
}

# make_cert: one self-signed ECDSA P-256 certificate for every NTS-KE
# server ($T/nts.crt, $T/nts.key, readable by _chrony), and chronyd's dump
# directory.
make_cert() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$T/nts.key" -out "$T/nts.crt" \
		-days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >"$T/openssl.log" 2>&1
	chown root:_chrony "$T/nts.key" "$T/nts.crt" 2>/dev/null || true
	chmod 0640 "$T/nts.key"
	mkdir -p "$T/ntsdump"
	chown _chrony "$T/ntsdump" 2>/dev/null || true
}

# build_shim: compile the receive-buffer shim (scripts/bench-rcvbuf.c) into
# $T/rcvbuf.so; prints its path, or nothing when there is no C compiler.
build_shim() {
	local cc
	cc=$(command -v cc || command -v gcc || true)
	[ -n "$cc" ] || return 0
	"$cc" -shared -fPIC -O2 -o "$T/rcvbuf.so" "$ROOT/scripts/bench-rcvbuf.c" -ldl && echo "$T/rcvbuf.so"
}
