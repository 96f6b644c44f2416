#!/usr/bin/env bash
# Installs the real peers the tests start (chronyd, NTPsec's ntpdig and ntpd,
# dbus-daemon, polkitd, timedatectl, ptp4l, gpsd) and the tools around them.
# Runs only as root; as another user it says what is missing and exits 0.
# Idempotent: a second run installs nothing.
set -euo pipefail

pkgs=(chrony ntpsec-ntpdig python3-ntp dbus polkitd pkexec systemd
      linuxptp iproute2 util-linux openssl tshark strace
      apparmor debhelper dh-apparmor lintian debootstrap systemd-container
      gpsd gpsd-clients gcc libc6-dev
      qemu-system-x86 qemu-utils e2fsprogs   # tests/vm (make test-vm)
      linux-headers-amd64 make   # the guest's PPS module (make test-refclock-vm)
      libglib2.0-bin)  # gdbus (tests/dbus)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

# The package lists, fetched once, before anything is installed or
# downloaded (a fresh machine or image may have none).
updated=
apt_update() {
  if [ -z "$updated" ]; then
    apt-get update -qq
    updated=1
  fi
}

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-peers: not root; missing packages: ${missing[*]}" >&2
    exit 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Never let a package's postinst start a time daemon on this machine.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
  fi
  echo "install-peers: installing ${missing[*]}"
  apt_update
  # A fresh cloud machine may still run unattended-upgrades: wait for it.
  apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}" >/dev/null
fi

# NTPsec's ntpd conflicts with chrony, so it is unpacked, never installed.
ntpsec_root=${NTPSEC_ROOT:-/opt/gnomon-peers/ntpsec}
if [ ! -x "$ntpsec_root/usr/sbin/ntpd" ] && [ "$(id -u)" -eq 0 ]; then
  apt_update
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq ntpsec >/dev/null && mkdir -p "$ntpsec_root" && dpkg-deb -x ntpsec_*.deb "$ntpsec_root")
  rm -rf "$tmp"
fi

# systemd-timesyncd, for the differential D-Bus test (tests/conformance),
# likewise unpacked: chrony conflicts with it, and it must never run as the
# host's time daemon.
timesyncd_root=${TIMESYNCD_ROOT:-/opt/gnomon-peers/timesyncd}
if [ ! -x "$timesyncd_root/lib/systemd/systemd-timesyncd" ] && [ "$(id -u)" -eq 0 ]; then
  apt_update
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq systemd-timesyncd >/dev/null && mkdir -p "$timesyncd_root" && dpkg-deb -x systemd-timesyncd_*.deb "$timesyncd_root")
  rm -rf "$tmp"
fi
# timesyncd runs as this user (the package's sysusers.d entry, not installed).
if ! getent passwd systemd-timesync >/dev/null && [ "$(id -u)" -eq 0 ]; then
  useradd --system --no-create-home --home-dir / --shell /usr/sbin/nologin --comment "systemd Time Synchronization" systemd-timesync
fi

echo "install-peers: ok"
