/* A deterministic simulation of the engine (lib/engine.c): two engines A and B wired
 * in-process through a link that can lose, delay, reorder and duplicate datagrams, under a
 * fake clock. Each test drives real handshakes and data and asserts on the engine's
 * actions (what it sends, what reaches the TUN) and events.
 *
 * The simulation loop: the next thing to happen is the earliest of a datagram's arrival
 * and an engine's timer deadline; the clock jumps there. Datagrams due for a node at the
 * same instant are handed over as one batch, as one recvmmsg would. */
#include <arpa/inet.h>
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "noisetun/engine.h"
#include "util.h"

#define SEC(x)  ((uint64_t)(x) * NT_NSEC_PER_SEC)
#define MSEC(x) ((uint64_t)(x) * 1000000ULL)
#define WALL0   (1700000000ULL * NT_NSEC_PER_SEC)
#define LINK_MAX 4096
#define EV_MAX   4096
#define RX_MAX   8192
#define PKT_LEN  100
/* For the simulation's hot paths: ck_assert records a mark point (a write) each time. */
#define SIM_CHECK(c)                                      \
	do {                                              \
		if (!(c))                                 \
			ck_abort_msg("failed: %s", #c);  \
	} while (0)

struct node {
	const char *name;
	struct nt_engine eng;
	struct nt_noise_static id;
	struct nt_peer peer;            /* the other node */
	union nt_endpoint addr;         /* where this node sends from and listens */
	struct test_rng rng_state;
	struct nt_rng rng;
	/* the engine's output queues */
	struct nt_send sends[1024];     /* a batch of TUN reads: enough to split its sealing */
	struct nt_gro_packet tunq[64];
	struct nt_event evq[16];
	uint8_t bytes[NT_ENGINE_MIN_BYTES * 2];
	struct nt_engine_out out;
	/* what happened */
	unsigned ev_count[NT_EV_COUNT];
	struct nt_event events[EV_MAX];
	size_t events_len;
	uint32_t rx_ids[RX_MAX];        /* the id of each packet that reached the TUN */
	size_t rx_len;
	unsigned sent_by_type[5];       /* datagrams sent, by message type */
	unsigned tx_ids;
	size_t keypairs_live;
};

struct flight {
	struct node *to;
	union nt_endpoint from;
	uint64_t at;
	size_t len;
	uint8_t data[NT_ENGINE_MIN_BYTES > 2048 ? 2048 : NT_ENGINE_MIN_BYTES];
};

static struct {
	struct node a, b;
	uint64_t now;
	struct flight link[LINK_MAX];
	size_t link_len;
	/* the link's behaviour, in per-mille */
	unsigned loss, dup, reorder;
	bool cut;                       /* drop everything */
	uint64_t delay;
	struct test_rng rng;
	uint8_t flood_init[NT_INIT_LEN]; /* an initiation to replay as load (0: none) */
	unsigned flood_per_batch;
	bool flood_first;               /* the flood ahead of the batch's real datagrams */
	bool flood_one_source;          /* from one address (many ports), as one attacker */
	/* responses sent to an address no node has (the async tests' extra initiators) */
	uint8_t captured[64][NT_RESP_LEN];
	union nt_endpoint captured_to[64];
	size_t captured_len;
	bool auto_jobs;                 /* run(): B's deferred jobs run and are collected */
} S;

static struct nt_now now_of(void)
{
	return (struct nt_now){ .mono = S.now, .wall = WALL0 + S.now };
}

static uint32_t link_rand(void)
{
	return (uint32_t)(test_rand64(&S.rng) >> 32);
}

/* ---- the host side of a node ---- */

static void *kps_alloc(void *ctx)
{
	struct node *n = ctx;

	n->keypairs_live++;
	return calloc(1, sizeof(struct nt_keypairs));
}

static void kps_free(void *ctx, void *kps)
{
	struct node *n = ctx;

	n->keypairs_live--;
	nt_wipe(kps, sizeof(struct nt_keypairs));
	free(kps);
}

static struct node *node_at(const union nt_endpoint *ep)
{
	if (nt_endpoint_equal(ep, &S.a.addr))
		return &S.a;
	if (nt_endpoint_equal(ep, &S.b.addr))
		return &S.b;
	return NULL;
}

static void link_put(struct node *to, const union nt_endpoint *from, const uint8_t *data, size_t len, uint64_t at)
{
	struct flight *f;

	SIM_CHECK(S.link_len < LINK_MAX);
	SIM_CHECK(len <= sizeof(f->data));
	f = &S.link[S.link_len++];
	f->to = to;
	f->from = *from;
	f->at = at;
	f->len = len;
	memcpy(f->data, data, len);
}

static void host_flush(void *ctx, struct nt_engine_out *out)
{
	struct node *n = ctx;

	for (size_t i = 0; i < out->events_len; i++) {
		n->ev_count[out->events[i].type]++;
		if (n->events_len < EV_MAX)
			n->events[n->events_len++] = out->events[i];
	}
	for (size_t i = 0; i < out->sends_len; i++) {
		const struct nt_send *s = &out->sends[i];
		struct node *to = node_at(&s->to);
		uint64_t at = S.now + S.delay;

		SIM_CHECK(s->len >= 1);
		if (s->data[0] >= 1 && s->data[0] <= 4)
			n->sent_by_type[s->data[0]]++;
		if (s->count_tx && s->peer) {
			s->peer->tx_bytes += s->len;
			s->peer->tx_packets++;
		}
		if (!to && s->len == NT_RESP_LEN && s->data[0] == NT_MSG_RESPONSE && S.captured_len < 64) {
			memcpy(S.captured[S.captured_len], s->data, NT_RESP_LEN);
			S.captured_to[S.captured_len++] = s->to;
		}
		if (!to || S.cut || link_rand() % 1000 < S.loss)
			continue;
		if (link_rand() % 1000 < S.reorder)
			at += MSEC(1 + link_rand() % 50); /* overtaken by what follows */
		link_put(to, &n->addr, s->data, s->len, at);
		if (link_rand() % 1000 < S.dup)
			link_put(to, &n->addr, s->data, s->len, at + MSEC(link_rand() % 20));
	}
	for (size_t i = 0; i < out->tun_len; i++) {
		const struct nt_gro_packet *p = &out->tun[i];
		uint32_t id;

		SIM_CHECK(p->len == PKT_LEN);
		memcpy(&id, p->data + 28, sizeof(id));
		SIM_CHECK(n->rx_len < RX_MAX);
		n->rx_ids[n->rx_len++] = id;
	}
}

/* host.parallel: the tasks in reverse order, so a task that depended on another's side
 * effects (they must have none) would show. */
static unsigned parallel_calls;
static void parallel_reversed(void *ctx, void (*fn)(void *arg, size_t i), void *arg, size_t n)
{
	(void)ctx;
	parallel_calls++;
	for (size_t i = n; i-- > 0;)
		fn(arg, i);
}

/* host.submit and host.barrier, deferred: jobs wait in a list until the test runs them
 * (in any order) or a barrier does. */
#define DEFERRED_MAX (NT_ENGINE_JOBS_MAX + 64)
static struct {
	void (*fn[DEFERRED_MAX])(void *job);
	void *job[DEFERRED_MAX];
	size_t len;
	unsigned submits, barriers;
} D;

static void deferred_submit(void *ctx, void (*fn)(void *job), void *job)
{
	(void)ctx;
	SIM_CHECK(D.len < DEFERRED_MAX);
	D.fn[D.len] = fn;
	D.job[D.len++] = job;
	D.submits++;
}

/* Run deferred job i (and forget it). */
static void deferred_run(size_t i)
{
	void (*fn)(void *job) = D.fn[i];
	void *job = D.job[i];

	SIM_CHECK(i < D.len);
	D.fn[i] = D.fn[D.len - 1];
	D.job[i] = D.job[D.len - 1];
	D.len--;
	fn(job);
}

/* All of them, the newest first. */
static void deferred_run_all(void)
{
	while (D.len)
		deferred_run(D.len - 1);
}

static void deferred_barrier(void *ctx)
{
	(void)ctx;
	D.barriers++;
	deferred_run_all();
}

/* host.parallel on real threads, one per task: the transport AEAD split over them. */
static unsigned threaded_calls;
struct task {
	void (*fn)(void *arg, size_t i);
	void *arg;
	size_t i;
};

static void *task_main(void *a)
{
	struct task *t = a;

	t->fn(t->arg, t->i);
	return NULL;
}

static void parallel_threaded(void *ctx, void (*fn)(void *arg, size_t i), void *arg, size_t n)
{
	pthread_t th[NT_ENGINE_CRYPTO_LANES];
	struct task t[NT_ENGINE_CRYPTO_LANES];

	(void)ctx;
	SIM_CHECK(n >= 2 && n <= NT_ENGINE_CRYPTO_LANES);
	threaded_calls++;
	for (size_t i = 0; i < n; i++) {
		t[i] = (struct task){ .fn = fn, .arg = arg, .i = i };
		SIM_CHECK(pthread_create(&th[i], NULL, task_main, &t[i]) == 0);
	}
	for (size_t i = 0; i < n; i++)
		pthread_join(th[i], NULL);
}

static bool node_async; /* node_init: the next node gets the deferred host */
static bool node_threaded; /* ... or the threaded host.parallel, for data */

static void node_init(struct node *n, const char *name, uint8_t key_byte, const char *ip, uint16_t port)
{
	struct nt_engine_host host = { .keypairs_alloc = kps_alloc, .keypairs_free = kps_free,
				       .parallel = parallel_reversed, .ctx = n };
	uint8_t key[NT_KEY_LEN];

	if (node_threaded) {
		host.parallel = parallel_threaded;
		host.parallel_threads = 4;
	}
	if (node_async) {
		host.parallel = NULL;
		host.submit = deferred_submit;
		host.barrier = deferred_barrier;
	}

	memset(n, 0, sizeof(*n));
	n->name = name;
	n->rng = test_rng(&n->rng_state, key_byte * 7919u);
	host.rng = &n->rng;
	memset(key, key_byte, sizeof(key));
	nt_noise_static_init(&n->id, key);
	ck_assert_int_eq(nt_engine_init(&n->eng, &n->id, &host, NT_INDEX_MIN_SLOTS, node_async ? 1024 : 64), 0);
	n->eng.up = true;
	n->addr.in4.sin_family = AF_INET;
	n->addr.in4.sin_port = htons(port);
	ck_assert_int_eq(inet_pton(AF_INET, ip, &n->addr.in4.sin_addr), 1);
	n->out = (struct nt_engine_out){ .sends = n->sends, .sends_cap = 1024, .tun = n->tunq, .tun_cap = 64,
					 .events = n->evq, .events_cap = 16, .bytes = n->bytes,
					 .bytes_cap = sizeof(n->bytes), .flush = host_flush, .ctx = n };
}

/* n knows other as its peer, with the other's tunnel address as allowed IP. */
static void peer_init(struct node *n, const struct node *other, const char *other_tunnel_ip, bool with_endpoint)
{
	uint8_t addr[4];

	memset(&n->peer, 0, sizeof(n->peer));
	ck_assert_int_eq(nt_engine_peer_add(&n->eng, &n->peer, other->id.public_key), 0);
	ck_assert_int_eq(inet_pton(AF_INET, other_tunnel_ip, addr), 1);
	ck_assert_int_eq(nt_allowedips_insert(n->eng.aips, AF_INET, addr, 32, &n->peer.aips), 0);
	if (with_endpoint)
		n->peer.endpoint = other->addr;
}

/* b_async: B's engine with the deferred host (asynchronous handshakes). */
static void sim_setup_with(bool b_async)
{
	bool threaded = node_threaded;

	ck_assert_int_eq(nt_crypto_init(), 0);
	memset(&S, 0, sizeof(S));
	memset(&D, 0, sizeof(D));
	S.now = SEC(1000);
	S.delay = MSEC(10);
	S.rng.s = 12345;
	node_init(&S.a, "A", 0x11, "192.0.2.1", 51820);
	node_async = b_async;
	node_threaded = threaded && !b_async;
	node_init(&S.b, "B", 0x22, "192.0.2.2", 51820);
	node_async = node_threaded = false;
	peer_init(&S.a, &S.b, "10.0.0.2", true);
	peer_init(&S.b, &S.a, "10.0.0.1", true);
}

static void sim_setup(void)
{
	sim_setup_with(false);
}

static void node_destroy(struct node *n)
{
	nt_engine_peer_remove(&n->eng, &n->peer);
	nt_engine_destroy(&n->eng);
	ck_assert_uint_eq(n->keypairs_live, 0);
}

static void sim_teardown(void)
{
	node_destroy(&S.a);
	node_destroy(&S.b);
}

/* ---- driving it ---- */

/* An IPv4 UDP packet from n's tunnel address to the other's, carrying id; handed to
 * n's engine as a TUN read. */
static void app_packet(struct node *n, uint8_t *pkt)
{
	uint32_t id = ++n->tx_ids;

	memset(pkt, 0, PKT_LEN);
	pkt[0] = 0x45;
	pkt[2] = 0;
	pkt[3] = PKT_LEN;
	pkt[8] = 64;
	pkt[9] = 17;
	SIM_CHECK(inet_pton(AF_INET, n == &S.a ? "10.0.0.1" : "10.0.0.2", pkt + 12) == 1);
	SIM_CHECK(inet_pton(AF_INET, n == &S.a ? "10.0.0.2" : "10.0.0.1", pkt + 16) == 1);
	memcpy(pkt + 28, &id, sizeof(id));
}

static void app_send(struct node *n)
{
	static uint8_t buf[NT_DATA_HEADER_LEN + PKT_LEN + NT_ENGINE_TAIL_ROOM];
	uint8_t *pkt = buf + NT_DATA_HEADER_LEN;

	app_packet(n, pkt);
	nt_engine_tun_packet(&n->eng, pkt, PKT_LEN, now_of(), &n->out);
	nt_engine_flush(&n->out);
}

/* Everything for n arriving at S.now, as one batch (plus the flood, if any). */
static void deliver_due(struct node *n)
{
	static struct nt_datagram dg[LINK_MAX + 128];
	static uint8_t bufs[LINK_MAX + 128][2048];
	size_t count = 0;

	for (size_t i = 0; i < S.link_len;) {
		struct flight *f = &S.link[i];

		if (f->to != n || f->at > S.now) {
			i++;
			continue;
		}
		memcpy(bufs[count], f->data, f->len);
		dg[count] = (struct nt_datagram){ .data = bufs[count], .len = f->len, .cap = sizeof(bufs[0]),
						  .from = f->from };
		count++;
		S.link[i] = S.link[--S.link_len]; /* order among equal times is the link's */
	}
	if (!count)
		return;
	if (S.flood_first && S.flood_per_batch && n == &S.b) {
		/* move the real ones behind the flood */
		memmove(&dg[S.flood_per_batch], &dg[0], count * sizeof(dg[0]));
		for (size_t i = count; i-- > 0;) { /* from the end: the ranges may overlap */
			memcpy(bufs[S.flood_per_batch + i], dg[S.flood_per_batch + i].data, dg[S.flood_per_batch + i].len);
			dg[S.flood_per_batch + i].data = bufs[S.flood_per_batch + i];
		}
	}
	for (unsigned k = 0; k < S.flood_per_batch && n == &S.b; k++) {
		size_t at = S.flood_first ? k : count + k;

		memcpy(bufs[at], S.flood_init, NT_INIT_LEN);
		dg[at] = (struct nt_datagram){ .data = bufs[at], .len = NT_INIT_LEN, .cap = sizeof(bufs[0]) };
		dg[at].from.in4.sin_family = AF_INET;
		dg[at].from.in4.sin_port = htons((uint16_t)(1000 + k));
		dg[at].from.in4.sin_addr.s_addr = htonl(0xc6336400u + (S.flood_one_source ? 1 : k)); /* 198.51.100.k */
	}
	count += n == &S.b ? S.flood_per_batch : 0;
	nt_engine_receive(&n->eng, dg, count, now_of(), &n->out);
	nt_engine_flush(&n->out);
}

/* Run the world until `until`, with app traffic from `sender` (NULL: none) every `every`. */
static void run(uint64_t until, struct node *sender, uint64_t every, struct node *sender2)
{
	uint64_t next_app = sender ? S.now : UINT64_MAX;

	while (S.now <= until) {
		uint64_t next = UINT64_MAX;

		if (next_app <= S.now) {
			app_send(sender);
			if (sender2)
				app_send(sender2);
			next_app = S.now + every;
		}
		deliver_due(&S.a);
		deliver_due(&S.b);
		if (S.auto_jobs && D.len) {
			deferred_run_all();
			nt_engine_collect(&S.b.eng, now_of(), &S.b.out);
			nt_engine_flush(&S.b.out);
		}
		if (nt_engine_next_deadline(&S.a.eng) <= S.now) {
			nt_engine_timers(&S.a.eng, now_of(), &S.a.out);
			nt_engine_flush(&S.a.out);
		}
		if (nt_engine_next_deadline(&S.b.eng) <= S.now) {
			nt_engine_timers(&S.b.eng, now_of(), &S.b.out);
			nt_engine_flush(&S.b.out);
		}
		for (size_t i = 0; i < S.link_len; i++)
			if (S.link[i].at < next)
				next = S.link[i].at;
		if (nt_engine_next_deadline(&S.a.eng) < next)
			next = nt_engine_next_deadline(&S.a.eng);
		if (nt_engine_next_deadline(&S.b.eng) < next)
			next = nt_engine_next_deadline(&S.b.eng);
		if (next_app < next)
			next = next_app;
		if (next <= S.now)
			next = S.now + 1; /* a deadline just handled may sit at now: move on */
		if (next > until)
			break;
		S.now = next;
	}
	S.now = until;
}

static bool received(const struct node *n, uint32_t id)
{
	for (size_t i = 0; i < n->rx_len; i++)
		if (n->rx_ids[i] == id)
			return true;
	return false;
}

static void assert_no_duplicates(const struct node *n)
{
	for (size_t i = 0; i < n->rx_len; i++)
		for (size_t j = i + 1; j < n->rx_len; j++)
			if (n->rx_ids[i] == n->rx_ids[j])
				ck_abort_msg("%s got packet %u twice", n->name, n->rx_ids[i]);
}

static const struct nt_keypair *current_kp(struct node *n)
{
	return n->peer.kps ? nt_keypairs_current(n->peer.kps) : NULL;
}

/* ---- the tests ---- */

START_TEST(test_handshake_and_data_both_ways)
{
	sim_setup();
	app_send(&S.a); /* no session: staged, and an initiation goes out */
	ck_assert_uint_eq(S.a.sent_by_type[NT_MSG_INITIATION], 1);
	ck_assert_uint_eq(S.a.sent_by_type[NT_MSG_DATA], 0);
	ck_assert_uint_eq(S.a.peer.staged_count, 1);
	run(S.now + SEC(1), NULL, 0, NULL);
	ck_assert_uint_eq(S.b.ev_count[NT_EV_INITIATION_RECEIVED], 1);
	ck_assert_uint_eq(S.b.ev_count[NT_EV_RESPONSE_SENT], 1);
	ck_assert_uint_eq(S.a.ev_count[NT_EV_SESSION_ESTABLISHED], 1);
	ck_assert_uint_eq(S.b.ev_count[NT_EV_SESSION_CONFIRMED], 1); /* by the staged packet */
	ck_assert_uint_eq(S.a.peer.staged_count, 0);
	ck_assert(received(&S.b, 1));
	ck_assert_uint_eq(S.a.peer.last_handshake_wall, WALL0 + SEC(1000) + MSEC(20));
	app_send(&S.b);
	run(S.now + SEC(1), NULL, 0, NULL);
	ck_assert(received(&S.a, 1));
	ck_assert_uint_eq(S.a.sent_by_type[NT_MSG_INITIATION], 1); /* one handshake did it */
	ck_assert_uint_eq(S.b.sent_by_type[NT_MSG_INITIATION], 0);
	ck_assert_uint_eq(S.b.peer.rx_bytes, NT_INIT_LEN + PKT_LEN + 12 + NT_DATA_MIN_LEN);
	ck_assert_uint_eq(S.a.peer.tx_bytes, S.b.peer.rx_bytes);
	sim_teardown();
}
END_TEST

START_TEST(test_lossy_link_rekeys_and_never_delivers_twice)
{
	uint64_t start;
	unsigned a_rx, b_rx;

	sim_setup();
	S.loss = 100;   /* 10% */
	S.dup = 100;    /* 10% */
	S.reorder = 200;
	start = S.now;
	run(start + SEC(600), &S.a, MSEC(500), &S.b);
	assert_no_duplicates(&S.a);
	assert_no_duplicates(&S.b);
	a_rx = (unsigned)S.a.rx_len;
	b_rx = (unsigned)S.b.rx_len;
	/* 1,200 sent each way; 10% lost, a few staged away or sealed on a dying session */
	ck_assert_uint_ge(a_rx, 1000);
	ck_assert_uint_ge(b_rx, 1000);
	/* REKEY_AFTER_TIME: a new session at least every 120 s (plus retries on loss) */
	ck_assert_uint_ge(S.a.ev_count[NT_EV_SESSION_ESTABLISHED] + S.b.ev_count[NT_EV_SESSION_ESTABLISHED], 5);
	ck_assert_uint_eq(S.a.eng.drops[NT_DROP_DECRYPT] + S.b.eng.drops[NT_DROP_DECRYPT], 0);
	ck_assert_uint_gt(S.a.eng.drops[NT_DROP_REPLAY] + S.b.eng.drops[NT_DROP_REPLAY], 0); /* the duplicates */
	sim_teardown();
}
END_TEST

START_TEST(test_rekey_after_time)
{
	const struct nt_keypair *kp;
	uint32_t first;

	sim_setup();
	run(S.now + SEC(1), &S.a, SEC(1), NULL);
	kp = current_kp(&S.a);
	ck_assert_ptr_nonnull(kp);
	ck_assert(kp->initiator);
	first = kp->local_index;
	run(S.now + SEC(118), &S.a, SEC(1), NULL);
	ck_assert_uint_eq(current_kp(&S.a)->local_index, first);
	ck_assert_uint_eq(S.a.sent_by_type[NT_MSG_INITIATION], 1);
	run(S.now + SEC(3), &S.a, SEC(1), NULL); /* past 120 s: the next send starts a rekey */
	ck_assert_uint_eq(S.a.sent_by_type[NT_MSG_INITIATION], 2);
	ck_assert_uint_ne(current_kp(&S.a)->local_index, first);
	ck_assert_uint_eq(S.a.ev_count[NT_EV_SESSION_ESTABLISHED], 2);
	/* the old keypair stays as previous, for packets in flight */
	ck_assert_int_ge(S.a.peer.kps->previous, 0);
	sim_teardown();
}
END_TEST

START_TEST(test_reject_after_time_then_erase_keys)
{
	unsigned data_before;

	sim_setup();
	run(S.now + SEC(1), &S.a, SEC(1), NULL);
	ck_assert_ptr_nonnull(current_kp(&S.a));
	S.cut = true;
	run(S.now + SEC(181), NULL, 0, NULL); /* REJECT_AFTER_TIME passed, silently */
	/* nothing came back for the data A sent: A tried a handshake for 90 s and gave up */
	ck_assert_uint_eq(S.a.ev_count[NT_EV_HANDSHAKE_GAVE_UP], 1);
	data_before = S.a.sent_by_type[NT_MSG_DATA];
	app_send(&S.a);
	/* the keypair is too old to seal with: staged, and a handshake instead */
	ck_assert_uint_eq(S.a.sent_by_type[NT_MSG_DATA], data_before);
	ck_assert_uint_eq(S.a.peer.staged_count, 1);
	ck_assert_uint_ge(S.a.ev_count[NT_EV_INITIATION_SENT], 2);
	/* nobody answers: retries for REKEY_ATTEMPT_TIME, then it gives up on the staged data */
	run(S.now + SEC(100), NULL, 0, NULL);
	ck_assert_uint_eq(S.a.ev_count[NT_EV_HANDSHAKE_GAVE_UP], 2);
	ck_assert_uint_eq(S.a.peer.staged_count, 0);
	ck_assert_uint_eq(S.a.ev_count[NT_EV_KEYS_ERASED], 0);
	/* 3 x REJECT_AFTER_TIME after the session: every key is gone, every index released */
	run(S.now + SEC(540 - 280), NULL, 0, NULL);
	ck_assert_uint_eq(S.a.ev_count[NT_EV_KEYS_ERASED], 1);
	ck_assert_ptr_null(S.a.peer.kps);
	ck_assert_int_eq(S.a.peer.hs.state, NT_HS_ZEROED);
	ck_assert_uint_eq(nt_index_count(&S.a.eng.indices), 0);
	ck_assert_uint_eq(S.a.keypairs_live, 0);
	ck_assert_uint_eq(S.b.ev_count[NT_EV_KEYS_ERASED], 1);
	ck_assert_uint_eq(nt_index_count(&S.b.eng.indices), 0);
	sim_teardown();
}
END_TEST

START_TEST(test_roaming_endpoint_changed)
{
	union nt_endpoint old = S.b.addr;
	const struct nt_event *ev = NULL;

	sim_setup();
	old = S.b.addr;
	run(S.now + SEC(1), &S.a, SEC(1), NULL);
	app_send(&S.b);
	run(S.now + SEC(1), NULL, 0, NULL);
	ck_assert(received(&S.a, 1));
	ck_assert_uint_eq(S.a.ev_count[NT_EV_ENDPOINT_CHANGED], 0);
	/* B moves: a new address and port; its next packet teaches A */
	S.b.addr.in4.sin_addr.s_addr = htonl(0xcb007107); /* 203.0.113.7 */
	S.b.addr.in4.sin_port = htons(40000);
	app_send(&S.b);
	run(S.now + SEC(1), NULL, 0, NULL);
	ck_assert_uint_eq(S.a.ev_count[NT_EV_ENDPOINT_CHANGED], 1);
	for (size_t i = 0; i < S.a.events_len; i++)
		if (S.a.events[i].type == NT_EV_ENDPOINT_CHANGED)
			ev = &S.a.events[i];
	ck_assert_ptr_nonnull(ev);
	ck_assert(nt_endpoint_equal(&ev->endpoint, &S.b.addr));
	ck_assert(nt_endpoint_equal(&S.a.peer.endpoint, &S.b.addr));
	ck_assert(!nt_endpoint_equal(&S.a.peer.endpoint, &old));
	/* A's replies reach B at its new address (the old one has no node) */
	app_send(&S.a);
	run(S.now + SEC(1), NULL, 0, NULL);
	ck_assert(received(&S.b, S.a.tx_ids));
	sim_teardown();
}
END_TEST

START_TEST(test_cookies_under_load)
{
	sim_setup();
	/* Load at B: a replayed initiation of A's from 64 sources in every batch. */
	app_send(&S.a);
	ck_assert_uint_eq(S.link_len, 1);
	memcpy(S.flood_init, S.link[0].data, NT_INIT_LEN);
	S.flood_per_batch = NT_ENGINE_HANDSHAKE_QUEUE;
	run(S.now + SEC(1), NULL, 0, NULL);
	/* B answered A's initiation (no mac2) with a cookie reply, not a response */
	ck_assert_uint_ge(S.b.sent_by_type[NT_MSG_COOKIE], 1);
	ck_assert_uint_eq(S.b.ev_count[NT_EV_UNDER_LOAD], 1);
	ck_assert_uint_eq(S.b.sent_by_type[NT_MSG_RESPONSE], 0);
	ck_assert_uint_eq(S.a.ev_count[NT_EV_COOKIE_RECEIVED], 1);
	ck_assert(S.a.peer.cookie.has_cookie);
	/* metrics: every cookie reply counted, the state visible between batches */
	ck_assert_uint_eq(S.b.eng.cookie_replies_sent, S.b.sent_by_type[NT_MSG_COOKIE]);
	ck_assert(nt_engine_under_load(&S.b.eng, S.now));
	ck_assert(!nt_engine_under_load(&S.a.eng, S.now));
	ck_assert_uint_eq(S.a.ev_count[NT_EV_SESSION_ESTABLISHED], 0);
	/* A's retry after REKEY_TIMEOUT carries mac2: B, still under load, takes it */
	S.flood_per_batch = 8; /* with A's retry, still enough to count as load (< 1 s ago) */
	run(S.now + SEC(6), NULL, 0, NULL);
	ck_assert_uint_eq(S.a.ev_count[NT_EV_SESSION_ESTABLISHED], 1);
	ck_assert(received(&S.b, 1));
	/* The flood stops: the load ends once its hold has passed, even with no datagram to
	 * tell it (the engine's deadline does); every episode ends once. */
	S.flood_per_batch = 0;
	run(S.now + SEC(3), NULL, 0, NULL);
	ck_assert_uint_ge(S.b.ev_count[NT_EV_LOAD_ENDED], 1);
	ck_assert_uint_eq(S.b.ev_count[NT_EV_LOAD_ENDED], S.b.ev_count[NT_EV_UNDER_LOAD]);
	ck_assert(!S.b.eng.was_under_load);
	ck_assert(!nt_engine_under_load(&S.b.eng, S.now)); /* the hold (1 s) is over */
	sim_teardown();
}
END_TEST

/* The metrics counters (packets, handshakes completed / attempted / failed, session age)
 * against what the simulation saw on the link. */
START_TEST(test_metrics_counters)
{
	uint64_t age, born;

	sim_setup();
	ck_assert(!nt_engine_session_age(&S.a.peer, S.now, &age));
	app_send(&S.a);
	run(S.now + SEC(1), NULL, 0, NULL);
	app_send(&S.b);
	run(S.now + SEC(1), NULL, 0, NULL);
	/* A: initiation + staged data out, response + data in; B the mirror */
	ck_assert_uint_eq(S.a.peer.tx_packets, 2);
	ck_assert_uint_eq(S.b.peer.rx_packets, 2);
	ck_assert_uint_eq(S.b.peer.tx_packets, 2);
	ck_assert_uint_eq(S.a.peer.rx_packets, 2);
	ck_assert_uint_eq(S.a.peer.handshake_attempts, 1);
	ck_assert_uint_eq(S.a.peer.handshakes, 1); /* established */
	ck_assert_uint_eq(S.b.peer.handshakes, 1); /* confirmed by the staged packet */
	ck_assert_uint_eq(S.b.peer.handshake_attempts, 0);
	ck_assert_uint_eq(S.a.peer.handshake_failures + S.b.peer.handshake_failures, 0);
	born = current_kp(&S.a)->birth;
	ck_assert(nt_engine_session_age(&S.a.peer, S.now, &age));
	ck_assert_uint_eq(age, S.now - born);
	ck_assert_uint_ge(age, SEC(1));

	/* The link goes dead: every REKEY_TIMEOUT without an answer is one failure. */
	S.cut = true;
	/* past REKEY_AFTER_TIME (120 s): a rekey, then its retries every ~5 s, unanswered */
	run(S.now + SEC(140), &S.a, SEC(1), NULL);
	ck_assert_uint_eq(S.a.peer.handshakes, 1);
	ck_assert_uint_eq(S.a.peer.handshake_attempts, S.a.ev_count[NT_EV_INITIATION_SENT]);
	ck_assert_uint_ge(S.a.peer.handshake_attempts, 4);
	/* each attempt but the first (answered) and one still pending failed: timed out, or
	 * given up for a newer one (new data restarting the handshake, not a retry) */
	ck_assert_uint_eq(S.a.peer.handshake_failures,
			  S.a.peer.handshake_attempts - 1 - S.a.peer.timers.retransmit_handshake.armed);
	/* the data sent meanwhile is counted, though nobody received it */
	ck_assert_uint_gt(S.a.peer.tx_packets, 100);
	ck_assert_uint_eq(S.b.peer.rx_packets, 2);
	/* REJECT_AFTER_TIME: no session any more */
	run(S.now + SEC(60), NULL, 0, NULL);
	ck_assert(!nt_engine_session_age(&S.a.peer, S.now, &age));
	sim_teardown();
}
END_TEST

/* peer_down's engine half: REJECT_AFTER_TIME after the last session was derived, and
 * never while rekeys keep deriving new ones. */
START_TEST(test_session_expired)
{
	uint64_t t0;
	const struct nt_event *ev = NULL;

	sim_setup();
	/* Traffic for 400 s: rekeys every REKEY_AFTER_TIME, so no session ever expires. */
	run(S.now + SEC(400), &S.a, SEC(1), NULL);
	ck_assert_uint_ge(S.a.ev_count[NT_EV_SESSION_ESTABLISHED], 3);
	ck_assert_uint_eq(S.a.ev_count[NT_EV_SESSION_EXPIRED], 0);
	ck_assert_uint_eq(S.b.ev_count[NT_EV_SESSION_EXPIRED], 0);
	/* The link goes dark: each side says so once, REJECT_AFTER_TIME after its newest
	 * session, before the keys are erased (3 x REJECT_AFTER_TIME). */
	S.cut = true;
	t0 = S.now;
	run(S.now + SEC(181), NULL, 0, NULL);
	ck_assert_uint_eq(S.a.ev_count[NT_EV_SESSION_EXPIRED], 1);
	ck_assert_uint_eq(S.b.ev_count[NT_EV_SESSION_EXPIRED], 1);
	ck_assert_uint_eq(S.a.ev_count[NT_EV_KEYS_ERASED], 0);
	for (size_t i = 0; i < S.a.events_len; i++)
		if (S.a.events[i].type == NT_EV_SESSION_EXPIRED)
			ev = &S.a.events[i];
	ck_assert_ptr_eq(ev->peer, &S.a.peer);
	run(S.now + SEC(400), NULL, 0, NULL);
	ck_assert_uint_eq(S.a.ev_count[NT_EV_SESSION_EXPIRED], 1);
	ck_assert_uint_eq(S.a.ev_count[NT_EV_KEYS_ERASED], 1);
	ck_assert_uint_gt(S.now, t0);
	/* Back up: a new session, and its expiry later, once. */
	S.cut = false;
	run(S.now + SEC(2), &S.a, SEC(1), NULL);
	ck_assert_uint_eq(S.a.ev_count[NT_EV_SESSION_EXPIRED], 1);
	run(S.now + SEC(200), NULL, 0, NULL);
	ck_assert_uint_eq(S.a.ev_count[NT_EV_SESSION_EXPIRED], 2);
	sim_teardown();
}
END_TEST

/* A flood ahead of the real datagrams, from one address and many ports, more handshakes
 * than a batch holds: B answers at most NT_ENGINE_COOKIE_BUDGET per batch, A's
 * initiation still gets its cookie (a source of its own), and A's retry with mac2 is
 * taken before any of the flood. */
START_TEST(test_flood_ahead_of_real_peer)
{
	sim_setup();
	app_send(&S.a);
	ck_assert_uint_eq(S.link_len, 1);
	memcpy(S.flood_init, S.link[0].data, NT_INIT_LEN);
	S.flood_per_batch = NT_ENGINE_HELD_MAX - 1;
	S.flood_first = true;
	S.flood_one_source = true;
	run(S.now + SEC(1), NULL, 0, NULL);
	ck_assert_uint_eq(S.b.ev_count[NT_EV_UNDER_LOAD], 1);
	ck_assert_uint_eq(S.b.sent_by_type[NT_MSG_RESPONSE], 0);
	ck_assert_uint_ge(S.a.ev_count[NT_EV_COOKIE_RECEIVED], 1);
	ck_assert(S.a.peer.cookie.has_cookie);
	/* a bounded number of cookie replies per batch, the rest dropped unanswered */
	ck_assert_uint_le(S.b.sent_by_type[NT_MSG_COOKIE], NT_ENGINE_COOKIE_BUDGET);
	ck_assert_uint_ge(S.b.eng.drops[NT_DROP_FLOOD], NT_ENGINE_HELD_MAX - NT_ENGINE_COOKIE_BUDGET);
	/* A's retry after REKEY_TIMEOUT carries mac2: taken ahead of the flood */
	run(S.now + SEC(6), NULL, 0, NULL);
	ck_assert_uint_eq(S.a.ev_count[NT_EV_SESSION_ESTABLISHED], 1);
	ck_assert(received(&S.b, 1));
	/* and then data keeps flowing through the flood */
	run(S.now + SEC(2), &S.a, MSEC(100), NULL);
	ck_assert_uint_ge(S.b.rx_len, 15);
	sim_teardown();
}
END_TEST

/* One batch: 300 valid-mac1 initiations from one address, a data message of A's, and a
 * mac1-valid initiation from A's address last. The data reaches the TUN; the batch costs
 * exactly NT_ENGINE_COOKIE_BUDGET cookie replies, one of them to A's address (a source of
 * its own goes ahead of the flood's); everything else is dropped as flood. */
START_TEST(test_flood_budget_per_batch)
{
	static struct nt_datagram dg[302];
	static uint8_t bufs[302][256];
	uint8_t mac1_key[NT_HASH_LEN], data[256];
	size_t data_len, rx_before, cookies_before, responses_before, to_a = 0;
	uint64_t flood_before;

	sim_setup();
	run(S.now + SEC(1), &S.a, MSEC(100), NULL);
	ck_assert_uint_eq(S.b.ev_count[NT_EV_SESSION_CONFIRMED], 1);
	S.link_len = 0;
	app_send(&S.a);
	ck_assert_uint_eq(S.link_len, 1);
	data_len = S.link[0].len;
	ck_assert_uint_le(data_len, sizeof(data));
	memcpy(data, S.link[0].data, data_len);
	S.link_len = 0;

	nt_hash2(mac1_key, "mac1----", 8, S.b.id.public_key, NT_KEY_LEN);
	for (size_t i = 0; i < 302; i++) {
		union nt_endpoint from = { 0 };

		from.in4.sin_family = AF_INET;
		from.in4.sin_port = htons((uint16_t)(2000 + i));
		from.in4.sin_addr.s_addr = htonl(0xc6336401u); /* 198.51.100.1 */
		if (i == 300) {
			memcpy(bufs[i], data, data_len);
			dg[i] = (struct nt_datagram){ .data = bufs[i], .len = data_len, .cap = sizeof(bufs[0]),
						      .from = S.a.addr };
			continue;
		}
		for (size_t k = 0; k < NT_INIT_LEN; k++)
			bufs[i][k] = (uint8_t)(i * 31 + k * 7);
		bufs[i][0] = NT_MSG_INITIATION;
		bufs[i][1] = bufs[i][2] = bufs[i][3] = 0;
		nt_mac(bufs[i] + NT_INIT_OFF_MAC1, mac1_key, NT_KEY_LEN, bufs[i], NT_INIT_OFF_MAC1);
		memset(bufs[i] + NT_INIT_OFF_MAC2, 0, NT_MAC_LEN);
		dg[i] = (struct nt_datagram){ .data = bufs[i], .len = NT_INIT_LEN, .cap = sizeof(bufs[0]),
					      .from = i == 301 ? S.a.addr : from };
	}
	/* 301 handshakes hold only NT_ENGINE_HELD_MAX: put A's initiation among them */
	memcpy(bufs[301 - 200], bufs[301], NT_INIT_LEN);
	memcpy(bufs[301], bufs[0], NT_INIT_LEN);
	dg[301 - 200].from = S.a.addr;
	dg[301].from = dg[0].from;

	rx_before = S.b.rx_len;
	cookies_before = S.b.sent_by_type[NT_MSG_COOKIE];
	flood_before = S.b.eng.drops[NT_DROP_FLOOD];
	responses_before = S.b.sent_by_type[NT_MSG_RESPONSE];
	nt_engine_receive(&S.b.eng, dg, 302, now_of(), &S.b.out);
	nt_engine_flush(&S.b.out);
	ck_assert_uint_eq(S.b.rx_len, rx_before + 1);
	/* A's cookie reply, and the flooding address's burst of its own cookie rate limit
	 * (within the batch's budget): one address no longer gets a reply per datagram. */
	ck_assert_uint_lt(1 + NT_RATELIMITER_BURST, NT_ENGINE_COOKIE_BUDGET);
	ck_assert_uint_eq(S.b.sent_by_type[NT_MSG_COOKIE] - cookies_before, 1 + NT_RATELIMITER_BURST);
	ck_assert_uint_eq(S.b.eng.drops[NT_DROP_FLOOD] - flood_before, 301 - 1 - NT_RATELIMITER_BURST);
	for (size_t i = 0; i < S.link_len; i++)
		to_a += S.link[i].to == &S.a && S.link[i].data[0] == NT_MSG_COOKIE;
	ck_assert_uint_eq(to_a, 1);
	ck_assert_uint_eq(S.b.sent_by_type[NT_MSG_RESPONSE], responses_before);
	sim_teardown();
}
END_TEST

/* Two initiations of A's in one batch, the newer first: their crypto is prepared
 * together (host.parallel, here in reverse order), their state changes applied in arrival
 * order, so the newer is answered and the older refused as a replay (its timestamp is
 * behind), as if they had come one at a time. */
START_TEST(test_batch_initiations_applied_in_order)
{
	static struct nt_datagram dg[2];
	static uint8_t bufs[2][256];
	struct nt_handshake hs1, hs2;
	struct nt_cookie_maker maker;
	unsigned calls;

	sim_setup();
	memset(&hs1, 0, sizeof(hs1));
	memset(&hs2, 0, sizeof(hs2));
	nt_handshake_init(&hs1, &S.a.id, S.b.id.public_key, NULL);
	nt_handshake_init(&hs2, &S.a.id, S.b.id.public_key, NULL);
	nt_cookie_maker_init(&maker, S.b.id.public_key);
	ck_assert_int_eq(nt_noise_create_initiation(bufs[1], &hs1, &S.a.id, 1111, WALL0 + S.now, &S.a.rng), NT_OK);
	ck_assert_int_eq(nt_noise_create_initiation(bufs[0], &hs2, &S.a.id, 2222, WALL0 + S.now + MSEC(5), &S.a.rng),
			 NT_OK);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(nt_cookie_add_macs(&maker, bufs[i], NT_INIT_LEN, S.now), 0);
		dg[i] = (struct nt_datagram){ .data = bufs[i], .len = NT_INIT_LEN, .cap = sizeof(bufs[0]),
					      .from = S.a.addr };
	}
	calls = parallel_calls;
	nt_engine_receive(&S.b.eng, dg, 2, now_of(), &S.b.out);
	nt_engine_flush(&S.b.out);
	ck_assert_uint_eq(parallel_calls, calls + 1);
	ck_assert_uint_eq(S.b.sent_by_type[NT_MSG_RESPONSE], 1);
	ck_assert_uint_eq(S.b.eng.drops[NT_DROP_TIMESTAMP], 1);
	ck_assert_uint_eq(S.b.peer.hs.remote_index, 2222);
	nt_handshake_destroy(&hs1);
	nt_handshake_destroy(&hs2);
	nt_cookie_maker_wipe(&maker);
	/* and afterwards A's own handshake (past the 1/50 s guard) and data go through */
	S.now += SEC(1);
	run(S.now + SEC(2), &S.a, MSEC(100), NULL);
	ck_assert(received(&S.b, 2));
	sim_teardown();
}
END_TEST

START_TEST(test_simultaneous_initiation)
{
	sim_setup();
	app_send(&S.a);
	app_send(&S.b); /* both start a handshake at the same instant */
	ck_assert_uint_eq(S.a.sent_by_type[NT_MSG_INITIATION], 1);
	ck_assert_uint_eq(S.b.sent_by_type[NT_MSG_INITIATION], 1);
	/* Each answers the other's initiation, which replaces its own: each response then
	 * names an index its receiver no longer has, and each side holds an unconfirmed
	 * responder session it may not send on. */
	run(S.now + SEC(2), NULL, 0, NULL);
	ck_assert_uint_eq(S.a.ev_count[NT_EV_RESPONSE_SENT], 1);
	ck_assert_uint_eq(S.b.ev_count[NT_EV_RESPONSE_SENT], 1);
	ck_assert_uint_eq(S.a.eng.drops[NT_DROP_INDEX], 1);
	ck_assert_uint_eq(S.b.eng.drops[NT_DROP_INDEX], 1);
	ck_assert_uint_eq(S.a.rx_len + S.b.rx_len, 0);
	/* The retransmits (REKEY_TIMEOUT + jitter, different at each side) settle it. */
	run(S.now + NT_REKEY_TIMEOUT + NT_REKEY_TIMEOUT_JITTER_MAX, NULL, 0, NULL);
	ck_assert_uint_eq(S.a.ev_count[NT_EV_SESSION_ESTABLISHED] + S.b.ev_count[NT_EV_SESSION_ESTABLISHED], 1);
	ck_assert(received(&S.a, 1));
	ck_assert(received(&S.b, 1));
	/* afterwards both directions keep working on one agreed session */
	run(S.now + SEC(20), &S.a, MSEC(300), &S.b);
	ck_assert_uint_ge(S.a.rx_len, 60);
	ck_assert_uint_ge(S.b.rx_len, 60);
	ck_assert(received(&S.a, S.b.tx_ids - 1));
	ck_assert(received(&S.b, S.a.tx_ids - 1));
	assert_no_duplicates(&S.a);
	assert_no_duplicates(&S.b);
	sim_teardown();
}
END_TEST

START_TEST(test_key_change_mid_session)
{
	uint8_t key[NT_KEY_LEN];
	uint64_t decrypt_before;

	sim_setup();
	run(S.now + SEC(1), &S.a, SEC(1), NULL);
	run(S.now + SEC(5), &S.a, SEC(1), &S.b);
	ck_assert(received(&S.b, S.a.tx_ids - 1)); /* the last is still in flight */
	ck_assert(received(&S.a, S.b.tx_ids - 1));
	/* B takes a new private key: its sessions go at once */
	memset(key, 0x33, sizeof(key));
	ck_assert_ptr_null(nt_engine_set_private_key(&S.b.eng, key));
	ck_assert_ptr_null(S.b.peer.kps);
	ck_assert_uint_eq(nt_index_count(&S.b.eng.indices), 0);
	/* A still seals for the old session: B cannot read it; A's new handshakes go to the
	 * old key and fail mac1 at B */
	decrypt_before = S.b.eng.drops[NT_DROP_DECRYPT];
	run(S.now + SEC(10), &S.a, SEC(1), NULL);
	ck_assert_uint_gt(S.b.eng.drops[NT_DROP_INDEX] + S.b.eng.drops[NT_DROP_DECRYPT] - decrypt_before, 0);
	/* A learns B's new public key (remove and add the peer): traffic flows again */
	nt_engine_peer_remove(&S.a.eng, &S.a.peer);
	peer_init(&S.a, &S.b, "10.0.0.2", true);
	run(S.now + SEC(5), &S.a, SEC(1), NULL);
	ck_assert(received(&S.b, S.a.tx_ids - 1));
	ck_assert_uint_ge(S.a.ev_count[NT_EV_SESSION_ESTABLISHED], 2);
	sim_teardown();
}
END_TEST

/* ---- lifecycle and PSK mismatch (issue 18) ---- */

static unsigned psk_reports(const struct node *n, uint64_t value)
{
	unsigned c = 0;

	for (size_t i = 0; i < n->events_len; i++)
		if (n->events[i].type == NT_EV_LIKELY_PSK_MISMATCH && n->events[i].value == value)
			c++;
	return c;
}

START_TEST(test_disabled_peer_ends_sessions_and_refuses_handshakes)
{
	unsigned est, rx, b_inits;

	sim_setup();
	run(S.now + SEC(3), &S.a, SEC(1), &S.b);
	ck_assert_ptr_nonnull(S.b.peer.kps);
	/* B disables A: its sessions end at once, an event says so */
	nt_engine_peer_set_lifecycle(&S.b.eng, &S.b.peer, true, 0, now_of(), &S.b.out);
	nt_engine_flush(&S.b.out);
	ck_assert_ptr_null(S.b.peer.kps);
	ck_assert_uint_eq(nt_index_count(&S.b.eng.indices), 0);
	ck_assert_uint_eq(S.b.ev_count[NT_EV_PEER_BLOCKED], 1);
	ck_assert_int_eq(nt_engine_peer_block_reason(&S.b.peer, now_of()), NT_BLOCK_DISABLED);
	/* A keeps sending: nothing gets through, no handshake succeeds either way */
	est = S.a.ev_count[NT_EV_SESSION_ESTABLISHED] + S.b.ev_count[NT_EV_SESSION_ESTABLISHED];
	rx = (unsigned)S.b.rx_len;
	b_inits = S.b.sent_by_type[NT_MSG_INITIATION];
	run(S.now + SEC(30), &S.a, SEC(1), &S.b);
	ck_assert_uint_eq(S.b.rx_len, rx);
	ck_assert_uint_eq(S.a.ev_count[NT_EV_SESSION_ESTABLISHED] + S.b.ev_count[NT_EV_SESSION_ESTABLISHED], est);
	ck_assert_uint_gt(S.b.ev_count[NT_EV_HANDSHAKE_REFUSED], 0);
	ck_assert_uint_eq(S.b.sent_by_type[NT_MSG_INITIATION], b_inits); /* B's packets start none */
	ck_assert_ptr_null(S.b.peer.kps);
	ck_assert_uint_eq(S.b.ev_count[NT_EV_PEER_BLOCKED], 1); /* once */
	ck_assert_uint_gt(S.b.eng.drops_blocked, 0);
	/* enabled again: traffic flows */
	nt_engine_peer_set_lifecycle(&S.b.eng, &S.b.peer, false, 0, now_of(), &S.b.out);
	nt_engine_flush(&S.b.out);
	ck_assert_uint_eq(S.b.ev_count[NT_EV_PEER_UNBLOCKED], 1);
	run(S.now + SEC(10), &S.a, SEC(1), NULL);
	ck_assert(received(&S.b, S.a.tx_ids - 1));
	sim_teardown();
}
END_TEST

START_TEST(test_valid_until_passes_without_traffic)
{
	uint64_t rx;

	sim_setup();
	run(S.now + SEC(3), &S.a, SEC(1), &S.b);
	ck_assert_ptr_nonnull(S.b.peer.kps);
	/* valid for 5 more seconds */
	nt_engine_peer_set_lifecycle(&S.b.eng, &S.b.peer, false, now_of().wall + SEC(5), now_of(), &S.b.out);
	nt_engine_flush(&S.b.out);
	ck_assert_uint_eq(S.b.ev_count[NT_EV_PEER_BLOCKED], 0);
	ck_assert_uint_le(nt_engine_next_deadline(&S.b.eng), S.now + SEC(5));
	run(S.now + SEC(4), &S.a, SEC(1), NULL);
	ck_assert(received(&S.b, S.a.tx_ids - 1));
	ck_assert_ptr_nonnull(S.b.peer.kps);
	/* no traffic at all: the timer alone ends the session when it passes */
	run(S.now + SEC(2), NULL, 0, NULL);
	ck_assert_ptr_null(S.b.peer.kps);
	ck_assert_uint_eq(S.b.ev_count[NT_EV_PEER_BLOCKED], 1);
	ck_assert_uint_eq(S.b.events[S.b.events_len - 1].value, NT_BLOCK_EXPIRED);
	rx = S.b.rx_len;
	run(S.now + SEC(20), &S.a, SEC(1), NULL);
	ck_assert_uint_eq(S.b.rx_len, rx);
	ck_assert_uint_eq(nt_engine_next_deadline(&S.b.eng) == UINT64_MAX ||
				  nt_engine_next_deadline(&S.b.eng) > S.now - SEC(1), 1);
	/* already past when set: blocked at once, both clocks */
	nt_engine_peer_set_lifecycle(&S.a.eng, &S.a.peer, false, now_of().wall - SEC(1), now_of(), &S.a.out);
	nt_engine_flush(&S.a.out);
	ck_assert_ptr_null(S.a.peer.kps);
	ck_assert_int_eq(nt_engine_peer_block_reason(&S.a.peer, now_of()), NT_BLOCK_EXPIRED);
	/* extended: valid again */
	nt_engine_peer_set_lifecycle(&S.b.eng, &S.b.peer, false, now_of().wall + SEC(3600), now_of(), &S.b.out);
	nt_engine_peer_set_lifecycle(&S.a.eng, &S.a.peer, false, 0, now_of(), &S.a.out);
	nt_engine_flush(&S.a.out);
	nt_engine_flush(&S.b.out);
	run(S.now + SEC(10), &S.a, SEC(1), NULL);
	ck_assert(received(&S.b, S.a.tx_ids - 1));
	sim_teardown();
}
END_TEST

START_TEST(test_psk_mismatch_reported_once_per_initiation)
{
	uint8_t psk_a[NT_KEY_LEN], psk_b[NT_KEY_LEN];
	unsigned inits;

	sim_setup();
	memset(psk_a, 0x5a, sizeof(psk_a));
	memset(psk_b, 0xa5, sizeof(psk_b));
	nt_handshake_set_psk(&S.a.peer.hs, psk_a);
	nt_handshake_set_psk(&S.b.peer.hs, psk_b);
	run(S.now + SEC(22), &S.a, SEC(1), NULL);
	ck_assert_uint_eq(S.a.ev_count[NT_EV_SESSION_ESTABLISHED], 0);
	ck_assert_uint_eq(S.b.rx_len, 0);
	inits = S.a.sent_by_type[NT_MSG_INITIATION];
	ck_assert_uint_ge(inits, 3);
	/* the initiator: each response that failed to open, once per initiation */
	ck_assert_uint_eq(psk_reports(&S.a, 0), S.b.sent_by_type[NT_MSG_RESPONSE]);
	ck_assert_uint_le(psk_reports(&S.a, 0), inits);
	/* the responder: from the third initiation on (two responses unused) */
	ck_assert_uint_eq(psk_reports(&S.b, 1), S.b.ev_count[NT_EV_INITIATION_RECEIVED] - 2);
	/* a response replayed: no second report for the same initiation */
	ck_assert_uint_eq(S.a.ev_count[NT_EV_LIKELY_PSK_MISMATCH], psk_reports(&S.a, 0));
	/* the same PSK on both: works, and no more reports */
	nt_handshake_set_psk(&S.b.peer.hs, psk_a);
	run(S.now + SEC(10), &S.a, SEC(1), NULL);
	ck_assert_uint_ge(S.a.ev_count[NT_EV_SESSION_ESTABLISHED], 1);
	ck_assert(received(&S.b, S.a.tx_ids - 1));
	ck_assert_uint_eq(S.b.peer.unconfirmed_responses, 0);
	sim_teardown();
}
END_TEST

/* Not a check of behaviour: how fast the simulation runs, for the record. */
/* ---- asynchronous handshakes (host.submit): B's jobs deferred ---- */

/* Another initiator of B's: its identity and handshake, and B's peer for it (malloc'd,
 * so that ASan sees a use after nt_engine_peer_remove and free). */
struct initiator {
	struct nt_noise_static id;
	struct nt_handshake hs;
	struct nt_cookie_maker maker;
	struct nt_peer *at_b;
	union nt_endpoint from;
};

static void initiator_init(struct initiator *in, uint8_t key_byte, uint32_t addr)
{
	uint8_t key[NT_KEY_LEN];

	memset(in, 0, sizeof(*in));
	memset(key, key_byte, sizeof(key));
	nt_noise_static_init(&in->id, key);
	nt_handshake_init(&in->hs, &in->id, S.b.id.public_key, NULL);
	nt_cookie_maker_init(&in->maker, S.b.id.public_key);
	in->at_b = calloc(1, sizeof(*in->at_b));
	ck_assert_ptr_nonnull(in->at_b);
	ck_assert_int_eq(nt_engine_peer_add(&S.b.eng, in->at_b, in->id.public_key), 0);
	in->from.in4.sin_family = AF_INET;
	in->from.in4.sin_port = htons(4000);
	in->from.in4.sin_addr.s_addr = htonl(addr);
}

static void initiator_remove(struct initiator *in)
{
	if (in->at_b) {
		nt_engine_peer_remove(&S.b.eng, in->at_b);
		nt_wipe(in->at_b, sizeof(*in->at_b));
		free(in->at_b);
		in->at_b = NULL;
	}
	nt_handshake_destroy(&in->hs);
	nt_cookie_maker_wipe(&in->maker);
	nt_noise_static_clear(&in->id);
}

/* An initiation of in's, sender index idx, into buf as datagram dg. */
static void initiator_message(struct initiator *in, uint32_t idx, uint8_t *buf, size_t cap, struct nt_datagram *dg)
{
	ck_assert_int_eq(nt_noise_create_initiation(buf, &in->hs, &in->id, idx, WALL0 + S.now, &S.a.rng), NT_OK);
	ck_assert_int_eq(nt_cookie_add_macs(&in->maker, buf, NT_INIT_LEN, S.now), 0);
	*dg = (struct nt_datagram){ .data = buf, .len = NT_INIT_LEN, .cap = cap, .from = in->from };
}

/* Not a real initiation (its AEADs fail), but past mac1 and, with_mac2, past mac2 for
 * from: what admission looks at. */
static void junk_initiation(uint8_t *buf, unsigned seed, const union nt_endpoint *from, bool with_mac2)
{
	struct nt_cookie_maker maker;
	uint8_t src[18], reply[NT_COOKIE_MSG_LEN];
	size_t src_len = nt_endpoint_cookie_src(from, src);

	for (size_t k = 0; k < NT_INIT_LEN; k++)
		buf[k] = (uint8_t)(seed * 131 + k * 7 + 1);
	buf[0] = NT_MSG_INITIATION;
	buf[1] = buf[2] = buf[3] = 0;
	nt_cookie_maker_init(&maker, S.b.id.public_key);
	ck_assert_int_eq(nt_cookie_add_macs(&maker, buf, NT_INIT_LEN, S.now), 0);
	if (with_mac2) {
		ck_assert_int_eq(nt_cookie_create_reply(&S.b.eng.cookie_checker, reply, buf, NT_INIT_LEN, src, src_len,
							S.now, &S.b.rng), 0);
		ck_assert_int_eq(nt_cookie_consume_reply(&maker, reply, sizeof(reply), S.now), 0);
		ck_assert_int_eq(nt_cookie_add_macs(&maker, buf, NT_INIT_LEN, S.now), 0);
	}
	nt_cookie_maker_wipe(&maker);
}

static union nt_endpoint source(unsigned i)
{
	union nt_endpoint ep = { 0 };

	ep.in4.sin_family = AF_INET;
	ep.in4.sin_port = htons(5000);
	ep.in4.sin_addr.s_addr = htonl(0xc6120000u + i); /* 198.18.x.y */
	return ep;
}

static void b_collect(void)
{
	nt_engine_collect(&S.b.eng, now_of(), &S.b.out);
	nt_engine_flush(&S.b.out);
}

/* A's handshake with B: the initiation waits as a job (no response, nothing blocked) until
 * it is run; then the response, the session and data both ways. */
START_TEST(test_async_handshake_then_data)
{
	sim_setup_with(true);
	app_send(&S.a);
	run(S.now + MSEC(15), NULL, 0, NULL);
	ck_assert_uint_eq(D.submits, 1);
	ck_assert_uint_eq(nt_engine_jobs_pending(&S.b.eng), 1);
	ck_assert_uint_eq(S.b.sent_by_type[NT_MSG_RESPONSE], 0);
	ck_assert_uint_eq(S.b.ev_count[NT_EV_UNDER_LOAD], 0);
	b_collect(); /* not done yet: nothing */
	ck_assert_uint_eq(S.b.sent_by_type[NT_MSG_RESPONSE], 0);
	S.auto_jobs = true;
	run(S.now + SEC(1), &S.a, MSEC(100), NULL);
	run(S.now + SEC(3), &S.a, MSEC(100), &S.b);
	ck_assert_uint_eq(S.b.sent_by_type[NT_MSG_RESPONSE], 1);
	ck_assert_uint_eq(S.a.ev_count[NT_EV_SESSION_ESTABLISHED], 1);
	ck_assert_uint_eq(S.b.ev_count[NT_EV_SESSION_CONFIRMED], 1);
	ck_assert(received(&S.b, 1));
	ck_assert_uint_ge(S.a.rx_len, 25);
	ck_assert_uint_ge(S.b.rx_len, 25);
	ck_assert_uint_eq(nt_engine_jobs_pending(&S.b.eng), 0);
	sim_teardown();
}
END_TEST

/* Six initiators in one batch; their jobs finish out of order. Collect applies none until
 * the first is done, then all, in submission order, and each response verifies at its
 * initiator. */
START_TEST(test_async_out_of_order_results_in_order)
{
	static struct nt_datagram dg[6];
	static uint8_t bufs[6][256];
	struct initiator in[6];

	sim_setup_with(true);
	for (unsigned i = 0; i < 6; i++) {
		initiator_init(&in[i], (uint8_t)(0x40 + i), 0xc6336401u + i);
		initiator_message(&in[i], 1000 + i, bufs[i], sizeof(bufs[0]), &dg[i]);
	}
	nt_engine_receive(&S.b.eng, dg, 6, now_of(), &S.b.out);
	nt_engine_flush(&S.b.out);
	ck_assert_uint_eq(D.len, 6);
	ck_assert_uint_eq(nt_engine_jobs_pending(&S.b.eng), 6);
	ck_assert_uint_eq(S.b.ev_count[NT_EV_UNDER_LOAD], 0); /* 6 < 8 */
	ck_assert_uint_eq(S.captured_len, 0);
	/* the last submitted, then the fourth: the first is not done, nothing is applied */
	deferred_run(5);
	deferred_run(3);
	b_collect();
	ck_assert_uint_eq(S.captured_len, 0);
	ck_assert_uint_eq(nt_engine_jobs_pending(&S.b.eng), 6);
	deferred_run_all();
	b_collect();
	ck_assert_uint_eq(nt_engine_jobs_pending(&S.b.eng), 0);
	ck_assert_uint_eq(S.captured_len, 6);
	ck_assert_uint_eq(S.b.ev_count[NT_EV_RESPONSE_SENT], 6);
	for (unsigned i = 0; i < 6; i++) {
		ck_assert_uint_eq(nt_noise_response_receiver(S.captured[i]), 1000 + i);
		ck_assert(nt_endpoint_equal(&S.captured_to[i], &in[i].from));
		ck_assert_int_eq(nt_noise_consume_response(&in[i].hs, S.captured[i], NT_RESP_LEN, &in[i].id), NT_OK);
		ck_assert(nt_endpoint_equal(&in[i].at_b->endpoint, &in[i].from));
	}
	for (unsigned i = 0; i < 6; i++)
		initiator_remove(&in[i]);
	sim_teardown();
}
END_TEST

/* Configuration changes between submit and collect: a removed (and freed) peer's job is
 * discarded, another peer's is still answered; a new private key discards all (the job
 * not yet run skips its work); down discards and wipes at once. Run under ASan: no job
 * touches the freed peer. */
START_TEST(test_async_config_change_discards_results)
{
	static struct nt_datagram dg[2];
	static uint8_t bufs[2][256];
	struct initiator in[2];
	uint8_t key[NT_KEY_LEN];
	unsigned barriers;

	sim_setup_with(true);
	initiator_init(&in[0], 0x50, 0xc6336411u);
	initiator_init(&in[1], 0x51, 0xc6336412u);
	initiator_message(&in[0], 2000, bufs[0], sizeof(bufs[0]), &dg[0]);
	initiator_message(&in[1], 2001, bufs[1], sizeof(bufs[1]), &dg[1]);
	nt_engine_receive(&S.b.eng, dg, 2, now_of(), &S.b.out);
	nt_engine_flush(&S.b.out);
	ck_assert_uint_eq(D.len, 2);
	deferred_run(0); /* in[0]'s: its result points to in[0]'s peer at B */
	barriers = D.barriers;
	nt_engine_peer_remove(&S.b.eng, in[0].at_b);
	ck_assert_uint_eq(D.barriers, barriers + 1); /* which ran in[1]'s job */
	ck_assert_uint_eq(D.len, 0);
	nt_wipe(in[0].at_b, sizeof(*in[0].at_b));
	free(in[0].at_b);
	in[0].at_b = NULL;
	b_collect();
	ck_assert_uint_eq(nt_engine_jobs_pending(&S.b.eng), 0);
	ck_assert_uint_eq(S.b.eng.hs_jobs_discarded, 1);
	ck_assert_uint_eq(S.captured_len, 1);
	ck_assert_uint_eq(nt_noise_response_receiver(S.captured[0]), 2001);
	ck_assert_int_eq(nt_noise_consume_response(&in[1].hs, S.captured[0], NT_RESP_LEN, &in[1].id), NT_OK);

	/* a new private key at B while in[1]'s next initiation waits, not yet run */
	S.now += SEC(1);
	initiator_message(&in[1], 2002, bufs[1], sizeof(bufs[1]), &dg[1]);
	nt_engine_receive(&S.b.eng, &dg[1], 1, now_of(), &S.b.out);
	nt_engine_flush(&S.b.out);
	ck_assert_uint_eq(nt_engine_jobs_pending(&S.b.eng), 1);
	memset(key, 0x33, sizeof(key));
	ck_assert_ptr_null(nt_engine_set_private_key(&S.b.eng, key));
	ck_assert_uint_eq(D.barriers, barriers + 2);
	ck_assert_uint_eq(nt_engine_jobs_pending(&S.b.eng), 0); /* all stale: released at once */
	ck_assert_uint_eq(S.b.eng.hs_jobs_discarded, 2);
	b_collect();
	ck_assert_uint_eq(S.captured_len, 1);

	/* down with a job pending: discarded, and nothing is left to collect after up */
	S.now += SEC(1);
	nt_handshake_init(&in[1].hs, &in[1].id, S.b.id.public_key, NULL);
	nt_cookie_maker_init(&in[1].maker, S.b.id.public_key);
	initiator_message(&in[1], 2003, bufs[1], sizeof(bufs[1]), &dg[1]);
	nt_engine_receive(&S.b.eng, &dg[1], 1, now_of(), &S.b.out);
	nt_engine_flush(&S.b.out);
	ck_assert_uint_eq(nt_engine_jobs_pending(&S.b.eng), 1);
	nt_engine_set_up(&S.b.eng, false, now_of());
	ck_assert_uint_eq(nt_engine_jobs_pending(&S.b.eng), 0);
	ck_assert_uint_eq(S.b.eng.hs_jobs_discarded, 3);
	nt_engine_set_up(&S.b.eng, true, now_of());
	b_collect();
	ck_assert_uint_eq(S.captured_len, 1);
	/* and the same initiation, now that B is up with its new key, is answered */
	S.now += SEC(1);
	initiator_message(&in[1], 2004, bufs[1], sizeof(bufs[1]), &dg[1]);
	nt_engine_receive(&S.b.eng, &dg[1], 1, now_of(), &S.b.out);
	nt_engine_flush(&S.b.out);
	deferred_run_all();
	b_collect();
	ck_assert_uint_eq(S.captured_len, 2);
	ck_assert_int_eq(nt_noise_consume_response(&in[1].hs, S.captured[1], NT_RESP_LEN, &in[1].id), NT_OK);
	initiator_remove(&in[0]);
	initiator_remove(&in[1]);
	sim_teardown();
}
END_TEST

/* With the ring, the ring is the handshake queue, load at 1/8 of it (NT_ENGINE_JOBS_MAX /
 * 8), as the kernel's queue is: batches of 12 (load at 8 a batch for a host without the
 * ring, at 16 with it) pile up jobs without load; once 1/8 of the ring waits, one more
 * initiation gets a cookie reply. */
START_TEST(test_async_pending_jobs_count_as_load)
{
	static struct nt_datagram dg[12];
	static uint8_t bufs[12][256];
	const unsigned threshold = NT_ENGINE_JOBS_MAX / 8;
	unsigned sent = 0;

	sim_setup_with(true);
	while (sent < threshold) {
		unsigned k, n = threshold - sent < 12 ? threshold - sent : 12;

		for (k = 0; k < n; k++, sent++) {
			dg[k] = (struct nt_datagram){ .data = bufs[k], .len = NT_INIT_LEN, .cap = sizeof(bufs[0]),
						      .from = source(sent) };
			junk_initiation(bufs[k], sent, &dg[k].from, false);
		}
		nt_engine_receive(&S.b.eng, dg, n, now_of(), &S.b.out);
		nt_engine_flush(&S.b.out);
		ck_assert_uint_eq(nt_engine_jobs_pending(&S.b.eng), sent);
		ck_assert_uint_eq(S.b.ev_count[NT_EV_UNDER_LOAD], 0);
		S.now += MSEC(1);
	}
	ck_assert(!nt_engine_under_load(&S.b.eng, S.now));
	dg[0] = (struct nt_datagram){ .data = bufs[0], .len = NT_INIT_LEN, .cap = sizeof(bufs[0]), .from = source(sent) };
	junk_initiation(bufs[0], sent, &dg[0].from, false);
	nt_engine_receive(&S.b.eng, dg, 1, now_of(), &S.b.out);
	nt_engine_flush(&S.b.out);
	ck_assert_uint_eq(S.b.ev_count[NT_EV_UNDER_LOAD], 1);
	ck_assert(nt_engine_under_load(&S.b.eng, S.now));
	ck_assert_uint_eq(S.b.sent_by_type[NT_MSG_COOKIE], 1);
	ck_assert_uint_eq(nt_engine_jobs_pending(&S.b.eng), threshold);
	/* the junk fails at its first AEAD once run */
	deferred_run_all();
	b_collect();
	ck_assert_uint_eq(nt_engine_jobs_pending(&S.b.eng), 0);
	ck_assert_uint_eq(S.b.eng.drops[NT_DROP_DECRYPT], threshold);
	sim_teardown();
}
END_TEST

/* The ring's bound: under load, batches of mac2-valid initiations from distinct sources
 * fill NT_ENGINE_JOBS_MAX jobs; the rest are dropped as flood. A data message in the same
 * batch as a full ring still reaches the TUN at once. */
/* ... and one batch of NT_ENGINE_JOBS_MAX / 16 initiations is load at once (a flood's
 * burst), one fewer is not. */
START_TEST(test_async_burst_is_load)
{
	static struct nt_datagram dg[NT_ENGINE_JOBS_MAX / 16];
	static uint8_t bufs[NT_ENGINE_JOBS_MAX / 16][256];
	const unsigned burst = NT_ENGINE_JOBS_MAX / 16;

	sim_setup_with(true);
	for (unsigned round = 0; round < 2; round++) {
		unsigned n = round ? burst : burst - 1;

		for (unsigned k = 0; k < n; k++) {
			dg[k] = (struct nt_datagram){ .data = bufs[k], .len = NT_INIT_LEN, .cap = sizeof(bufs[0]),
						      .from = source(round * 100 + k) };
			junk_initiation(bufs[k], round * 100 + k, &dg[k].from, false);
		}
		nt_engine_receive(&S.b.eng, dg, n, now_of(), &S.b.out);
		nt_engine_flush(&S.b.out);
		ck_assert_uint_eq(S.b.ev_count[NT_EV_UNDER_LOAD], round);
		deferred_run_all();
		b_collect();
		ck_assert_uint_eq(nt_engine_jobs_pending(&S.b.eng), 0);
	}
	sim_teardown();
}
END_TEST

START_TEST(test_async_ring_bound)
{
	static struct nt_datagram dg[NT_ENGINE_ADMITTED_MAX + 1];
	static uint8_t bufs[NT_ENGINE_ADMITTED_MAX + 1][256];
	const unsigned total = NT_ENGINE_JOBS_MAX + 3 * NT_ENGINE_ADMITTED_MAX;
	uint64_t flood_before;
	size_t rx_before, data_len;
	unsigned sent = 0;

	sim_setup_with(true);
	S.auto_jobs = true;
	run(S.now + SEC(1), &S.a, MSEC(100), NULL);
	ck_assert_uint_eq(S.b.ev_count[NT_EV_SESSION_CONFIRMED], 1);
	S.auto_jobs = false;
	S.link_len = 0;
	app_send(&S.a); /* a data message to B, kept for the last batch */
	ck_assert_uint_eq(S.link_len, 1);
	data_len = S.link[0].len;
	memcpy(bufs[NT_ENGINE_ADMITTED_MAX], S.link[0].data, data_len);
	S.link_len = 0;

	flood_before = S.b.eng.drops[NT_DROP_FLOOD];
	while (sent < total) {
		for (unsigned k = 0; k < NT_ENGINE_ADMITTED_MAX; k++, sent++) {
			dg[k] = (struct nt_datagram){ .data = bufs[k], .len = NT_INIT_LEN, .cap = sizeof(bufs[0]),
						      .from = source(sent) };
			junk_initiation(bufs[k], sent, &dg[k].from, true);
		}
		rx_before = S.b.rx_len;
		dg[NT_ENGINE_ADMITTED_MAX] = (struct nt_datagram){ .data = bufs[NT_ENGINE_ADMITTED_MAX], .len = data_len,
								   .cap = sizeof(bufs[0]), .from = S.a.addr };
		nt_engine_receive(&S.b.eng, dg, sent < total ? NT_ENGINE_ADMITTED_MAX : NT_ENGINE_ADMITTED_MAX + 1,
				  now_of(), &S.b.out);
		nt_engine_flush(&S.b.out);
		ck_assert_uint_le(nt_engine_jobs_pending(&S.b.eng), NT_ENGINE_JOBS_MAX);
		S.now += MSEC(1);
	}
	ck_assert_uint_eq(S.b.ev_count[NT_EV_UNDER_LOAD], 1);
	ck_assert_uint_eq(nt_engine_jobs_pending(&S.b.eng), NT_ENGINE_JOBS_MAX);
	ck_assert_uint_eq(D.len, NT_ENGINE_JOBS_MAX);
	ck_assert_uint_eq(S.b.eng.drops[NT_DROP_FLOOD] - flood_before, total - NT_ENGINE_JOBS_MAX);
	ck_assert_uint_eq(S.b.rx_len, rx_before + 1); /* the data, with the ring full */
	deferred_run_all();
	b_collect();
	ck_assert_uint_eq(nt_engine_jobs_pending(&S.b.eng), 0);
	sim_teardown();
}
END_TEST

/* A batch's transport AEAD split over threads (issue 19 part 4): 600 TUN reads sealed as
 * one batch, every datagram duplicated on the link (some copies in the same batch as the
 * original), all opened by a receiver whose batches are split too (more than
 * NT_ENGINE_CRYPTO_OPS at once: the ops run twice). Counters and the replay window stay in
 * order: every packet arrives exactly once, nothing fails to open. Under ASan this is also
 * the check that no chunk touches another's memory. */
START_TEST(test_data_batches_split_over_threads)
{
	static uint8_t bufs[600][NT_DATA_HEADER_LEN + PKT_LEN + NT_ENGINE_TAIL_ROOM];
	unsigned calls;

	node_threaded = true;
	sim_setup();
	app_send(&S.a);
	run(S.now + SEC(1), NULL, 0, NULL);
	ck_assert(received(&S.b, 1));
	S.dup = 1000;
	calls = threaded_calls;
	for (size_t k = 0; k < 600; k++) {
		app_packet(&S.a, bufs[k] + NT_DATA_HEADER_LEN);
		nt_engine_tun_packet(&S.a.eng, bufs[k] + NT_DATA_HEADER_LEN, PKT_LEN, now_of(), &S.a.out);
	}
	nt_engine_flush(&S.a.out);
	ck_assert_uint_gt(threaded_calls, calls); /* sealing was split */
	calls = threaded_calls;
	run(S.now + SEC(1), NULL, 0, NULL);
	ck_assert_uint_gt(threaded_calls, calls); /* and opening */
	for (uint32_t id = 1; id <= 601; id++)
		ck_assert_msg(received(&S.b, id), "packet %u lost", id);
	assert_no_duplicates(&S.b);
	ck_assert_uint_eq(S.b.rx_len, 601);
	ck_assert_uint_eq(S.b.eng.drops[NT_DROP_DECRYPT], 0);
	ck_assert_uint_ge(S.b.eng.drops[NT_DROP_REPLAY], 600); /* each copy, in or after its batch */
	ck_assert_uint_ge(S.b.peer.rx_packets, 601);
	sim_teardown();
}
END_TEST

START_TEST(test_speed_protocol_hours)
{
	struct timespec t0, t1, c0, c1;
	double wall, cpu;

	sim_setup();
	S.loss = 20;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
	run(S.now + SEC(2 * 3600), &S.a, SEC(1), &S.b); /* two hours, a packet a second each way */
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	cpu = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
	printf("test_engine: 2 protocol hours (%zu + %zu packets, %u + %u handshakes) in %.3f s wall, %.3f s CPU: "
	       "%.0f protocol-hours per wall second, %.0f per CPU second\n",
	       S.a.rx_len, S.b.rx_len, S.a.ev_count[NT_EV_SESSION_ESTABLISHED], S.b.ev_count[NT_EV_SESSION_ESTABLISHED],
	       wall, cpu, 2 / wall, 2 / cpu);
	ck_assert_uint_ge(S.a.rx_len, 6500);
	ck_assert_uint_ge(S.b.rx_len, 6500);
	sim_teardown();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("engine");
	TCase *tc = tcase_create("simulation");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_handshake_and_data_both_ways);
	tcase_add_test(tc, test_lossy_link_rekeys_and_never_delivers_twice);
	tcase_add_test(tc, test_rekey_after_time);
	tcase_add_test(tc, test_reject_after_time_then_erase_keys);
	tcase_add_test(tc, test_roaming_endpoint_changed);
	tcase_add_test(tc, test_cookies_under_load);
	tcase_add_test(tc, test_metrics_counters);
	tcase_add_test(tc, test_session_expired);
	tcase_add_test(tc, test_flood_ahead_of_real_peer);
	tcase_add_test(tc, test_flood_budget_per_batch);
	tcase_add_test(tc, test_batch_initiations_applied_in_order);
	tcase_add_test(tc, test_simultaneous_initiation);
	tcase_add_test(tc, test_key_change_mid_session);
	tcase_add_test(tc, test_disabled_peer_ends_sessions_and_refuses_handshakes);
	tcase_add_test(tc, test_valid_until_passes_without_traffic);
	tcase_add_test(tc, test_psk_mismatch_reported_once_per_initiation);
	tcase_add_test(tc, test_async_handshake_then_data);
	tcase_add_test(tc, test_async_out_of_order_results_in_order);
	tcase_add_test(tc, test_async_config_change_discards_results);
	tcase_add_test(tc, test_async_pending_jobs_count_as_load);
	tcase_add_test(tc, test_async_burst_is_load);
	tcase_add_test(tc, test_async_ring_bound);
	tcase_add_test(tc, test_data_batches_split_over_threads);
	tcase_add_test(tc, test_speed_protocol_hours);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
