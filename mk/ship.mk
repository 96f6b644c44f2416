# Shipping gnomon: units and the other system files, the Debian package and
# its install test. The top-level Makefile includes this file; it also works
# on its own: make -f Makefile -f mk/ship.mk <target>.
#
#   make install-helper  gnomon-timedate-helper into DESTDIR/PREFIX/lib/gnomon
#                        (also done by make install)
#   make install-units   units, sysusers.d, tmpfiles.d, ntp-units.d, preset,
#                        D-Bus and polkit files, AppArmor profile, man pages
#                        and completions under DESTDIR/PREFIX
#   make deb             the Debian package, built offline from a copy of the
#                        tree with vendored modules, then lintian; into DEB_OUT
#   make test-package    make deb, then install, check and purge it in a
#                        debootstrapped Debian 12 tree (root; a few minutes)

ifndef GNOMON_SHIP_MK
GNOMON_SHIP_MK := 1

GO             ?= go
PREFIX         ?= /usr
DESTDIR        ?=
# Debian 12 keeps units in /lib/systemd/system; ask systemd where they go.
SYSTEMDUNITDIR ?= $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)
LIBDIR_SYSTEMD ?= $(PREFIX)/lib
SYSUSERSDIR    ?= $(LIBDIR_SYSTEMD)/sysusers.d
TMPFILESDIR    ?= $(LIBDIR_SYSTEMD)/tmpfiles.d
NTPUNITSDIR    ?= $(LIBDIR_SYSTEMD)/systemd/ntp-units.d
PRESETDIR      ?= $(LIBDIR_SYSTEMD)/systemd/system-preset
DBUSDIR        ?= $(PREFIX)/share/dbus-1
POLKITDIR      ?= $(PREFIX)/share/polkit-1
APPARMORDIR    ?= /etc/apparmor.d
MANDIR         ?= $(PREFIX)/share/man
DEB_OUT        ?= dist/deb
# systemd ships org.freedesktop.timedate1's activation file (and bus policy)
# itself, so those names cannot be ours: activation goes through systemd's
# file, SystemdService=dbus-org.freedesktop.timedate1.service, which is
# gnomond's Alias= while gnomond.service is enabled. Bus policy files named
# org.freedesktop.* are installed with a "gnomon." prefix; dbus-daemon reads
# every file in system.d, so they add to systemd's.
DBUS_SERVICES_SKIP ?= org.freedesktop.timedate1.service
# systemd's own org.freedesktop.timedate1.policy and timesync1.policy define
# the action ids gnomond asks polkit about; installing our copy of them
# (polkit/org.gnomon.timedate1.policy, kept for systems without systemd's
# and for the tests) would define them twice.
POLKIT_SKIP ?= org.gnomon.timedate1.policy
DEB_VERSION    ?= $(shell dpkg-parsechangelog -l debian/changelog -S Version 2>/dev/null || echo 0)

LIBEXECDIR_GNOMON ?= $(PREFIX)/lib/gnomon

.PHONY: install-units install-helper build-helper build-exporter install-exporter deb test-deb test-package test-ship

## build-helper: gnomon-timedate-helper, the root helper that writes
## /etc/localtime, /etc/adjtime and the RTC for gnomond (docs/security.md).
## It is a prerequisite of the top-level build and install targets.
build-helper:
	@mkdir -p bin
	$(GO) build $(GOFLAGS_BUILD) -o bin/gnomon-timedate-helper ./cmd/gnomon-timedate-helper

build: build-helper

install-helper: build-helper
	install -D -m 0755 bin/gnomon-timedate-helper $(DESTDIR)$(LIBEXECDIR_GNOMON)/gnomon-timedate-helper

install: install-helper

## build-exporter: gnomon-exporter, gnomond's Prometheus exporter
## (docs/metrics.md), a separate binary started by gnomon-exporter.socket.
build-exporter:
	@mkdir -p bin
	$(GO) build $(GOFLAGS_BUILD) -o bin/gnomon-exporter ./cmd/gnomon-exporter

build: build-exporter

install-exporter: build-exporter
	install -D -m 0755 bin/gnomon-exporter $(DESTDIR)$(LIBEXECDIR_GNOMON)/gnomon-exporter

install: install-exporter

install-units:
	install -D -m 0644 units/gnomond.service $(DESTDIR)$(SYSTEMDUNITDIR)/gnomond.service
	install -D -m 0644 units/gnomond.socket $(DESTDIR)$(SYSTEMDUNITDIR)/gnomond.socket
	install -D -m 0644 units/gnomond-nts-ke.socket $(DESTDIR)$(SYSTEMDUNITDIR)/gnomond-nts-ke.socket
	install -D -m 0644 units/gnomon-timedate-helper.service $(DESTDIR)$(SYSTEMDUNITDIR)/gnomon-timedate-helper.service
	install -D -m 0644 units/gnomon-timedate-helper.socket $(DESTDIR)$(SYSTEMDUNITDIR)/gnomon-timedate-helper.socket
	install -D -m 0644 units/gnomon-exporter.service $(DESTDIR)$(SYSTEMDUNITDIR)/gnomon-exporter.service
	install -D -m 0644 units/gnomon-exporter.socket $(DESTDIR)$(SYSTEMDUNITDIR)/gnomon-exporter.socket
	install -D -m 0644 units/sysusers.d/gnomon.conf $(DESTDIR)$(SYSUSERSDIR)/gnomon.conf
	install -D -m 0644 units/tmpfiles.d/gnomon.conf $(DESTDIR)$(TMPFILESDIR)/gnomon.conf
	install -D -m 0644 units/ntp-units.d/80-gnomon.list $(DESTDIR)$(NTPUNITSDIR)/80-gnomon.list
	install -D -m 0644 units/system-preset/80-gnomon.preset $(DESTDIR)$(PRESETDIR)/80-gnomon.preset
	install -D -m 0644 units/dhcp/dhclient-exit-hook $(DESTDIR)/etc/dhcp/dhclient-exit-hooks.d/gnomon
	install -D -m 0755 units/dhcp/nm-dispatcher $(DESTDIR)/etc/NetworkManager/dispatcher.d/20-gnomon
	install -D -m 0644 debian/usr.sbin.gnomond $(DESTDIR)$(APPARMORDIR)/usr.sbin.gnomond
	@set -e; for f in units/ptp/*.conf units/refclock/*; do [ -f "$$f" ] || continue; \
	  install -D -m 0644 "$$f" $(DESTDIR)$(PREFIX)/share/gnomon/$$f; done
	install -D -m 0644 debian/usr.lib.gnomon.gnomon-timedate-helper $(DESTDIR)$(APPARMORDIR)/usr.lib.gnomon.gnomon-timedate-helper
	@set -e; for f in units/dbus-1/system-services/*.service; do [ -f "$$f" ] || continue; \
	  case " $(DBUS_SERVICES_SKIP) " in *" $$(basename $$f) "*) continue;; esac; \
	  install -D -m 0644 "$$f" $(DESTDIR)$(DBUSDIR)/system-services/$$(basename $$f); done
	@set -e; for f in units/dbus-1/system.d/*.conf; do [ -f "$$f" ] || continue; \
	  b=$$(basename $$f); case $$b in org.freedesktop.*) b=gnomon.$$b;; esac; \
	  install -D -m 0644 "$$f" $(DESTDIR)$(DBUSDIR)/system.d/$$b; done
	@set -e; for f in polkit/*.policy; do [ -f "$$f" ] || continue; \
	  case " $(POLKIT_SKIP) " in *" $$(basename $$f) "*) continue;; esac; \
	  install -D -m 0644 "$$f" $(DESTDIR)$(POLKITDIR)/actions/$$(basename $$f); done
	@set -e; for f in polkit/*.rules; do [ -f "$$f" ] || continue; \
	  install -D -m 0644 "$$f" $(DESTDIR)$(POLKITDIR)/rules.d/$$(basename $$f); done
	@set -e; for f in docs/man/*.[1-8] man/*.[1-8]; do [ -f "$$f" ] || continue; \
	  s=$${f##*.}; install -D -m 0644 "$$f" $(DESTDIR)$(MANDIR)/man$$s/$$(basename $$f); done
	@set -e; if [ -x bin/gnomonctl ] && bin/gnomonctl completion bash >/dev/null 2>&1; then \
	  install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions \
	    $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d; \
	  bin/gnomonctl completion bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/gnomonctl; \
	  bin/gnomonctl completion zsh > $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_gnomonctl; \
	  bin/gnomonctl completion fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/gnomonctl.fish; fi

## deb: build the Debian package offline. The build runs in a copy of the
## tree (tracked and new files, not ignored ones), where `go mod vendor`
## fills vendor/ from the module cache, downloading through GOPROXY what
## the cache lacks (on a fresh machine: every module, including those only
## other platforms import, such as cobra's mousetrap on Windows); the
## package build itself then runs with GOPROXY=off and -mod=vendor
## (debian/rules). The checkout itself is not touched (a vendor/ there
## would switch every go command in it to -mod=vendor).
deb:
	@set -e; out=$(abspath $(DEB_OUT)); src=$$out/gnomon-$(DEB_VERSION); \
	rm -rf "$$out"; mkdir -p "$$src"; \
	if git rev-parse --git-dir >/dev/null 2>&1; then \
	  git ls-files -z --cached --others --exclude-standard | \
	    xargs -0 sh -c 'for f; do [ -e "$$f" ] && printf "%s\0" "$$f"; done' _ | \
	    tar --null -T - -cf - | tar -xf - -C "$$src"; \
	else tar --exclude=./dist --exclude=./.git --exclude=./bin -cf - . | tar -xf - -C "$$src"; fi; \
	cd "$$src" && GOFLAGS=-mod=mod GOTOOLCHAIN=local $(GO) mod vendor; \
	cd "$$src" && dpkg-buildpackage -us -uc -b -d; \
	ls -l "$$out"/*.deb; \
	if command -v lintian >/dev/null; then lintian --fail-on error "$$out"/gnomon_*.changes; fi

## test-deb: make deb from an empty module cache, as on a fresh machine,
## lintian included (required under CI=true). Part of make test, before
## unit, whose VM suite (tests/vm) installs the package it leaves in DEB_OUT.
test-deb:
	@set -e; if [ "$$CI" = true ] && ! command -v lintian >/dev/null; then \
	  echo "test-deb: lintian is not installed (scripts/install-peers.sh)"; exit 1; fi; \
	mc=$$(mktemp -d /tmp/gnomon-modcache-XXXXXX); trap 'chmod -R u+w "$$mc"; rm -rf "$$mc"' EXIT; \
	GOMODCACHE="$$mc" $(MAKE) --no-print-directory deb


## test-package: build the package, then install, check and purge it in a
## debootstrapped Debian 12 tree, and boot that tree with systemd-nspawn.
test-package: deb
	$(if $(filter 0,$(shell id -u)),,sudo -E) scripts/test-package.sh $(abspath $(DEB_OUT))/gnomon_$(DEB_VERSION)_$$(dpkg --print-architecture).deb

## test-ship: the fast checks of what we ship (also part of go test ./...).
test-ship:
	$(GO) test -count=1 ./tests/ship

endif
