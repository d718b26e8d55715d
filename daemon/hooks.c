/* Event hooks (docs/events.md): OnPeerUp, OnPeerDown, OnHandshakeFailed, OnEndpointChange
 * in the config's [Interface], run by the root monitor, as PostUp is: with the trust of the
 * config file, which only root may write. The worker (which sees the events) keeps no way
 * to run anything: it sends the monitor a small message (privsep.c, 'V': the event's
 * number, a public key, an endpoint sockaddr), which the monitor checks like any other
 * hostile bytes before it gets here: a known event, a well-formed address it formats
 * itself, a key that is one of its own config's peers (the name comes from that config,
 * never from the worker).
 *
 * Each command runs as `bash -c CMD` (%i: the interface), in its own process group, with
 * NOISETUN_EVENT, NOISETUN_INTERFACE, NOISETUN_PEER, NOISETUN_PEER_NAME (empty without
 * one) and NOISETUN_ENDPOINT (empty without one) in its environment, stdin /dev/null,
 * output to the daemon's stderr. Bounds: HOOKS_RUNNING at once; HOOKS_QUEUE waiting
 * (what comes beyond is dropped, counted, and the count logged when the queue has room
 * again); each is sent SIGTERM (its group) after the timeout (10 s, $NOISETUN_HOOK_TIMEOUT
 * seconds 1..3600) and SIGKILL HOOK_KILL_GRACE later, logged. The monitor never waits for
 * a hook: it reaps them on SIGCHLD and checks deadlines in its poll loop, so it keeps
 * serving the worker, and the data path never waits for the monitor (the worker's sends
 * do not block). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "noisetun/encoding.h"
#include "noisetund.h"
#include "setup.h"
#include "cfghooks.h"
#include "spawn.h"

#define HOOKS_RUNNING 4
#define HOOKS_QUEUE 32
#define HOOK_TIMEOUT_DEFAULT 10
#define HOOK_KILL_GRACE (2 * NT_NSEC_PER_SEC)

struct hook_job {
	char *cmd;                      /* %i expanded, malloc'd */
	unsigned kind;
	char label[NT_CONFIG_NAME_MAX + 20]; /* for logs: "name (AbCdEfGh...)" or "AbCdEfGh..." */
	char peer[NT_KEY_B64_LEN + 1];
	char name[NT_CONFIG_NAME_MAX + 1];
	char endpoint[80];
};

static struct {
	struct hook_job queue[HOOKS_QUEUE];
	size_t head, len;
	struct {
		pid_t pid;              /* 0: free */
		uint64_t deadline;      /* SIGTERM at, then SIGKILL at */
		bool termed;
		struct hook_job job;
	} run[HOOKS_RUNNING];
	uint64_t dropped;
	uint64_t timeout_ns;
} H;

static const char *const key_names[HOOK_EV_COUNT] = {
	"OnPeerUp", "OnPeerDown", "OnHandshakeFailed", "OnEndpointChange",
};

static uint64_t timeout_ns(void)
{
	if (!H.timeout_ns) {
		const char *env = getenv("NOISETUN_HOOK_TIMEOUT");
		unsigned long v = env && *env ? strtoul(env, NULL, 10) : HOOK_TIMEOUT_DEFAULT;

		H.timeout_ns = (v >= 1 && v <= 3600 ? v : HOOK_TIMEOUT_DEFAULT) * NT_NSEC_PER_SEC;
	}
	return H.timeout_ns;
}

static void job_free(struct hook_job *j)
{
	free(j->cmd);
	j->cmd = NULL;
}

static void start(struct hook_job *j)
{
	size_t slot;
	pid_t pid;

	for (slot = 0; slot < HOOKS_RUNNING && H.run[slot].pid; slot++)
		;
	if (slot == HOOKS_RUNNING)
		return; /* the caller checked */
	log_verbose("%s for peer %s: %s", key_names[j->kind], j->label, j->cmd);
	{
		/* bounded: a key, a name (64), an endpoint the monitor formatted, an interface */
		char vars[5][160], *env[6] = { vars[0], vars[1], vars[2], vars[3], vars[4], NULL };
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

		snprintf(vars[0], sizeof(vars[0]), "NOISETUN_EVENT=%s", hook_event_name(j->kind));
		snprintf(vars[1], sizeof(vars[1]), "NOISETUN_INTERFACE=%s", log_ifname);
		snprintf(vars[2], sizeof(vars[2]), "NOISETUN_PEER=%s", j->peer);
		snprintf(vars[3], sizeof(vars[3]), "NOISETUN_PEER_NAME=%s", j->name);
		snprintf(vars[4], sizeof(vars[4]), "NOISETUN_ENDPOINT=%s", j->endpoint);
		/* its own process group: a hung hook is killed with everything it started */
		pid = null < 0 ? -1
			       : spawn_program_env((char *const[]){ (char *)config_hook_shell(), "-c", j->cmd, NULL },
						   null, STDERR_FILENO, env, true);
		if (null >= 0)
			close(null);
	}
	if (pid < 0) {
		log_error("%s for peer %s: cannot start `%s': %s", key_names[j->kind], j->label, j->cmd, strerror(errno));
		job_free(j);
		return;
	}
	H.run[slot].pid = pid;
	H.run[slot].deadline = now_ns() + timeout_ns();
	H.run[slot].termed = false;
	H.run[slot].job = *j;
	j->cmd = NULL;
}

static void start_queued(void)
{
	for (;;) {
		size_t running = 0;

		for (size_t i = 0; i < HOOKS_RUNNING; i++)
			running += H.run[i].pid != 0;
		if (running == HOOKS_RUNNING || !H.len)
			break;
		start(&H.queue[H.head]);
		H.head = (H.head + 1) % HOOKS_QUEUE;
		H.len--;
	}
	if (H.dropped && H.len < HOOKS_QUEUE) {
		log_error("hooks: %llu dropped, %d waiting already", (unsigned long long)H.dropped, HOOKS_QUEUE);
		H.dropped = 0;
	}
}

void hooks_event(unsigned kind, const uint8_t key[NT_KEY_LEN], const char *endpoint)
{
	char peer[NT_KEY_B64_LEN + 1];
	const char *name = NULL;
	char **cmds;
	size_t count;

	if (kind >= HOOK_EV_COUNT)
		return;
	cmds = config_event_hooks(kind, &count);
	if (!count)
		return;
	nt_key_to_base64(peer, key);
	if (!config_peer_name(key, &name)) {
		log_verbose("%s: peer %.8s... is not in the config file: no hook runs", key_names[kind], peer);
		return;
	}
	for (size_t i = 0; i < count; i++) {
		struct hook_job *j;

		if (H.len == HOOKS_QUEUE) {
			H.dropped++;
			continue;
		}
		j = &H.queue[(H.head + H.len) % HOOKS_QUEUE];
		memset(j, 0, sizeof(*j));
		if (!(j->cmd = config_hook_expand(cmds[i]))) {
			log_error("%s: out of memory", key_names[kind]);
			continue;
		}
		j->kind = kind;
		snprintf(j->peer, sizeof(j->peer), "%s", peer);
		snprintf(j->name, sizeof(j->name), "%s", name ? name : "");
		if (name)
			snprintf(j->label, sizeof(j->label), "%s (%.8s...)", name, peer);
		else
			snprintf(j->label, sizeof(j->label), "%.8s...", peer);
		snprintf(j->endpoint, sizeof(j->endpoint), "%s", endpoint);
		H.len++;
	}
	start_queued();
}

void hooks_reap(void)
{
	for (size_t i = 0; i < HOOKS_RUNNING; i++) {
		struct hook_job *j = &H.run[i].job;
		siginfo_t si = { .si_pid = 0 };
		int status;

		if (!H.run[i].pid)
			continue;
		/* Exited? Looked at without reaping: while the leader is a zombie its pid, and so
		 * its group's id, cannot be reused, so the kill below cannot hit a stranger. */
		if (waitid(P_PID, (id_t)H.run[i].pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0)
			continue;
		kill(-H.run[i].pid, SIGKILL); /* what it left in its group goes with it */
		if (waitpid(H.run[i].pid, &status, 0) < 0) {
			if (errno == EINTR)
				continue;
			status = 0; /* gone (ECHILD): free the slot all the same */
		}
		if (!H.run[i].termed) {
			if (WIFEXITED(status) && WEXITSTATUS(status))
				log_error("%s for peer %s: `%s' exited with status %d", key_names[j->kind], j->label, j->cmd,
					  WEXITSTATUS(status));
			else if (WIFSIGNALED(status))
				log_error("%s for peer %s: `%s' killed by signal %d", key_names[j->kind], j->label, j->cmd,
					  WTERMSIG(status));
		}
		H.run[i].pid = 0;
		job_free(j);
	}
	start_queued();
}

void hooks_check_timeouts(void)
{
	uint64_t now = now_ns();

	for (size_t i = 0; i < HOOKS_RUNNING; i++) {
		struct hook_job *j = &H.run[i].job;

		if (!H.run[i].pid || now < H.run[i].deadline)
			continue;
		if (!H.run[i].termed) {
			log_error("%s for peer %s: `%s' still running after %llu s: killed (SIGTERM)", key_names[j->kind],
				  j->label, j->cmd, (unsigned long long)(timeout_ns() / NT_NSEC_PER_SEC));
			kill(-H.run[i].pid, SIGTERM);
			H.run[i].termed = true;
			H.run[i].deadline = now + HOOK_KILL_GRACE;
		} else {
			log_error("%s for peer %s: `%s' ignored SIGTERM: SIGKILL", key_names[j->kind], j->label, j->cmd);
			kill(-H.run[i].pid, SIGKILL);
			H.run[i].deadline = UINT64_MAX;
		}
	}
	hooks_reap();
}

/* Milliseconds until the next deadline, -1 if no hook runs. */
int hooks_poll_timeout(void)
{
	uint64_t now = now_ns(), next = UINT64_MAX;

	for (size_t i = 0; i < HOOKS_RUNNING; i++)
		if (H.run[i].pid && H.run[i].deadline < next)
			next = H.run[i].deadline;
	if (next == UINT64_MAX)
		return -1;
	return next <= now ? 0 : (int)((next - now) / 1000000 + 1);
}

/* The monitor is done: the queue goes, running hooks are killed. */
void hooks_shutdown(void)
{
	while (H.len) {
		job_free(&H.queue[H.head]);
		H.head = (H.head + 1) % HOOKS_QUEUE;
		H.len--;
	}
	for (size_t i = 0; i < HOOKS_RUNNING; i++)
		if (H.run[i].pid) {
			kill(-H.run[i].pid, SIGKILL);
			while (waitpid(H.run[i].pid, NULL, 0) < 0 && errno == EINTR)
				;
			H.run[i].pid = 0;
			job_free(&H.run[i].job);
		}
}
