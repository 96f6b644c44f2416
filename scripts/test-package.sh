#!/usr/bin/env bash
# Install test of the Debian package in a debootstrapped Debian 12 tree:
# install, check (user, state directory, units enabled with their D-Bus
# aliases, sockets disabled, gnomonctl validate, systemd-analyze verify, the
# AppArmor profile), reinstall (upgrade path), boot the tree with
# systemd-nspawn and talk to gnomond with timedatectl, disable and re-enable
# (the aliases go and come back), then purge and check nothing is left.
#
#   scripts/test-package.sh dist/deb/gnomon_0.1.0_amd64.deb
#
# Needs root, debootstrap and systemd-nspawn. The base tree is cached in
# $GNOMON_PKGTEST_CACHE (default /var/cache/gnomon-pkgtest/bookworm.tar); a
# first run downloads it from $DEBIAN_MIRROR (about a minute). The container
# runs with --private-network (loopback only) and without CAP_SYS_TIME, and
# gnomond in it in observe mode: nothing here can touch the host's clock.
set -euo pipefail

deb=${1:?usage: $0 gnomon_VERSION_ARCH.deb}
deb=$(readlink -f "$deb")
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${GNOMON_PKGTEST_CACHE:-/var/cache/gnomon-pkgtest/bookworm.tar}
start=$(date +%s)

say() { printf '== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root"
for t in debootstrap systemd-nspawn nsenter; do
	command -v "$t" >/dev/null || fail "$t is not installed (apt-get install debootstrap systemd-container)"
done
[ -f "$deb" ] || fail "no such package: $deb"

T=$(mktemp -d /var/tmp/gnomon-pkgtest.XXXXXX)
root=$T/root
nspawn_pid=
cleanup() {
	if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
		kill -TERM "$nspawn_pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$nspawn_pid" 2>/dev/null || true
	fi
	rm -rf "$T"
}
trap cleanup EXIT

# --- a Debian 12 tree ---------------------------------------------------
if [ -f "$cache" ]; then
	say "base tree from $cache"
	mkdir -p "$root" && tar -xpf "$cache" -C "$root"
else
	say "debootstrap bookworm (minbase, systemd-sysv, dbus) from $mirror"
	debootstrap --variant=minbase --include=systemd-sysv,dbus bookworm "$root" "$mirror" >"$T/debootstrap.log" 2>&1 ||
		{ tail -20 "$T/debootstrap.log"; fail "debootstrap"; }
	mkdir -p "$(dirname "$cache")"
	tar -cpf "$cache.tmp" -C "$root" . && mv "$cache.tmp" "$cache"
fi
# No package script may start a daemon outside the booted container.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"

# in runs a command in the (not booted) tree.
inroot() { systemd-nspawn -q -D "$root" --register=no --keep-unit --private-network "$@"; }

cp "$deb" "$root/var/cache/gnomon.deb"
say "install $(basename "$deb")"
inroot dpkg -i /var/cache/gnomon.deb || fail "dpkg -i"

check_installed() {
	inroot sh -eux -c '
		dpkg-query -W -f="\${Status}\n" gnomon | grep -qx "install ok installed"
		id gnomon >/dev/null
		[ "$(stat -c "%U:%G %a" /var/lib/gnomon)" = "gnomon:gnomon 750" ]
		[ -f /etc/gnomon/gnomon.toml ]
		grep -qx /etc/gnomon/gnomon.toml /var/lib/dpkg/info/gnomon.conffiles
		[ -f /etc/dhcp/dhclient-exit-hooks.d/gnomon ] && [ -x /etc/NetworkManager/dispatcher.d/20-gnomon ]
		[ "$(systemctl is-enabled gnomond.service)" = enabled ]
		[ "$(readlink /etc/systemd/system/dbus-org.freedesktop.timedate1.service)" = /lib/systemd/system/gnomond.service ]
		[ "$(readlink /etc/systemd/system/dbus-org.freedesktop.timesync1.service)" = /lib/systemd/system/gnomond.service ]
		[ "$(systemctl is-enabled gnomond.socket)" = disabled ]
		[ "$(systemctl is-enabled gnomond-nts-ke.socket)" = disabled ]
		[ -f /etc/apparmor.d/usr.sbin.gnomond ]
		out=$(systemd-analyze verify --man=no gnomond.service gnomond.socket gnomond-nts-ke.socket 2>&1)
		[ -z "$out" ] || { echo "$out"; exit 1; }
		if command -v gnomonctl >/dev/null; then gnomonctl validate; else gnomond check-config; fi
	' || fail "installed state"
}
check_installed
if command -v apparmor_parser >/dev/null; then
	apparmor_parser -Q -K "$root/etc/apparmor.d/usr.sbin.gnomond" 2>/dev/null || fail "apparmor_parser on the installed profile"
fi
say "installed: user, state directory, conffile, units and aliases, validate, verify: ok"

say "reinstall (the upgrade path of the maintainer scripts)"
inroot dpkg -i /var/cache/gnomon.deb || fail "second dpkg -i"
check_installed
say "reinstalled: ok"

# --- boot it ----------------------------------------------------------------
say "boot with systemd-nspawn"
# Loopback only, observe mode, no sources: a configuration that cannot
# reach the network and never touches a clock.
mkdir -p "$root/etc/systemd/system/gnomond.service.d"
cat >"$root/etc/systemd/system/gnomond.service.d/test.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=/usr/sbin/gnomond --observe --config /etc/gnomon/test.toml
EOF
printf '[clock]\nmode = "observe"\ndrift-file = ""\n' >"$root/etc/gnomon/test.toml"
rm -f "$root/usr/sbin/policy-rc.d"
systemd-nspawn -q -b -D "$root" --register=no --keep-unit --private-network --console=pipe \
	</dev/null >"$T/boot.log" 2>&1 &
nspawn_pid=$!
# container_init prints the PID (in our namespace) of the container's PID 1:
# a descendant of systemd-nspawn that is PID 1 in its own namespace.
container_init() {
	local s p q
	for s in /proc/[0-9]*/status; do
		p=${s#/proc/}; p=${p%/status}
		awk '/^NSpid:/ { exit !(NF >= 3 && $NF == 1) }' "$s" 2>/dev/null || continue
		q=$p
		while [ -n "$q" ] && [ "$q" -gt 1 ]; do
			if [ "$q" = "$nspawn_pid" ]; then echo "$p"; return 0; fi
			q=$(awk '/^PPid:/ { print $2 }' "/proc/$q/status" 2>/dev/null)
		done
	done
	return 1
}
leader=
for _ in $(seq 100); do
	leader=$(container_init || true)
	[ -n "$leader" ] && break
	sleep 0.1
done
[ -n "$leader" ] || { cat "$T/boot.log"; fail "no container init"; }
c() { nsenter -t "$leader" -a "$@"; }
state=$(c timeout 60 systemctl is-system-running --wait 2>/dev/null || true)
echo "system state: $state"
c systemctl --no-pager status gnomond.service | head -12 || true
[ "$(c systemctl is-active gnomond.service)" = active ] || { c journalctl -b -u gnomond --no-pager | tail -30; fail "gnomond is not active"; }

say "timedatectl against gnomond"
c timedatectl status || fail "timedatectl status"
c timedatectl show || fail "timedatectl show"
owner=$(c busctl --system status org.freedesktop.timedate1 2>/dev/null | sed -n 's/^Comm=//p')
echo "org.freedesktop.timedate1 is owned by: $owner"
[ "$owner" = gnomond ] || fail "timedate1 is not gnomond's"
c systemd-analyze security gnomond.service --no-pager | tail -1 || true

say "disable: the aliases go, systemd's services answer again"
c systemctl disable --now gnomond.service
c test ! -e /etc/systemd/system/dbus-org.freedesktop.timedate1.service || fail "alias left after disable"
c timedatectl show -p Timezone || fail "timedatectl with gnomond disabled"
owner=$(c busctl --system status org.freedesktop.timedate1 2>/dev/null | sed -n 's/^Comm=//p')
echo "with gnomond disabled, org.freedesktop.timedate1 is owned by: $owner"
case $owner in systemd-timedat*) ;; *) fail "timedated did not answer after disable" ;; esac
c systemctl stop systemd-timedated.service
c systemctl enable --now gnomond.service
[ "$(c readlink /etc/systemd/system/dbus-org.freedesktop.timedate1.service)" = /lib/systemd/system/gnomond.service ] ||
	fail "alias not back after enable"
c timedatectl show -p NTP || fail "timedatectl after enable"
owner=$(c busctl --system status org.freedesktop.timedate1 2>/dev/null | sed -n 's/^Comm=//p')
echo "enabled again, org.freedesktop.timedate1 is owned by: $owner"
[ "$owner" = gnomond ] || fail "timedate1 is not gnomond's after enable"
say "disable/enable: ok"

c systemctl poweroff || kill -TERM "$nspawn_pid"
for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.2; done
kill -0 "$nspawn_pid" 2>/dev/null && fail "container did not shut down"
nspawn_pid=

# --- purge ------------------------------------------------------------------
rm -rf "$root/etc/systemd/system/gnomond.service.d" "$root/etc/gnomon/test.toml" "$root/var/cache/gnomon.deb"
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
say "purge"
inroot dpkg --purge gnomon || fail "dpkg --purge"
inroot sh -euc '
	! dpkg-query -W -f="\${Status}\n" gnomon 2>/dev/null | grep -q installed
	for p in /etc/gnomon /var/lib/gnomon /usr/sbin/gnomond /lib/systemd/system/gnomond.service \
		/lib/systemd/system/gnomond.socket /etc/apparmor.d/usr.sbin.gnomond \
		/etc/apparmor.d/local/usr.sbin.gnomond /etc/systemd/system/multi-user.target.wants/gnomond.service \
		/etc/systemd/system/dbus-org.freedesktop.timedate1.service \
		/etc/systemd/system/dbus-org.freedesktop.timesync1.service; do
		if [ -e "$p" ] || [ -L "$p" ]; then echo "left after purge: $p"; exit 1; fi
	done
' || fail "purge left files behind"
say "purged cleanly"
say "ok in $(($(date +%s) - start)) s"
