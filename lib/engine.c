/* The engine (include/noisetun/engine.h): handshake and session sequencing, the receive
 * decisions, staging, keepalives and the timer dispatch, over the primitives of lib/.
 *
 * Receive, by message type:
 *   1, 2: mac1 -> (under load: mac2 or a cookie reply, then the rate limiter) -> Noise
 *   3:    cookie reply for a pending handshake
 *   4:    keypair by receiver index -> replay -> open in place -> cryptokey routing on the
 *         inner source -> the TUN queue
 * The peer's endpoint follows the latest authenticated packet (roaming).
 *
 * Session indices: a peer owns the local index of its pending handshake and of each of
 * its keypairs; index_release forgets one only when neither uses it any more, so the
 * order of releases in the handshake paths below is what keeps the table exact. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "noisetun/encoding.h"
#include "noisetun/engine.h"

#define PEER_OF_HS(p)   ((struct nt_peer *)((char *)(p) - offsetof(struct nt_peer, hs)))
#define PEER_OF_AIPS(p) ((struct nt_peer *)((char *)(p) - offsetof(struct nt_peer, aips)))

/* ---- endpoints ---- */

bool nt_endpoint_equal(const union nt_endpoint *a, const union nt_endpoint *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET)
		return a->in4.sin_port == b->in4.sin_port && a->in4.sin_addr.s_addr == b->in4.sin_addr.s_addr;
	if (a->sa.sa_family == AF_INET6)
		return a->in6.sin6_port == b->in6.sin6_port &&
		       !memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, sizeof(a->in6.sin6_addr)) &&
		       a->in6.sin6_scope_id == b->in6.sin6_scope_id;
	return true;
}

size_t nt_endpoint_cookie_src(const union nt_endpoint *ep, uint8_t out[18])
{
	if (ep->sa.sa_family == AF_INET) {
		memcpy(out, &ep->in4.sin_addr, 4);
		memcpy(out + 4, &ep->in4.sin_port, 2);
		return 6;
	}
	memcpy(out, &ep->in6.sin6_addr, 16);
	memcpy(out + 16, &ep->in6.sin6_port, 2);
	return 18;
}

void nt_endpoint_normalize(union nt_endpoint *ep)
{
	if (ep->sa.sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&ep->in6.sin6_addr)) {
		struct sockaddr_in in4 = { .sin_family = AF_INET, .sin_port = ep->in6.sin6_port };

		memcpy(&in4.sin_addr, &ep->in6.sin6_addr.s6_addr[12], 4);
		memset(ep, 0, sizeof(*ep));
		ep->in4 = in4;
	}
}

/* ---- the output queues ---- */

static void crypto_run(struct nt_engine *e);

void nt_engine_flush(struct nt_engine_out *out)
{
	if (out->sealing) {
		struct nt_engine *e = out->sealing;

		out->sealing = NULL;
		crypto_run(e);
	}
	if (out->sends_len || out->tun_len || out->events_len)
		out->flush(out->ctx, out);
	out->sends_len = out->tun_len = out->events_len = out->bytes_used = 0;
}

static void event(struct nt_engine_out *out, enum nt_event_type type, struct nt_peer *peer, enum nt_status st,
		  uint64_t value)
{
	if (out->events_len == out->events_cap)
		nt_engine_flush(out);
	out->events[out->events_len++] = (struct nt_event){ .type = type, .peer = peer, .status = st, .value = value };
}

/* Room for len bytes of a message the engine makes, and for one send; NULL if len can
 * never fit (a host whose bytes_cap is below NT_ENGINE_MIN_BYTES). */
static uint8_t *out_bytes(struct nt_engine_out *out, size_t len)
{
	uint8_t *p;

	len = (len + 15) & ~(size_t)15;
	if (out->bytes_cap - out->bytes_used < len || out->sends_len == out->sends_cap)
		nt_engine_flush(out);
	if (out->bytes_cap - out->bytes_used < len)
		return NULL;
	p = out->bytes + out->bytes_used;
	out->bytes_used += len;
	return p;
}

static void out_send(struct nt_engine_out *out, struct nt_peer *peer, const union nt_endpoint *to,
		     const struct nt_endpoint_src *src_copy, uint8_t *data, size_t len, bool count_tx)
{
	struct nt_send *s;

	if (out->sends_len == out->sends_cap)
		nt_engine_flush(out);
	s = &out->sends[out->sends_len++];
	s->peer = peer;
	s->to = *to;
	if (src_copy) {
		s->src_copy = *src_copy;
		s->src = &s->src_copy;
	} else {
		s->src = &peer->src;
	}
	s->data = data;
	s->len = len;
	s->count_tx = count_tx;
}

/* ---- transport crypto in batches ---- */

/* One message's AEAD, in place. The key is a copy: the op outlives nothing it points to
 * but the host's buffer. */
struct nt_crypto_op {
	uint8_t *body;                  /* the padded text (seal) or the text with its tag (open) */
	size_t len;                     /* padded length (seal), or with the tag (open) */
	uint64_t counter;
	uint8_t key[NT_KEY_LEN];
	bool open, ok;
};

/* What nt_engine_receive needs after a message opened. */
struct nt_rx_data {
	uint8_t *msg;
	size_t len;
	const struct nt_datagram *d;
};

/* A chunk's ciphers, kept between runs (one key each; rekeyed when an op's differs). */
struct nt_crypto_lane {
	struct nt_cipher *c[2];         /* seal, open */
	uint8_t key[2][NT_KEY_LEN];
	bool keyed[2];
};

/* Messages of at least this many bytes in a run are worth the host's threads. Below, the
 * handoff (a wakeup: microseconds) costs more than it saves. */
#define PARALLEL_MIN_BYTES (16u << 10)
#define CHUNK_MIN_BYTES    (8u << 10)

static void *secrets_alloc(struct nt_engine *e, size_t len)
{
	void *p = e->host.secrets_alloc ? e->host.secrets_alloc(e->host.ctx, len) : calloc(1, len);

	if (p)
		memset(p, 0, len);
	return p;
}

static void secrets_free(struct nt_engine *e, void *p, size_t len)
{
	if (!p)
		return;
	nt_wipe(p, len);
	if (e->host.secrets_free)
		e->host.secrets_free(e->host.ctx, p);
	else
		free(p);
}

static void op_run(struct nt_crypto_lane *lane, struct nt_crypto_op *op)
{
	int dir = op->open;
	struct nt_cipher **c = &lane->c[dir];

	/* The chunk's cipher on this op's key: a compare per message, a rekey per change. */
	if (!lane->keyed[dir] || !nt_equal(lane->key[dir], op->key, NT_KEY_LEN)) {
		if (*c && nt_cipher_rekey(*c, op->key)) {
			nt_cipher_free(*c);
			*c = NULL; /* made again from op->key below */
		}
		memcpy(lane->key[dir], op->key, NT_KEY_LEN);
		lane->keyed[dir] = true;
	}
	if (op->open)
		op->ok = !nt_transport_open(c, op->key, op->body, op->body, op->len, op->counter);
	else if (nt_transport_seal(c, op->key, op->body, op->len, op->counter))
		nt_aead_seal(op->body, op->body, op->len, NULL, 0, op->counter, op->key); /* OpenSSL failed */
}

static void chunk_run(void *arg, size_t k)
{
	struct nt_engine *e = arg;

	for (size_t i = e->chunk_start[k]; i < e->chunk_start[k + 1]; i++)
		op_run(&e->lanes[k], &e->ops[i]);
}

/* Run every queued op: over the host's threads in chunks of about equal bytes when the
 * run is large, else here. Then the key copies are wiped. */
static void crypto_run(struct nt_engine *e)
{
	size_t n = e->ops_len, chunks = 1;

	if (!n)
		return;
	if (e->lanes_len > 1 && e->ops_bytes >= PARALLEL_MIN_BYTES) {
		chunks = e->ops_bytes / CHUNK_MIN_BYTES;
		chunks = chunks > e->lanes_len ? e->lanes_len : chunks > n ? n : chunks;
	}
	e->chunk_start[0] = 0;
	if (chunks == 1) {
		e->chunk_start[1] = n;
		chunk_run(e, 0);
	} else {
		size_t k = 1, bytes = 0;

		for (size_t i = 0; i < n && k < chunks; i++) {
			bytes += e->ops[i].len;
			if (bytes * chunks >= e->ops_bytes * k)
				e->chunk_start[k++] = i + 1;
		}
		while (k < chunks) /* (only when rounding left the last ones empty) */
			e->chunk_start[k++] = n;
		e->chunk_start[chunks] = n;
		e->host.parallel(e->host.ctx, chunk_run, e, chunks);
	}
	for (size_t i = 0; i < n; i++)
		nt_wipe(e->ops[i].key, NT_KEY_LEN);
	e->ops_len = e->ops_bytes = 0;
}

static void lanes_forget(struct nt_engine *e)
{
	for (unsigned i = 0; e->lanes && i < e->lanes_len; i++) {
		struct nt_crypto_lane *l = &e->lanes[i];

		nt_cipher_free(l->c[0]);
		nt_cipher_free(l->c[1]);
		nt_wipe(l, sizeof(*l));
	}
}

static void op_add(struct nt_engine *e, uint8_t *body, size_t len, uint64_t counter, const uint8_t key[NT_KEY_LEN],
		   bool open)
{
	struct nt_crypto_op *op = &e->ops[e->ops_len++];

	op->body = body;
	op->len = len;
	op->counter = counter;
	op->open = open;
	op->ok = false;
	memcpy(op->key, key, NT_KEY_LEN);
	e->ops_bytes += len;
}

static int crypto_init(struct nt_engine *e)
{
	unsigned threads = e->host.parallel ? e->host.parallel_threads : 0;

	e->lanes_len = threads > 1 ? (threads * 4 > NT_ENGINE_CRYPTO_LANES ? NT_ENGINE_CRYPTO_LANES : threads * 4) : 1;
	e->ops = secrets_alloc(e, NT_ENGINE_CRYPTO_OPS * sizeof(*e->ops));
	e->lanes = secrets_alloc(e, e->lanes_len * sizeof(*e->lanes));
	e->rx = calloc(NT_ENGINE_CRYPTO_OPS, sizeof(*e->rx));
	return e->ops && e->lanes && e->rx ? 0 : -ENOMEM;
}

static void crypto_destroy(struct nt_engine *e)
{
	lanes_forget(e);
	secrets_free(e, e->ops, NT_ENGINE_CRYPTO_OPS * sizeof(*e->ops));
	secrets_free(e, e->lanes, e->lanes_len * sizeof(*e->lanes));
	free(e->rx);
	e->ops = NULL;
	e->lanes = NULL;
	e->rx = NULL;
	e->ops_len = e->ops_bytes = 0;
}

static uint64_t jitter(struct nt_engine *e)
{
	/* Timer jitter needs spread, not secrecy: xorshift64 seeded from the rng. */
	while (!e->jitter_state)
		e->host.rng->fill(e->host.rng->ctx, &e->jitter_state, sizeof(e->jitter_state));
	e->jitter_state ^= e->jitter_state >> 12;
	e->jitter_state ^= e->jitter_state << 25;
	e->jitter_state ^= e->jitter_state >> 27;
	return (e->jitter_state * 0x2545f4914f6cdd1dULL) % NT_REKEY_TIMEOUT_JITTER_MAX;
}

/* ---- the timer heap ---- */

/* The protocol's timers, and the engine's own: the session's expiry (for the event). */
static uint64_t peer_deadline(const struct nt_peer *p)
{
	uint64_t t = nt_timers_next_deadline(&p->timers);

	return p->session_expiry < t ? p->session_expiry : t;
}

static bool heap_less(const struct nt_peer *a, const struct nt_peer *b)
{
	return peer_deadline(a) < peer_deadline(b);
}

static void heap_set(struct nt_engine *e, size_t pos, struct nt_peer *p)
{
	e->heap[pos] = p;
	p->heap_pos = pos;
}

static void heap_fix(struct nt_engine *e, size_t pos)
{
	struct nt_peer *p = e->heap[pos];

	while (pos > 0 && heap_less(p, e->heap[(pos - 1) / 2])) {
		heap_set(e, pos, e->heap[(pos - 1) / 2]);
		pos = (pos - 1) / 2;
	}
	for (;;) {
		size_t child = 2 * pos + 1;
		if (child >= e->heap_len)
			break;
		if (child + 1 < e->heap_len && heap_less(e->heap[child + 1], e->heap[child]))
			child++;
		if (!heap_less(e->heap[child], p))
			break;
		heap_set(e, pos, e->heap[child]);
		pos = child;
	}
	heap_set(e, pos, p);
}

static void heap_remove(struct nt_engine *e, struct nt_peer *p)
{
	size_t pos = p->heap_pos;

	if (pos == SIZE_MAX)
		return;
	p->heap_pos = SIZE_MAX;
	if (--e->heap_len != pos) {
		heap_set(e, pos, e->heap[e->heap_len]);
		heap_fix(e, pos);
	}
}

void nt_engine_peer_timers_changed(struct nt_engine *e, struct nt_peer *p)
{
	if (p->heap_pos == SIZE_MAX) {
		if (e->heap_len == e->heap_cap) {
			size_t cap = e->heap_cap ? e->heap_cap * 2 : 64;
			struct nt_peer **heap = realloc(e->heap, cap * sizeof(*heap));
			if (!heap)
				return; /* the peer's timers stay unscheduled until memory returns */
			e->heap = heap;
			e->heap_cap = cap;
		}
		heap_set(e, e->heap_len++, p);
	}
	heap_fix(e, p->heap_pos);
}

#define timers_changed(p) nt_engine_peer_timers_changed(e, (p))

uint64_t nt_engine_next_deadline(const struct nt_engine *e)
{
	uint64_t next = e->heap_len ? peer_deadline(e->heap[0]) : UINT64_MAX;

	/* Under load: wake when the hold ends, to tell the load ended (NT_EV_LOAD_ENDED). */
	if (e->was_under_load && e->last_under_load + NT_COOKIE_UNDER_LOAD_HOLD < next)
		next = e->last_under_load + NT_COOKIE_UNDER_LOAD_HOLD;
	return e->next_expiry < next ? e->next_expiry : next;
}

/* ---- session indices, owned by peers ---- */

/* A fresh random index no session uses; 0 at the cap or out of memory. Random, so that
 * indices say nothing about how many sessions exist. */
static uint32_t index_assign(struct nt_engine *e, struct nt_peer *p, struct nt_engine_out *out)
{
	uint32_t index = 0;
	int err = nt_index_assign(&e->indices, p, e->host.rng, &index);

	if (err) {
		if (out) {
			event(out, NT_EV_NO_INDEX, p, NT_OK, nt_index_count(&e->indices));
			out->events[out->events_len - 1].err = err;
		}
		return 0;
	}
	return index;
}

/* Forget index unless the peer's pending handshake or one of its keypairs still uses it. */
static void index_release(struct nt_engine *e, struct nt_peer *p, uint32_t index)
{
	if (nt_index_lookup(&e->indices, index) != p)
		return;
	if (p->hs.state != NT_HS_ZEROED && p->hs.local_index == index)
		return;
	if (p->kps && nt_keypairs_find(p->kps, index))
		return;
	nt_index_release(&e->indices, index, p);
}

static void lanes_forget(struct nt_engine *e);

static void index_release_drops(struct nt_engine *e, struct nt_peer *p, const struct nt_keypair_drops *drops)
{
	if (drops->count)
		lanes_forget(e); /* no copy of a dropped key outlives it in a chunk's cipher */
	for (unsigned i = 0; i < drops->count; i++)
		index_release(e, p, drops->index[i]);
}

/* ---- asynchronous handshakes (host.submit) ---- */

/* An admitted initiation: its copy, where it came from, and (once done) the result of
 * nt_noise_prepare_initiation. Holds secrets: wiped when released. */
struct nt_engine_job {
	struct nt_engine *e;
	uint64_t epoch;                 /* e->config_epoch when submitted */
	int done;                       /* set last by job_run (release), read by the loop */
	union nt_endpoint from;
	struct nt_endpoint_src local;
	uint8_t msg[NT_INIT_LEN];
	struct nt_initiation_work w;
};

static struct nt_handshake *lookup_handshake(void *ctx, const uint8_t key[NT_KEY_LEN]);

/* host.submit's fn, on a host thread: reads only what a configuration change guards. */
static void job_run(void *arg)
{
	struct nt_engine_job *j = arg;
	struct nt_engine *e = j->e;

	if (__atomic_load_n(&e->config_epoch, __ATOMIC_ACQUIRE) == j->epoch)
		nt_noise_prepare_initiation(&j->w, j->msg, NT_INIT_LEN, e->static_identity, lookup_handshake, e,
					    e->host.rng);
	else
		j->w.status = NT_DROP_STATE; /* stale already: skip the work */
	__atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
}

static struct nt_engine_job *job_at(struct nt_engine *e, unsigned k)
{
	return &e->jobs[(e->jobs_head + k) % NT_ENGINE_JOBS_MAX];
}

size_t nt_engine_jobs_pending(const struct nt_engine *e)
{
	return e->jobs_count;
}

/* Before a configuration change that fn would read: no job runs on return, and the
 * stale ones are marked (peer: only those whose result is that peer's; else every one). */
static void jobs_quiesce(struct nt_engine *e, const struct nt_peer *peer, bool all)
{
	if (!e->jobs || !e->jobs_count)
		return; /* a job leaves the ring only once done: none can be running */
	if (all)
		__atomic_store_n(&e->config_epoch, e->config_epoch + 1, __ATOMIC_RELEASE);
	e->host.barrier(e->host.ctx);
	for (unsigned k = 0; k < e->jobs_count; k++) {
		struct nt_engine_job *j = job_at(e, k);

		if (all || (peer && j->w.hs == &peer->hs)) {
			nt_noise_work_wipe(&j->w);
			j->w.status = NT_DROP_STATE;
			j->epoch = UINT64_MAX; /* never current again */
		}
	}
	if (!all)
		return;
	/* All done and all stale: release them now (down and destroy wipe at once). */
	e->hs_jobs_discarded += e->jobs_count;
	for (unsigned k = 0; k < e->jobs_count; k++)
		nt_wipe(job_at(e, k), sizeof(struct nt_engine_job));
	e->jobs_head = e->jobs_count = 0;
}

/* ---- peers ---- */

static size_t key_hash(const struct nt_engine *e, const uint8_t key[NT_KEY_LEN])
{
	/* Public keys are uniformly random: their first bytes are a fine hash. */
	uint64_t h;

	memcpy(&h, key, sizeof(h));
	return (size_t)(h & (e->peer_hash_size - 1));
}

static int peer_hash_grow(struct nt_engine *e)
{
	size_t old = e->peer_hash_size, size = old ? old * 2 : 64;
	struct nt_peer **table = calloc(size, sizeof(*table)), **prev = e->peer_hash;

	if (!table)
		return -ENOMEM;
	e->peer_hash = table;
	e->peer_hash_size = size;
	for (size_t i = 0; i < old; i++) {
		for (struct nt_peer *p = prev[i], *next; p; p = next) {
			size_t h = key_hash(e, p->public_key);

			next = p->hash_next;
			p->hash_next = table[h];
			table[h] = p;
		}
	}
	free(prev);
	return 0;
}

struct nt_peer *nt_engine_peer_lookup(const struct nt_engine *e, const uint8_t key[NT_KEY_LEN])
{
	for (struct nt_peer *p = e->peer_hash[key_hash(e, key)]; p; p = p->hash_next)
		if (nt_equal(p->public_key, key, NT_KEY_LEN))
			return p;
	return NULL;
}

int nt_engine_peer_add(struct nt_engine *e, struct nt_peer *p, const uint8_t key[NT_KEY_LEN])
{
	size_t h;

	jobs_quiesce(e, NULL, false); /* the hash table changes under the jobs' lookups */
	if (e->peer_hash_count + 1 > e->peer_hash_size && peer_hash_grow(e))
		return -ENOMEM;
	memcpy(p->public_key, key, NT_KEY_LEN);
	nt_handshake_init(&p->hs, e->static_identity, key, NULL);
	nt_cookie_maker_init(&p->cookie, key);
	nt_timers_init(&p->timers);
	p->heap_pos = SIZE_MAX;
	p->session_expiry = UINT64_MAX;
	h = key_hash(e, key);
	p->hash_next = e->peer_hash[h];
	e->peer_hash[h] = p;
	e->peer_hash_count++;
	return 0;
}

static void drop_staged(struct nt_peer *p)
{
	while (p->staged_count) {
		free(p->staged[p->staged_head]);
		p->staged[p->staged_head] = NULL;
		p->staged_head = (p->staged_head + 1) % NT_MAX_STAGED_PACKETS;
		p->staged_count--;
	}
	p->staged_head = 0;
	free(p->staged);
	p->staged = NULL;
}

static void clear_sessions(struct nt_engine *e, struct nt_peer *p)
{
	struct nt_keypair_drops drops = { .count = 0 };
	uint32_t hs_index = p->hs.local_index;
	bool had_hs = p->hs.state != NT_HS_ZEROED;

	if (p->kps) {
		nt_keypairs_clear(p->kps, &drops);
		e->host.keypairs_free(e->host.ctx, p->kps);
		p->kps = NULL;
	}
	nt_handshake_clear(&p->hs);
	index_release_drops(e, p, &drops);
	if (had_hs)
		index_release(e, p, hs_index);
}

/* The peer's keypairs, from the host if it has none yet; NULL if out of memory. */
static struct nt_keypairs *peer_keypairs(struct nt_engine *e, struct nt_peer *p)
{
	if (!p->kps && (p->kps = e->host.keypairs_alloc(e->host.ctx)))
		nt_keypairs_init(p->kps);
	return p->kps;
}

void nt_engine_peer_remove(struct nt_engine *e, struct nt_peer *p)
{
	struct nt_peer **pp = &e->peer_hash[key_hash(e, p->public_key)];

	jobs_quiesce(e, p, false); /* its jobs are discarded at collect: p is freed after */
	clear_sessions(e, p);
	drop_staged(p);
	nt_timers_stop(&p->timers);
	p->session_expiry = UINT64_MAX;
	heap_remove(e, p);
	nt_allowedips_remove_owner(e->aips, &p->aips);
	while (*pp != p)
		pp = &(*pp)->hash_next;
	*pp = p->hash_next;
	e->peer_hash_count--;
	nt_handshake_destroy(&p->hs);
	nt_cookie_maker_wipe(&p->cookie);
}

#define FOR_EACH_PEER(e, p)                                     \
	for (size_t b_ = 0; b_ < (e)->peer_hash_size; b_++)     \
		for (struct nt_peer *p = (e)->peer_hash[b_]; p; p = p->hash_next)

struct nt_peer *nt_engine_set_private_key(struct nt_engine *e, const uint8_t key[NT_KEY_LEN])
{
	struct nt_peer *self = NULL;
	uint8_t clamped[NT_KEY_LEN];
	bool same;

	/* The same key again (stock `wg syncconf` always sends it) must not drop sessions. */
	if (key && !nt_is_zero(key, NT_KEY_LEN)) {
		memcpy(clamped, key, NT_KEY_LEN);
		nt_key_clamp(clamped);
		same = e->static_identity->has_key && nt_equal(clamped, e->static_identity->private_key, NT_KEY_LEN);
		nt_wipe(clamped, sizeof(clamped));
	} else {
		same = !e->static_identity->has_key;
	}
	if (same)
		return NULL;
	jobs_quiesce(e, NULL, true); /* prepared with the old key: all stale */
	nt_noise_static_init(e->static_identity, key);
	nt_cookie_checker_set_public_key(&e->cookie_checker,
					 e->static_identity->has_key ? e->static_identity->public_key : NULL);
	/* A peer with our own public key would be talking to itself: the host removes it. */
	if (e->static_identity->has_key)
		self = nt_engine_peer_lookup(e, e->static_identity->public_key);
	FOR_EACH_PEER(e, p) {
		uint8_t psk[NT_KEY_LEN];

		if (p == self)
			continue;
		clear_sessions(e, p);
		/* A new identity may handshake at once: the REKEY_TIMEOUT rate limit was for the
		 * old one (the kernel's selftest changes a key and expects traffic right away). */
		p->timers.initiation_sent = false;
		memcpy(psk, p->hs.preshared_key, NT_KEY_LEN);
		nt_handshake_init(&p->hs, e->static_identity, p->public_key, psk);
		nt_wipe(psk, sizeof(psk));
	}
	return self;
}

void nt_engine_set_up(struct nt_engine *e, bool up, struct nt_now now)
{
	if (!up)
		jobs_quiesce(e, NULL, true); /* down clears every handshake: in flight too */
	e->up = up;
	FOR_EACH_PEER(e, p) {
		if (!up) {
			clear_sessions(e, p);
			drop_staged(p);
			nt_timers_stop(&p->timers);
			p->session_expiry = UINT64_MAX; /* the host knows the link went down */
		} else if (p->persistent_keepalive) {
			nt_timers_set_persistent_keepalive(&p->timers, p->persistent_keepalive, now.mono);
		}
		timers_changed(p);
	}
}

/* ---- lifecycle: disabled and expired peers ---- */

int nt_engine_peer_block_reason(const struct nt_peer *p, struct nt_now now)
{
	if (p->disabled)
		return NT_BLOCK_DISABLED;
	/* Either clock: the wall clock may be stepped back, the monotonic one does not see a
	 * date set later. Whichever says "expired" first wins: fail closed. */
	if (p->valid_until && (now.wall >= p->valid_until || now.mono >= p->expiry_mono))
		return NT_BLOCK_EXPIRED;
	return NT_BLOCK_NONE;
}

/* The peer is blocked at now: end everything once. true if blocked. */
static bool enforce_block(struct nt_engine *e, struct nt_peer *p, struct nt_now now, struct nt_engine_out *out)
{
	int why = nt_engine_peer_block_reason(p, now);

	if (!why)
		return false;
	if (!p->blocked) {
		p->blocked = true;
		clear_sessions(e, p);
		drop_staged(p);
		p->unconfirmed_responses = 0;
		event(out, NT_EV_PEER_BLOCKED, p, NT_OK, (uint64_t)why);
	}
	return true;
}

/* The earliest expiry still to enforce, from every peer: called when one changes or passed. */
static void expiry_recompute(struct nt_engine *e)
{
	e->next_expiry = UINT64_MAX;
	FOR_EACH_PEER(e, p) {
		if (p->valid_until && !p->blocked && p->expiry_mono < e->next_expiry)
			e->next_expiry = p->expiry_mono;
	}
}

void nt_engine_peer_set_lifecycle(struct nt_engine *e, struct nt_peer *p, bool disabled, uint64_t valid_until,
				  struct nt_now now, struct nt_engine_out *out)
{
	p->disabled = disabled;
	p->valid_until = valid_until;
	p->expiry_mono = !valid_until ? UINT64_MAX
			 : valid_until > now.wall ? now.mono + (valid_until - now.wall) : now.mono;
	if (!enforce_block(e, p, now, out) && p->blocked) {
		p->blocked = false;
		event(out, NT_EV_PEER_UNBLOCKED, p, NT_OK, 0);
	}
	expiry_recompute(e);
}

/* Expiries that passed by now (the monotonic deadline in nt_engine_next_deadline). */
static void expiry_run(struct nt_engine *e, struct nt_now now, struct nt_engine_out *out)
{
	if (now.mono < e->next_expiry)
		return;
	FOR_EACH_PEER(e, p) {
		if (p->valid_until && !p->blocked)
			enforce_block(e, p, now, out);
	}
	expiry_recompute(e);
}

/* The packet paths' check: false when the peer may go on. */
static inline bool peer_blocked(struct nt_engine *e, struct nt_peer *p, struct nt_now now, struct nt_engine_out *out)
{
	if (!p->disabled && !p->valid_until && !p->blocked)
		return false;
	return enforce_block(e, p, now, out);
}

int nt_engine_init(struct nt_engine *e, struct nt_noise_static *identity, const struct nt_engine_host *host,
		   size_t max_indices, size_t ratelimiter_capacity)
{
	memset(e, 0, sizeof(*e));
	e->static_identity = identity;
	e->host = *host;
	e->mtu = NT_DEFAULT_MTU;
	e->next_expiry = UINT64_MAX;
	e->aips = nt_allowedips_new();
	if (!e->aips || peer_hash_grow(e))
		return -ENOMEM;
	nt_cookie_checker_init(&e->cookie_checker);
	if (identity->has_key)
		nt_cookie_checker_set_public_key(&e->cookie_checker, identity->public_key);
	if (nt_ratelimiter_init(&e->ratelimiter, ratelimiter_capacity, host->rng) ||
	    nt_ratelimiter_init(&e->cookie_ratelimiter, ratelimiter_capacity, host->rng))
		return -ENOMEM;
	if (nt_index_init(&e->indices, max_indices))
		return -EINVAL;
	if (!host->submit != !host->barrier || !host->secrets_alloc != !host->secrets_free)
		return -EINVAL;
	if (crypto_init(e))
		return -ENOMEM;
	if (host->submit && !(e->jobs = secrets_alloc(e, NT_ENGINE_JOBS_MAX * sizeof(*e->jobs))))
		return -ENOMEM;
	return 0;
}

void nt_engine_destroy(struct nt_engine *e)
{
	jobs_quiesce(e, NULL, true);
	secrets_free(e, e->jobs, NT_ENGINE_JOBS_MAX * sizeof(*e->jobs));
	e->jobs = NULL;
	crypto_destroy(e);
	nt_allowedips_free(e->aips);
	nt_ratelimiter_free(&e->ratelimiter);
	nt_ratelimiter_free(&e->cookie_ratelimiter);
	nt_cookie_checker_wipe(&e->cookie_checker);
	nt_index_free(&e->indices);
	free(e->peer_hash);
	free(e->heap);
	e->aips = NULL;
	e->peer_hash = NULL;
	e->heap = NULL;
	e->peer_hash_size = e->heap_len = e->heap_cap = 0;
}

/* ---- sending: initiations, keepalives, staged data ---- */

/* The peer's current keypair if it may still send at now, else NULL. */
static struct nt_keypair *sending_keypair(struct nt_peer *p, uint64_t now)
{
	struct nt_keypair *kp = p->kps ? nt_keypairs_current(p->kps) : NULL;

	return kp && nt_keypair_usable(kp, now, kp->send_counter) ? kp : NULL;
}

static void send_initiation(struct nt_engine *e, struct nt_peer *p, bool is_retry, struct nt_now now,
			    struct nt_engine_out *out);

/* Bookkeeping after a data or keepalive message was queued for the peer; counted: its
 * bytes are in tx_bytes already (else the host adds them once sent). */
static void after_data_sent(struct nt_engine *e, struct nt_peer *p, struct nt_keypair *kp, size_t wire_len,
			    bool counted, size_t payload, struct nt_now now, struct nt_engine_out *out)
{
	if (counted) {
		p->tx_bytes += wire_len;
		p->tx_packets++;
	}
	if (payload)
		nt_timers_data_sent(&p->timers, now.mono, jitter(e));
	nt_timers_any_authenticated_packet_sent(&p->timers);
	nt_timers_any_authenticated_packet_traversal(&p->timers, now.mono);
	timers_changed(p);
	if (nt_timers_rekey_on_send(now.mono, kp->birth, kp->send_counter, kp->initiator))
		send_initiation(e, p, false, now, out);
}

static void send_initiation(struct nt_engine *e, struct nt_peer *p, bool is_retry, struct nt_now now,
			    struct nt_engine_out *out)
{
	uint32_t old_index = p->hs.local_index, index;
	bool had = p->hs.state != NT_HS_ZEROED;
	enum nt_status st;
	uint8_t *msg;

	if (!e->up || p->endpoint.sa.sa_family == AF_UNSPEC)
		return;
	if (peer_blocked(e, p, now, out))
		return;
	if (!nt_timers_may_send_initiation(&p->timers, now.mono, is_retry))
		return;
	msg = out_bytes(out, NT_INIT_LEN);
	if (!msg)
		return;
	index = index_assign(e, p, out);
	if (!index) {
		out->bytes_used -= (NT_INIT_LEN + 15) & ~(size_t)15;
		return;
	}
	st = nt_noise_create_initiation(msg, &p->hs, e->static_identity, index, now.wall, e->host.rng);
	if (had)
		index_release(e, p, old_index);
	if (st != NT_OK) {
		index_release(e, p, index);
		event(out, NT_EV_INITIATION_FAILED, p, st, 0);
		return;
	}
	if (nt_cookie_add_macs(&p->cookie, msg, NT_INIT_LEN, now.mono))
		return;
	event(out, NT_EV_INITIATION_SENT, p, NT_OK, is_retry);
	p->handshake_attempts++;
	/* One still waiting for its response is given up for this one: it failed. (A retry
	 * comes after the timer counted its predecessor, and found it disarmed.) */
	if (p->timers.retransmit_handshake.armed)
		p->handshake_failures++;
	out_send(out, p, &p->endpoint, NULL, msg, NT_INIT_LEN, true);
	nt_timers_any_authenticated_packet_sent(&p->timers);
	nt_timers_any_authenticated_packet_traversal(&p->timers, now.mono);
	nt_timers_handshake_initiated(&p->timers, now.mono, jitter(e));
	timers_changed(p);
}

void nt_engine_initiate(struct nt_engine *e, struct nt_peer *p, struct nt_now now, struct nt_engine_out *out)
{
	send_initiation(e, p, false, now, out);
}

static void send_keepalive(struct nt_engine *e, struct nt_peer *p, struct nt_now now, struct nt_engine_out *out)
{
	struct nt_keypair *kp = sending_keypair(p, now.mono);
	uint8_t *buf;
	size_t len;

	if (p->endpoint.sa.sa_family == AF_UNSPEC)
		return;
	if (!kp) {
		send_initiation(e, p, false, now, out);
		return;
	}
	buf = out_bytes(out, NT_DATA_MIN_LEN);
	if (!buf)
		return;
	if (nt_keypair_seal(kp, buf, &len, NULL, 0, e->mtu, now.mono) != NT_OK)
		return;
	out_send(out, p, &p->endpoint, NULL, buf, len, true);
	after_data_sent(e, p, kp, len, false, 0, now, out);
}

static void stage(struct nt_engine *e, struct nt_peer *p, const uint8_t *pkt, size_t len)
{
	struct nt_staged *s;

	if (!p->staged && !(p->staged = calloc(NT_MAX_STAGED_PACKETS, sizeof(*p->staged)))) {
		e->drops_staged++;
		return;
	}
	s = malloc(sizeof(*s) + len);
	if (!s) {
		e->drops_staged++;
		return;
	}
	s->len = (uint16_t)len;
	memcpy(s->data, pkt, len);
	if (p->staged_count == NT_MAX_STAGED_PACKETS) {
		/* the oldest goes first */
		free(p->staged[p->staged_head]);
		p->staged_head = (p->staged_head + 1) % NT_MAX_STAGED_PACKETS;
		p->staged_count--;
		e->drops_staged++;
	}
	p->staged[(p->staged_head + p->staged_count++) % NT_MAX_STAGED_PACKETS] = s;
}

/* Seal and send what waited for a session, now that one exists. */
static void send_staged(struct nt_engine *e, struct nt_peer *p, struct nt_now now, struct nt_engine_out *out)
{
	while (p->staged_count) {
		struct nt_keypair *kp = sending_keypair(p, now.mono);
		struct nt_staged *s = p->staged[p->staged_head];
		uint8_t *buf;
		size_t len;

		if (!kp || p->endpoint.sa.sa_family == AF_UNSPEC)
			return;
		p->staged[p->staged_head] = NULL;
		p->staged_head = (p->staged_head + 1) % NT_MAX_STAGED_PACKETS;
		p->staged_count--;
		buf = out_bytes(out, (size_t)s->len + NT_DATA_MIN_LEN + NT_DATA_PAD);
		if (buf && nt_keypair_seal(kp, buf, &len, s->data, s->len, e->mtu, now.mono) == NT_OK) {
			out_send(out, p, &p->endpoint, NULL, buf, len, true);
			after_data_sent(e, p, kp, len, false, s->len, now, out);
		}
		free(s);
	}
	drop_staged(p); /* empty now: give the ring back */
}

/* ---- the TUN side ---- */

static struct nt_peer *route(struct nt_engine *e, const uint8_t *pkt, size_t len, size_t *iplen)
{
	struct nt_allowedips_owner *owner = NULL;

	*iplen = nt_ip_packet_len(pkt, len);
	if (!*iplen)
		return NULL;
	if ((pkt[0] >> 4) == 4)
		owner = nt_allowedips_lookup(e->aips, AF_INET, pkt + 16);
	else
		owner = nt_allowedips_lookup(e->aips, AF_INET6, pkt + 24);
	return owner ? PEER_OF_AIPS(owner) : NULL;
}

void nt_engine_tun_packet(struct nt_engine *e, uint8_t *pkt, size_t len, struct nt_now now,
			  struct nt_engine_out *out)
{
	uint8_t *buf = pkt - NT_DATA_HEADER_LEN;
	struct nt_keypair *kp;
	struct nt_peer *p;
	size_t iplen, wire_len, padded;
	uint64_t counter;

	p = route(e, pkt, len, &iplen);
	if (!p) {
		e->drops_no_peer++;
		return;
	}
	if (p->endpoint.sa.sa_family == AF_UNSPEC) {
		e->drops_no_endpoint++;
		return;
	}
	if (peer_blocked(e, p, now, out)) {
		e->drops_blocked++;
		return;
	}
	kp = sending_keypair(p, now.mono);
	if (!kp) {
		stage(e, p, pkt, iplen);
		send_initiation(e, p, false, now, out);
		return;
	}
	if (e->ops_len == NT_ENGINE_CRYPTO_OPS)
		crypto_run(e);
	if (nt_keypair_seal_prepare(kp, buf, &wire_len, pkt, iplen, e->mtu, now.mono, &counter, &padded) != NT_OK)
		return;
	/* sealed with the batch, before its sends leave (nt_engine_flush) */
	op_add(e, buf + NT_DATA_OFF_PACKET, padded, counter, kp->send_key, false);
	out->sealing = e;
	out_send(out, p, &p->endpoint, NULL, buf, wire_len, false);
	after_data_sent(e, p, kp, wire_len, true, iplen, now, out);
}

/* ---- the receive side ---- */

static struct nt_handshake *lookup_handshake(void *ctx, const uint8_t key[NT_KEY_LEN])
{
	struct nt_peer *p = nt_engine_peer_lookup(ctx, key);

	return p ? &p->hs : NULL;
}

static void authenticated_received(struct nt_peer *p, const struct nt_datagram *d, size_t len, uint64_t now,
				   struct nt_engine_out *out)
{
	p->src = d->local;
	if (!nt_endpoint_equal(&p->endpoint, &d->from)) {
		p->endpoint = d->from;
		event(out, NT_EV_ENDPOINT_CHANGED, p, NT_OK, 0);
		out->events[out->events_len - 1].endpoint = d->from;
	}
	p->rx_bytes += len;
	p->rx_packets++;
	nt_timers_any_authenticated_packet_received(&p->timers);
	nt_timers_any_authenticated_packet_traversal(&p->timers, now);
}

/* A per-source rate limit (rl: for handshakes with a valid mac2, or for cookie replies). */
static bool ratelimit_allows(struct nt_ratelimiter *rl, const struct nt_datagram *d, uint64_t now)
{
	if (d->from.sa.sa_family == AF_INET)
		return nt_ratelimiter_allow(rl, AF_INET, (const uint8_t *)&d->from.in4.sin_addr, now);
	return nt_ratelimiter_allow(rl, AF_INET6, d->from.in6.sin6_addr.s6_addr, now);
}

/* Answer a handshake message that lacks a valid mac2 with a cookie reply. */
static void send_cookie_reply(struct nt_engine *e, const uint8_t *msg, size_t len, const struct nt_datagram *d,
			      uint64_t now, struct nt_engine_out *out)
{
	uint8_t src_bytes[18], *reply;
	size_t src_len = nt_endpoint_cookie_src(&d->from, src_bytes);

	reply = out_bytes(out, NT_COOKIE_MSG_LEN);
	if (reply && nt_cookie_create_reply(&e->cookie_checker, reply, msg, len, src_bytes, src_len, now,
					    e->host.rng) == 0) {
		out_send(out, NULL, &d->from, &d->local, reply, NT_COOKIE_MSG_LEN, false);
		e->cookie_replies_sent++;
	}
}

/* An initiation past the mac checks (and under load, the rate limit), whose state-free
 * part w (nt_noise_prepare_initiation) is done: the rest, in message order. */
static void initiation_apply(struct nt_engine *e, struct nt_initiation_work *w, size_t len,
			     const struct nt_datagram *d, struct nt_now now, struct nt_engine_out *out)
{
	struct nt_keypair_drops drops = { .count = 0 };
	struct nt_handshake *hs;
	struct nt_peer *p;
	uint32_t old_index, index;
	enum nt_status st;
	uint8_t *resp;

	st = nt_noise_complete_initiation(w, now.mono);
	if (st != NT_OK) {
		e->drops[st]++;
		event(out, NT_EV_INITIATION_DROPPED, NULL, st, 0);
		return;
	}
	hs = w->hs;
	p = PEER_OF_HS(hs);
	old_index = hs->local_index; /* of a handshake this one replaced, if any */
	if (peer_blocked(e, p, now, out)) {
		/* Authenticated, but refused: no response, no session, the endpoint unchanged. */
		e->drops_blocked++;
		nt_handshake_clear(hs);
		index_release(e, p, old_index);
		event(out, NT_EV_HANDSHAKE_REFUSED, p, NT_OK, (uint64_t)nt_engine_peer_block_reason(p, now));
		return;
	}
	event(out, NT_EV_INITIATION_RECEIVED, p, NT_OK, 0);
	/* A response of ours the initiator never used, and now it starts again: after two in
	 * a row its PSK likely differs (it could not open them). Loss does that too, rarely
	 * twice in a row; hence "likely". */
	if (p->unconfirmed_responses >= 2) {
		event(out, NT_EV_LIKELY_PSK_MISMATCH, p, NT_OK, 1);
		out->events[out->events_len - 1].err = p->unconfirmed_responses;
	}
	authenticated_received(p, d, len, now.mono, out);
	timers_changed(p);

	resp = out_bytes(out, NT_RESP_LEN);
	index = resp ? index_assign(e, p, out) : 0;
	if (!index || nt_noise_finish_response(resp, hs, w, index) != NT_OK ||
	    nt_cookie_add_macs(&p->cookie, resp, NT_RESP_LEN, now.mono)) {
		nt_handshake_clear(hs);
		if (index)
			index_release(e, p, index);
		index_release(e, p, old_index);
		return;
	}
	index_release(e, p, old_index);
	if (!peer_keypairs(e, p) || nt_noise_begin_session(hs, p->kps, now.mono, &drops) != NT_OK) {
		index_release(e, p, index);
		return;
	}
	index_release_drops(e, p, &drops);
	if (p->unconfirmed_responses < UINT8_MAX)
		p->unconfirmed_responses++;
	event(out, NT_EV_RESPONSE_SENT, p, NT_OK, 0);
	out_send(out, p, &d->from, NULL, resp, NT_RESP_LEN, true);
	nt_timers_any_authenticated_packet_sent(&p->timers);
	nt_timers_any_authenticated_packet_traversal(&p->timers, now.mono);
	nt_timers_session_derived(&p->timers, now.mono);
	p->session_expiry = now.mono + NT_REJECT_AFTER_TIME;
	timers_changed(p);
}

/* A response past the mac checks (and under load, the rate limit). */
static void response_admitted(struct nt_engine *e, const uint8_t *msg, size_t len, const struct nt_datagram *d,
			      struct nt_now now, struct nt_engine_out *out)
{
	struct nt_keypair_drops drops = { .count = 0 };
	struct nt_peer *p;
	enum nt_status st;

	p = nt_index_lookup(&e->indices, nt_noise_response_receiver(msg));
	if (!p) {
		e->drops[NT_DROP_INDEX]++;
		return;
	}
	if (peer_blocked(e, p, now, out)) {
		e->drops_blocked++;
		return;
	}
	st = nt_noise_consume_response(&p->hs, msg, len, e->static_identity);
	if (st == NT_OK)
		st = peer_keypairs(e, p) ? nt_noise_begin_session(&p->hs, p->kps, now.mono, &drops) : NT_DROP_STATE;
	if (st != NT_OK) {
		e->drops[st]++;
		event(out, NT_EV_RESPONSE_DROPPED, p, st, 0);
		/* mac1 and our pending index matched, the DH worked: the one input left that we
		 * cannot check is the PSK. Reported once per initiation: forged responses (mac1
		 * needs only our public key) cannot flood the log. */
		if (st == NT_DROP_DECRYPT && p->mismatch_reported_index != p->hs.local_index) {
			p->mismatch_reported_index = p->hs.local_index;
			event(out, NT_EV_LIKELY_PSK_MISMATCH, p, NT_OK, 0);
		}
		return;
	}
	p->unconfirmed_responses = 0;
	index_release_drops(e, p, &drops);
	event(out, NT_EV_SESSION_ESTABLISHED, p, NT_OK, 0);
	authenticated_received(p, d, len, now.mono, out);
	nt_timers_handshake_complete(&p->timers);
	nt_timers_session_derived(&p->timers, now.mono);
	p->session_expiry = now.mono + NT_REJECT_AFTER_TIME;
	p->last_handshake_wall = now.wall;
	p->handshakes++;
	timers_changed(p);
	/* Key confirmation: the responder waits for our first message on the new keypair. */
	if (p->staged_count)
		send_staged(e, p, now, out);
	else
		send_keepalive(e, p, now, out);
}

static void handle_cookie(struct nt_engine *e, const uint8_t *msg, size_t len, uint64_t now,
			  struct nt_engine_out *out)
{
	struct nt_peer *p;

	if (len != NT_COOKIE_MSG_LEN) {
		e->drops[NT_DROP_SIZE]++;
		return;
	}
	p = nt_index_lookup(&e->indices, nt_load_le32(msg + NT_COOKIE_OFF_RECEIVER));
	if (!p) {
		e->drops[NT_DROP_INDEX]++;
		return;
	}
	if (nt_cookie_consume_reply(&p->cookie, msg, len, now)) {
		e->drops[NT_DROP_DECRYPT]++;
		return;
	}
	event(out, NT_EV_COOKIE_RECEIVED, p, NT_OK, 0);
}

/* Cryptokey routing on receive: the inner source must route back to the same peer. */
static bool source_allowed(struct nt_engine *e, struct nt_peer *p, const uint8_t *pkt)
{
	struct nt_allowedips_owner *owner;

	if ((pkt[0] >> 4) == 4)
		owner = nt_allowedips_lookup(e->aips, AF_INET, pkt + 12);
	else
		owner = nt_allowedips_lookup(e->aips, AF_INET6, pkt + 8);
	return owner == &p->aips;
}

static void receive_opened(struct nt_engine *e, struct nt_now now, struct nt_engine_out *out);

/* A type-4 message, before its AEAD: the checks that need no key (size, index, the
 * peer's state, age, count, the replay window), then queued to be opened with the rest of
 * the batch (data_opened). */
static void handle_data(struct nt_engine *e, uint8_t *msg, size_t len, const struct nt_datagram *d,
			struct nt_now now, struct nt_engine_out *out)
{
	struct nt_keypair *kp;
	struct nt_peer *p;
	enum nt_status st;
	uint64_t counter;

	if (len < NT_DATA_MIN_LEN) {
		e->drops[NT_DROP_SIZE]++;
		return;
	}
	p = nt_index_lookup(&e->indices, nt_load_le32(msg + NT_DATA_OFF_RECEIVER));
	kp = p && p->kps ? nt_keypairs_find(p->kps, nt_load_le32(msg + NT_DATA_OFF_RECEIVER)) : NULL;
	if (!kp) {
		e->drops[NT_DROP_INDEX]++;
		return;
	}
	if (peer_blocked(e, p, now, out)) {
		e->drops_blocked++;
		return;
	}
	st = nt_keypair_open_check(kp, msg, len, now.mono, &counter);
	if (st != NT_OK) {
		e->drops[st]++;
		return;
	}
	if (e->ops_len == NT_ENGINE_CRYPTO_OPS)
		receive_opened(e, now, out);
	e->rx[e->ops_len] = (struct nt_rx_data){ .msg = msg, .len = len, .d = d };
	op_add(e, msg + NT_DATA_OFF_PACKET, len - NT_DATA_HEADER_LEN, counter, kp->recv_key, true);
}

/* A type-4 message after its AEAD, in arrival order: the replay window marked, the
 * session confirmed, timers, cryptokey routing, then the TUN queue. The keypair is looked
 * up again: an earlier message of the batch may have rotated it away. */
static void data_opened(struct nt_engine *e, const struct nt_rx_data *rx, const struct nt_crypto_op *op,
			struct nt_now now, struct nt_engine_out *out)
{
	struct nt_keypair_drops drops = { .count = 0 };
	uint32_t index = nt_load_le32(rx->msg + NT_DATA_OFF_RECEIVER);
	uint8_t *plain = rx->msg + NT_DATA_HEADER_LEN;
	size_t plainlen = rx->len - NT_DATA_MIN_LEN, iplen;
	const struct nt_datagram *d = rx->d;
	struct nt_keypair *kp;
	struct nt_peer *p;

	p = nt_index_lookup(&e->indices, index);
	kp = p && p->kps ? nt_keypairs_find(p->kps, index) : NULL;
	if (!kp) {
		e->drops[NT_DROP_INDEX]++;
		return;
	}
	if (!op->ok) {
		e->drops[NT_DROP_DECRYPT]++;
		return;
	}
	if (!nt_replay_update(&kp->replay, op->counter)) {
		e->drops[NT_DROP_REPLAY]++;
		return;
	}
	authenticated_received(p, d, rx->len, now.mono, out);
	if (nt_keypairs_confirm(p->kps, kp, &drops)) {
		index_release_drops(e, p, &drops);
		nt_timers_handshake_complete(&p->timers);
		p->last_handshake_wall = now.wall;
		p->handshakes++;
		p->unconfirmed_responses = 0;
		event(out, NT_EV_SESSION_CONFIRMED, p, NT_OK, 0);
		send_staged(e, p, now, out);
	}
	if (nt_timers_rekey_on_receive(&p->timers, now.mono, kp->birth, kp->initiator))
		send_initiation(e, p, false, now, out);
	if (!plainlen) {
		timers_changed(p);
		return; /* a keepalive */
	}
	iplen = nt_ip_packet_len(plain, plainlen);
	if (!iplen) {
		e->drops[NT_DROP_MALFORMED]++;
		timers_changed(p);
		return;
	}
	if (!source_allowed(e, p, plain)) {
		e->drops_source++;
		timers_changed(p);
		return;
	}
	nt_timers_data_received(&p->timers, now.mono);
	timers_changed(p);
	if (out->tun_len == out->tun_cap)
		nt_engine_flush(out); /* full: write what is queued (its buffers stay valid), then go on */
	out->tun[out->tun_len++] =
		(struct nt_gro_packet){ .data = plain, .len = iplen, .cap = (size_t)(d->data + d->cap - plain) };
}

/* Open the queued messages (over the host's threads when many), then finish each in order. */
static void receive_opened(struct nt_engine *e, struct nt_now now, struct nt_engine_out *out)
{
	size_t n = e->ops_len;

	crypto_run(e); /* every op queued is one of this batch's: nt_engine_receive ran the rest first */
	for (size_t i = 0; i < n; i++)
		data_opened(e, &e->rx[i], &e->ops[i], now, out);
}

/* A handshake message of exactly its size: what counts as handshake load. Only
 * well-formed sizes count, or a burst of junk headers would force real peers through a
 * cookie round trip. */
static bool is_handshake(const uint8_t *msg, size_t len)
{
	enum nt_message_type t = nt_message_type(msg, len);

	return (t == NT_MSG_INITIATION && len == NT_INIT_LEN) || (t == NT_MSG_RESPONSE && len == NT_RESP_LEN);
}

static size_t segment_of(const struct nt_datagram *d)
{
	return d->segment && d->segment < d->len ? d->segment : d->len;
}

/* A handshake message held back until the batch's other messages are done. */
struct held {
	const uint8_t *msg;
	size_t len;
	const struct nt_datagram *d;
	bool mac1_checked;              /* mac1 known valid, mac2 known invalid */
	bool admitted;                  /* past the mac checks and the rate limit */
	uint16_t work;                  /* an initiation's slot in works[] */
};

static bool same_source_address(const union nt_endpoint *a, const union nt_endpoint *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET)
		return a->in4.sin_addr.s_addr == b->in4.sin_addr.s_addr;
	return !memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, sizeof(a->in6.sin6_addr));
}

struct prepare_batch {
	struct nt_engine *e;
	struct held *held;
	const size_t *which;            /* works[i] is for held[which[i]] */
	struct nt_initiation_work *works;
};

/* host.parallel's task i: the state-free part of one admitted initiation. */
static void prepare_one(void *arg, size_t i)
{
	struct prepare_batch *b = arg;
	const struct held *h = &b->held[b->which[i]];

	nt_noise_prepare_initiation(&b->works[i], h->msg, h->len, b->e->static_identity, lookup_handshake, b->e,
				    b->e->host.rng);
}

/* The asynchronous path: each admitted initiation becomes a job (its result applied by
 * nt_engine_collect); responses are consumed now. */
static void run_admitted_async(struct nt_engine *e, struct held *h, size_t n, struct nt_now now,
			       struct nt_engine_out *out)
{
	for (size_t i = 0; i < n; i++) {
		struct nt_engine_job *j;

		if (!h[i].admitted)
			continue;
		if (h[i].msg[0] != NT_MSG_INITIATION) {
			response_admitted(e, h[i].msg, h[i].len, h[i].d, now, out);
		} else if (e->jobs_count == NT_ENGINE_JOBS_MAX) {
			e->drops[NT_DROP_FLOOD]++; /* the ring's bound: the initiator retries */
		} else {
			j = job_at(e, e->jobs_count++);
			j->e = e;
			j->epoch = e->config_epoch;
			j->done = 0;
			j->from = h[i].d->from;
			j->local = h[i].d->local;
			memcpy(j->msg, h[i].msg, NT_INIT_LEN);
			e->host.submit(e->host.ctx, job_run, j);
		}
		h[i].msg = NULL;
	}
}

void nt_engine_collect(struct nt_engine *e, struct nt_now now, struct nt_engine_out *out)
{
	while (e->jobs_count) {
		struct nt_engine_job *j = job_at(e, 0);

		if (!__atomic_load_n(&j->done, __ATOMIC_ACQUIRE))
			break; /* submission order: the ones after it wait */
		if (j->epoch != e->config_epoch || !e->up) {
			e->hs_jobs_discarded++;
		} else {
			struct nt_datagram d = { .data = j->msg, .len = NT_INIT_LEN, .cap = NT_INIT_LEN,
						 .from = j->from, .local = j->local };

			initiation_apply(e, &j->w, NT_INIT_LEN, &d, now, out);
		}
		nt_wipe(j, sizeof(*j));
		e->jobs_head = (e->jobs_head + 1) % NT_ENGINE_JOBS_MAX;
		e->jobs_count--;
	}
	if (!e->jobs_count)
		e->jobs_head = 0;
}

/* The admitted handshakes: the initiations' expensive part over the host's threads
 * (host.parallel) while this thread waits and nothing else changes, then each message's
 * state change here, in arrival order. */
static void run_admitted(struct nt_engine *e, struct held *h, size_t n, struct nt_now now,
			 struct nt_engine_out *out)
{
	struct nt_initiation_work works[NT_ENGINE_HELD_MAX];
	size_t which[NT_ENGINE_HELD_MAX], nworks = 0;
	struct prepare_batch batch = { .e = e, .held = h, .which = which, .works = works };

	if (e->jobs) {
		run_admitted_async(e, h, n, now, out);
		return;
	}
	for (size_t i = 0; i < n && nworks < NT_ENGINE_HELD_MAX; i++) {
		if (h[i].admitted && h[i].msg[0] == NT_MSG_INITIATION) {
			h[i].work = (uint16_t)nworks;
			which[nworks++] = i;
		}
	}
	if (nworks > 1 && e->host.parallel)
		e->host.parallel(e->host.ctx, prepare_one, &batch, nworks);
	else
		for (size_t i = 0; i < nworks; i++)
			prepare_one(&batch, i);
	for (size_t i = 0; i < n; i++) {
		if (!h[i].admitted)
			continue;
		if (h[i].msg[0] == NT_MSG_INITIATION)
			initiation_apply(e, &works[h[i].work], h[i].len, h[i].d, now, out);
		else
			response_admitted(e, h[i].msg, h[i].len, h[i].d, now, out);
		h[i].msg = NULL;
	}
	for (size_t i = 0; i < nworks; i++)
		nt_noise_work_wipe(&works[i]);
}

/* The held handshakes. Not under load: each past mac1 is processed. Under load, in the
 * order that keeps a flood from starving anyone: first those with a valid mac2 (a peer
 * that proved its address with our cookie: the rate limiter, then the full handshake);
 * then cookie replies to the rest, at most NT_ENGINE_COOKIE_BUDGET, first at most
 * NT_ENGINE_COOKIE_PER_SOURCE per source address (so one flooding address cannot take
 * the whole budget from a real peer elsewhere), then in arrival order. What is left is
 * dropped with no cryptography at all. */
static void receive_held(struct nt_engine *e, struct held *h, size_t n, bool under_load, struct nt_now now,
			 struct nt_engine_out *out)
{
	static const uint8_t zero[NT_MAC_LEN];
	size_t budget = NT_ENGINE_COOKIE_BUDGET, answered_len = 0, admitted = 0;
	const union nt_endpoint *answered[NT_ENGINE_COOKIE_BUDGET];

	for (size_t i = 0; i < n; i++) {
		uint8_t src[18];
		size_t src_len;
		enum nt_cookie_mac_state mac;

		/* A zero mac2 is no cookie at all: no need to compute one to know. */
		if (under_load && nt_equal(h[i].msg + h[i].len - NT_MAC_LEN, zero, NT_MAC_LEN))
			continue;
		src_len = nt_endpoint_cookie_src(&h[i].d->from, src);
		mac = nt_cookie_validate(&e->cookie_checker, h[i].msg, h[i].len, src, src_len, now.mono, under_load);
		if (mac == NT_COOKIE_MAC_INVALID) {
			e->drops[NT_DROP_DECRYPT]++;
			e->hs_bad_mac++;
			h[i].msg = NULL;
		} else if (!under_load) {
			h[i].admitted = true;
		} else if (mac == NT_COOKIE_MAC2_VALID) {
			/* The event loop waits for a batch's handshakes: bound them. */
			if (admitted == NT_ENGINE_ADMITTED_MAX) {
				e->drops[NT_DROP_FLOOD]++;
				h[i].msg = NULL;
				continue;
			}
			h[i].admitted = ratelimit_allows(&e->ratelimiter, h[i].d, now.mono);
			admitted += h[i].admitted;
			if (!h[i].admitted) {
				e->hs_ratelimited++;
				h[i].msg = NULL;
			}
		} else {
			h[i].mac1_checked = true;
		}
	}
	run_admitted(e, h, n, now, out);
	if (!under_load)
		return;
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < n; i++) {
			size_t same = 0;

			if (!h[i].msg)
				continue;
			if (!budget) {
				e->drops[NT_DROP_FLOOD]++;
				h[i].msg = NULL;
				continue;
			}
			for (size_t k = 0; k < answered_len; k++)
				same += same_source_address(answered[k], &h[i].d->from);
			if (round == 0 && same >= NT_ENGINE_COOKIE_PER_SOURCE)
				continue; /* its turn comes in the second round, if budget is left */
			if (!h[i].mac1_checked &&
			    nt_cookie_validate(&e->cookie_checker, h[i].msg, h[i].len, NULL, 0, now.mono, false) ==
				    NT_COOKIE_MAC_INVALID) {
				e->drops[NT_DROP_DECRYPT]++;
				e->hs_bad_mac++;
			} else if (!ratelimit_allows(&e->cookie_ratelimiter, h[i].d, now.mono)) {
				e->drops[NT_DROP_FLOOD]++;
				e->hs_ratelimited++;
			} else {
				send_cookie_reply(e, h[i].msg, h[i].len, h[i].d, now.mono, out);
				answered[answered_len++] = &h[i].d->from;
				budget--;
			}
			h[i].msg = NULL;
		}
	}
}

void nt_engine_receive(struct nt_engine *e, struct nt_datagram *dgrams, size_t n, struct nt_now now,
		       struct nt_engine_out *out)
{
	size_t handshakes = 0, hs_budget = NT_ENGINE_HANDSHAKE_QUEUE, held_len = 0;
	struct held held[NT_ENGINE_HELD_MAX];
	bool under_load;

	if (!e->up)
		return; /* the link's state gates the peers: nothing is processed while down */
	crypto_run(e); /* seals still queued: so that every op below is one to open */
	/* The load is counted per segment: a GRO super-datagram (the kernel's, or a sender's
	 * GSO handed over unchanged) of 64 initiations is 64 handshakes, not none. */
	for (size_t i = 0; i < n; i++) {
		size_t len = dgrams[i].len, seg = segment_of(&dgrams[i]);

		if (dgrams[i].truncated)
			continue;
		for (size_t off = 0; off < len; off += seg)
			handshakes += is_handshake(dgrams[i].data + off, len - off < seg ? len - off : seg);
	}
	/* Load is a handshake queue 1/8 full, as the kernel's rule. With host.submit the queue
	 * is the job ring, and each handshake of the batch sees the jobs before it (the
	 * ring's plus the batch's earlier ones): more than NT_ENGINE_JOBS_MAX / 8 waiting is
	 * load. A batch alone is load from half that: a burst of 16 initiations in one read
	 * is a flood's shape (a legitimate burst, peers reconnecting after a restart, spreads
	 * over reads), and the threads would otherwise burn through it before the ring filled.
	 * Without the ring the batch is the queue. */
	if (e->jobs) {
		/* both evaluated: either refreshes the hold */
		bool queued = nt_cookie_under_load(e->jobs_count + handshakes - (handshakes > 0), NT_ENGINE_JOBS_MAX,
						   now.mono, &e->last_under_load);
		bool burst = nt_cookie_under_load(handshakes, NT_ENGINE_JOBS_MAX / 2, now.mono, &e->last_under_load);

		under_load = queued || burst;
	} else
		under_load = nt_cookie_under_load(handshakes, NT_ENGINE_HANDSHAKE_QUEUE, now.mono, &e->last_under_load);
	if (e->jobs_count > handshakes)
		handshakes = e->jobs_count; /* for the event's value */
	if (under_load && !e->was_under_load)
		event(out, NT_EV_UNDER_LOAD, NULL, NT_OK, handshakes);
	else if (!under_load && e->was_under_load)
		event(out, NT_EV_LOAD_ENDED, NULL, NT_OK, 0);
	e->was_under_load = under_load;

	for (size_t i = 0; i < n; i++) {
		struct nt_datagram *d = &dgrams[i];
		size_t len = d->len, seg = segment_of(d);

		if (d->truncated) {
			e->drops[NT_DROP_SIZE]++;
			continue;
		}
		/* A GRO super-datagram: same-sized datagrams back to back, the last maybe shorter. */
		for (size_t off = 0; off < len; off += seg) {
			uint8_t *msg = d->data + off;
			size_t mlen = len - off < seg ? len - off : seg;
			enum nt_message_type type = nt_message_type(msg, mlen);

			/* A wakeup handles at most NT_ENGINE_HANDSHAKE_QUEUE handshake messages that
			 * ride in a super-datagram after its first segment: no more than a batch of
			 * plain datagrams could carry, so segmentation buys no extra Diffie-Hellman
			 * (or cookie reply) work, while the first segment of every datagram keeps its
			 * chance, as a plain datagram from a real peer would. */
			if (type == NT_MSG_INITIATION || type == NT_MSG_RESPONSE) {
				if (off && !hs_budget) {
					e->drops[NT_DROP_FLOOD]++;
					continue;
				}
				if (hs_budget)
					hs_budget--;
				if (mlen != (type == NT_MSG_INITIATION ? NT_INIT_LEN : NT_RESP_LEN)) {
					e->drops[NT_DROP_SIZE]++;
					continue;
				}
				/* The batch's data and cookie messages go first; handshakes wait in a
				 * bounded list (their crypto may then run on the host's threads), and
				 * what does not fit is dropped unread. */
				if (held_len == NT_ENGINE_HELD_MAX) {
					e->drops[NT_DROP_FLOOD]++;
					continue;
				}
				held[held_len++] = (struct held){ .msg = msg, .len = mlen, .d = d };
				continue;
			}
			switch (type) {
			case NT_MSG_COOKIE:
				handle_cookie(e, msg, mlen, now.mono, out);
				break;
			case NT_MSG_DATA:
				handle_data(e, msg, mlen, d, now, out);
				break;
			default:
				e->drops[NT_DROP_SIZE]++;
				break;
			}
		}
	}
	receive_opened(e, now, out);
	if (held_len)
		receive_held(e, held, held_len, under_load, now, out);
	if (e->jobs_count)
		nt_engine_collect(e, now, out); /* those done meanwhile: no wakeup needed for them */
}

/* ---- timers ---- */

#define SESSION_EXPIRED (1u << 31) /* the engine's own, beside enum nt_timer_action's bits */

static void run_peer_timers(struct nt_engine *e, struct nt_peer *p, unsigned actions, struct nt_now now,
			    struct nt_engine_out *out)
{
	if (actions & NT_TIMER_DROP_STAGED) {
		event(out, NT_EV_HANDSHAKE_GAVE_UP, p, NT_OK, p->staged_count);
		drop_staged(p);
	}
	if (actions & NT_TIMER_ERASE_KEYS) {
		event(out, NT_EV_KEYS_ERASED, p, NT_OK, 0);
		clear_sessions(e, p);
	}
	if (actions & SESSION_EXPIRED)
		event(out, NT_EV_SESSION_EXPIRED, p, NT_OK, 0);
	if (actions & NT_TIMER_CLEAR_ENDPOINT_SOURCE)
		p->src.set = false; /* a retry may need another route: let routing pick the source */
	if (actions & NT_TIMER_RETRY_INITIATION)
		send_initiation(e, p, true, now, out);
	else if (actions & NT_TIMER_SEND_INITIATION)
		send_initiation(e, p, false, now, out);
	if (actions & NT_TIMER_SEND_KEEPALIVE)
		send_keepalive(e, p, now, out);
}

void nt_engine_timers(struct nt_engine *e, struct nt_now now, struct nt_engine_out *out)
{
	while (e->heap_len && peer_deadline(e->heap[0]) <= now.mono) {
		struct nt_peer *p = e->heap[0];
		/* The pending initiation went unanswered for REKEY_TIMEOUT: a retry or the
		 * give-up follows. */
		bool timed_out = p->timers.retransmit_handshake.armed && p->timers.retransmit_handshake.at <= now.mono;
		unsigned actions = nt_timers_expire(&p->timers, now.mono);

		if (timed_out && e->up)
			p->handshake_failures++;

		if (p->session_expiry <= now.mono) {
			p->session_expiry = UINT64_MAX;
			actions |= SESSION_EXPIRED;
		}
		timers_changed(p);
		if (e->up)
			run_peer_timers(e, p, actions, now, out);
		timers_changed(p);
	}
	/* The load's end, should no datagram come to tell it (the hold is measured from the
	 * last loaded batch). */
	if (e->was_under_load && !nt_cookie_under_load(0, NT_ENGINE_HANDSHAKE_QUEUE, now.mono, &e->last_under_load)) {
		e->was_under_load = false;
		event(out, NT_EV_LOAD_ENDED, NULL, NT_OK, 0);
	}
	expiry_run(e, now, out); /* down too: a passed deadline must not stay the next one */
	if (now.mono >= e->next_ratelimiter_gc) {
		nt_ratelimiter_gc(&e->ratelimiter, now.mono);
		nt_ratelimiter_gc(&e->cookie_ratelimiter, now.mono);
		e->next_ratelimiter_gc = now.mono + NT_NSEC_PER_SEC;
	}
}

/* ---- metrics ---- */

bool nt_engine_under_load(const struct nt_engine *e, uint64_t now)
{
	return e->last_under_load && now >= e->last_under_load && now - e->last_under_load < NT_COOKIE_UNDER_LOAD_HOLD;
}

bool nt_engine_session_age(const struct nt_peer *p, uint64_t now, uint64_t *age)
{
	struct nt_keypair *kp = p->kps ? nt_keypairs_current(p->kps) : NULL;

	if (!kp || !nt_keypair_usable(kp, now, kp->send_counter))
		return false;
	*age = now >= kp->birth ? now - kp->birth : 0;
	return true;
}
