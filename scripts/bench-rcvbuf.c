/* bench-rcvbuf.c: an LD_PRELOAD shim for the benchmarks only
 * (scripts/bench-lib.sh build_shim). Every IPv4/IPv6 UDP socket the
 * program opens gets a receive buffer of BENCH_RCVBUF bytes (default 4 MiB,
 * gnomond's own), so that chronyd and NTPsec's ntpd, which have no setting
 * for it, can be compared with gnomond at an equal buffer. SO_RCVBUFFORCE
 * where allowed (root, before they drop privileges), else SO_RCVBUF. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <netinet/in.h>

int socket(int domain, int type, int protocol)
{
	static int (*real)(int, int, int);
	if (!real)
		real = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
	int fd = real(domain, type, protocol);
	if (fd >= 0 && (domain == AF_INET || domain == AF_INET6) && (type & 0xff) == SOCK_DGRAM) {
		const char *e = getenv("BENCH_RCVBUF");
		int n = e ? atoi(e) : 4 << 20;
		if (n > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &n, sizeof n) != 0)
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &n, sizeof n);
	}
	return fd;
}
