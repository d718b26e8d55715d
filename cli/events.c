/* events [--unauthenticated] [INTERFACE]: the daemon's event stream (docs/events.md), one
 * JSON object per line, each flushed as it comes, until interrupted or every daemon is
 * gone. Without an interface: every interface with a control socket now. The lines are
 * the daemon's own (`events=1` on the control socket), printed as they are, so what
 * `socat - UNIX-CONNECT:/run/wireguard/wg0.sock` shows after that request is the same. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define MAX_STREAMS 256
#define LINE_BUF 8192

struct stream {
	int fd;
	char name[16];
	char buf[LINE_BUF];
	size_t len;
	bool first;
};

static int events_usage(FILE *f)
{
	fprintf(f, "Usage: %s events [--unauthenticated] [<interface>]\n", prog_name);
	return f == stdout ? 0 : 1;
}

/* Print the whole lines of s; false when the daemon refused (errno=N). */
static bool drain_lines(struct stream *s, int *status)
{
	size_t start = 0;

	for (;;) {
		char *nl = memchr(s->buf + start, '\n', s->len - start);
		size_t n;

		if (!nl)
			break;
		n = (size_t)(nl - (s->buf + start)) + 1;
		if (s->first && n > 6 && !memcmp(s->buf + start, "errno=", 6)) {
			int err = atoi(s->buf + start + 6);
			fprintf(stderr, "%s: %s: events refused: %s\n", prog_name, s->name, strerror(err < 0 ? -err : err));
			*status = 1;
			return false;
		}
		s->first = false;
		fwrite(s->buf + start, 1, n, stdout);
		start += n;
	}
	if (start == 0 && s->len == sizeof(s->buf)) { /* a line longer than the buffer: as is */
		fwrite(s->buf, 1, s->len, stdout);
		start = s->len;
	}
	memmove(s->buf, s->buf + start, s->len - start);
	s->len -= start;
	fflush(stdout);
	return true;
}

int cmd_events(int argc, char *argv[])
{
	static struct stream streams[MAX_STREAMS];
	struct pollfd pfd[MAX_STREAMS];
	const char *iface = NULL;
	bool unauth = false;
	char **names = NULL;
	size_t count = 0, live = 0;
	int status = 0, err;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return events_usage(stdout);
		if (!strcmp(argv[i], "--unauthenticated"))
			unauth = true;
		else if (!iface && argv[i][0] != '-')
			iface = argv[i];
		else
			return events_usage(stderr);
	}
	if (iface) {
		static char *one[1];
		one[0] = (char *)iface;
		names = one;
		count = 1;
	} else if ((err = ipc_list(&names, &count))) {
		fprintf(stderr, "%s: cannot list interfaces: %s\n", prog_name, strerror(-err));
		return 1;
	}
	if (!count) {
		fprintf(stderr, "%s: no interfaces\n", prog_name);
		return 1;
	}
	for (size_t i = 0; i < count && live < MAX_STREAMS; i++) {
		const char *req = unauth ? "events=1\nunauthenticated=1\n\n" : "events=1\n\n";
		int fd = ipc_open(names[i]);

		if (fd < 0) {
			fprintf(stderr, "%s: %s: %s\n", prog_name, names[i], strerror(-fd));
			status = 1;
			continue;
		}
		if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
			fprintf(stderr, "%s: %s: %s\n", prog_name, names[i], strerror(errno));
			close(fd);
			status = 1;
			continue;
		}
		streams[live] = (struct stream){ .fd = fd, .first = true };
		snprintf(streams[live].name, sizeof(streams[live].name), "%s", names[i]);
		live++;
	}
	if (!iface)
		ipc_names_free(names);
	while (live) {
		for (size_t i = 0; i < live; i++)
			pfd[i] = (struct pollfd){ .fd = streams[i].fd, .events = POLLIN };
		if (poll(pfd, live, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("poll");
			return 1;
		}
		for (size_t i = 0; i < live; i++) {
			struct stream *s = &streams[i];
			ssize_t n;

			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(s->fd, s->buf + s->len, sizeof(s->buf) - s->len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n > 0) {
				s->len += (size_t)n;
				if (drain_lines(s, &status))
					continue;
			}
			/* the daemon is gone (or refused): this stream ends */
			close(s->fd);
			streams[i] = streams[--live];
			pfd[i] = pfd[live];
			i--;
		}
	}
	return status;
}
