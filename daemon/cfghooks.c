/* Config mode's hooks, PreUp, PostUp, PreDown, PostDown (cfghooks.h).
 * As wg-quick: each hook with %i replaced by the interface name, evaluated by bash (hooks
 * written for wg-quick use its syntax: <(...), [[ ]], arrays), "[#] HOOK" first on stderr.
 * During a down that `noisetun down` waits for, stderr and the hooks' output go to it
 * (report_open). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "noisetun/config.h"
#include "noisetund.h"
#include "setup.h"
#include "cfghooks.h"
#include "report.h"
#include "spawn.h"

static char hook_what[512]; /* what failed, for config_hooks_error() */

static const char *const phase_names[] = { "PreUp", "PostUp", "PreDown", "PostDown" };

static char **phase_hooks(enum hook_phase phase, size_t *count)
{
	const struct nt_config *cfg = config_current();

	*count = 0;
	if (!cfg) /* config mode is over: its state is gone, and so are its hooks */
		return NULL;
	switch (phase) {
	case HOOK_PRE_UP:
		*count = cfg->pre_up_count;
		return cfg->pre_up;
	case HOOK_POST_UP:
		*count = cfg->post_up_count;
		return cfg->post_up;
	case HOOK_PRE_DOWN:
		*count = cfg->pre_down_count;
		return cfg->pre_down;
	default:
		*count = cfg->post_down_count;
		return cfg->post_down;
	}
}

/* bash, found once in PATH; else /bin/sh, said once. */
static const char *hook_shell(void)
{
	static const char *shell;

	if (!shell) {
		shell = in_path("bash") ? "bash" : "/bin/sh";
		if (shell[0] == '/')
			log_error("bash is not installed: hooks run with /bin/sh, so bash syntax in them fails");
	}
	return shell;
}

/* The fd hooks and "[#]" lines go to: the report of a down, else our stderr. */
static int hook_out_fd(void)
{
	return report_fd() >= 0 ? report_fd() : STDERR_FILENO;
}

/* hook with %i expanded; NULL without memory. */
static char *hook_command(const char *hook)
{
	const char *ifname = config_ifname();
	size_t len = strlen(hook), ifl = strlen(ifname), n = 0;
	char *cmd = malloc(len * (ifl + 1) + 1); /* room for every "%i" expanded */

	if (!cmd)
		return NULL;
	for (const char *p = hook; *p;) {
		if (p[0] == '%' && p[1] == 'i') {
			memcpy(cmd + n, ifname, ifl);
			n += ifl;
			p += 2;
		} else {
			cmd[n++] = *p++;
		}
	}
	cmd[n] = 0;
	return cmd;
}

char *config_hook_expand(const char *hook)
{
	return hook_command(hook);
}

const char *config_hook_shell(void)
{
	return hook_shell();
}

static pid_t hook_spawn(enum hook_phase phase, const char *cmd)
{
	int out = hook_out_fd();

	log_verbose("%s: %s", phase_names[phase], cmd);
	if (dprintf(out, "[#] %s\n", cmd) < 0) {
		/* nobody reads: the hook still runs */
	}
	return spawn_program((char *const[]){ (char *)hook_shell(), "-c", (char *)cmd, NULL }, -1,
			     out == STDERR_FILENO ? -1 : out);
}

/* A hook's status: 0, or -1 with hook_what (logged unless the caller stops on it). */
static int hook_result(enum hook_phase phase, const char *cmd, int status, int spawn_errno, bool stop_on_error)
{
	if (!status)
		return 0;
	snprintf(hook_what, sizeof(hook_what), "%s `%s' %s %d", phase_names[phase], cmd,
		 status < 0 ? "could not run:" : "exited with status", status < 0 ? spawn_errno : status);
	if (!stop_on_error) /* the caller reports it and stops */
		log_error("%s", hook_what);
	return -1;
}

/* Run the hooks of phase one after the other, waiting for each. Stops at the first failure
 * when stop_on_error (PreUp, PostUp: wg-quick's `set -e`); 0 or -1 with hook_what. */
int config_hooks_run(enum hook_phase phase, bool stop_on_error)
{
	size_t count;
	char **hooks = phase_hooks(phase, &count);
	int ret = 0;

	for (size_t i = 0; i < count; i++) {
		char *cmd = hook_command(hooks[i]);
		pid_t pid;
		int err;

		if (!cmd) {
			snprintf(hook_what, sizeof(hook_what), "%s: %s", phase_names[phase], strerror(ENOMEM));
			return -1;
		}
		pid = hook_spawn(phase, cmd);
		err = errno;
		if (hook_result(phase, cmd, pid < 0 ? -1 : wait_status(pid), err, stop_on_error)) {
			ret = -1;
			if (stop_on_error) {
				free(cmd);
				return -1;
			}
		}
		free(cmd);
	}
	return ret;
}

/* The same, for a caller whose event loop must go on meanwhile (a daemon without its
 * monitor serves the control socket, and a hook may well run `wg show %i`): each call
 * starts the next hook and gives its pidfd, for the caller to wait on and hand back to
 * config_hooks_next(). 1: a hook runs (*pidfd); 0: all done, no failure; -1: a hook
 * failed (PostUp stops there; hook_what says which). */
static struct {
	enum hook_phase phase;
	size_t next;
	pid_t pid;
	int pidfd;
	char *cmd;
	bool failed;
} hr = { .pidfd = -1 };

static int hooks_spawn_next(int *pidfd)
{
	size_t count;
	char **hooks = phase_hooks(hr.phase, &count);
	bool stop = hr.phase == HOOK_POST_UP;

	while (hr.next < count) {
		int err;

		if (!(hr.cmd = hook_command(hooks[hr.next++]))) {
			snprintf(hook_what, sizeof(hook_what), "%s: %s", phase_names[hr.phase], strerror(ENOMEM));
			return -1;
		}
		hr.pid = hook_spawn(hr.phase, hr.cmd);
		if (hr.pid > 0 && (hr.pidfd = (int)syscall(SYS_pidfd_open, hr.pid, 0)) >= 0) {
			*pidfd = hr.pidfd;
			return 1;
		}
		err = errno;
		/* no pidfd (a kernel before 5.3): wait here */
		if (hook_result(hr.phase, hr.cmd, hr.pid > 0 ? wait_status(hr.pid) : -1, err, stop))
			hr.failed = true;
		free(hr.cmd);
		hr.cmd = NULL;
		if (hr.failed && stop)
			return -1;
	}
	return hr.failed ? -1 : 0;
}

int config_hooks_start(enum hook_phase phase, int *pidfd)
{
	if (!config_active())
		return 0;
	if (phase == HOOK_PRE_DOWN && !config_pre_down_begin())
		return 0;
	hr.phase = phase;
	hr.next = 0;
	hr.failed = false;
	return hooks_spawn_next(pidfd);
}

int config_hooks_next(int *pidfd)
{
	int status = wait_status(hr.pid);

	close(hr.pidfd);
	hr.pidfd = -1;
	if (hook_result(hr.phase, hr.cmd, status, 0, hr.phase == HOOK_POST_UP))
		hr.failed = true;
	free(hr.cmd);
	hr.cmd = NULL;
	if (hr.failed && hr.phase == HOOK_POST_UP)
		return -1;
	return hooks_spawn_next(pidfd);
}

const char *config_hooks_error(void)
{
	return hook_what;
}

/* A stop while a hook runs: it is told to stop too, and not waited for. */
void config_hooks_abort(void)
{
	if (hr.pidfd < 0)
		return;
	kill(hr.pid, SIGTERM);
	close(hr.pidfd);
	hr.pidfd = -1;
	free(hr.cmd);
	hr.cmd = NULL;
}

/* PostUp, waiting for it: the monitor runs it once the worker serves the socket. */
int config_post_up(const char **what)
{
	*what = hook_what;
	return config_active() ? config_hooks_run(HOOK_POST_UP, true) : 0;
}
