#!/bin/sh
# The reference-clock guest job (tests/refclock/vm_test.go, make
# test-refclock-vm), run at boot by gnomon-vmjob.service from the job disk
# on /job. It prints "GNOMON-VM name key=value ..." lines and
# "GNOMON-VM-JSON name {...}" lines on the console (ttyS0); the host test
# reads them and decides. ttyS1 is the "receiver": the host writes NMEA
# to it once a second. /job/env sets:
#   NTP       chronyd on the host, 10.0.2.2:PORT (sets this guest's clock)
#   PHASE_US  how far after each second the PPS module fires its edge
#   WAIT_S    how long gnomond may take to select the PPS source
# Every clock change here is the guest's own.
set -u
. /job/env
H=/job/vmguest
say() { echo "GNOMON-VM $*"; }
run() {
	n=$1
	shift
	out=$("$@" 2>&1)
	say "$n rc=$? $(echo "$out" | tr '\n' ' ')"
}
finish() {
	say "done"
	sync
	poweroff -f
}
say "boot kernel=$(uname -r) uptime_s=$(cut -d' ' -f1 /proc/uptime)"

# The guest's clock onto the host's (chronyd), so that the NMEA the host
# writes and the edges the module fires name the same seconds.
run net $H waitnet "$NTP" 60
run set $H setahead "$NTP" 0
run offset $H offset "$NTP" 4

# gnomond from the package, observe mode (the PPS edges follow this
# guest's clock: disciplining it by them would chase its own tail), with
# the drop-ins docs/refclock.md gives for PPS, SHM and SOCK, and its udev
# rule, so that gnomond (user gnomon) may open /dev/pps0. The module comes
# after the package (the rule names the group gnomon), and gnomond is
# restarted to open the device.
mkdir -p /etc/gnomon /etc/systemd/system/gnomond.service.d
cp /job/gnomon.toml /etc/gnomon/gnomon.toml
cp /job/40-pps.conf /job/50-refclock.conf /etc/systemd/system/gnomond.service.d/
out=$(dpkg --force-confdef --force-confold -i /job/gnomon.deb 2>&1)
rc=$?
[ $rc -eq 0 ] || echo "$out"
say "install rc=$rc"
# The rule only now, when the group gnomon exists: udev resolves the name
# when it reads the rule.
cp /job/60-gnomon-pps.rules /etc/udev/rules.d/
udevadm control --reload
# The PPS source: our module, unsigned (no secure boot: it loads and taints
# the kernel with E), its sysfs path naming ttyS1 as gpsd expects.
out=$(insmod /job/gnomon_ppsgen.ko path=/dev/ttyS1 phase_us="$PHASE_US" 2>&1)
say "insmod rc=$? tainted=$(cat /proc/sys/kernel/tainted) $(echo "$out" | tr ' \n' '_ ')"
for d in /sys/class/pps/pps*; do
	[ -e "$d" ] && say "ppsdev dev=$(basename "$d") name=$(cat "$d/name") path=$(cat "$d/path")"
done
udevadm settle
[ -c /dev/pps0 ] || finish
say "ppsperm $(stat -c mode=%a_group=%G /dev/pps0)"
# Five edges straight from the kernel (pps-tools' ppstest: PPS_FETCH).
timeout 6 ppstest /dev/pps0 >/tmp/ppstest.log 2>&1
grep 'assert' /tmp/ppstest.log | head -5 | while read -r line; do
	# "source 0 - assert 1765112345.010023456, sequence: 7 - clear  0.000000000, sequence: 0"
	ts=$(echo "$line" | sed -n 's/.*assert \([0-9]*\.[0-9]*\),.*/\1/p')
	say "ppstest assert=$ts"
done

systemctl restart gnomond
i=0
while [ $i -lt 60 ] && ! systemctl -q is-active gnomond; do sleep 0.5; i=$((i + 1)); done
say "daemon active=$(systemctl is-active gnomond) sock=$(stat -L -c %F_%a_%U /run/chrony.ttyS1.sock 2>&1 | tr ' ' _)"
if ! systemctl -q is-active gnomond; then
	journalctl -q -b -u gnomond -o cat --no-pager | tail -20
	finish
fi

# gpsd on the serial port, as root (so it uses /run/chrony.ttyS1.sock,
# which exists now): it sets the PPS line discipline on ttyS1, finds
# /dev/pps0 by its path, and sends each edge with the second of the
# NMEA fix before it to chrony's SOCK and SHM unit 1, the NMEA time to
# SHM unit 0, and both as JSON on 127.0.0.1:2947.
# What the host writes reaches ttyS1.
stty -F /dev/ttyS1 raw -echo clocal 9600
cat /dev/ttyS1 >/tmp/ttyS1 &
cat_pid=$!
sleep 3
kill $cat_pid
say "ttyS1 bytes=$(wc -c </tmp/ttyS1) first=$(grep -a -m1 -o 'GP[A-Z]*,[0-9.]*' /tmp/ttyS1)"
/usr/sbin/gpsd -N -n -D 4 -F /run/gpsd.sock /dev/ttyS1 >/tmp/gpsd.log 2>&1 &
gpsd_pid=$!
say "gpsd pid=$gpsd_pid"

# Until gnomond follows the PPS source and every other reference clock
# has had several samples (or WAIT_S).
start=$(cut -d. -f1 /proc/uptime)
while :; do
	now=$(cut -d. -f1 /proc/uptime)
	txt=$(gnomonctl sources 2>&1)
	ok=1
	echo "$txt" | grep -q '^#\* *PPS ' || ok=0
	for s in GPS SOCK SHM0 SHM1; do
		r=$(echo "$txt" | awk -v s="$s" '$2 == s {print $5}')
		case "$r" in 37 | 77 | 177 | 377) ;; *) ok=0 ;; esac
	done
	[ $ok -eq 1 ] && break
	[ $((now - start)) -ge "$WAIT_S" ] && break
	sleep 2
done
say "waited s=$(($(cut -d. -f1 /proc/uptime) - start)) ok=$ok"
echo "$txt"
echo "GNOMON-VM-JSON sources $(gnomonctl sources --json 2>&1 | tr -d '\n')"
run offset_after $H offset "$NTP" 4
grep -E 'KPPS|chrony|PPS:' /tmp/gpsd.log | head -12
[ "$ok" = 1 ] || tail -40 /tmp/gpsd.log
grep 'accepted chrony sock @' /tmp/gpsd.log | tail -5 | while read -r line; do
	say "gpsd_sock offset=${line##* }"
done
say "gpsd_log kpps_path=$(grep -o 'RFC2783 path:[^,]*' /tmp/gpsd.log | head -1 | tr ' ' _) accepted_sock=$(grep -c 'accepted chrony sock' /tmp/gpsd.log)"
journalctl -q -b -u gnomond -o cat --no-pager | grep -iE 'error|warn|pps|refclock' | head -10
kill "$gpsd_pid" 2>/dev/null
finish
