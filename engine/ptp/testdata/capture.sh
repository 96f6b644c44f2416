#!/bin/sh
# Captures golden PTP packets from linuxptp's ptp4l and pmc into pcap files
# beside this script. Run as root; it makes two network namespaces joined by
# a veth pair, runs ptp4l (software timestamps, free_running, without
# CAP_SYS_TIME) as master in one and as slave in the other, and captures on
# the slave's side with tshark. See README.md.
set -eu
cd "$(dirname "$0")"
M=gn-ptp-capm S=gn-ptp-caps
T=$(mktemp -d)
cleanup() {
	for p in $(cat "$T"/*.pid 2>/dev/null); do kill "$p" 2>/dev/null || true; done
	sleep 0.5
	ip netns del $M 2>/dev/null || true
	ip netns del $S 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT
ip netns add $M
ip netns add $S
ip link add gnptpcm type veth peer name gnptpcs
ip link set gnptpcm netns $M
ip link set gnptpcs netns $S
ip -n $M addr add 10.71.0.1/24 dev gnptpcm
ip -n $S addr add 10.71.0.2/24 dev gnptpcs
ip -n $M link set gnptpcm up
ip -n $S link set gnptpcs up
ip -n $M link set lo up
ip -n $S link set lo up
sleep 2 # IPv6 DAD
SAFE="setpriv --bounding-set=-sys_time --inh-caps=-sys_time"

run() { # name transport-flag delay-mechanism seconds
	name=$1 tflag=$2 dm=$3 secs=$4
	ip netns exec $S tshark -q -F pcap -i gnptpcs -w "$T/$name.pcap" -a duration:"$secs" -f "udp port 319 or udp port 320 or ether proto 0x88f7" 2>/dev/null &
	echo $! > "$T/tshark.pid"
	sleep 1
	ip netns exec $M $SAFE ptp4l -i gnptpcm -S $tflag -q --free_running 1 --masterOnly 1 \
		--delay_mechanism $dm --uds_address "$T/m.sock" --logAnnounceInterval 0 >/dev/null 2>&1 &
	echo $! > "$T/m.pid"
	ip netns exec $S $SAFE ptp4l -i gnptpcs -S $tflag -q -s --free_running 1 \
		--delay_mechanism $dm --uds_address "$T/s.sock" --logMinDelayReqInterval 0 --logMinPdelayReqInterval 0 >/dev/null 2>&1 &
	echo $! > "$T/s.pid"
	sleep $((secs - 4))
	if [ -n "${5:-}" ]; then
		# management GETs on the wire (pmc over the network transport)
		for q in "GET CURRENT_DATA_SET" "GET PARENT_DATA_SET" "GET PORT_DATA_SET" "GET DEFAULT_DATA_SET" "GET TIME_PROPERTIES_DATA_SET"; do
			ip netns exec $S pmc $tflag -i gnptpcs -b 1 -t 0 "$q" >/dev/null 2>&1 || true
		done
	fi
	kill "$(cat "$T/m.pid")" "$(cat "$T/s.pid")" 2>/dev/null || true
	wait "$(cat "$T/tshark.pid")" 2>/dev/null || true
	rm -f "$T/m.pid" "$T/s.pid" "$T/tshark.pid"
	cp "$T/$name.pcap" "./$name.pcap"
	echo "captured $name.pcap"
}
run udp4-e2e -4 E2E 16 mgmt
run udp6-e2e -6 E2E 14
run l2-e2e -2 E2E 14
run l2-p2p -2 P2P 14
