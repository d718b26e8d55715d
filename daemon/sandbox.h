/* The worker's sandbox (privsep.c): user, capabilities, no_new_privs, seccomp. Kept apart
 * from the rest of the daemon, with no dependency on it, so that tests/net/tools/
 * sandbox_probe.c can enter the very same sandbox and try what a subverted worker would. */
#ifndef NOISETUN_SANDBOX_H
#define NOISETUN_SANDBOX_H

#include <stdbool.h>
#include <sys/types.h>

struct sandbox {
	uid_t uid;
	gid_t gid;
	int netlink_fd; /* the link monitor's rtnetlink socket, parked: read only after the drop; -1 none */
	bool log_only;  /* a violation is logged by the kernel instead of killing us */
};

#define SANDBOX_MAX_FDS 4096 /* the worker's RLIMIT_NOFILE, at most */

/* Moves fd to the highest number the process may hold, lowering RLIMIT_NOFILE to that
 * plus one (SANDBOX_MAX_FDS at most), and closes the old number: every other fd is then
 * below it, which the filter checks in one compare. The new fd or -errno. */
int sandbox_park_fd(int fd);

/* To uid/gid, no supplementary groups, no capability (permitted, effective, inheritable,
 * ambient or bounding), no way back to root, no_new_privs. 0 or -errno, *what naming the
 * step. */
int sandbox_drop_user(const struct sandbox *sb, const char **what);

/* The seccomp allowlist; call it last. 0 or -errno. */
int sandbox_filter(const struct sandbox *sb);

#endif
