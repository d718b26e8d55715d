/* The handshake threads (issue 16): the engine's host.parallel. A responder's X25519 work
 * (nt_noise_prepare_initiation) for a batch's admitted initiations is spread over
 * NOISETUN_HS_THREADS threads (default: one per online CPU, counting the event loop's,
 * which takes tasks too and returns once all are done). The engine changes nothing while
 * they run and applies the results in order on the loop's thread: lib/ stays
 * single-threaded per call.
 *
 * The threads are started in the worker before its sandbox (hspool_start): the seccomp
 * filter then covers them through SECCOMP_FILTER_FLAG_TSYNC (sandbox.c), setresuid and
 * setresgid reach every thread (glibc), and a thread that loses root loses its
 * capabilities. They take no signal: all are blocked in them (signalfd gets them). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "noisetund.h"

#define HSPOOL_MAX 16

static struct {
	pthread_t th[HSPOOL_MAX];
	unsigned threads;              /* started, besides the event loop's */
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	void (*fn)(void *arg, size_t i);
	void *arg;
	size_t n, next, finished;
	uint64_t generation;
	bool stop;
} hp = { .mu = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER };

/* Take tasks of the current generation until none is left; called with mu held. */
static void take_tasks(void)
{
	while (hp.next < hp.n) {
		size_t i = hp.next++;

		pthread_mutex_unlock(&hp.mu);
		hp.fn(hp.arg, i);
		pthread_mutex_lock(&hp.mu);
		if (++hp.finished == hp.n)
			pthread_cond_signal(&hp.done);
	}
}

static void *thread_main(void *unused)
{
	uint64_t seen = 0;

	(void)unused;
	pthread_mutex_lock(&hp.mu);
	for (;;) {
		while (hp.generation == seen && !hp.stop)
			pthread_cond_wait(&hp.work, &hp.mu);
		if (hp.stop)
			break;
		seen = hp.generation;
		take_tasks();
	}
	pthread_mutex_unlock(&hp.mu);
	return NULL;
}

unsigned hspool_start(void)
{
	const char *env = getenv("NOISETUN_HS_THREADS");
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned want = env && *env ? (unsigned)strtoul(env, NULL, 10) : cpus > 0 ? (unsigned)cpus : 1;
	sigset_t all, old;
	int err;

	if (hp.threads)
		return hp.threads + 1;
	want = want < 1 ? 1 : want > HSPOOL_MAX + 1 ? HSPOOL_MAX + 1 : want;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	while (hp.threads + 1 < want) {
		if ((err = pthread_create(&hp.th[hp.threads], NULL, thread_main, NULL))) {
			log_error("handshake threads: %s (%u started)", strerror(err), hp.threads);
			break;
		}
		hp.threads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	log_verbose("handshakes on %u thread(s)", hp.threads + 1);
	return hp.threads + 1;
}

void hspool_run(void *ctx, void (*fn)(void *arg, size_t i), void *arg, size_t n)
{
	(void)ctx;
	if (!hp.threads || n < 2) {
		for (size_t i = 0; i < n; i++)
			fn(arg, i);
		return;
	}
	pthread_mutex_lock(&hp.mu);
	hp.fn = fn;
	hp.arg = arg;
	hp.n = n;
	hp.next = hp.finished = 0;
	hp.generation++;
	pthread_cond_broadcast(&hp.work);
	take_tasks();
	while (hp.finished < hp.n)
		pthread_cond_wait(&hp.done, &hp.mu);
	hp.n = hp.next = 0;
	pthread_mutex_unlock(&hp.mu);
}

/* At exit: the threads end and are joined (their stacks given back, as valgrind checks). */
void hspool_stop(void)
{
	if (!hp.threads)
		return;
	pthread_mutex_lock(&hp.mu);
	hp.stop = true;
	pthread_cond_broadcast(&hp.work);
	pthread_mutex_unlock(&hp.mu);
	for (unsigned i = 0; i < hp.threads; i++)
		pthread_join(hp.th[i], NULL);
	hp.threads = 0;
}
