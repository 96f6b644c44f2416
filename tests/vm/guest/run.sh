#!/bin/sh
# The VM test ring's job inside the guest, run at every boot by
# gnomon-vmjob.service (scripts/vm/image.sh) from the job disk on /job.
# It prints "GNOMON-VM <name> key=value ..." lines on the serial console;
# tests/vm/vm_test.go reads them and decides. /job/env sets:
#   NTP    the upstream NTP server (chronyd -x on the host), 10.0.2.2:PORT
#   LEAP   a server announcing a leap second, its clock on the last day
#          of the month, 10.0.2.2:PORT
#   LEAP_EARLY    the same, its clock two days before the last day of the month
#   SUITE  short (one boot), full (two boots) or bench (one boot: install,
#          then the netem accuracy bench; BENCH_* and NETEM_* from the test)
#   SILENT a port on the host where nothing answers, 10.0.2.2:PORT
# Nothing here runs on the host: every clock change is the guest's own.
set -u
. /job/env
H=/job/vmguest
S=/var/lib/gnomon-vmtest
mkdir -p "$S"
boot=$(($(cat "$S/boot" 2>/dev/null || echo 0) + 1))
echo "$boot" >"$S/boot"
sync

say() { echo "GNOMON-VM $*"; }
# run NAME CMD...: CMD's key=value output under NAME, with its exit status.
run() {
	n=$1
	shift
	out=$("$@" 2>&1)
	rc=$?
	say "$n rc=$rc $(echo "$out" | tr '\n' ' ')"
}
journal() { journalctl -q -b -u gnomond -o cat --no-pager 2>/dev/null; }
# rss PID: the process's resident set, all, file-backed and in the
# mappings of its own executable (smaps), in kB.
rss() {
	awk '/^VmRSS/ {a=$2} /^RssFile/ {f=$2} END {printf "%s_kB,file_%s_kB,", a, f}' /proc/"$1"/status 2>/dev/null
	awk -v exe="$(readlink /proc/"$1"/exe)" '/^[0-9a-f]+-[0-9a-f]+ / {own = ($6 == exe)} own && /^Rss:/ {x += $2} END {printf "exe_%d_kB", x}' /proc/"$1"/smaps 2>/dev/null
}
# denials [PROFILE]: AppArmor's refusals this boot (kernel log and audit).
denials() {
	{
		dmesg 2>/dev/null
		journalctl -q -b -o cat --no-pager 2>/dev/null
	} | grep 'apparmor="DENIED"' | grep "profile=\"${1:-}" | sort -u
}
gnomon_prop() {
	busctl get-property org.gnomon.Gnomon1 /org/gnomon/Gnomon1 org.gnomon.Gnomon1.Manager "$1" 2>&1 |
		sed 's/^[a-z]* //; s/"//g'
}
wait_active() {
	i=0
	while [ $i -lt 60 ] && ! systemctl -q is-active gnomond; do sleep 0.5; i=$((i + 1)); done
}
# The RTC (QEMU's own) as seconds since the epoch, its fields read as UTC.
rtc_s() { cat /sys/class/rtc/rtc0/since_epoch; }
hwclock_s() { date -d "$(hwclock --get 2>&1)" +%s 2>/dev/null || echo 0; }

say "boot n=$boot uptime_s=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r)"

phase_install() {
	run net $H waitnet "$NTP" 60
	run initial $H offset "$NTP" 4
	# The configuration gnomond is installed with: the packaged file's
	# content replaced by the one upstream server (no [clock] mode).
	mkdir -p /etc/gnomon
	cp /job/gnomon.toml /etc/gnomon/gnomon.toml
	# The clock 5 s wrong (ahead of the upstream) before gnomond ever starts.
	run skew $H setahead "$NTP" 5
	run skewed $H offset "$NTP" 4
	# AppArmor's user space first (the image has the kernel's AppArmor but
	# not apparmor_parser): gnomon's postinst then loads gnomond's profile
	# before it starts the unit, as on a Debian system with AppArmor.
	if [ -f /job/apparmor.deb ]; then
		say "apparmor_start uptime_s=$(cut -d' ' -f1 /proc/uptime)"
		out=$(dpkg -i /job/apparmor.deb 2>&1)
		rc=$?
		[ $rc -eq 0 ] || echo "$out"
		say "apparmor_install rc=$rc uptime_s=$(cut -d' ' -f1 /proc/uptime) enabled=$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null || echo absent) lsm=$(cat /sys/kernel/security/lsm 2>/dev/null)"
	fi
	out=$(dpkg --force-confdef --force-confold -i /job/gnomon.deb 2>&1)
	rc=$?
	[ $rc -eq 0 ] || echo "$out"
	say "install rc=$rc uptime_s=$(cut -d' ' -f1 /proc/uptime)"
	wait_active
	pid=$(systemctl show -p MainPID --value gnomond)
	say "daemon active=$(systemctl is-active gnomond) user=$(stat -c %U /proc/"$pid" 2>/dev/null) capeff=$(awk '/^CapEff/ {print $2}' /proc/"$pid"/status 2>/dev/null) mode=$(gnomon_prop ClockMode) observe_reason=$(gnomon_prop ObserveReason | tr ' ' _)"
	say "status text=$(systemctl show -p StatusText --value gnomond | tr ' ' _)"
	rss_start=$(rss "$pid")
	run sync $H waitsync "$NTP" 120 1000000
	run kernel $H kernel
	# Held there: the offset to chronyd, every second for 20 s.
	run hold $H hold "$NTP" 20
	# The first sync trimmed the start-up memory (service/daemon/trim.go):
	# the binary's file pages go (RssFile), under the AppArmor profile
	# (it reads /proc/self/exe and smaps), with no denial.
	say "rss start=$rss_start synced=$(rss "$pid")"
	say "apparmor label=$(tr ' ' _ </proc/"$pid"/attr/current 2>/dev/null) denied=$(denials gnomond | wc -l) denied_any=$(denials | wc -l)"
	denials | sed 's/^/GNOMON-VM-LOG /'
	say "steps n=$(journal | grep -c 'stepped the clock')"
	say "seccomp refused=$(journal | grep -c 'seccomp filter not installed') installed=$(journal | grep -c 'seccomp filter installed')"
	say "drift_start $(journal | grep -m1 'starting from the kernel' | tr ' ' _)"
}

phase_ntp_off() {
	run setntp_off timedatectl set-ntp false
	sleep 1
	say "ntp_prop value=$(timedatectl show -p NTP --value)"
}

phase_settime() {
	# 600 s ahead of the upstream's time (within the panic threshold, so
	# gnomond takes it back with a step when NTP is on again).
	off=$($H offset "$NTP" 4 | sed 's/^offset_ns=\(-*[0-9]*\).*/\1/')
	target=$(($(date +%s) + off / 1000000000 + 600))
	run settime timedatectl set-time "$(date -u -d "@$target" '+%Y-%m-%d %H:%M:%S UTC')"
	run after_settime $H offset "$NTP" 4
}

phase_rtc() {
	# Local RTC with a zone that is not UTC, so local and UTC differ.
	run timezone timedatectl set-timezone Europe/Berlin
	before=$($H offset "$NTP" 4 | sed 's/^offset_ns=\(-*[0-9]*\).*/\1/')
	run localrtc timedatectl set-local-rtc 1 --adjust-system-clock
	after=$($H offset "$NTP" 4 | sed 's/^offset_ns=\(-*[0-9]*\).*/\1/')
	say "rtc_local adjtime=$(sed -n 3p /etc/adjtime) prop=$(timedatectl show -p LocalRTC --value) rtc_minus_sys_s=$(($(rtc_s) - $(date +%s))) hwclock_minus_sys_s=$(($(hwclock_s) - $(date +%s))) utcoff_s=$(date +%z | awk '{h=substr($1,2,2); m=substr($1,4,2); s=(h*3600+m*60); if (substr($1,1,1)=="-") s=-s; print s}') clock_moved_ms=$(((before - after) / 1000000))"
	run utcrtc timedatectl set-local-rtc 0
	say "rtc_utc adjtime=$(sed -n 3p /etc/adjtime 2>/dev/null || echo none) rtc_minus_sys_s=$(($(rtc_s) - $(date +%s))) hwclock_minus_sys_s=$(($(hwclock_s) - $(date +%s)))"
	run timezone_utc timedatectl set-timezone UTC
}

phase_resync() {
	run setntp_on timedatectl set-ntp true
	run resync $H waitsync "$NTP" 180 1000000
	run kernel_resync $H kernel
	say "steps_after n=$(journal | grep -c 'stepped the clock')"
}

phase_jump() {
	# A clock jump under a running, synchronized gnomond (a fault the host
	# cannot inject: its clock is not to be touched): the guest clock moved
	# 10 s ahead behind gnomond's back. gnomond must notice, put it back
	# and keep every acknowledged setting.
	tz=$(timedatectl show -p Timezone --value)
	ntp=$(timedatectl show -p NTP --value)
	date -s "@$(($(date +%s) + 10))" >/dev/null
	run jumped $H offset "$NTP" 4
	run jump_resync $H waitsync "$NTP" 120 1000000
	say "jump_after active=$(systemctl is-active gnomond) tz=$(timedatectl show -p Timezone --value) ntp=$(timedatectl show -p NTP --value) tz_before=$tz ntp_before=$ntp"
}

phase_stop() {
	say "engine_freq ppm=$(gnomon_prop Frequency)"
	systemctl stop gnomond
	say "drift_file content=$(tr ' ' , </var/lib/gnomon/drift 2>/dev/null | tr -d '\n') owner=$(stat -c %U /var/lib/gnomon/drift 2>/dev/null)"
	run kernel_stopped $H kernel
	# Until the leap test, gnomond's one source is a port where nothing
	# answers: what the kernel runs at after the reboot is then what
	# gnomond started from, with no update on top.
	cp /job/silent.toml /etc/gnomon/gnomon.toml
}

phase_reboot() {
	# gnomond was started by systemd at boot (this job runs after it is
	# up) with a source that never answers: the kernel's frequency must be
	# the drift file's, set at start.
	wait_active
	run kernel_boot $H kernel
	say "drift_file content=$(tr ' ' , </var/lib/gnomon/drift 2>/dev/null | tr -d '\n')"
	say "drift_read $(journal | grep -m1 'read drift file' | tr ' ' _)"
	say "uptime_at_check s=$(cut -d' ' -f1 /proc/uptime) gnomond_since=$(systemctl show -p ActiveEnterTimestampMonotonic --value gnomond)"
}

phase_takeover() {
	# What a previous daemon might leave: a frequency, the PLL slewing out a
	# phase offset, an adjtime() slew. No drift file.
	systemctl stop gnomond
	rm -f /var/lib/gnomon/drift
	run leftover $H leftover 25 40000 -250000
	systemctl start gnomond
	run kernel_takeover $H kernel
	say "takeover_log $(journal | grep 'starting from the kernel' | tail -1 | tr ' ' _)"
}

phase_leap() {
	# Two servers announce a leap second for the end of the month: one whose
	# clock is two days before the last day (the kernel must not be armed
	# yet: it would insert the second at the next midnight), one on the
	# last day. The guest's clock is moved to each server's time with
	# gnomond stopped, then gnomond follows the server.
	systemctl stop gnomond
	cp /job/leap-early.toml /etc/gnomon/gnomon.toml
	run leap_early_shift $H setahead "$LEAP_EARLY" 0
	systemctl start gnomond
	run leap_early_sync $H waitsync "$LEAP_EARLY" 90 5000000
	sleep 5
	run leap_early $H kernel
	say "leap_early_date utc=$(date -u +%Y-%m-%dT%H:%M:%S)"
	systemctl stop gnomond
	cp /job/leap.toml /etc/gnomon/gnomon.toml
	run leap_shift $H setahead "$LEAP" 0
	run leap_server $H offset "$LEAP" 2
	systemctl start gnomond
	run leap $H waitleap 120
	say "leap_date utc=$(date -u +%Y-%m-%dT%H:%M:%S)"
	systemctl stop gnomond
}

# The accuracy bench (SUITE=bench, reported, not asserted; docs/testing-vm.md):
# gnomond (the packaged unit) and chronyd take turns disciplining this
# guest's clock from the same upstream servers (chronyd -x on the host,
# BENCH_SERVERS of them, reached as 10.0.2.2) through the same netem, for
# BENCH_PERIOD seconds each after a common start: the kernel frequency at
# 0 ppm and the clock BENCH_OFFSET seconds ahead. Each daemon asks
# 127.0.0.(1+i):11120+i, where a relay (vmguest relays) forwards to server i
# from local port 11220+i: netem delays those packets on the interface's
# egress (a prio band only the relays' ports use) and, through ifb0, on its
# ingress. The delays are thus behind the daemon's own socket (its kernel
# timestamps, taken on lo, include them), as on a real network; on the
# daemon's own interface the kernel's software timestamps would hide them.
# Each scenario starts the relays anew; one with SHIFT_<name> (a Go
# duration) makes server 0 seem that far ahead (a falseticker).
# The truth is measured from the host: it queries "vmguest serve" (the
# kernel clock, through QEMU's hostfwd, outside the netem) once a second
# and reads the "bench_mark" lines' arrival on the console.
phase_bench() {
	systemctl stop gnomond
	nic=$(ip -o route get 10.0.2.2 | sed 's/.* dev \([^ ]*\).*/\1/')
	# shellcheck disable=SC2086 # one argument per server
	GOMAXPROCS=1 $H relays 11120 11220 0 $BENCH_UPSTREAMS &
	relays=$!
	$H serve 0.0.0.0:12300 &
	server=$!
	sleep 1
	run bench_timer $H timernoise 300 100
	run bench_path_none $H delays 127.0.0.1:11120 30
	rc=0
	modprobe ifb numifbs=0 || rc=1
	ip link add ifb0 type ifb || rc=1
	ip link set ifb0 up || rc=1
	tc qdisc add dev "$nic" root handle 1: prio || rc=1
	tc qdisc add dev "$nic" parent 1:3 handle 30: netem delay 0 || rc=1
	tc filter add dev "$nic" parent 1: protocol ip prio 1 u32 match ip protocol 17 0xff match ip sport 11220 0xfffc flowid 1:3 || rc=1
	tc qdisc add dev "$nic" handle ffff: ingress || rc=1
	tc filter add dev "$nic" parent ffff: protocol ip prio 1 u32 match ip protocol 17 0xff match ip dport 11220 0xfffc action mirred egress redirect dev ifb0 || rc=1
	tc qdisc add dev ifb0 root handle 40: netem delay 0 || rc=1
	say "bench_setup rc=$rc nic=$nic servers=$(echo $BENCH_UPSTREAMS | wc -w) period_s=$BENCH_PERIOD runs=$BENCH_RUNS offset_s=$BENCH_OFFSET"
	for sc in $BENCH_SCENARIOS; do
		eval "up=\$NETEM_UP_$sc down=\$NETEM_DOWN_$sc fshift=\${SHIFT_$sc:-0}"
		# The relays anew for each scenario, with its falseticker (if any).
		kill $relays
		wait $relays 2>/dev/null
		# shellcheck disable=SC2086 # one argument per server
		GOMAXPROCS=1 $H relays 11120 11220 "$fshift" $BENCH_UPSTREAMS &
		relays=$!
		sleep 1
		src=0
		tc qdisc change dev "$nic" parent 1:3 handle 30: netem $up || src=1
		tc qdisc change dev ifb0 root handle 40: netem $down || src=1
		say "bench_netem_$sc rc=$src up=$(echo "$up" | tr ' ' _) down=$(echo "$down" | tr ' ' _) shift0=$fshift"
		run "bench_path_$sc" $H delays 127.0.0.1:11120 40
		i=1
		while [ "$i" -le "$BENCH_RUNS" ]; do
			# Alternate which daemon goes first.
			order="gnomond chronyd"
			[ $((i % 2)) -eq 0 ] && order="chronyd gnomond"
			for d in $order; do
				bench_one "$d" "$sc" "$i"
			done
			i=$((i + 1))
		done
	done
	kill $relays $server
	say "bench_apparmor label_last=$(tr ' ' _ <"$S/label" 2>/dev/null) denied=$(denials gnomond | wc -l) denied_any=$(denials | wc -l)"
	denials | sed 's/^/GNOMON-VM-LOG /'
	tc qdisc del dev "$nic" root
	tc qdisc del dev "$nic" ingress
}

# dump NAME FILE...: the files gzipped and in base64 on the console, one
# "GNOMON-VM-DUMP NAME <line>" per 76 characters (tests/vm/bench_test.go
# writes them back out next to VM_BENCH_OUT).
dump() {
	n=$1
	shift
	cat "$@" 2>/dev/null | gzip -c | base64 -w 76 | sed "s/^/GNOMON-VM-DUMP $n /"
}

# bench_one DAEMON SCENARIO RUN: one period of one daemon from the common
# start state.
bench_one() {
	$H freq 0 >/dev/null
	$H setahead "$NTP" "$BENCH_OFFSET" >/dev/null
	say "bench_mark what=start daemon=$1 scenario=$2 run=$3"
	case $1 in
	gnomond)
		# The packaged unit as shipped; only its configuration is the
		# bench's, and no drift file (the frequency starts from the
		# kernel's, 0 ppm, as chronyd's does). BENCH_TRACE adds the
		# engine's trace (GNOMON_ENGINE_TRACE, service/daemon/trace.go)
		# through a runtime drop-in.
		rm -f /var/lib/gnomon/drift /var/lib/gnomon/bench.trace
		cp /job/bench.toml /etc/gnomon/gnomon.toml
		if [ "${BENCH_TRACE:-0}" = 1 ] && [ ! -f /run/systemd/system/gnomond.service.d/bench-trace.conf ]; then
			mkdir -p /run/systemd/system/gnomond.service.d
			printf '[Service]\nEnvironment=GNOMON_ENGINE_TRACE=/var/lib/gnomon/bench.trace\n' >/run/systemd/system/gnomond.service.d/bench-trace.conf
			systemctl daemon-reload
		fi
		systemctl start gnomond
		tr ' ' _ </proc/"$(systemctl show -p MainPID --value gnomond)"/attr/current >"$S/label" 2>/dev/null
		;;
	chronyd)
		# BENCH_TRACE: chronyd's own measurements and tracking logs.
		conf=/job/bench-chrony.conf
		if [ "${BENCH_TRACE:-0}" = 1 ]; then
			rm -rf /run/chrony-bench-log
			mkdir -p /run/chrony-bench-log
			{
				cat /job/bench-chrony.conf
				echo "logdir /run/chrony-bench-log"
				echo "log measurements tracking"
			} >/run/chrony-bench.conf
			conf=/run/chrony-bench.conf
		fi
		/usr/local/sbin/chronyd -d -u root -f "$conf" >/dev/null 2>&1 &
		pid=$!
		;;
	esac
	if [ "${BENCH_VIEW:-0}" -gt 0 ]; then
		# The daemon's own view and the kernel's state every BENCH_VIEW s
		# (diagnosis; the host keeps them with the console).
		end=$(($(cut -d. -f1 /proc/uptime) + BENCH_PERIOD))
		nsrv=$(echo $BENCH_UPSTREAMS | wc -w)
		ref=127.0.0.$nsrv:$((11119 + nsrv))
		while [ "$(cut -d. -f1 /proc/uptime)" -lt "$end" ]; do
			v=""
			[ "$1" = gnomond ] && v="engine_offset_ns=$(gnomon_prop Offset) engine_freq_ppm=$(gnomon_prop Frequency) rss=$(rss "$(systemctl show -p MainPID --value gnomond)")"
			# A reference through the relays beside the daemon: the best of
			# three queries to the last server (never the falseticker),
			# user-space stamps. Set against the host's probe at the same
			# moment, it shows the relay path's asymmetry in this turn.
			v="$v $($H offset "$ref" 3 2>&1 | sed 's/\([a-z_]*\)=/ref_\1=/g' | tr '\n' ' ')"
			say "bench_view daemon=$1 scenario=$2 run=$3 up=$(cut -d' ' -f1 /proc/uptime) $v $($H kernel | tr '\n' ' ')"
			sleep "$BENCH_VIEW"
		done
	else
		sleep "$BENCH_PERIOD"
	fi
	say "bench_mark what=end daemon=$1 scenario=$2 run=$3"
	case $1 in
	gnomond) systemctl stop gnomond ;;
	chronyd)
		kill "$pid"
		wait "$pid"
		;;
	esac
	run "bench_kernel_$1_$2_$3" $H kernel
	if [ "${BENCH_TRACE:-0}" = 1 ]; then
		case $1 in
		gnomond) grep -E '^[0-9.]+ (sample|update) ' /var/lib/gnomon/bench.trace >/run/bench-trace.txt 2>/dev/null && dump "trace_$1_$2_$3" /run/bench-trace.txt ;;
		chronyd)
			dump "trace_$1_$2_$3" /run/chrony-bench-log/measurements.log
			dump "tracking_$1_$2_$3" /run/chrony-bench-log/tracking.log
			;;
		esac
	fi
	say "bench_alive_$1_$2_$3 responder=$(kill -0 "$server" 2>/dev/null && echo yes || echo no) relays=$(kill -0 "$relays" 2>/dev/null && echo yes || echo no)"
}

case $boot in
1)
	phase_install
	if [ "$SUITE" = bench ]; then
		phase_bench
		boot=bench
		say "done n=1"
		sync
		systemctl --no-block poweroff
		exit 0
	fi
	phase_ntp_off
	if [ "$SUITE" = full ]; then
		phase_rtc
	fi
	phase_settime
	phase_resync
	phase_jump
	phase_stop
	;;
2)
	phase_reboot
	phase_takeover
	phase_leap
	;;
esac
# For the record (not parsed): how the boot went and what gnomond said.
systemd-analyze 2>&1 | sed 's/^/GNOMON-VM-LOG /'
dmesg | grep -i -E 'clocksource|tsc' | sed 's/^/GNOMON-VM-LOG /'
systemd-analyze blame 2>&1 | head -8 | sed 's/^/GNOMON-VM-LOG /'
journalctl -q -b -u gnomond -o verbose --no-pager 2>&1 |
	grep -E '^ *(MESSAGE|ERR|OFFSET|FREQ_PPM|KERNEL|STEPS|REASON|STEP)=' | tail -100 | sed 's/^ */GNOMON-VM-LOG /'
say "done n=$boot"
sync
systemctl --no-block poweroff
