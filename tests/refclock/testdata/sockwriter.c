/* Sends chrony SOCK reference-clock samples, as gpsd and other C programs
 * do: the struct as chrony's refclock_sock.c declares it, compiled by the
 * host's C compiler, so the test checks gnomond against the real ABI
 * rather than against gnomon's own encoder.
 *
 * usage: sockwriter PATH COUNT OFFSET_SECONDS   (one sample a second)
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
	int fd, i, n;
	double off;

	if (argc != 4) {
		fprintf(stderr, "usage: %s PATH COUNT OFFSET\n", argv[0]);
		return 2;
	}
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
		gettimeofday(&s.tv, NULL);
		s.offset = off;
		s.magic = SOCK_MAGIC;
		if (send(fd, &s, sizeof(s), 0) != sizeof(s))
			perror("send");
		usleep(250000);
	}
	return 0;
}
