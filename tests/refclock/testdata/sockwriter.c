/* Sends chrony SOCK reference-clock samples, as gpsd and other C programs
 * do: the struct as chrony's refclock_sock.c declares it, compiled by the
 * host's C compiler, so the test checks gnomond against the real ABI
 * rather than against gnomon's own encoder.
 *
 * usage: sockwriter PATH COUNT OFFSET_SECONDS [pulse]
 *
 * Without "pulse": four samples a second, each saying the system clock is
 * OFFSET_SECONDS behind true time. With "pulse": one pulse a second, as a
 * PPS source would send it for a system clock OFFSET_SECONDS ahead: at
 * each second of this machine's clock it sends the system time of the
 * edge (that second plus OFFSET_SECONDS) and, in offset, the system
 * clock's phase after the edge (OFFSET_SECONDS), like chrony's SOCK
 * clients do for pulses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#define SOCK_MAGIC 0x534f434b

struct sock_sample {
	struct timeval tv; /* system time of the measurement */
	double offset;     /* true time minus system time, seconds */
	int pulse;
	int leap;
	int _pad;
	int magic;
};

int main(int argc, char **argv)
{
	struct sockaddr_un sa;
	struct sock_sample s;
	struct timeval now;
	int fd, i, n, pulse;
	double off;

	if (argc != 4 && !(argc == 5 && strcmp(argv[4], "pulse") == 0)) {
		fprintf(stderr, "usage: %s PATH COUNT OFFSET [pulse]\n", argv[0]);
		return 2;
	}
	pulse = argc == 5;
	n = atoi(argv[2]);
	off = atof(argv[3]);
	fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strncpy(sa.sun_path, argv[1], sizeof(sa.sun_path) - 1);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("connect");
		return 1;
	}
	printf("sizeof(struct sock_sample) = %zu\n", sizeof(s));
	fflush(stdout);
	for (i = 0; i < n; i++) {
		memset(&s, 0, sizeof(s));
		s.magic = SOCK_MAGIC;
		s.offset = off;
		if (pulse) {
			/* wait for the next second, then report its edge */
			gettimeofday(&now, NULL);
			usleep(1000000 - now.tv_usec);
			gettimeofday(&now, NULL);
			s.tv.tv_sec = now.tv_sec;
			s.tv.tv_usec = (long)(off * 1e6);
			s.pulse = 1;
		} else {
			gettimeofday(&s.tv, NULL);
			usleep(250000);
		}
		if (send(fd, &s, sizeof(s), 0) != sizeof(s))
			perror("send");
	}
	return 0;
}
