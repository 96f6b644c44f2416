#!/bin/sh
# ptp4l as an automotive slave that really locks (linuxptp's
# automotive-slave.cfg: once its servo is LOCKED_STABLE it sends a message
# interval request for operLogSyncInterval 0) against gnomond's
# profile = "automotive" grandmaster: on the host ptp4l may only run with
# free_running 1, which never locks, so this runs inside a qemu guest
# (TCG, the image from /var/cache/gnomon-vm or GNOMON_VM_IMAGE, used with
# -snapshot), where ptp4l steers the guest's own clock. Two network
# namespaces joined by a veth pair, software timestamps; gnomond in observe
# mode. Passes when gnomond's port data set (pmc over its management
# socket) shows logSyncInterval 0 after ptp4l's request. Nothing here
# touches the host's clock.
set -eu
cd "$(dirname "$0")/../.."
img=${GNOMON_VM_IMAGE:-$(ls -td /var/cache/gnomon-vm/bookworm-*/ 2>/dev/null | while read -r d; do [ -f "$d/done" ] && echo "$d" && break; done)}
if [ -z "$img" ] || [ ! -f "$img/vmlinuz" ]; then
	echo "vm.sh: no guest image (set GNOMON_VM_IMAGE to a folder with vmlinuz, initrd.img, root.img)" >&2
	exit 2
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir "$T/disk"
CGO_ENABLED=0 go build -o "$T/disk/gnomond" ./cmd/gnomond
cp ctl/migrate/testdata/ptp4l/automotive-slave.cfg "$T/disk/"
cat > "$T/disk/run.sh" <<'JOB'
#!/bin/sh
say() { sed 's/^/GUEST: /'; }
ip netns add g && ip netns add p
ip link add g0 type veth peer name p0
ip link set g0 netns g && ip link set p0 netns p
for n in g p; do ip -n $n link set lo up; done
ip -n g link set g0 up && ip -n p link set p0 up
cat > /tmp/g.toml <<EOF
[clock]
mode = "observe"
drift-file = ""
[log]
level = "debug"
format = "json"
[[ptp-port]]
profile = "automotive"
role = "grandmaster"
interface = "g0"
timestamping = "software"
management-socket = "/tmp/g.sock"
EOF
ip netns exec g /job/gnomond --config /tmp/g.toml --no-dbus --user "" --state-dir "" > /tmp/g.log 2>&1 &
sleep 3
# automotive-slave.cfg as shipped, but for servo_offset_threshold: 30 ns
# is for hardware timestamps; software ones in a TCG guest jitter by µs
ip netns exec p ptp4l -f /job/automotive-slave.cfg -i p0 -S -m -q -l 7 --servo_offset_threshold 20000 \
	--uds_address /tmp/p.sock > /tmp/p.log 2>&1 &
before=$(pmc -u -b 0 -t 1 -s /tmp/g.sock -i /tmp/pmc0.sock 'GET PORT_DATA_SET' 2>&1 | grep logSyncInterval)
echo "gnomond's port before: $before" | say
ok=0
for i in $(seq 1 60); do
	sleep 2
	out=$(pmc -u -b 0 -t 1 -s /tmp/g.sock -i /tmp/pmc$i.sock 'GET PORT_DATA_SET' 2>&1)
	if echo "$out" | grep -Eq 'logSyncInterval[[:space:]]+0$'; then ok=1; break; fi
done
echo "after $((i*2)) s, gnomond's PORT_DATA_SET:" | say
echo "$out" | say
pmc -u -b 0 -t 1 -s /tmp/p.sock -i /tmp/pmcp.sock 'GET PORT_DATA_SET' 2>&1 | grep -E 'portState|logSyncInterval|logMinPdelayReqInterval' | sed 's/^/ptp4l /' | say
grep -c 'master offset' /tmp/p.log | sed 's/^/ptp4l offsets printed: /' | say
grep 'master offset' /tmp/p.log | tail -3 | say
if [ $ok = 1 ]; then echo "RESULT PASS" | say; else echo "RESULT FAIL" | say; tail -20 /tmp/g.log | say; tail -30 /tmp/p.log | say; fi
poweroff -f
JOB
chmod +x "$T/disk/run.sh"
mke2fs -q -t ext2 -d "$T/disk" "$T/job.img" 96M
timeout 300 nice qemu-system-x86_64 -accel tcg -m 768 -nographic -no-reboot -snapshot \
	-kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
	-drive file="$img/root.img",format=raw,if=virtio \
	-drive file="$T/job.img",format=raw,if=virtio \
	-append "root=/dev/vda ro console=ttyS0 panic=-1" \
	> "$T/console.log" 2>&1 || true
grep "GUEST" "$T/console.log" | tr -d '\r'
grep -q "GUEST: RESULT PASS" "$T/console.log" || { echo "vm.sh: gnomond's grandmaster did not take ptp4l's interval request" >&2; tail -40 "$T/console.log" | tr -d '\r' >&2; exit 1; }
