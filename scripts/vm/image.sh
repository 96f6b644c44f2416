#!/usr/bin/env bash
# Builds (once) the Debian 12 guest of the VM test ring: a debootstrapped
# root in an ext4 image made by mkfs.ext4 -d, Debian's own kernel
# (linux-image-amd64, unpacked with dpkg-deb -x) and a small initramfs that
# loads the virtio and ext4 modules and hands over to systemd.
#
#   scripts/vm/image.sh [CACHE_DIR]
#
# Prints the directory holding vmlinuz, initrd.img and root.img. The result
# is cached in CACHE_DIR (default $GNOMON_VM_CACHE, else /var/cache/gnomon-vm
# as root, else ~/.cache/gnomon-vm) under a name that changes with this
# script, so an edit here builds a new image and an old one is reused as
# is. A first build downloads from $DEBIAN_MIRROR (about a minute and a
# half). Needs root, debootstrap, apt-get, dpkg-deb, mkfs.ext4 and chroot.
#
# The guest: systemd as PID 1, serial console on ttyS0, a static address
# 10.0.2.15/24 (QEMU user networking; the host's 127.0.0.1 is 10.0.2.2) and
# no DNS, so nothing in it reaches beyond the host's loopback. At every boot
# gnomon-vmjob.service mounts the second disk (/dev/vdb, made per run by
# the test) on /job and runs /job/run.sh with its output on the serial
# console. No time daemon runs at boot (linuxptp and gpsd are there for the
# tests, masked); the test installs the gnomon .deb.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [ -n "${1:-}" ]; then
	cache=$1
elif [ -n "${GNOMON_VM_CACHE:-}" ]; then
	cache=$GNOMON_VM_CACHE
elif [ "$(id -u)" -eq 0 ]; then
	cache=/var/cache/gnomon-vm
else
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/gnomon-vm
fi
key=$(sha256sum "$here/image.sh" | cut -c1-12)
out=$cache/bookworm-$key

if [ -f "$out/done" ]; then
	echo "$out"
	exit 0
fi

fail() { printf 'image.sh: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "run as root (debootstrap)"
for t in debootstrap apt-get apt-cache dpkg-deb mkfs.ext4 gzip; do
	command -v "$t" >/dev/null || fail "$t is not installed (scripts/install-peers.sh installs it)"
done

mkdir -p "$cache"
# One builder at a time; a second waits and then finds the image.
exec 9>"$cache/.lock"
flock 9
if [ -f "$out/done" ]; then
	echo "$out"
	exit 0
fi
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
log=$work/build.log
step() { printf 'image.sh: %s\n' "$*" >&2; }

# The debootstrapped tree is kept on its own (keyed by the package list), so
# that a change to the steps after it does not download it again.
# linuxptp, gpsd, pps-tools and ethtool are the peers of the PTP and
# reference-clock guest tests; their services stay masked (below).
pkgs=systemd-sysv,dbus,udev,kmod,iproute2,util-linux-extra,tzdata,libpam-systemd,polkitd,busybox-static,chrony,linuxptp,gpsd,pps-tools,ethtool
base=$cache/debootstrap-$(echo "$pkgs $mirror" | sha256sum | cut -c1-12).tar
mkdir -p "$root"
if [ -f "$base" ]; then
	step "debootstrapped tree from $base"
	tar -xpf "$base" -C "$root"
else
	step "debootstrap bookworm from $mirror"
	debootstrap --variant=minbase --include="$pkgs" bookworm "$root" "$mirror" >"$log" 2>&1 ||
		{ tail -30 "$log" >&2; fail "debootstrap failed"; }
	rm -f "$root"/var/cache/apt/archives/*.deb
	tar -cpf "$base.tmp" -C "$root" . && mv "$base.tmp" "$base"
fi

step "kernel (linux-image-amd64)"
kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$kpkg" ] || fail "cannot tell which kernel linux-image-amd64 depends on (apt-get update?)"
(cd "$work" && apt-get download "$kpkg" >>"$log" 2>&1) || { tail -5 "$log" >&2; fail "apt-get download $kpkg"; }
# Unpacked aside: the package's ./lib would replace the root's /lib -> usr/lib.
dpkg-deb -x "$work"/"$kpkg"_*.deb "$work/kernel"
kver=${kpkg#linux-image-}
mkdir -p "$root/usr/lib/modules"
cp -a "$work/kernel/lib/modules/$kver" "$root/usr/lib/modules/"
cp "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinuz"
rm -rf "$work/kernel"
chroot "$root" /sbin/depmod "$kver"

step "guest configuration"
echo gnomon-vm >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 gnomon-vm\n' >"$root/etc/hosts"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"$root/etc/fstab"
: >"$root/etc/resolv.conf"
# Boot straight through: no login prompt on the console, no RTC sync service.
ln -sf /dev/null "$root/etc/systemd/system/serial-getty@ttyS0.service"
ln -sf /dev/null "$root/etc/systemd/system/getty@tty1.service"
mkdir -p "$root/etc/systemd/network"
cat >"$root/etc/systemd/network/10-user.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
LinkLocalAddressing=no
IPv6AcceptRA=no
EOF
chroot "$root" systemctl enable systemd-networkd.service >>"$log" 2>&1
# systemd-networkd-wait-online would hold network-online.target for 2 min
# when the link is slow under TCG; nothing here needs it.
chroot "$root" systemctl mask systemd-networkd-wait-online.service >>"$log" 2>&1
cat >"$root/etc/systemd/system/gnomon-vmjob.service" <<'EOF'
[Unit]
Description=gnomon VM test job (/dev/vdb:/run.sh)
# After gnomond when it is installed (from the second boot on): the job
# then sees it as systemd started it.
After=local-fs.target dbus.service systemd-networkd.service gnomond.service
Wants=dbus.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'mkdir -p /job && mount -o ro /dev/vdb /job && exec /bin/sh /job/run.sh'
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
EOF
chroot "$root" systemctl enable gnomon-vmjob.service >>"$log" 2>&1
# chronyd for the accuracy comparison (tests/vm, make bench-vm), kept as
# /usr/local/sbin/chronyd with its libraries; the package itself goes, as
# gnomon conflicts with it and would otherwise not install.
cp "$root/usr/sbin/chronyd" "$root/usr/local/sbin/chronyd"
chroot "$root" dpkg --purge chrony >>"$log" 2>&1
# gpsd and linuxptp are started by the tests that need them, never at boot.
for u in gpsd.socket gpsd.service gpsdctl@.service ptp4l.service phc2sys.service timemaster.service; do
	ln -sf /dev/null "$root/etc/systemd/system/$u"
done
# No apt in the guest: everything it needs is in the image or on /job.
rm -f "$root"/var/cache/apt/archives/*.deb

step "initramfs"
ird=$work/initrd
mkdir -p "$ird/bin" "$ird/lib/modules"
cp "$root/bin/busybox" "$ird/bin/busybox"
: >"$ird/modules"
for m in virtio_pci virtio_blk ext4 crc32c_generic; do
	chroot "$root" /sbin/modprobe -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r rel; do
	mkdir -p "$ird$(dirname "$rel")"
	cp "$root$rel" "$ird$rel"
	echo "$rel" >>"$ird/modules"
done
[ -s "$ird/modules" ] || fail "no modules found for the initramfs"
cat >"$ird/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do insmod "$m" 2>/dev/null; done </modules
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mount -t ext4 -o rw /dev/vda /root || { echo "initramfs: cannot mount /dev/vda"; poweroff -f; }
umount /proc /sys
mount --move /dev /root/dev
exec switch_root /root /lib/systemd/systemd
EOF
chmod 0755 "$ird/init"
(cd "$ird" && find . | "$root/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1) >"$work/initrd.img"

step "root image (mkfs.ext4 -d)"
size=$(($(du -sm "$root" | cut -f1) + 768))
mkfs.ext4 -q -F -L gnomon-vm -d "$root" "$work/root.img" "${size}M" >>"$log" 2>&1 ||
	{ tail -5 "$log" >&2; fail "mkfs.ext4"; }

mkdir -p "$out"
mv "$work/vmlinuz" "$work/initrd.img" "$work/root.img" "$out/"
echo "$kver" >"$out/kernel-version"
touch "$out/done"
step "built $out"
echo "$out"
