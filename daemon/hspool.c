/* The handshake threads (issue 16): the engine's host.submit and host.barrier. A
 * responder's X25519 work (nt_noise_prepare_initiation, 4 of its 4) for each admitted
 * initiation is a job the engine hands over (submit) and forgets until it is done: the
 * event loop goes on with the data path meanwhile. NOISETUN_HS_THREADS worker threads
 * (default: one per online CPU; 0: none, the loop runs each job as it is submitted) take
 * jobs from a bounded FIFO and, after each, add 1 to an eventfd the loop polls; the loop
 * then calls nt_engine_collect (device_collect), which applies the results in submission
 * order on the loop's thread: lib/ stays single-threaded per call.
 *
 * The engine calls hspool_barrier before a configuration change the jobs read (keys, the
 * peer table): it returns once no job is queued or running (engine.h has the rule).
 *
 * The threads are started in the worker before its sandbox (hspool_start): the seccomp
 * filter then covers them through SECCOMP_FILTER_FLAG_TSYNC (sandbox.c), setresuid and
 * setresgid reach every thread (glibc), and a thread that loses root loses its
 * capabilities. The eventfd is created then too; after the drop the threads only write
 * it (below the parked rtnetlink socket, as every fd is: sandbox.c) and the loop reads
 * it. They take no signal: all are blocked in them (signalfd gets them). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "noisetund.h"

#define HSPOOL_MAX   16
#define HSPOOL_QUEUE NT_ENGINE_JOBS_MAX /* the engine never has more in flight */

struct hs_job {
	void (*fn)(void *job);
	void *job;
};

static struct {
	pthread_t th[HSPOOL_MAX];
	unsigned threads;              /* started */
	int efd;                       /* +1 per finished job; -1: none */
	pthread_mutex_t mu;
	pthread_cond_t work, idle;
	struct hs_job q[HSPOOL_QUEUE];
	unsigned head, len;            /* queued, not yet taken */
	unsigned pending;              /* queued or running */
	bool stop;
} hp = { .efd = -1, .mu = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER,
	 .idle = PTHREAD_COND_INITIALIZER };

static void *thread_main(void *unused)
{
	static const uint64_t one = 1;

	(void)unused;
	pthread_mutex_lock(&hp.mu);
	for (;;) {
		struct hs_job j;

		while (!hp.len && !hp.stop)
			pthread_cond_wait(&hp.work, &hp.mu);
		if (!hp.len)
			break; /* stopping, and the queue is drained */
		j = hp.q[hp.head];
		hp.head = (hp.head + 1) % HSPOOL_QUEUE;
		hp.len--;
		pthread_mutex_unlock(&hp.mu);
		j.fn(j.job);
		/* The loop's wakeup. A full counter (2^64 - 2: never in practice) or any error
		 * leaves the job for the next collect, which nt_engine_receive also does. */
		if (write(hp.efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_error("handshake threads: eventfd: %s", strerror(errno));
		pthread_mutex_lock(&hp.mu);
		if (!--hp.pending)
			pthread_cond_broadcast(&hp.idle);
	}
	pthread_mutex_unlock(&hp.mu);
	return NULL;
}

unsigned hspool_start(void)
{
	const char *env = getenv("NOISETUN_HS_THREADS");
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned want = env && *env ? (unsigned)strtoul(env, NULL, 10) : cpus > 0 ? (unsigned)cpus : 1;

	if (hp.threads || hp.efd >= 0)
		return hp.threads;
	want = want > HSPOOL_MAX ? HSPOOL_MAX : want;
	if (want && (hp.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		log_error("handshake threads: eventfd: %s; handshakes on the event loop", strerror(errno));
		return 0;
	}
	hp.threads = threads_start(hp.th, want, thread_main, "handshake threads");
	log_verbose("handshakes on %u worker thread(s)%s", hp.threads, hp.threads ? "" : ": on the event loop");
	return hp.threads;
}

int hspool_fd(void)
{
	return hp.efd;
}

void hspool_ack(void)
{
	uint64_t n;

	if (hp.efd >= 0 && read(hp.efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_error("handshake threads: eventfd read: %s", strerror(errno));
}

void hspool_submit(void *ctx, void (*fn)(void *job), void *job)
{
	(void)ctx;
	pthread_mutex_lock(&hp.mu);
	if (!hp.threads || hp.stop || hp.len == HSPOOL_QUEUE) {
		/* No thread, or (never with one engine) a full queue: the bound holds, the job is
		 * done here; nt_engine_receive collects it before it returns. */
		pthread_mutex_unlock(&hp.mu);
		fn(job);
		return;
	}
	hp.q[(hp.head + hp.len) % HSPOOL_QUEUE] = (struct hs_job){ .fn = fn, .job = job };
	hp.len++;
	hp.pending++;
	pthread_cond_signal(&hp.work);
	pthread_mutex_unlock(&hp.mu);
}

void hspool_barrier(void *ctx)
{
	(void)ctx;
	pthread_mutex_lock(&hp.mu);
	while (hp.pending)
		pthread_cond_wait(&hp.idle, &hp.mu);
	pthread_mutex_unlock(&hp.mu);
}

/* At exit: the queue drained, the threads ended and joined (their stacks given back, as
 * valgrind checks), the eventfd closed. */
void hspool_stop(void)
{
	if (hp.threads) {
		pthread_mutex_lock(&hp.mu);
		hp.stop = true;
		pthread_cond_broadcast(&hp.work);
		pthread_mutex_unlock(&hp.mu);
		for (unsigned i = 0; i < hp.threads; i++)
			pthread_join(hp.th[i], NULL);
		hp.threads = 0;
	}
	if (hp.efd >= 0) {
		close(hp.efd);
		hp.efd = -1;
	}
}
