/* One line per event: "noisetund: wg0: peer laptop (AbCdEfGh...): message" (a peer without
 * a name: "peer AbCdEfGh...: message"). On stderr, and once a backgrounded daemon has let
 * go of its launcher's terminal (log_daemonized), to syslog unless stderr is a file of the
 * operator's.
 *
 * Under systemd (JOURNAL_STREAM names our stderr) every line goes to the journal instead,
 * in its native protocol (one datagram of KEY=VALUE lines) with fields: PRIORITY,
 * MESSAGE, SYSLOG_IDENTIFIER, NOISETUN_INTERFACE, and where they apply NOISETUN_PEER (the
 * public key), NOISETUN_PEER_NAME, NOISETUN_ENDPOINT, NOISETUN_EVENT, so that
 * `journalctl -u noisetun@wg0 NOISETUN_PEER_NAME=laptop` selects one peer's lines. The
 * socket is connected in log_init, before the worker's sandbox (which allows no connect).
 * $NOISETUN_TEST_JOURNAL_SOCKET replaces its path for the tests. */
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

#include "noisetun/encoding.h"
#include "noisetund.h"

enum log_level log_level = LOG_ERROR;
const char *log_ifname = "?";
static int syslog_fd = -1, mirror_fd = -1, journal_fd = -1;

/* JOURNAL_STREAM is "DEV:INO" of the stream systemd gave us as stdout/stderr: only when it
 * is still our stderr are we the service it set up (not a child that inherited it). */
static void journal_open(void)
{
	const char *env = getenv("JOURNAL_STREAM"), *path = getenv("NOISETUN_TEST_JOURNAL_SOCKET");
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	unsigned long long dev, ino;
	struct stat st;
	int fd;

	if (!env || sscanf(env, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0 ||
	    (unsigned long long)st.st_dev != dev || (unsigned long long)st.st_ino != ino)
		return;
	if (!path || !*path)
		path = "/run/systemd/journal/socket";
	if (strlen(path) >= sizeof(addr.sun_path))
		return;
	strcpy(addr.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		close(fd); /* no journal after all: stderr, which systemd passes on */
		return;
	}
	journal_fd = fd;
}

bool log_to_journal(void)
{
	return journal_fd >= 0;
}

void log_init(void)
{
	const char *level = getenv("LOG_LEVEL");

	journal_open();
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

/* One field: KEY=VALUE and a newline; a newline inside a value (none of ours has one, but
 * a message may quote something) becomes a space, so the simple form always holds. */
static size_t journal_field(char *buf, size_t size, size_t n, const char *key, const char *value)
{
	size_t klen = strlen(key), vlen = strlen(value);

	if (n + klen + vlen + 2 > size)
		return n; /* dropped whole, never cut */
	memcpy(buf + n, key, klen);
	buf[n + klen] = '=';
	for (size_t i = 0; i < vlen; i++)
		buf[n + klen + 1 + i] = value[i] == '\n' ? ' ' : value[i];
	buf[n + klen + 1 + vlen] = '\n';
	return n + klen + vlen + 2;
}

size_t log_journal_format(char *buf, size_t size, int priority, const char *message, const struct log_fields *f)
{
	char prio[4];
	size_t n = 0;

	snprintf(prio, sizeof(prio), "%d", priority & 7);
	n = journal_field(buf, size, n, "PRIORITY", prio);
	n = journal_field(buf, size, n, "SYSLOG_IDENTIFIER", "noisetund");
	n = journal_field(buf, size, n, "MESSAGE", message);
	n = journal_field(buf, size, n, "NOISETUN_INTERFACE", log_ifname);
	if (f && f->peer)
		n = journal_field(buf, size, n, "NOISETUN_PEER", f->peer);
	if (f && f->name && *f->name)
		n = journal_field(buf, size, n, "NOISETUN_PEER_NAME", f->name);
	if (f && f->endpoint && *f->endpoint)
		n = journal_field(buf, size, n, "NOISETUN_ENDPOINT", f->endpoint);
	if (f && f->event)
		n = journal_field(buf, size, n, "NOISETUN_EVENT", f->event);
	return n;
}

static void to_journal(int priority, const char *line, const struct log_fields *f)
{
	char buf[1024];
	size_t n = log_journal_format(buf, sizeof(buf), priority, line + strlen("noisetund: "), f);

	if (send(journal_fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		/* the journal is gone or full: a lost line is the worst outcome */
	}
}

static void emit_fields(int priority, const char *line, const struct log_fields *f)
{
	if (journal_fd >= 0)
		to_journal(priority, line, f);
	else if (syslog_fd >= 0)
		to_syslog(priority, line);
	else
		fprintf(stderr, "%s\n", line);
	if (mirror_fd >= 0 && priority <= LOG_NOTICE && dprintf(mirror_fd, "%s\n", line) < 0) {
		/* the reader went away */
	}
}

static void vlog_fields(int priority, const char *peer, const struct log_fields *f, const char *fmt, va_list ap)
{
	char line[512];
	int n;

	n = snprintf(line, sizeof(line), "noisetund: %s: ", log_ifname);
	if (peer)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "peer %s: ", peer);
	if (n < (int)sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	emit_fields(priority, line, f);
}

static void vlog(int priority, const char *peer, const char *fmt, va_list ap)
{
	vlog_fields(priority, peer, NULL, fmt, ap);
}

/* "laptop (AbCdEfGh...)" or "AbCdEfGh...". */
const char *log_peer_label(char *buf, size_t size, const struct peer *p)
{
	if (p->name[0])
		snprintf(buf, size, "%s (%s)", p->name, p->short_key);
	else
		snprintf(buf, size, "%s", p->short_key);
	return buf;
}

void log_peer(enum log_level level, const struct peer *p, const char *fmt, ...)
{
	char label[NT_CONFIG_NAME_MAX + 20], key[NT_KEY_B64_LEN + 1];
	struct log_fields f = { .name = p->name };
	va_list ap;

	if (level > log_level)
		return;
	if (journal_fd >= 0) {
		nt_key_to_base64(key, p->public_key);
		f.peer = key;
	}
	va_start(ap, fmt);
	vlog_fields(level == LOG_ERROR ? LOG_ERR : LOG_INFO, log_peer_label(label, sizeof(label), p), &f, fmt, ap);
	va_end(ap);
}

void log_event_msg(int priority, const struct peer *p, const struct log_fields *f, const char *fmt, ...)
{
	char label[NT_CONFIG_NAME_MAX + 20];
	va_list ap;

	if (log_level < LOG_ERROR)
		return;
	va_start(ap, fmt);
	vlog_fields(priority, p ? log_peer_label(label, sizeof(label), p) : NULL, f, fmt, ap);
	va_end(ap);
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
	if (keep_stderr || journal_fd >= 0)
		return;
	if ((syslog_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	if (connect(syslog_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		close(syslog_fd); /* no syslog: the lines go to /dev/null */
		syslog_fd = -1;
	}
}
