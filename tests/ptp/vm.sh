#!/bin/sh
# Runs in a qemu guest (TCG) with an emulated e1000e NIC and its /dev/ptp0,
# booted from a Debian 12 image (kernel, initrd and root.img in
# GNOMON_VM_IMAGE, default: the newest complete one in /var/cache/gnomon-vm;
# the image is used read-only with -snapshot):
#  1. service/ptp's TestVMHardware and TestVMPHCFollow (the hardware
#     timestamping and PHC API paths, the PHC following the system clock);
#  2. gnomond with a hardware [[ptp-port]] on the e1000e: its PHC follows
#     the guest's system clock (tests/ptp/guest.sh hwfollow);
#  3. gnomond master -> ptp4l slave with free_running 0 (it disciplines the
#     guest's CLOCK_REALTIME) over a veth pair between two namespaces, until
#     ptp4l reports s2, then ptp4l -> ptp4l as the yardstick (guest.sh s2).
# gnomond is the package's binary when GNOMON_VM_DEB names a .deb, else
# built from this tree. The guest's network is QEMU's user network with
# restrict=on (nothing leaves QEMU). The guest's clock is its own: nothing
# here touches the host's.
set -eu
cd "$(dirname "$0")/../.."
img=${GNOMON_VM_IMAGE:-$(ls -td /var/cache/gnomon-vm/bookworm-*/ 2>/dev/null | while read -r d; do [ -f "$d/done" ] && echo "$d" && break; done)}
if [ -z "$img" ] || [ ! -f "$img/vmlinuz" ]; then
	echo "vm.sh: no guest image (set GNOMON_VM_IMAGE to a folder with vmlinuz, initrd.img, root.img, kernel-version)" >&2
	exit 2
fi
kv=$(cat "$img/kernel-version")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir "$T/disk"
CGO_ENABLED=0 go test -c -o "$T/disk/ptp.test" ./service/ptp
if [ -n "${GNOMON_VM_DEB:-}" ]; then
	dpkg-deb -x "$GNOMON_VM_DEB" "$T/pkg"
	cp "$(find "$T/pkg" -name gnomond -type f | head -n1)" "$T/disk/gnomond"
	echo "vm.sh: gnomond from $GNOMON_VM_DEB"
else
	CGO_ENABLED=0 go build -o "$T/disk/gnomond" ./cmd/gnomond
	echo "vm.sh: gnomond built from the tree (GNOMON_VM_DEB=file.deb to use a package's)"
fi
cp tests/ptp/guest.sh "$T/disk/guest.sh"
# The image's gnomon-vmjob.service mounts the second disk on /job and runs
# /job/run.sh with its output on the console.
cat > "$T/disk/run.sh" <<JOB
#!/bin/sh
modprobe e1000e 2>/dev/null
sleep 2
ifc=\$(ls /sys/class/net | grep -v lo | head -n1)
ip link set "\$ifc" up
echo "GUEST: interface \$ifc, kernel \$(uname -r), PHCs: \$(ls /dev/ptp* 2>/dev/null)"
GNOMON_PTP_VM_IFACE=\$ifc /job/ptp.test -test.run '^TestVM(Hardware|PHCFollow)\$' -test.v 2>&1
echo "GUEST: exit \$?"
sh /job/guest.sh hwfollow /job/gnomond "\$ifc"
sh /job/guest.sh s2 /job/gnomond
poweroff -f
JOB
chmod +x "$T/disk/run.sh"
mke2fs -q -t ext2 -d "$T/disk" "$T/job.img" 96M
timeout 420 nice qemu-system-x86_64 -accel tcg -m 768 -nographic -no-reboot -snapshot \
	-kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
	-drive file="$img/root.img",format=raw,if=virtio \
	-drive file="$T/job.img",format=raw,if=virtio \
	-netdev user,id=n0,restrict=on -device e1000e,netdev=n0 \
	-append "root=/dev/vda ro console=ttyS0 panic=-1" \
	> "$T/console.log" 2>&1 || true
tr -d '\r' <"$T/console.log" >"$T/c.log"
grep -E "GUEST|^(=== RUN|--- |    |PASS|FAIL|ok)" "$T/c.log"
fail=0
for t in TestVMHardware TestVMPHCFollow; do
	grep -q "^--- PASS: $t" "$T/c.log" || { echo "vm.sh: $t did not pass in the guest" >&2; fail=1; }
done
# gnomond's hardware port: the PHC followed the system clock, stepped onto
# it at least three times (QEMU's PHC does not advance: every comparison
# finds it a second behind)
hw=$(grep "^GUEST-PTP hwfollow" "$T/c.log")
case "$hw" in
*"follows=0"* | "") echo "vm.sh: gnomond's PHC did not follow the system clock: $hw" >&2; fail=1 ;;
esac
st=$(echo "$hw" | sed -n 's/.* steps=\([0-9]*\).*/\1/p')
[ "${st:-0}" -ge 3 ] || { echo "vm.sh: gnomond stepped the PHC ${st:-0} times, want at least 3" >&2; fail=1; }
# ptp4l as a slave of gnomond: locked (s2), its offsets bounded. TCG's
# software timestamps are coarse and a loaded host adds hiccups of several
# hundred µs (the yardstick, ptp4l -> ptp4l, sees the same), so the bound is
# on the median |offset| (50 µs), the RMS only has to stay within 1 ms.
s2=$(grep "^GUEST-PTP s2 master=gnomond" "$T/c.log")
case "$s2" in
*"locked=yes"*) ;;
*) echo "vm.sh: ptp4l did not reach s2 as a slave of gnomond: $s2" >&2; fail=1 ;;
esac
n=$(echo "$s2" | sed -n 's/.* n=\([0-9]*\).*/\1/p')
rms=$(echo "$s2" | sed -n 's/.* rms_ns=\([0-9]*\).*/\1/p')
med=$(echo "$s2" | sed -n 's/.* median_abs_ns=\([0-9]*\).*/\1/p')
[ "${n:-0}" -ge 10 ] && [ "${med:-999999999}" -le 50000 ] && [ "${rms:-999999999}" -le 1000000 ] ||
	{ echo "vm.sh: ptp4l's s2 offsets against gnomond: n=${n:-0} median |offset| ${med:-?} ns, RMS ${rms:-?} ns (want n >= 10, median <= 50 us, RMS <= 1 ms)" >&2; fail=1; }
if [ "$fail" != 0 ]; then
	tail -60 "$T/c.log" >&2
	exit 1
fi
