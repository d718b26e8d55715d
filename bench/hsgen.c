/* hsgen: a WireGuard handshake load generator for bench/run (see bench/README.md).
 *
 * It plays N distinct initiators (peer i's static key is derived from SEED and i, so the
 * responder can be given the N public keys with `wg set`) against one responder, and counts
 * the type-2 responses that complete a handshake.
 *
 *   hsgen keys SEED NPEERS
 *       print the N peers' public keys (base64), one a line
 *   hsgen pool FILE SEED NPEERS RESPONDER_PUB COUNT
 *       precompute COUNT initiations (fresh ephemeral each, mac1 set, mac2 zero), peer
 *       e % N, timestamps increasing per peer; with each, the initiator's secrets needed to
 *       consume the response. Done before the clock runs so the generator's own X25519 work
 *       does not compete with the responder for the CPU during the measurement.
 *   hsgen run FILE SEED NPEERS RESPONDER_PUB DEST_IP DEST_PORT MODE SECONDS [options]
 *       MODE closed: keep --window W initiations in flight (W small enough that the
 *         responder never sees itself under load): its capacity without cookies.
 *       MODE cookie: open loop at --rate R initiations/s (more than the responder can
 *         complete, so it goes under load and answers with cookie replies); each cookie
 *         reply is consumed and the same initiation is sent again from the same source
 *         with mac2. Completed responses are counted either way.
 *       Sources: --src-count A addresses from --src-base (must be local: bench/run routes
 *       the block to lo in the generator's namespace) x --ports P sockets, so the
 *       per-source-IP rate limiter (20/s) under load does not cap the count.
 *       Only responses arriving in [warmup, warmup + SECONDS) count, and every one of them
 *       is then verified off the clock (nt_noise_consume_response: 2 X25519 each), in
 *       parallel. Prints one JSON object.
 *
 * The pool can be reused against any fresh responder (a new daemon has no replay state). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "noisetun/cookie.h"
#include "noisetun/crypto.h"
#include "noisetun/encoding.h"
#include "noisetun/noise.h"

#define TOOL_NAME "hsgen"
#include "tool.h"

#define POOL_MAGIC "NTHSPOOL"
#define POOL_VERSION 1
#define SEND_BATCH 64
#define RECV_BATCH 64
#define CLOSED_TIMEOUT_NS (250 * 1000000ULL)

struct pool_header {
	char magic[8];
	uint32_t version;
	uint32_t npeers;
	uint64_t seed;
	uint64_t count;
	uint64_t entry_size;
	uint8_t responder_pub[NT_KEY_LEN];
};

struct pool_entry {
	uint8_t msg[NT_INIT_LEN]; /* mac1 set, mac2 zero; sender index = entry number + 1 */
	uint32_t peer;
	uint8_t ephemeral_private[NT_KEY_LEN];
	uint8_t hash[NT_HASH_LEN];
	uint8_t chaining_key[NT_HASH_LEN];
};

struct peer {
	struct nt_noise_static st;
	struct nt_handshake hs; /* base state: static-static DH and initiator hash precomputed */
};

/* Peer i's private key: BLAKE2s("noisetun bench hsgen" || seed || i). */
static void peer_private(uint8_t out[NT_KEY_LEN], uint64_t seed, uint32_t i)
{
	static const char tag[] = "noisetun bench hsgen";
	uint8_t in[12];

	nt_store_le64(in, seed);
	nt_store_le32(in + 8, i);
	nt_hash2(out, tag, sizeof(tag) - 1, in, sizeof(in));
	nt_key_clamp(out);
}

static struct peer *peers_make(uint64_t seed, uint32_t npeers, const uint8_t *responder_pub)
{
	struct peer *peers = calloc(npeers ? npeers : 1, sizeof(*peers));
	uint8_t priv[NT_KEY_LEN];

	if (!peers)
		die("out of memory");
	for (uint32_t i = 0; i < npeers; i++) {
		peer_private(priv, seed, i);
		nt_noise_static_init(&peers[i].st, priv);
		if (responder_pub) {
			nt_handshake_init(&peers[i].hs, &peers[i].st, responder_pub, NULL);
			if (!peers[i].hs.static_static_valid)
				die("responder public key gives a low-order DH");
		}
	}
	nt_wipe(priv, sizeof(priv));
	return peers;
}

static void parse_key(uint8_t key[NT_KEY_LEN], const char *s)
{
	if (nt_key_from_base64(key, s))
		die("bad base64 key: %s", s);
}

/* ------------------------------------------------------------------ keys */

static int cmd_keys(int argc, char **argv)
{
	uint64_t seed;
	uint32_t npeers;
	struct peer *peers;
	char b64[NT_KEY_B64_LEN + 1];

	if (argc != 2)
		die("usage: hsgen keys SEED NPEERS");
	seed = parse_u64(argv[0], "seed");
	npeers = (uint32_t)parse_u64(argv[1], "peer count");
	peers = peers_make(seed, npeers, NULL);
	for (uint32_t i = 0; i < npeers; i++) {
		nt_key_to_base64(b64, peers[i].st.public_key);
		puts(b64);
	}
	free(peers);
	return 0;
}

/* ------------------------------------------------------------------ pool */

struct pool_job {
	struct pool_entry *entries;
	const struct peer *peers;
	uint32_t npeers;
	uint64_t lo, hi, wall0;
	const uint8_t *responder_pub;
};

static void *pool_worker(void *arg)
{
	struct pool_job *job = arg;
	struct nt_cookie_maker maker;
	struct nt_handshake hs;

	nt_cookie_maker_init(&maker, job->responder_pub);
	for (uint64_t e = job->lo; e < job->hi; e++) {
		struct pool_entry *pe = &job->entries[e];
		const struct peer *p = &job->peers[e % job->npeers];
		/* Timestamps rise by 1 ms per initiation of the same peer: only their order matters
		 * to a responder (replay protection), and a fresh responder has seen none. */
		uint64_t wall = job->wall0 + (e / job->npeers) * 1000000ULL;

		hs = p->hs;
		if (nt_noise_create_initiation(pe->msg, &hs, &p->st, (uint32_t)(e + 1), wall, &rng) != NT_OK)
			die("create_initiation failed");
		if (nt_cookie_add_macs(&maker, pe->msg, NT_INIT_LEN, 0))
			die("add_macs failed");
		pe->peer = (uint32_t)(e % job->npeers);
		memcpy(pe->ephemeral_private, hs.secrets.ephemeral_private, NT_KEY_LEN);
		memcpy(pe->hash, hs.secrets.hash, NT_HASH_LEN);
		memcpy(pe->chaining_key, hs.secrets.chaining_key, NT_HASH_LEN);
	}
	nt_wipe(&hs, sizeof(hs));
	return NULL;
}

static int cmd_pool(int argc, char **argv)
{
	struct pool_header h = { .magic = POOL_MAGIC, .version = POOL_VERSION };
	struct pool_job jobs[MAX_THREADS];
	pthread_t th[MAX_THREADS];
	struct pool_entry *entries;
	struct peer *peers;
	unsigned nt = nthreads();
	FILE *f;

	if (argc != 5)
		die("usage: hsgen pool FILE SEED NPEERS RESPONDER_PUB COUNT");
	h.seed = parse_u64(argv[1], "seed");
	h.npeers = (uint32_t)parse_u64(argv[2], "peer count");
	parse_key(h.responder_pub, argv[3]);
	h.count = parse_u64(argv[4], "count");
	h.entry_size = sizeof(struct pool_entry);
	if (!h.npeers || !h.count || h.count >= UINT32_MAX)
		die("bad peer count or pool size");

	peers = peers_make(h.seed, h.npeers, h.responder_pub);
	entries = calloc(h.count, sizeof(*entries));
	if (!entries)
		die("out of memory");
	uint64_t wall0 = wall_now_ns();
	for (unsigned t = 0; t < nt; t++) {
		jobs[t] = (struct pool_job){ .entries = entries, .peers = peers, .npeers = h.npeers,
					     .lo = h.count * t / nt, .hi = h.count * (t + 1) / nt,
					     .wall0 = wall0, .responder_pub = h.responder_pub };
		if (pthread_create(&th[t], NULL, pool_worker, &jobs[t]))
			die("pthread_create");
	}
	for (unsigned t = 0; t < nt; t++)
		pthread_join(th[t], NULL);

	if (!(f = fopen(argv[0], "wb")))
		die("%s: %s", argv[0], strerror(errno));
	if (fwrite(&h, sizeof(h), 1, f) != 1 || fwrite(entries, sizeof(*entries), h.count, f) != h.count ||
	    fclose(f))
		die("%s: write failed", argv[0]);
	free(entries);
	free(peers);
	return 0;
}

/* ------------------------------------------------------------------ run */

enum { ST_UNSENT, ST_SENT, ST_RESENT, ST_DONE };

struct gen {
	/* pool */
	const struct pool_entry *e;
	uint64_t count;
	uint32_t npeers;
	uint8_t *state;
	uint8_t (*resp)[NT_RESP_LEN];
	uint8_t *in_window;  /* response arrived inside the counting window */
	uint8_t *via_cookie; /* the response answered an initiation resent with mac2 */

	/* network */
	struct sockaddr_in dest;
	uint32_t src_base; /* host order */
	uint32_t src_count;
	unsigned nsock;
	int *socks;
	int epoll;

	/* send queues, one per socket */
	struct sendq {
		unsigned n;
		struct mmsghdr msgs[SEND_BATCH];
		struct iovec iov[SEND_BATCH];
		union {
			char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
			struct cmsghdr align;
		} cmsg[SEND_BATCH];
		uint8_t copy[SEND_BATCH][NT_INIT_LEN]; /* resends carry their own mac2 */
	} *q;

	struct nt_cookie_maker maker;

	/* counters */
	uint64_t sent, resent, send_errors, send_dropped;
	uint64_t responses, responses_window, cookies, cookies_window, cookies_again, late_or_unknown, other;
	uint64_t timeouts, cookie_bad;
	uint64_t window_start, window_end;
};

static uint32_t src_addr(const struct gen *g, uint64_t e)
{
	return g->src_base + (uint32_t)(e % g->src_count);
}

static unsigned sock_of(const struct gen *g, uint64_t e)
{
	return (unsigned)((e / g->src_count) % g->nsock);
}

static void flush(struct gen *g, unsigned s)
{
	struct sendq *q = &g->q[s];
	unsigned off = 0;

	while (off < q->n) {
		int n = sendmmsg(g->socks[s], q->msgs + off, q->n - off, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == ENOBUFS) {
				/* Our own socket buffer is full: count it, do not spin. */
				g->send_dropped += q->n - off;
				break;
			}
			g->send_errors += q->n - off;
			break;
		}
		off += (unsigned)n;
	}
	q->n = 0;
}

static void flush_all(struct gen *g)
{
	for (unsigned s = 0; s < g->nsock; s++)
		if (g->q[s].n)
			flush(g, s);
}

/* Queue entry e for sending; with mac2 (a copy with the cookie's mac2) when resend. */
static void queue_send(struct gen *g, uint64_t e, bool resend, uint64_t now)
{
	unsigned s = sock_of(g, e);
	struct sendq *q = &g->q[s];
	unsigned i;
	struct cmsghdr *cm;
	struct in_pktinfo pi = { 0 };

	if (q->n == SEND_BATCH)
		flush(g, s);
	i = q->n++;
	if (resend) {
		memcpy(q->copy[i], g->e[e].msg, NT_INIT_LEN);
		if (nt_cookie_add_macs(&g->maker, q->copy[i], NT_INIT_LEN, now))
			die("add_macs failed");
		q->iov[i] = (struct iovec){ .iov_base = q->copy[i], .iov_len = NT_INIT_LEN };
		g->resent++;
	} else {
		q->iov[i] = (struct iovec){ .iov_base = (void *)g->e[e].msg, .iov_len = NT_INIT_LEN };
		g->sent++;
	}
	q->msgs[i] = (struct mmsghdr){ .msg_hdr = {
		.msg_name = &g->dest, .msg_namelen = sizeof(g->dest), .msg_iov = &q->iov[i], .msg_iovlen = 1,
		.msg_control = q->cmsg[i].buf, .msg_controllen = sizeof(q->cmsg[i].buf) } };
	cm = CMSG_FIRSTHDR(&q->msgs[i].msg_hdr);
	cm->cmsg_level = IPPROTO_IP;
	cm->cmsg_type = IP_PKTINFO;
	cm->cmsg_len = CMSG_LEN(sizeof(pi));
	pi.ipi_spec_dst.s_addr = htonl(src_addr(g, e));
	memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
}

struct slot {
	uint64_t e, t;
	bool used;
};

/* A received datagram. Returns the entry it freed (closed loop), or UINT64_MAX. */
static uint64_t on_datagram(struct gen *g, const uint8_t *msg, size_t len, uint64_t now, bool cookie_mode)
{
	bool in_window = now >= g->window_start && now < g->window_end;
	enum nt_message_type t = nt_message_type(msg, len);
	uint64_t e;

	if (t == NT_MSG_RESPONSE && len == NT_RESP_LEN) {
		e = (uint64_t)nt_load_le32(msg + NT_RESP_OFF_RECEIVER) - 1;
		if (e >= g->count || (g->state[e] != ST_SENT && g->state[e] != ST_RESENT)) {
			g->late_or_unknown++;
			return UINT64_MAX;
		}
		g->via_cookie[e] = g->state[e] == ST_RESENT;
		g->state[e] = ST_DONE;
		memcpy(g->resp[e], msg, NT_RESP_LEN);
		g->in_window[e] = in_window;
		g->responses++;
		g->responses_window += in_window;
		return e;
	}
	if (t == NT_MSG_COOKIE && len == NT_COOKIE_MSG_LEN) {
		e = (uint64_t)nt_load_le32(msg + NT_COOKIE_OFF_RECEIVER) - 1;
		if (e >= g->count || (g->state[e] != ST_SENT && g->state[e] != ST_RESENT)) {
			g->late_or_unknown++;
			return UINT64_MAX;
		}
		g->cookies++;
		g->cookies_window += in_window;
		if (g->state[e] == ST_RESENT) {
			/* mac2 was not accepted (or the responder lost our cookie): give up on it. */
			g->cookies_again++;
			g->state[e] = ST_DONE;
			return e;
		}
		if (!cookie_mode) {
			g->state[e] = ST_DONE;
			return e;
		}
		/* The cookie is sealed with our mac1 of that initiation as associated data. */
		memcpy(g->maker.last_mac1_sent, g->e[e].msg + NT_INIT_OFF_MAC1, NT_MAC_LEN);
		g->maker.has_sent_mac1 = true;
		if (nt_cookie_consume_reply(&g->maker, msg, len, now)) {
			g->cookie_bad++;
			g->state[e] = ST_DONE;
			return e;
		}
		g->state[e] = ST_RESENT;
		queue_send(g, e, true, now);
		return UINT64_MAX;
	}
	g->other++;
	return UINT64_MAX;
}

struct verify_job {
	struct gen *g;
	const struct peer *peers;
	uint64_t lo, hi;
	uint64_t valid, invalid, valid_cookie;
};

static void *verify_worker(void *arg)
{
	struct verify_job *j = arg;
	struct gen *g = j->g;
	struct nt_handshake hs;

	for (uint64_t e = j->lo; e < j->hi; e++) {
		const struct pool_entry *pe = &g->e[e];
		const struct peer *p;

		if (g->state[e] != ST_DONE || !g->in_window[e] || !g->resp[e][0])
			continue;
		p = &j->peers[pe->peer];
		hs = p->hs;
		memcpy(hs.secrets.ephemeral_private, pe->ephemeral_private, NT_KEY_LEN);
		memcpy(hs.secrets.hash, pe->hash, NT_HASH_LEN);
		memcpy(hs.secrets.chaining_key, pe->chaining_key, NT_HASH_LEN);
		hs.local_index = (uint32_t)(e + 1);
		hs.state = NT_HS_CREATED_INITIATION;
		if (nt_noise_consume_response(&hs, g->resp[e], NT_RESP_LEN, &p->st) == NT_OK) {
			j->valid++;
			j->valid_cookie += g->via_cookie[e];
		} else {
			j->invalid++;
		}
	}
	nt_wipe(&hs, sizeof(hs));
	return NULL;
}

static int cmd_run(int argc, char **argv)
{
	struct gen g = { 0 };
	const struct pool_header *h;
	struct peer *peers;
	uint8_t responder_pub[NT_KEY_LEN];
	struct stat sb;
	uint64_t seed, npeers, port;
	const char *mode;
	bool cookie_mode;
	double seconds, warmup = 0.5, rate = 30000;
	unsigned window = 6, nports = 16;
	const char *src_base = "10.77.0.0";
	uint64_t src_count = 4096;
	struct in_addr a;
	void *map;
	int fd;

	if (argc < 8)
		die("usage: hsgen run FILE SEED NPEERS RESPONDER_PUB DEST_IP DEST_PORT closed|cookie SECONDS "
		    "[--warmup S] [--window W] [--rate R] [--src-base IP] [--src-count A] [--ports P]");
	seed = parse_u64(argv[1], "seed");
	npeers = parse_u64(argv[2], "peer count");
	parse_key(responder_pub, argv[3]);
	if (inet_pton(AF_INET, argv[4], &g.dest.sin_addr) != 1)
		die("bad destination address %s", argv[4]);
	port = parse_u64(argv[5], "port");
	g.dest.sin_family = AF_INET;
	g.dest.sin_port = htons((uint16_t)port);
	mode = argv[6];
	if (strcmp(mode, "closed") && strcmp(mode, "cookie"))
		die("mode must be closed or cookie");
	cookie_mode = !strcmp(mode, "cookie");
	seconds = parse_double(argv[7], "seconds");
	for (int i = 8; i < argc; i++) {
		if (i + 1 >= argc)
			die("option %s needs a value", argv[i]);
		if (!strcmp(argv[i], "--warmup"))
			warmup = parse_double(argv[++i], "warmup");
		else if (!strcmp(argv[i], "--window"))
			window = (unsigned)parse_u64(argv[++i], "window");
		else if (!strcmp(argv[i], "--rate"))
			rate = parse_double(argv[++i], "rate");
		else if (!strcmp(argv[i], "--src-base"))
			src_base = argv[++i];
		else if (!strcmp(argv[i], "--src-count"))
			src_count = parse_u64(argv[++i], "source count");
		else if (!strcmp(argv[i], "--ports"))
			nports = (unsigned)parse_u64(argv[++i], "ports");
		else
			die("unknown option %s", argv[i]);
	}
	if (!window || window > 4096 || !nports || nports > 1024 || !src_count || src_count > 65536 || rate <= 0)
		die("option out of range");
	if (inet_pton(AF_INET, src_base, &a) != 1)
		die("bad source base %s", src_base);
	g.src_base = ntohl(a.s_addr);
	g.src_count = (uint32_t)src_count;
	g.nsock = nports;

	/* The pool. */
	if ((fd = open(argv[0], O_RDONLY)) < 0 || fstat(fd, &sb) < 0)
		die("%s: %s", argv[0], strerror(errno));
	if ((size_t)sb.st_size < sizeof(*h))
		die("%s: not a pool", argv[0]);
	map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	if (map == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	close(fd);
	h = map;
	if (memcmp(h->magic, POOL_MAGIC, 8) || h->version != POOL_VERSION || h->entry_size != sizeof(struct pool_entry) ||
	    sizeof(*h) + h->count * sizeof(struct pool_entry) > (uint64_t)sb.st_size)
		die("%s: not a pool of this version", argv[0]);
	if (h->seed != seed || h->npeers != npeers || memcmp(h->responder_pub, responder_pub, NT_KEY_LEN))
		die("%s: made for another seed, peer count or responder", argv[0]);
	g.e = (const struct pool_entry *)(h + 1);
	g.count = h->count;
	g.npeers = h->npeers;
	g.state = calloc(g.count, 1);
	g.in_window = calloc(g.count, 1);
	g.via_cookie = calloc(g.count, 1);
	g.resp = calloc(g.count, NT_RESP_LEN);
	g.q = calloc(g.nsock, sizeof(*g.q));
	g.socks = calloc(g.nsock, sizeof(int));
	if (!g.state || !g.in_window || !g.via_cookie || !g.resp || !g.q || !g.socks)
		die("out of memory");
	peers = peers_make(seed, g.npeers, responder_pub);
	nt_cookie_maker_init(&g.maker, responder_pub);

	/* Sockets: each on its own port on every local address; the source address of each
	 * datagram is chosen with IP_PKTINFO. */
	if ((g.epoll = epoll_create1(0)) < 0)
		die("epoll: %s", strerror(errno));
	for (unsigned s = 0; s < g.nsock; s++) {
		int sk = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0), size = 4 << 20, one = 1;
		struct sockaddr_in any = { .sin_family = AF_INET };
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = s };

		if (sk < 0)
			die("socket: %s", strerror(errno));
		if (setsockopt(sk, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
			setsockopt(sk, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
		if (setsockopt(sk, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
			setsockopt(sk, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
		setsockopt(sk, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
		if (bind(sk, (struct sockaddr *)&any, sizeof(any)) < 0)
			die("bind: %s", strerror(errno));
		if (epoll_ctl(g.epoll, EPOLL_CTL_ADD, sk, &ev) < 0)
			die("epoll_ctl: %s", strerror(errno));
		g.socks[s] = sk;
	}

	/* The run. */
	struct slot *slots = calloc(window, sizeof(*slots));
	static uint8_t rbuf[RECV_BATCH][256];
	struct mmsghdr rmsgs[RECV_BATCH];
	struct iovec riov[RECV_BATCH];
	struct epoll_event evs[1024];
	uint64_t next = 0, t0, now, end;
	double cpu0 = cpu_seconds();
	bool exhausted = false;

	if (!slots)
		die("out of memory");
	t0 = mono_ns();
	g.window_start = t0 + (uint64_t)(warmup * 1e9);
	g.window_end = g.window_start + (uint64_t)(seconds * 1e9);
	end = g.window_end;

	if (!cookie_mode) {
		for (unsigned i = 0; i < window && next < g.count; i++, next++) {
			slots[i] = (struct slot){ .e = next, .t = t0, .used = true };
			g.state[next] = ST_SENT;
			queue_send(&g, next, false, t0);
		}
		flush_all(&g);
	}
	for (now = mono_ns(); now < end; now = mono_ns()) {
		if (cookie_mode) {
			uint64_t due = (uint64_t)((double)(now - t0) * rate / 1e9) + 1;
			if (due > g.count) {
				due = g.count;
				exhausted = true;
			}
			for (; next < due; next++) {
				g.state[next] = ST_SENT;
				queue_send(&g, next, false, now);
			}
			flush_all(&g);
		}
		int n = epoll_wait(g.epoll, evs, 1024, 1);
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		now = mono_ns();
		for (int i = 0; i < n; i++) {
			unsigned s = evs[i].data.u32;
			for (;;) {
				for (unsigned k = 0; k < RECV_BATCH; k++) {
					riov[k] = (struct iovec){ .iov_base = rbuf[k], .iov_len = sizeof(rbuf[k]) };
					rmsgs[k] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &riov[k], .msg_iovlen = 1 } };
				}
				int m = recvmmsg(g.socks[s], rmsgs, RECV_BATCH, MSG_DONTWAIT, NULL);
				if (m <= 0)
					break;
				for (int k = 0; k < m; k++) {
					uint64_t freed = on_datagram(&g, rbuf[k], rmsgs[k].msg_len, now, cookie_mode);
					if (cookie_mode || freed == UINT64_MAX)
						continue;
					for (unsigned w = 0; w < window; w++) {
						if (slots[w].used && slots[w].e == freed) {
							slots[w].used = false;
							break;
						}
					}
				}
				if (m < RECV_BATCH)
					break;
			}
		}
		if (!cookie_mode) {
			/* Refill the window; an initiation unanswered for 250 ms is given up. */
			for (unsigned w = 0; w < window; w++) {
				if (slots[w].used && now - slots[w].t > CLOSED_TIMEOUT_NS) {
					g.timeouts++;
					g.state[slots[w].e] = ST_DONE;
					slots[w].used = false;
				}
				if (!slots[w].used) {
					if (next >= g.count) {
						exhausted = true;
						continue;
					}
					slots[w] = (struct slot){ .e = next, .t = now, .used = true };
					g.state[next] = ST_SENT;
					queue_send(&g, next, false, now);
					next++;
				}
			}
		}
		flush_all(&g);
	}
	double cpu_run = cpu_seconds() - cpu0;
	double wall_run = (double)(mono_ns() - t0) / 1e9;

	/* Verify every response counted, off the clock. */
	struct verify_job jobs[MAX_THREADS];
	pthread_t th[MAX_THREADS];
	unsigned nt = nthreads();
	uint64_t valid = 0, invalid = 0, valid_cookie = 0;

	for (unsigned t = 0; t < nt; t++) {
		jobs[t] = (struct verify_job){ .g = &g, .peers = peers, .lo = next * t / nt, .hi = next * (t + 1) / nt };
		if (pthread_create(&th[t], NULL, verify_worker, &jobs[t]))
			die("pthread_create");
	}
	for (unsigned t = 0; t < nt; t++) {
		pthread_join(th[t], NULL);
		valid += jobs[t].valid;
		invalid += jobs[t].invalid;
		valid_cookie += jobs[t].valid_cookie;
	}

	printf("{\"mode\": \"%s\", \"seconds\": %.3f, \"warmup\": %.3f, \"peers\": %u, \"pool\": %" PRIu64 ", "
	       "\"window\": %u, \"rate\": %.0f, \"sources\": %u, \"ports\": %u, "
	       "\"initiations_sent\": %" PRIu64 ", \"resent_with_mac2\": %" PRIu64 ", \"send_dropped\": %" PRIu64
	       ", \"send_errors\": %" PRIu64 ", "
	       "\"responses\": %" PRIu64 ", \"responses_in_window\": %" PRIu64 ", \"valid\": %" PRIu64
	       ", \"invalid\": %" PRIu64 ", \"valid_after_cookie\": %" PRIu64 ", "
	       "\"cookie_replies\": %" PRIu64 ", \"cookie_replies_in_window\": %" PRIu64
	       ", \"cookie_again\": %" PRIu64 ", \"cookie_bad\": %" PRIu64 ", "
	       "\"timeouts\": %" PRIu64 ", \"late_or_unknown\": %" PRIu64 ", \"other\": %" PRIu64 ", "
	       "\"pool_exhausted\": %s, \"gen_cpu_pct\": %.1f, "
	       "\"handshakes_per_s\": %.1f, \"cookie_replies_per_s\": %.1f}\n",
	       mode, seconds, warmup, g.npeers, g.count, window, rate, g.src_count, g.nsock, g.sent, g.resent,
	       g.send_dropped, g.send_errors, g.responses, g.responses_window, valid, invalid, valid_cookie, g.cookies,
	       g.cookies_window, g.cookies_again, g.cookie_bad, g.timeouts, g.late_or_unknown, g.other,
	       exhausted ? "true" : "false", 100.0 * cpu_run / wall_run, (double)valid / seconds,
	       (double)g.cookies_window / seconds);

	/* What the run took, given back (so LeakSanitizer has nothing to say). */
	for (unsigned s = 0; s < g.nsock; s++)
		close(g.socks[s]);
	close(g.epoll);
	munmap(map, (size_t)sb.st_size);
	free(slots);
	free(peers);
	free(g.state);
	free(g.in_window);
	free(g.via_cookie);
	free(g.resp);
	free(g.q);
	free(g.socks);
	return 0;
}

int main(int argc, char **argv)
{
	if (nt_crypto_init())
		die("crypto init failed");
	if (argc >= 2 && !strcmp(argv[1], "keys"))
		return cmd_keys(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "pool"))
		return cmd_pool(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "run"))
		return cmd_run(argc - 2, argv + 2);
	fprintf(stderr, "usage: hsgen keys|pool|run ... (see the comment at the top of bench/hsgen.c)\n");
	return 2;
}
