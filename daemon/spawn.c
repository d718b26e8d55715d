/* Running programs for config mode: hooks, resolvconf, resolvectl. Each is started with a
 * clean signal state and waited for through privsep_wait_child, so that a split daemon's
 * monitor and an unsplit one reap it the same way. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "noisetund.h"
#include "privsep.h"
#include "spawn.h"

bool in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	if (!path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (const char *p = path; *p;) {
		size_t len = strcspn(p, ":");
		if (len && (size_t)snprintf(buf, sizeof(buf), "%.*s/%s", (int)len, p, prog) < sizeof(buf) &&
		    access(buf, X_OK) == 0)
			return true;
		p += len + (p[len] == ':');
	}
	return false;
}

/* Start argv (execvp) with stdin from in_fd and stdout and stderr to out_fd (-1: ours);
 * its pid, or -1. The child gets a clean signal state: we block TERM/INT/HUP for the
 * signalfd and ignore PIPE, and a hook must not inherit either. env: "KEY=VALUE" strings
 * added to the child's environment (NULL-terminated, or NULL); own_group: the child leads
 * a process group of its own (set on both sides, so a kill of the group cannot race). */
pid_t spawn_program_env(char *const argv[], int in_fd, int out_fd, char *const env[], bool own_group)
{
	pid_t pid = fork();

	if (pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (own_group)
			setpgid(0, 0);
		if ((in_fd >= 0 && dup2(in_fd, STDIN_FILENO) < 0) ||
		    (out_fd >= 0 && (dup2(out_fd, STDOUT_FILENO) < 0 || dup2(out_fd, STDERR_FILENO) < 0)))
			_exit(127);
		for (size_t i = 0; env && env[i]; i++)
			if (putenv(env[i]))
				_exit(127);
		execvp(argv[0], argv);
		_exit(127);
	}
	if (pid > 0 && own_group)
		setpgid(pid, pid);
	return pid;
}

pid_t spawn_program(char *const argv[], int in_fd, int out_fd)
{
	return spawn_program_env(argv, in_fd, out_fd, NULL, false);
}

int wait_status(pid_t pid)
{
	int status;

	if (privsep_wait_child(pid, &status) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* Run argv with data on its stdin (NULL: inherit ours); its exit status, or -1. */
int run_program(char *const argv[], const char *data)
{
	int pipefd[2] = { -1, -1 };
	pid_t pid;

	if (data && pipe2(pipefd, O_CLOEXEC) < 0)
		return -1;
	pid = spawn_program(argv, pipefd[0], -1);
	if (data) {
		size_t off = 0, len = strlen(data);

		close(pipefd[0]);
		while (pid > 0 && off < len) {
			ssize_t n = write(pipefd[1], data + off, len - off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			off += (size_t)n;
		}
		close(pipefd[1]);
	}
	return pid < 0 ? -1 : wait_status(pid);
}
