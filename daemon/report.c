/* The report of a down: `noisetun down` listens on RUN_DIR/IFACE.down (root's, made
 * before it sends SIGTERM) and copies what arrives to its terminal, as wg-quick shows the
 * output of PreDown and PostDown. Without a listener (systemctl stop, ip link delete) the
 * output goes where ours does. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "noisetund.h"
#include "report.h"

static struct {
	int fd;                         /* `noisetun down' listens: hooks and errors go there; else -1 */
} report = { .fd = -1 };

void report_open(const char *uapi_path, const char *ifname)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	const char *slash = uapi_path[0] ? strrchr(uapi_path, '/') : NULL;
	struct stat st;
	int fd;

	if (report.fd >= 0 || !slash ||
	    (size_t)snprintf(addr.sun_path, sizeof(addr.sun_path), "%.*s/%s.down", (int)(slash - uapi_path),
			     uapi_path, ifname) >= sizeof(addr.sun_path))
		return;
	/* Only root's own listener: the directory is root's, and so must the socket be. */
	if (lstat(addr.sun_path, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_uid != geteuid())
		return;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		return;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		close(fd); /* a stale file, or a listener that is not listening */
		return;
	}
	/* Blocking again, for the hooks that write to it, but never stuck on a reader that
	 * stopped reading. */
	struct timeval tv = { .tv_sec = 5 };
	if (fcntl(fd, F_SETFL, 0) < 0 || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		close(fd);
		return;
	}
	report.fd = fd;
	log_mirror(fd);
	log_verbose("reporting the down to %s", addr.sun_path);
}

void report_close(void)
{
	if (report.fd < 0)
		return;
	log_mirror(-1);
	close(report.fd);
	report.fd = -1;
}

/* Where hooks and "[#]" lines go during a down: the listener, or -1. */
int report_fd(void)
{
	return report.fd;
}
