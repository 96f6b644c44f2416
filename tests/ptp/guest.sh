#!/bin/sh
# Runs INSIDE the qemu guest of tests/ptp/vm.sh (never on the host: ptp4l
# here disciplines CLOCK_REALTIME, the guest's own clock). Usage:
#   guest.sh hwfollow GNOMOND IFACE   gnomond (system mode) with a hardware
#                                     [[ptp-port]] on the e1000e: its PHC
#                                     follows the guest's system clock
#   guest.sh s2 GNOMOND               gnomond master -> ptp4l slave (free_running
#                                     0) over a veth pair between two network
#                                     namespaces, then ptp4l -> ptp4l (yardstick)
# Prints "GUEST-PTP key=value ..." lines; vm.sh decides.
set -u
[ -e /job/run.sh ] || { echo "guest.sh: not in the VM guest (no /job/run.sh): refusing to steer this clock" >&2; exit 2; }
say() { echo "GUEST-PTP $*"; }
W=/tmp/gn-ptp
mkdir -p "$W"

# stats FILE: rms, max |offset|, mean path delay of ptp4l's s2 lines.
stats() {
	awk '/master offset/ && / s2 / {
		for (i = 1; i <= NF; i++) { if ($i == "offset") o = $(i+1); if ($i == "delay") d = $(i+1) }
		n++; s += o; ss += o*o; a = o < 0 ? -o : o; if (a > m) m = a; sd += d
	} END {
		if (n == 0) { print "n=0"; exit }
		printf "n=%d mean_ns=%.0f rms_ns=%.0f max_ns=%d path_delay_ns=%.0f", n, s/n, sqrt(ss/n), m, sd/n
	}' "$1"
	# the median |offset|, which a few TCG hiccups do not move
	awk '/master offset/ && / s2 / { for (i = 1; i <= NF; i++) if ($i == "offset") { o = $(i+1); print (o < 0 ? -o : o) } }' "$1" |
		sort -n | awk '{ v[NR] = $1 } END { if (NR) printf " median_abs_ns=%d", v[int((NR + 1) / 2)]; print "" }'
}

# bounded wait: until FILE matches RE or SECONDS pass
waitlog() {
	i=0
	while [ "$i" -lt "$3" ]; do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 1
		i=$((i + 1))
	done
	return 1
}

hwfollow() {
	g=$1 ifc=$2
	cat >"$W/hw.toml" <<EOF
[clock]
mode = "system"
drift-file = ""
[log]
level = "debug"
format = "json"
[[ptp-port]]
interface = "$ifc"
timestamping = "hardware"
priority1 = 100
EOF
	timeout 60 "$g" --config "$W/hw.toml" --no-dbus --user "" --state-dir "" >"$W/hw.log" 2>&1 &
	pid=$!
	waitlog "$W/hw.log" '"msg":"PHC follows the system clock".*"steps":3' 45
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	follows=$(grep -c '"msg":"the PHC follows the system clock' "$W/hw.log")
	stepped=$(grep -c '"msg":"stepped the PHC onto the system clock"' "$W/hw.log")
	samples=$(grep -c '"msg":"PHC follows the system clock"' "$W/hw.log")
	say "hwfollow follows=$follows steps=$stepped comparisons=$samples"
	grep -E '"msg":"(the PHC follows|stepped the PHC|PHC follows|PTP port state|hardware|cannot)' "$W/hw.log" | head -12 | sed 's/^/GUEST-PTP-LOG /'
}

s2() {
	g=$1
	for n in m s; do ip netns add "gn-ptp-g$n"; ip -n "gn-ptp-g$n" link set lo up; done
	ip link add gq-m0 type veth peer name gq-s0
	ip link set gq-m0 netns gn-ptp-gm name m0
	ip link set gq-s0 netns gn-ptp-gs name s0
	ip -n gn-ptp-gm addr add 10.82.0.1/24 dev m0
	ip -n gn-ptp-gs addr add 10.82.0.2/24 dev s0
	ip -n gn-ptp-gm link set m0 up
	ip -n gn-ptp-gs link set s0 up
	# TCG is slow: the kernel's transmit timestamps may take more than
	# ptp4l's default 1 ms.
	slave="ptp4l -i s0 -4 -S -s -m -q --summary_interval 0 --logAnnounceInterval 0 --tx_timestamp_timeout 100 --uds_address $W/s.sock"
	cat >"$W/gm.toml" <<EOF
[clock]
mode = "observe"
drift-file = ""
[log]
level = "info"
[[ptp-port]]
interface = "m0"
timestamping = "software"
priority1 = 100
announce-interval = 0
EOF
	for master in gnomond ptp4l; do
		if [ "$master" = gnomond ]; then
			ip netns exec gn-ptp-gm "$g" --config "$W/gm.toml" --no-dbus --user "" --state-dir "" >"$W/m-$master.log" 2>&1 &
		else
			ip netns exec gn-ptp-gm ptp4l -i m0 -4 -S -m -q --priority1 100 --logAnnounceInterval 0 --tx_timestamp_timeout 100 \
				--uds_address "$W/m.sock" >"$W/m-$master.log" 2>&1 &
		fi
		mp=$!
		ip netns exec gn-ptp-gs $slave >"$W/s-$master.log" 2>&1 &
		sp=$!
		t0=$(cut -d. -f1 /proc/uptime)
		if waitlog "$W/s-$master.log" ' s2 ' 50; then
			t1=$(cut -d. -f1 /proc/uptime)
			sleep 30
			locked=yes
		else
			t1=$(cut -d. -f1 /proc/uptime)
			locked=no
		fi
		kill "$sp" "$mp" 2>/dev/null
		wait "$sp" "$mp" 2>/dev/null
		# the statistics leave out the first 5 s2 lines (the servo settling)
		grep ' s2 ' "$W/s-$master.log" | tail -n +6 >"$W/s2-$master.log"
		say "s2 master=$master locked=$locked after_s=$((t1 - t0)) selected=$(grep -c 'selected best master clock' "$W/s-$master.log") $(stats "$W/s2-$master.log")"
		grep -E 'selected best master|UNCALIBRATED to SLAVE|s2 freq' "$W/s-$master.log" | head -4 | sed 's/^/GUEST-PTP-LOG /'
		say "offsets master=$master $(awk '/ s2 / { for (i = 1; i <= NF; i++) if ($i == "offset") printf "%s ", $(i+1) }' "$W/s2-$master.log")"
		[ "$locked" = yes ] || tail -n 15 "$W/s-$master.log" "$W/m-$master.log" | sed 's/^/GUEST-PTP-LOG /'
	done
	ip netns del gn-ptp-gm
	ip netns del gn-ptp-gs
}

cmd=$1
shift
"$cmd" "$@"
