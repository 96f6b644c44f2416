#!/usr/bin/env bash
# Installs the real peers the tests start (chronyd, NTPsec's ntpdig and ntpd,
# dbus-daemon, polkitd, timedatectl, ptp4l, gpsd) and the tools around them.
# Runs only as root; as another user it says what is missing and exits 0.
# Idempotent: a second run installs nothing.
set -euo pipefail

pkgs=(chrony ntpsec-ntpdig python3-ntp dbus polkitd pkexec systemd
      linuxptp iproute2 util-linux openssl tshark strace
      apparmor debhelper dh-apparmor lintian debootstrap systemd-container
      gcc libc6-dev)  # cgo for make test's race detector

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

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
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# NTPsec's ntpd conflicts with chrony, so it is unpacked, never installed.
ntpsec_root=${NTPSEC_ROOT:-/opt/gnomon-peers/ntpsec}
if [ ! -x "$ntpsec_root/usr/sbin/ntpd" ] && [ "$(id -u)" -eq 0 ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq ntpsec >/dev/null && mkdir -p "$ntpsec_root" && dpkg-deb -x ntpsec_*.deb "$ntpsec_root")
  rm -rf "$tmp"
fi

echo "install-peers: ok"
