#!/bin/sh
# Runs service/ptp's TestVMHardware inside a qemu guest (TCG) with an
# emulated e1000e NIC and its /dev/ptp0, booted from a Debian 12 image
# (kernel, initrd and root.img in GNOMON_VM_IMAGE, default: the newest
# complete one in /var/cache/gnomon-vm; the image is used read-only with
# -snapshot). The guest's clock is its own: nothing here touches the host's.
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
# The image's gnomon-vmjob.service mounts the second disk on /job and runs
# /job/run.sh with its output on the console.
cat > "$T/disk/run.sh" <<JOB
#!/bin/sh
modprobe e1000e 2>/dev/null
sleep 2
ifc=\$(ls /sys/class/net | grep -v lo | head -n1)
ip link set "\$ifc" up
echo "GUEST: interface \$ifc, kernel \$(uname -r), PHCs: \$(ls /dev/ptp* 2>/dev/null)"
GNOMON_PTP_VM_IFACE=\$ifc /job/ptp.test -test.run '^TestVMHardware\$' -test.v 2>&1
echo "GUEST: exit \$?"
poweroff -f
JOB
chmod +x "$T/disk/run.sh"
mke2fs -q -t ext2 -d "$T/disk" "$T/job.img" 96M
timeout 240 qemu-system-x86_64 -accel tcg -m 768 -nographic -no-reboot -snapshot \
	-kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
	-drive file="$img/root.img",format=raw,if=virtio \
	-drive file="$T/job.img",format=raw,if=virtio \
	-netdev user,id=n0 -device e1000e,netdev=n0 \
	-append "root=/dev/vda ro console=ttyS0 panic=-1" \
	> "$T/console.log" 2>&1 || true
grep -E "GUEST|^(=== RUN|--- |    |PASS|FAIL|ok)" "$T/console.log" | tr -d '\r'
grep -q "^--- PASS: TestVMHardware" "$T/console.log" || { echo "vm.sh: TestVMHardware did not pass in the guest" >&2; tail -40 "$T/console.log" | tr -d '\r' >&2; exit 1; }
