/* The data threads (issue 19 part 4): the engine's host.parallel. A batch's transport
 * AEAD (the TUN reads of one wakeup sealed, or the datagrams of one recvmmsg opened) is
 * split by the engine into chunks of whole messages; the loop thread hands them out here
 * and takes chunks itself, so a helper that wakes late costs parallelism, never time: the
 * loop only waits for chunks a helper has already started. Counters, the replay window
 * and every other piece of state stay with the loop thread (lib/engine.c), so per-peer
 * order is the batch's order whatever thread sealed a message.
 *
 * NOISETUN_DATA_THREADS sets the threads in all, the loop's included (default: one per
 * two online CPUs; 1: none, the single-threaded path). Not one per CPU: a helper watches
 * for runs between them, and where the tunnel's own traffic (the kernel's UDP and TUN
 * work, the applications) already fills the cores, that costs more than it brings:
 * measured on 2 CPUs, 2 threads against 1: TCP 4 streams 2.07 vs 2.42 Gbit/s, ping under
 * load 4.0 vs 2.4 ms; with a core free (bench/run scale), 1.2x. Started before the sandbox, like the
 * handshake threads (hspool.c has why that is enough for seccomp and the uid drop).
 *
 * The helpers are also the TUN writer stage (receive.c): a received batch's decrypted
 * packets are queued here and one helper at a time clamps, coalesces and writes them, in
 * queue order, while the loop reads and opens the next batch. A TUN write is where the
 * kernel delivers the packet (its IP stack, the application's socket): with the UDP
 * checksums coalescing verifies, a fifth of the loop's time before. A run's chunks come
 * before queued writes, since the loop waits for those. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "noisetund.h"

#define DATAPOOL_MAX 16
/* How long the loop spins for a helper's last chunk before it sleeps on it: a chunk is
 * 8 KiB or more of AEAD, a few microseconds. */
#define SPIN_NS 200000
/* How long a helper watches for the next run before it sleeps. Under load runs come every
 * 100 us or so, and a sleeping helper's wakeup (a futex wake, then the scheduler) took
 * most of a run: the loop had done the chunks itself by the time it came (measured: the
 * helper at 36% of a core, 2 threads no faster than 1). Idle, a helper spins this long
 * once per run, then sleeps. */
#define IDLE_SPIN_NS 100000
/* Queued TUN write batches: the loop waits for a slot when all are taken. */
#define WQ_MAX 8
/* A batch below this many bytes is written by the loop itself when no write is queued:
 * handing a ping to a sleeping helper cost its wakeup (measured, 2 threads: idle ping
 * 0.28 -> 0.43-0.60 ms median). The crypto split's threshold, for the same reason. */
#define WRITER_MIN_BYTES (16u << 10)

struct wjob {
	struct tun_params t;
	unsigned set;
	size_t n;
	struct nt_gro_packet *q;        /* TUNQ_MAX entries, allocated at start */
};

static struct {
	pthread_t th[DATAPOOL_MAX];
	unsigned want;                 /* threads in all (the loop's included), from the env */
	unsigned helpers;              /* started */
	pthread_mutex_t mu;
	pthread_cond_t work, idle;
	/* the run: written under mu while no helper is in it */
	void (*fn)(void *arg, size_t i);
	void *arg;
	size_t n;
	_Atomic uint64_t gen;          /* +1 per run (changed under mu; helpers spin on it) */
	unsigned sleepers;             /* helpers in pthread_cond_wait: a run wakes them */
	bool open;                     /* helpers may still join the run */
	_Atomic unsigned active;       /* helpers in the run (changed under mu) */
	_Atomic size_t next;           /* next chunk to claim */
	bool stop;
	uint64_t runs, chunks;         /* runs split, and their chunks (the loop's counts) */
	_Atomic uint64_t helped;       /* chunks the helpers ran */
	/* the TUN writes (under mu) */
	struct wjob wq[WQ_MAX];
	unsigned wq_head;
	_Atomic unsigned wq_len;       /* helpers spin on it too */
	bool writing;                  /* a helper holds wq[wq_head] */
	_Atomic unsigned pending[RX_SETS]; /* per receive set: batches queued or being written */
	pthread_cond_t written;        /* a batch written (the loop waits on it) */
	unsigned waiting;              /* the loop in pthread_cond_wait(written) */
	uint64_t batches_written;
} dp = { .mu = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER, .idle = PTHREAD_COND_INITIALIZER,
	.written = PTHREAD_COND_INITIALIZER };

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Run chunks until none is left; returns how many this thread ran. */
static uint64_t claim_all(void (*fn)(void *, size_t), void *arg, size_t n)
{
	uint64_t ran = 0;
	size_t i;

	while ((i = atomic_fetch_add_explicit(&dp.next, 1, memory_order_relaxed)) < n) {
		fn(arg, i);
		ran++;
	}
	return ran;
}

/* Under mu: a run this helper may join, or a batch to write. */
static bool run_open(uint64_t seen)
{
	return dp.gen != seen && dp.open;
}

static bool write_ready(void)
{
	return dp.wq_len && !dp.writing;
}

/* Under mu: write the oldest queued batch (the lock dropped meanwhile). */
static void write_one(void)
{
	struct wjob *j = &dp.wq[dp.wq_head];

	dp.writing = true;
	pthread_mutex_unlock(&dp.mu);
	tun_write_batch(&j->t, j->q, j->n);
	pthread_mutex_lock(&dp.mu);
	dp.writing = false;
	dp.wq_head = (dp.wq_head + 1) % WQ_MAX;
	dp.wq_len--;
	dp.pending[j->set]--;
	dp.batches_written++;
	if (dp.waiting)
		pthread_cond_signal(&dp.written);
}

static void *thread_main(void *unused)
{
	uint64_t seen = 0;

	(void)unused;
	pthread_mutex_lock(&dp.mu);
	for (;;) {
		if (!dp.stop && !run_open(seen) && !write_ready()) {
			uint64_t until = now_ns() + IDLE_SPIN_NS;

			pthread_mutex_unlock(&dp.mu);
			while (atomic_load(&dp.gen) == seen && !atomic_load(&dp.wq_len) && now_ns() < until)
				for (int k = 0; k < 16; k++)
					cpu_relax();
			pthread_mutex_lock(&dp.mu);
		}
		while (!dp.stop && !run_open(seen) && !write_ready()) {
			dp.sleepers++;
			pthread_cond_wait(&dp.work, &dp.mu);
			dp.sleepers--;
		}
		if (run_open(seen) && !dp.stop) {
			seen = dp.gen;
			void (*fn)(void *, size_t) = dp.fn;
			void *arg = dp.arg;
			size_t n = dp.n;
			dp.active++;
			pthread_mutex_unlock(&dp.mu);
			atomic_fetch_add_explicit(&dp.helped, claim_all(fn, arg, n), memory_order_relaxed);
			pthread_mutex_lock(&dp.mu);
			if (!--dp.active)
				pthread_cond_signal(&dp.idle);
		} else if (write_ready()) {
			write_one(); /* at a stop too: what was queued is written first */
		} else if (dp.stop) {
			break;
		}
	}
	pthread_mutex_unlock(&dp.mu);
	return NULL;
}

unsigned datapool_threads(void)
{
	const char *env = getenv("NOISETUN_DATA_THREADS");
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (!dp.want) {
		dp.want = env && *env ? (unsigned)strtoul(env, NULL, 10) : cpus > 1 ? (unsigned)cpus / 2 : 1;
		dp.want = dp.want < 1 ? 1 : dp.want > DATAPOOL_MAX ? DATAPOOL_MAX : dp.want;
	}
	return dp.want;
}

unsigned datapool_start(void)
{
	if (dp.helpers)
		return dp.helpers + 1;
	for (unsigned i = 0; i < WQ_MAX && datapool_threads() > 1; i++) {
		dp.wq[i].q = calloc(TUNQ_MAX, sizeof(*dp.wq[i].q));
		if (!dp.wq[i].q) {
			log_error("data threads: %s", strerror(ENOMEM));
			return 1; /* the single-threaded path */
		}
	}
	dp.helpers = threads_start(dp.th, datapool_threads() - 1, thread_main, "data threads");
	log_verbose("transport crypto on %u thread(s)", dp.helpers + 1);
	return dp.helpers + 1;
}

void datapool_parallel(void *ctx, void (*fn)(void *arg, size_t i), void *arg, size_t n)
{
	(void)ctx;
	if (!dp.helpers || n < 2) {
		for (size_t i = 0; i < n; i++)
			fn(arg, i);
		return;
	}
	pthread_mutex_lock(&dp.mu);
	dp.fn = fn;
	dp.arg = arg;
	dp.n = n;
	atomic_store_explicit(&dp.next, 0, memory_order_relaxed);
	dp.gen++;
	dp.open = true;
	dp.runs++;
	dp.chunks += n;
	if (dp.sleepers)
		pthread_cond_broadcast(&dp.work);
	pthread_mutex_unlock(&dp.mu);

	claim_all(fn, arg, n);

	/* Every chunk is claimed. Close the run to late helpers (they would find nothing, but
	 * must not be inside it when the next one is set up), then wait for the chunks the
	 * helpers hold: spinning first, since one is microseconds of work. */
	pthread_mutex_lock(&dp.mu);
	dp.open = false;
	pthread_mutex_unlock(&dp.mu);
	if (atomic_load(&dp.active)) {
		uint64_t until = now_ns() + SPIN_NS;

		while (atomic_load(&dp.active) && now_ns() < until)
			for (int k = 0; k < 64; k++)
				cpu_relax();
		pthread_mutex_lock(&dp.mu);
		while (atomic_load(&dp.active))
			pthread_cond_wait(&dp.idle, &dp.mu);
		pthread_mutex_unlock(&dp.mu);
	}
}

unsigned datapool_helpers(void)
{
	return dp.helpers;
}

bool datapool_write_tun(const struct tun_params *t, const struct nt_gro_packet *q, size_t n, unsigned set)
{
	struct wjob *j;
	size_t bytes = 0;

	if (!dp.helpers || n > TUNQ_MAX || set >= RX_SETS)
		return false;
	for (size_t i = 0; i < n && bytes < WRITER_MIN_BYTES; i++)
		bytes += q[i].len;
	/* Nothing queued or being written (wq_len counts the batch a helper holds): writing
	 * here keeps the order. Only the loop adds to the queue, so it cannot fill meanwhile. */
	if (bytes < WRITER_MIN_BYTES && !atomic_load(&dp.wq_len))
		return false;
	pthread_mutex_lock(&dp.mu);
	while (dp.wq_len == WQ_MAX) {
		dp.waiting++;
		pthread_cond_wait(&dp.written, &dp.mu);
		dp.waiting--;
	}
	j = &dp.wq[(dp.wq_head + dp.wq_len) % WQ_MAX];
	j->t = *t;
	j->set = set;
	j->n = n;
	memcpy(j->q, q, n * sizeof(*q));
	dp.pending[set]++;
	dp.wq_len++;
	if (dp.sleepers)
		pthread_cond_signal(&dp.work);
	pthread_mutex_unlock(&dp.mu);
	return true;
}

void datapool_wait_written(unsigned set)
{
	uint64_t until;

	if (!dp.helpers || set >= RX_SETS || !atomic_load(&dp.pending[set]))
		return;
	until = now_ns() + SPIN_NS;
	while (atomic_load(&dp.pending[set]) && now_ns() < until)
		for (int k = 0; k < 64; k++)
			cpu_relax();
	pthread_mutex_lock(&dp.mu);
	while (dp.pending[set]) {
		dp.waiting++;
		pthread_cond_wait(&dp.written, &dp.mu);
		dp.waiting--;
	}
	pthread_mutex_unlock(&dp.mu);
}

static void queue_free(void)
{
	for (unsigned i = 0; i < WQ_MAX; i++) {
		free(dp.wq[i].q);
		dp.wq[i].q = NULL;
	}
}

void datapool_stop(void)
{
	if (!dp.helpers) {
		queue_free(); /* made at start, but no helper came */
		return;
	}
	pthread_mutex_lock(&dp.mu);
	dp.stop = true;
	dp.gen++; /* ends a spin */
	pthread_cond_broadcast(&dp.work);
	pthread_mutex_unlock(&dp.mu);
	for (unsigned i = 0; i < dp.helpers; i++)
		pthread_join(dp.th[i], NULL);
	log_verbose("transport crypto: %llu batches split over %u threads, %llu of their %llu chunks by the helpers; "
		    "%llu TUN write batches by the helpers",
		    (unsigned long long)dp.runs, dp.helpers + 1, (unsigned long long)atomic_load(&dp.helped),
		    (unsigned long long)dp.chunks, (unsigned long long)dp.batches_written);
	dp.helpers = 0;
	queue_free();
}
