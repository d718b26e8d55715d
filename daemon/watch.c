/* Config mode's peers whose settings change outside the file (issue 18): a PSK that
 * another program (Rosenpass) rewrites in "# noisetun-preshared-key-file = PATH", and
 * peers that move: an Endpoint given as a name, or several endpoints per peer (Endpoint,
 * then "# noisetun-endpoint-fallback = host:port" lines, in order).
 *
 * This runs where the file was read: in the monitor of a split daemon (root, which may
 * open files and sockets; the sandboxed worker may not), or in the single process. A
 * change reaches the engine as a set request (preshared_key=..., endpoint=...), as a
 * reload does.
 *
 * PSK files are watched without polling: inotify on each file's directory, for
 * IN_CLOSE_WRITE (a writer that truncates and writes in place, as Rosenpass's key_out
 * does, is done when it closes) and IN_MOVED_TO (an atomic rename). A file is read only
 * then, and taken only when it holds exactly one base64 key (44 characters, then blanks):
 * a half-written key is never used, whatever the timing, and the PSK in force stays.
 * Until a file first holds a key, the peer gets a random PSK, so no handshake succeeds
 * without the file's key. A new PSK takes effect at the next handshake.
 *
 * Endpoints. The worker says when a handshake with a peer failed (its retry is due: 'F'
 * on the channel, or a call in a daemon that did not split); the next tick (1 s) acts
 * for a peer with a name or several endpoints: a name is resolved again, and an answer
 * without the address in use moves to its first address; else the next address of the
 * same answer is tried (getaddrinfo's order: RFC 6724 with AI_ADDRCONFIG, so the
 * families in a sensible order, falling back); else the next endpoint, round the list.
 * On a fallback, the first endpoint is tried again after NOISETUN_FAILBACK_SECONDS (60),
 * doubling while it keeps failing, up to 10 min: failing back once it answers again. A
 * name in use is also resolved again every NOISETUN_RERESOLVE_SECONDS (300): getaddrinfo
 * gives no TTL, so none is honoured. Resolution never blocks the loop: each runs in a
 * thread of its own (at most one per peer, MAX_INFLIGHT in all) that hands its answer
 * back over a socketpair, tagged with the generation of the watch list it was asked for. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <sodium.h>

#include "noisetun/encoding.h"
#include "noisetun/uapi.h"
#include "common/file.h"
#include "noisetund.h"
#include "privsep.h"
#include "setup.h"
#include "watch.h"
#include "ctlclient.h"

#define PSK_FILE_MAX 128        /* bytes read: a key and its newline with room to spare */
#define MAX_ADDRS     8         /* addresses kept from one answer */
#define MAX_INFLIGHT  32        /* resolver threads at once */
#define ACT_GAP_NS    (2 * NT_NSEC_PER_SEC) /* between two moves of one peer */
#define FAILBACK_MAX_NS (600 * NT_NSEC_PER_SEC)

enum { TAG_INOTIFY = 1, TAG_TIMER, TAG_RESOLVER };
enum purpose { RESOLVE_PERIODIC, RESOLVE_FAILED, RESOLVE_SWITCH };

struct psk_watch {
	uint8_t public_key[NT_KEY_LEN];
	char short_key[12];
	char *path;
	const char *base;       /* the file name within its directory (in path) */
	int wd;
	bool bad_logged;        /* the file's content was refused; said once until it is good */
};

struct candidate {
	char *host;
	uint16_t port;
	bool is_name;           /* else a numeric address: its one answer is fixed */
};

struct ep_watch {
	uint8_t public_key[NT_KEY_LEN];
	char short_key[12];
	struct candidate *cands;
	size_t cands_count, cur;        /* cur: the endpoint in use */
	struct nt_uapi_endpoint addrs[MAX_ADDRS]; /* the last answer for cur */
	size_t addrs_count, ai;         /* ai: the address in use within it */
	bool failed;                    /* a handshake failed since the last tick */
	bool resolving;
	uint64_t next_periodic, last_move, next_failback, failback_ns, failback_at;
};

struct resolve_req {
	uint32_t gen;
	size_t peer, cand;
	enum purpose purpose;
	char host[256], port[8];
	int err;
	struct nt_uapi_endpoint addrs[MAX_ADDRS];
	size_t count;
	int fd;
};

static struct {
	int ep, ino, timer, res[2];     /* res: resolver answers, [0] read here, [1] by threads */
	struct psk_watch *psks;
	size_t psks_count;
	struct ep_watch *eps;
	size_t eps_count;
	uint32_t gen;
	unsigned inflight;
	uint64_t failback_base, reresolve;
	struct device *dev;
	bool fd_changed;
} w = { .ep = -1, .ino = -1, .timer = -1, .res = { -1, -1 } };

static int set_one(struct device *dev, const struct nt_uapi_peer *peer)
{
	struct nt_uapi_set set = { .peers = (struct nt_uapi_peer *)peer, .peers_count = 1 };

	return dev->role == ROLE_MONITOR ? privsep_send_set(&set) : uapi_apply_set(dev, &set);
}

int psk_file_read(const char *path, uint8_t key[NT_KEY_LEN], const char **why)
{
	char *text;
	size_t len, bad;
	int err;

	/* Regular only: a FIFO put there would block the loop. */
	err = nt_file_read(path, NT_FILE_REGULAR, PSK_FILE_MAX, &text, &len);
	if (err == -EFBIG) {
		*why = "not one base64 key";
		return -EINVAL;
	}
	if (err) {
		*why = err == -EINVAL ? "not a regular file" : strerror(-err);
		return err;
	}
	switch (nt_key_file_parse(key, text, len, &bad)) {
	case 0:
		err = 0;
		break;
	case -ENODATA:
		*why = "empty (being written?)";
		err = -EINVAL;
		break;
	default:
		*why = "not one base64 key";
		err = -EINVAL;
		break;
	}
	nt_file_free(text, len);
	return err;
}

/* Send the file's PSK for one peer. */
static void psk_apply(struct device *dev, struct psk_watch *pw, bool startup)
{
	struct nt_uapi_peer peer = { 0 };
	const char *why = "";
	int err;

	err = psk_file_read(pw->path, peer.preshared_key, &why);
	if (err) {
		if (!pw->bad_logged || startup)
			log_msg(LOG_ERROR, pw->short_key, "preshared key file %s: %s; %s", pw->path, why,
				startup ? "a random PSK until it holds a key" : "the PSK in force stays");
		pw->bad_logged = true;
		sodium_memzero(&peer, sizeof(peer));
		return;
	}
	pw->bad_logged = false;
	if (startup)
		return; /* config_up sent it already */
	memcpy(peer.public_key, pw->public_key, NT_KEY_LEN);
	peer.update_only = true;
	peer.has_preshared_key = true;
	err = set_one(dev, &peer);
	sodium_memzero(&peer, sizeof(peer));
	if (err)
		log_msg(LOG_ERROR, pw->short_key, "preshared key from %s: cannot set it: %s", pw->path, strerror(-err));
	else
		log_msg(LOG_VERBOSE, pw->short_key, "preshared key from %s: new key, for the next handshake", pw->path);
}


/* ---- the watch list ---- */

void watch_stop(void)
{
	for (size_t i = 0; i < w.psks_count; i++)
		free(w.psks[i].path);
	free(w.psks);
	w.psks = NULL;
	w.psks_count = 0;
	for (size_t i = 0; i < w.eps_count; i++) {
		for (size_t j = 0; j < w.eps[i].cands_count; j++)
			free(w.eps[i].cands[j].host);
		free(w.eps[i].cands);
	}
	free(w.eps);
	w.eps = NULL;
	w.eps_count = 0;
	w.gen++; /* answers still on their way are for the old list: dropped when they come */
	if (w.ino >= 0)
		close(w.ino);
	if (w.timer >= 0)
		close(w.timer);
	w.ino = w.timer = -1;
	if (w.ep >= 0) {
		close(w.ep); /* leaves any epoll set with it */
		w.fd_changed = true;
	}
	w.ep = -1;
	/* w.res stays open for the process's life: a thread still resolving writes to it. */
}

bool watch_fd_changed(void)
{
	bool changed = w.fd_changed;

	w.fd_changed = false;
	return changed;
}

int watch_fd(void)
{
	return w.ep;
}

static int epoll_add(int fd, uint64_t tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag };

	return epoll_ctl(w.ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void short_key_of(char out[12], const uint8_t key[NT_KEY_LEN])
{
	char b64[NT_KEY_B64_LEN + 1];

	nt_key_to_base64(b64, key);
	memcpy(out, b64, 8);
	memcpy(out + 8, "...", 4);
}

static uint64_t env_seconds(const char *name, uint64_t dflt)
{
	const char *s = getenv(name);
	char *end;
	unsigned long v;

	if (!s || !*s)
		return dflt;
	v = strtoul(s, &end, 10);
	return *end || !v || v > 86400 ? dflt : (uint64_t)v * NT_NSEC_PER_SEC;
}

static bool host_is_numeric(const char *host)
{
	uint8_t buf[16];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static void psks_setup(struct device *dev, const struct nt_config *cfg, size_t count)
{
	w.psks = calloc(count, sizeof(*w.psks));
	w.ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (!w.psks || w.ino < 0 || epoll_add(w.ino, TAG_INOTIFY)) {
		log_error("preshared key files: cannot watch them: %s", strerror(w.psks ? errno : ENOMEM));
		return;
	}
	for (size_t i = 0; i < cfg->peers_count; i++) {
		const struct nt_config_peer *cp = &cfg->peers[i];
		struct psk_watch *pw = &w.psks[w.psks_count];
		char *slash;

		if (!cp->psk_file)
			continue;
		memcpy(pw->public_key, cp->public_key, NT_KEY_LEN);
		short_key_of(pw->short_key, cp->public_key);
		if (!(pw->path = strdup(cp->psk_file)))
			continue;
		slash = strrchr(pw->path, '/');
		pw->base = slash + 1;
		*slash = '\0';
		/* The directory: a rename replaces the file's inode, which a watch on the file
		 * would lose. */
		pw->wd = inotify_add_watch(w.ino, *pw->path ? pw->path : "/", IN_CLOSE_WRITE | IN_MOVED_TO | IN_ONLYDIR);
		*slash = '/';
		if (pw->wd < 0) {
			log_msg(LOG_ERROR, pw->short_key, "preshared key file %s: cannot watch its directory: %s", pw->path,
				strerror(errno));
			free(pw->path);
			continue;
		}
		w.psks_count++;
		psk_apply(dev, pw, true);
	}
	log_verbose("watching %zu preshared key file%s", w.psks_count, w.psks_count == 1 ? "" : "s");
}

static void psks_event(struct device *dev)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	while ((n = read(w.ino, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;

			if (ev->mask & IN_Q_OVERFLOW) {
				/* Events lost: read every file again. */
				for (size_t i = 0; i < w.psks_count; i++)
					psk_apply(dev, &w.psks[i], false);
			} else if (ev->len) {
				for (size_t i = 0; i < w.psks_count; i++)
					if (w.psks[i].wd == ev->wd && !strcmp(w.psks[i].base, ev->name))
						psk_apply(dev, &w.psks[i], false);
			}
			p += sizeof(*ev) + ev->len;
		}
	}
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		log_error("preshared key files: inotify: %s", strerror(errno));
}

/* ---- endpoints ---- */

static void format_cand(char *buf, size_t size, const struct candidate *c)
{
	snprintf(buf, size, strchr(c->host, ':') ? "[%s]:%u" : "%s:%u", c->host, (unsigned)c->port);
}

static bool uep_equal(const struct nt_uapi_endpoint *a, const struct nt_uapi_endpoint *b)
{
	return a->family == b->family && a->port == b->port && !memcmp(a->addr, b->addr, 16) &&
	       a->scope_id == b->scope_id;
}

static void *resolver_thread(void *arg)
{
	struct resolve_req *r = arg;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM, .ai_protocol = IPPROTO_UDP,
				  .ai_flags = AI_ADDRCONFIG };
	struct addrinfo *res, *ai;

	r->err = getaddrinfo(r->host, r->port, &hints, &res);
	if (!r->err) {
		for (ai = res; ai && r->count < MAX_ADDRS; ai = ai->ai_next) {
			struct nt_uapi_endpoint *e = &r->addrs[r->count];

			if (ai->ai_family == AF_INET) {
				e->family = AF_INET;
				memcpy(e->addr, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, 4);
			} else if (ai->ai_family == AF_INET6) {
				e->family = AF_INET6;
				memcpy(e->addr, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, 16);
				e->scope_id = ((struct sockaddr_in6 *)ai->ai_addr)->sin6_scope_id;
			} else {
				continue;
			}
			e->port = (uint16_t)strtoul(r->port, NULL, 10);
			r->count++;
		}
		freeaddrinfo(res);
	}
	/* One pointer, one datagram: whole or not at all. The socket outlives every thread. */
	if (send(r->fd, &r, sizeof(r), MSG_NOSIGNAL) != (ssize_t)sizeof(r))
		free(r);
	return NULL;
}

static void resolve_start(size_t peer, size_t cand, enum purpose purpose)
{
	struct ep_watch *e = &w.eps[peer];
	struct resolve_req *r;
	pthread_attr_t attr;
	pthread_t t;
	int err;

	if (e->resolving || w.inflight >= MAX_INFLIGHT || w.res[1] < 0 || !(r = calloc(1, sizeof(*r))))
		return; /* the next failure or tick asks again */
	r->gen = w.gen;
	r->peer = peer;
	r->cand = cand;
	r->purpose = purpose;
	r->fd = w.res[1];
	snprintf(r->host, sizeof(r->host), "%s", e->cands[cand].host);
	snprintf(r->port, sizeof(r->port), "%u", (unsigned)e->cands[cand].port);
	if ((err = pthread_attr_init(&attr)) || (err = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED)) ||
	    (err = pthread_create(&t, &attr, resolver_thread, r))) {
		log_msg(LOG_ERROR, e->short_key, "cannot resolve %s: %s", r->host, strerror(err));
		free(r);
		pthread_attr_destroy(&attr);
		return;
	}
	pthread_attr_destroy(&attr);
	e->resolving = true;
	w.inflight++;
}

/* Use addrs[ai] of candidate cand from now on. */
static void move_to(struct ep_watch *e, size_t cand, size_t ai, const char *why)
{
	struct nt_uapi_peer peer = { .update_only = true, .has_endpoint = true };
	char name[300], addr[NT_UAPI_ENDPOINT_STRLEN];
	int err;

	e->cur = cand;
	e->ai = ai;
	e->last_move = now_ns();
	memcpy(peer.public_key, e->public_key, NT_KEY_LEN);
	peer.endpoint = e->addrs[ai];
	format_cand(name, sizeof(name), &e->cands[cand]);
	if (strlen(name) <= NT_UAPI_ENDPOINT_NAME_MAX) { /* for show */
		peer.has_endpoint_name = true;
		memcpy(peer.endpoint_name, name, strlen(name) + 1);
	}
	nt_uapi_format_endpoint(addr, sizeof(addr), &peer.endpoint);
	err = set_one(w.dev, &peer);
	if (err)
		log_msg(LOG_ERROR, e->short_key, "endpoint %s (%s): cannot set it: %s", name, addr, strerror(-err));
	else
		log_msg(LOG_ERROR, e->short_key, "endpoint now %s (%s): %s", name, addr, why);
}

/* Numeric candidates need no resolver: their one address. */
static void switch_to(size_t peer, size_t cand, const char *why)
{
	struct ep_watch *e = &w.eps[peer];
	const struct candidate *c = &e->cands[cand];
	struct nt_uapi_endpoint u = { 0 };
	char buf[300];

	if (c->is_name) {
		resolve_start(peer, cand, RESOLVE_SWITCH);
		return;
	}
	format_cand(buf, sizeof(buf), c);
	if (nt_uapi_parse_endpoint(&u, buf, strlen(buf)))
		return;
	e->addrs[0] = u;
	e->addrs_count = 1;
	move_to(e, cand, 0, why);
}

static void next_candidate(size_t peer)
{
	struct ep_watch *e = &w.eps[peer];

	if (e->cands_count < 2)
		return;
	if (e->cur == 0) {
		e->next_failback = now_ns() + e->failback_ns;
	}
	switch_to(peer, (e->cur + 1) % e->cands_count, "handshakes failed: the next endpoint");
}

static void resolved(struct resolve_req *r)
{
	struct ep_watch *e;
	char name[300];
	bool known = false;
	size_t at = 0;

	if (r->gen != w.gen || r->peer >= w.eps_count)
		return; /* asked for a list since replaced */
	e = &w.eps[r->peer];
	e->resolving = false;
	format_cand(name, sizeof(name), &e->cands[r->cand]);
	if (r->err || !r->count) {
		log_msg(LOG_ERROR, e->short_key, "endpoint %s: cannot resolve: %s", name,
			r->err ? gai_strerror(r->err) : "no IPv4 or IPv6 address");
		if (r->purpose == RESOLVE_FAILED)
			next_candidate(r->peer);
		return;
	}
	if (r->purpose == RESOLVE_SWITCH) {
		memcpy(e->addrs, r->addrs, sizeof(r->addrs));
		e->addrs_count = r->count;
		move_to(e, r->cand, 0, r->cand == 0 && e->cur != 0 ? "failing back to the first endpoint"
								   : "handshakes failed: the next endpoint");
		if (r->cand == 0)
			e->failback_at = now_ns();
		return;
	}
	if (r->cand != e->cur)
		return; /* moved on meanwhile */
	for (size_t i = 0; i < r->count && e->addrs_count; i++) {
		if (uep_equal(&r->addrs[i], &e->addrs[e->ai])) {
			known = true;
			at = i;
		}
	}
	memcpy(e->addrs, r->addrs, sizeof(r->addrs));
	e->addrs_count = r->count;
	if (!known) {
		move_to(e, e->cur, 0, r->purpose == RESOLVE_FAILED ? "handshakes failed; the name resolves elsewhere now"
								   : "the name resolves elsewhere now");
		return;
	}
	e->ai = at;
	if (r->purpose != RESOLVE_FAILED)
		return; /* periodic: the address in use is still in the answer */
	if (at + 1 < r->count)
		move_to(e, e->cur, at + 1, "handshakes failed: the next address of the name");
	else
		next_candidate(r->peer);
}

static void resolver_event(void)
{
	struct resolve_req *r;

	while (recv(w.res[0], &r, sizeof(r), MSG_DONTWAIT) == (ssize_t)sizeof(r)) {
		if (w.inflight)
			w.inflight--;
		resolved(r);
		free(r);
	}
}

void watch_handshake_failed(const uint8_t key[NT_KEY_LEN])
{
	uint64_t now = now_ns();

	for (size_t i = 0; i < w.eps_count; i++) {
		struct ep_watch *e = &w.eps[i];

		if (memcmp(e->public_key, key, NT_KEY_LEN))
			continue;
		/* A retry is due when the initiation sent REKEY_TIMEOUT ago went unanswered:
		 * within that of a move, it went to the endpoint we just left. */
		if (e->last_move && now - e->last_move < NT_REKEY_TIMEOUT + NT_NSEC_PER_SEC)
			continue;
		e->failed = true;
	}
}

static void tick(void)
{
	uint64_t now = now_ns(), expirations;

	if (read(w.timer, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		log_error("endpoint watch: timer: %s", strerror(errno));
	for (size_t i = 0; i < w.eps_count; i++) {
		struct ep_watch *e = &w.eps[i];

		if (e->resolving)
			continue;
		if (e->failed && now - e->last_move >= ACT_GAP_NS) {
			e->failed = false;
			/* A failback that failed soon: wait longer before the next one. */
			if (e->cur == 0 && e->failback_at && now - e->failback_at < 30 * NT_NSEC_PER_SEC &&
			    e->failback_ns < FAILBACK_MAX_NS)
				e->failback_ns *= 2;
			e->failback_at = 0;
			if (e->cands[e->cur].is_name)
				resolve_start(i, e->cur, RESOLVE_FAILED);
			else if (e->ai + 1 < e->addrs_count)
				move_to(e, e->cur, e->ai + 1, "handshakes failed: the next address");
			else
				next_candidate(i);
			continue;
		}
		if (e->cur != 0 && now >= e->next_failback) {
			e->next_failback = now + e->failback_ns;
			switch_to(i, 0, "failing back to the first endpoint");
			continue;
		}
		if (e->cur == 0 && e->failback_at && now - e->failback_at >= 30 * NT_NSEC_PER_SEC) {
			e->failback_at = 0; /* the first endpoint held: back to the short wait */
			e->failback_ns = w.failback_base;
		}
		if (e->cands[e->cur].is_name && now >= e->next_periodic) {
			e->next_periodic = now + w.reresolve;
			resolve_start(i, e->cur, RESOLVE_PERIODIC);
		}
	}
}

/* The name the endpoint in use came from, for show (noisetun_endpoint_name). */
static void name_to_worker(const struct ep_watch *e)
{
	struct nt_uapi_peer peer = { .update_only = true, .has_endpoint_name = true };
	char name[300];
	int err;

	format_cand(name, sizeof(name), &e->cands[e->cur]);
	if (strlen(name) > NT_UAPI_ENDPOINT_NAME_MAX)
		return;
	memcpy(peer.public_key, e->public_key, NT_KEY_LEN);
	memcpy(peer.endpoint_name, name, strlen(name) + 1);
	if ((err = set_one(w.dev, &peer)))
		log_msg(LOG_VERBOSE, e->short_key, "endpoint name %s: cannot tell the worker: %s", name, strerror(-err));
}

/* The peers whose endpoint may move: a name, or more than one endpoint. */
static void eps_setup(const struct nt_config *cfg, const struct nt_uapi_endpoint *resolved_eps)
{
	uint64_t now = now_ns();
	size_t count = 0;

	for (size_t i = 0; i < cfg->peers_count; i++) {
		const struct nt_config_peer *cp = &cfg->peers[i];
		count += cp->has_endpoint && (cp->fallbacks_count || !host_is_numeric(cp->endpoint_host));
	}
	if (!count || !(w.eps = calloc(count, sizeof(*w.eps))))
		return;
	for (size_t i = 0; i < cfg->peers_count; i++) {
		const struct nt_config_peer *cp = &cfg->peers[i];
		struct ep_watch *e = &w.eps[w.eps_count];
		bool ok;

		if (!cp->has_endpoint || (!cp->fallbacks_count && host_is_numeric(cp->endpoint_host)))
			continue;
		if (!(e->cands = calloc(1 + cp->fallbacks_count, sizeof(*e->cands))))
			continue;
		ok = (e->cands[0].host = strdup(cp->endpoint_host)) != NULL;
		e->cands[0].port = cp->endpoint_port;
		e->cands_count = ok;
		for (size_t j = 0; ok && j < cp->fallbacks_count; j++) {
			struct candidate *c = &e->cands[e->cands_count];

			ok = (c->host = strdup(cp->fallbacks[j].host)) != NULL;
			c->port = cp->fallbacks[j].port;
			e->cands_count += ok;
		}
		if (!ok) {
			for (size_t j = 0; j < e->cands_count; j++)
				free(e->cands[j].host);
			free(e->cands);
			memset(e, 0, sizeof(*e));
			continue;
		}
		for (size_t j = 0; j < e->cands_count; j++)
			e->cands[j].is_name = !host_is_numeric(e->cands[j].host);
		memcpy(e->public_key, cp->public_key, NT_KEY_LEN);
		short_key_of(e->short_key, cp->public_key);
		/* config_up set the first endpoint, resolved as wg does */
		if (resolved_eps && resolved_eps[i].family) {
			e->addrs[0] = resolved_eps[i];
			e->addrs_count = 1;
		}
		e->next_periodic = now + w.reresolve;
		e->failback_ns = w.failback_base;
		w.eps_count++;
		name_to_worker(e);
	}
}

int watch_start(struct device *dev, const struct nt_config *cfg)
{
	size_t count = 0;

	watch_stop();
	if (!cfg)
		return -1;
	w.dev = dev;
	w.failback_base = env_seconds("NOISETUN_FAILBACK_SECONDS", 60 * NT_NSEC_PER_SEC);
	w.reresolve = env_seconds("NOISETUN_RERESOLVE_SECONDS", 300 * NT_NSEC_PER_SEC);
	for (size_t i = 0; i < cfg->peers_count; i++)
		count += cfg->peers[i].psk_file != NULL;
	eps_setup(cfg, config_endpoints());
	if (!count && !w.eps_count)
		return -1;
	w.ep = epoll_create1(EPOLL_CLOEXEC);
	w.fd_changed = true;
	if (w.ep < 0) {
		log_error("watching peers: epoll: %s", strerror(errno));
		watch_stop();
		return -1;
	}
	if (w.eps_count) {
		struct itimerspec its = { .it_interval = { .tv_sec = 1 }, .it_value = { .tv_sec = 1 } };

		if (w.res[0] < 0 && socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, w.res) < 0) {
			log_error("endpoint re-resolution: socketpair: %s", strerror(errno));
			w.res[0] = w.res[1] = -1;
		}
		w.timer = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK | TFD_CLOEXEC);
		if (w.timer < 0 || timerfd_settime(w.timer, 0, &its, NULL) < 0 || epoll_add(w.timer, TAG_TIMER) ||
		    w.res[0] < 0 || epoll_add(w.res[0], TAG_RESOLVER))
			log_error("endpoint re-resolution: cannot watch: %s", strerror(errno));
		else
			log_verbose("watching the endpoints of %zu peer%s (names, fallbacks)", w.eps_count,
				    w.eps_count == 1 ? "" : "s");
	}
	if (count)
		psks_setup(dev, cfg, count);
	return w.ep;
}

void watch_event(struct device *dev)
{
	struct epoll_event evs[8];
	int n;

	if (w.ep < 0)
		return;
	n = epoll_wait(w.ep, evs, 8, 0);
	for (int i = 0; i < n; i++) {
		switch (evs[i].data.u64) {
		case TAG_INOTIFY:
			psks_event(dev);
			break;
		case TAG_TIMER:
			tick();
			break;
		case TAG_RESOLVER:
			resolver_event();
			break;
		}
	}
}
