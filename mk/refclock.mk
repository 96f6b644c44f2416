# Reference-clock targets (docs/refclock.md). Included by the Makefile.
#
#   make test-refclock-vm   the reference clocks on a real kernel: a Debian 12
#                           guest under QEMU (TCG) with a PPS module of ours
#                           (tests/refclock/vm/ppsgen, built here against the
#                           guest kernel's linux-headers), gpsd 3.22 on a
#                           serial port the host feeds with NMEA, and the
#                           packaged gnomond reading PPS, SOCK, SHM and gpsd.
#                           Root; the guest 2.5 to 3 minutes (at most 4),
#                           plus make deb.

ifndef GNOMON_REFCLOCK_MK
GNOMON_REFCLOCK_MK := 1

.PHONY: test-refclock-vm

test-refclock-vm: deb
	GNOMON_REFCLOCK_VM=1 GNOMON_VM_DEB=$(abspath $(DEB_OUT))/gnomon_$(DEB_VERSION)_$$(dpkg --print-architecture).deb \
	  $(GO) test -count=1 -v -timeout 15m -run '^TestVMPPS$$' ./tests/refclock

endif
