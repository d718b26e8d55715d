/* One line per event: "noisetund: wg0: peer AbCdEfGh…: message". On stderr, and once a
 * backgrounded daemon has let go of its launcher's terminal (log_daemonized), to syslog
 * unless stderr is a file of the operator's. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "noisetund.h"

enum log_level log_level = LOG_ERROR;
const char *log_ifname = "?";
static int syslog_fd = -1, mirror_fd = -1;

void log_init(void)
{
	const char *level = getenv("LOG_LEVEL");

	if (!level || !strcmp(level, "error"))
		log_level = LOG_ERROR;
	else if (!strcmp(level, "verbose") || !strcmp(level, "debug"))
		log_level = LOG_VERBOSE;
	else if (!strcmp(level, "silent"))
		log_level = LOG_SILENT;
}

/* Our own sender, not syslog(3): glibc reconnects after an error, and connect is not in
 * the worker's seccomp allowlist. A lost line is the worst outcome here. */
static void to_syslog(int priority, const char *line)
{
	char msg[600];
	int n;

	n = snprintf(msg, sizeof(msg), "<%d>noisetund[%d]: %s", LOG_DAEMON | priority, (int)getpid(),
		     line + strlen("noisetund: "));
	if (n > 0 && send(syslog_fd, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1,
			  MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		/* syslogd gone or full: nothing better to do */
	}
}

static void emit(int priority, const char *line)
{
	if (syslog_fd >= 0)
		to_syslog(priority, line);
	else
		fprintf(stderr, "%s\n", line);
	if (mirror_fd >= 0 && priority <= LOG_NOTICE && dprintf(mirror_fd, "%s\n", line) < 0) {
		/* the reader went away */
	}
}

static void vlog(int priority, const char *peer, const char *fmt, va_list ap)
{
	char line[512];
	int n;

	n = snprintf(line, sizeof(line), "noisetund: %s: ", log_ifname);
	if (peer)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "peer %s: ", peer);
	if (n < (int)sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	emit(priority, line);
}

void log_msg(enum log_level level, const char *peer, const char *fmt, ...)
{
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vlog(level == LOG_ERROR ? LOG_ERR : LOG_INFO, peer, fmt, ap);
	va_end(ap);
}

void log_notice(const char *fmt, ...)
{
	va_list ap;

	if (log_level < LOG_ERROR)
		return;
	va_start(ap, fmt);
	vlog(LOG_NOTICE, NULL, fmt, ap);
	va_end(ap);
}

void log_mirror(int fd)
{
	mirror_fd = fd;
}

void log_daemonized(void)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX, .sun_path = "/dev/log" };
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	struct stat st;
	bool keep_stderr;

	fflush(stdout);
	fflush(stderr);
	keep_stderr = fstat(STDERR_FILENO, &st) == 0 && S_ISREG(st.st_mode);
	if (null < 0) {
		log_error("cannot open /dev/null: %s; the launcher's stdout and stderr stay open", strerror(errno));
		return;
	}
	if (dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0 ||
	    (!keep_stderr && dup2(null, STDERR_FILENO) < 0))
		log_error("cannot redirect stdio to /dev/null: %s", strerror(errno));
	close(null);
	if (keep_stderr)
		return;
	if ((syslog_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	if (connect(syslog_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		close(syslog_fd); /* no syslog: the lines go to /dev/null */
		syslog_fd = -1;
	}
}
