/* The device: its peers (by public key and in creation order), the table of local
 * session indices, and one min-heap of peer timer deadlines behind a single timerfd. */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "noisetun/encoding.h"
#include "noisetund.h"

static size_t key_hash(const struct device *dev, const uint8_t key[NT_KEY_LEN])
{
	/* Public keys are uniformly random: their first bytes are a fine hash. */
	uint64_t h;

	memcpy(&h, key, sizeof(h));
	return (size_t)(h & (dev->peer_hash_size - 1));
}

static int peer_hash_grow(struct device *dev)
{
	size_t size = dev->peer_hash_size ? dev->peer_hash_size * 2 : 64;
	struct peer **table = calloc(size, sizeof(*table));

	if (!table)
		return -ENOMEM;
	free(dev->peer_hash);
	dev->peer_hash = table;
	dev->peer_hash_size = size;
	for (struct peer *p = dev->peers_first; p; p = p->next) {
		size_t h = key_hash(dev, p->public_key);
		p->hash_next = table[h];
		table[h] = p;
	}
	return 0;
}

int device_init(struct device *dev, const char *ifname)
{
	memset(dev, 0, sizeof(*dev));
	dev->udp4 = dev->udp6 = dev->tun = dev->epoll = dev->timerfd = -1;
	dev->uapi_listen = dev->netlink = dev->inotify = dev->signalfd = -1;
	dev->mtu = NT_DEFAULT_MTU;
	snprintf(dev->ifname, sizeof(dev->ifname), "%s", ifname);
	dev->static_identity = sodium_malloc(sizeof(*dev->static_identity));
	dev->aips = nt_allowedips_new();
	if (!dev->static_identity || !dev->aips || peer_hash_grow(dev))
		return -ENOMEM;
	nt_noise_static_init(dev->static_identity, NULL);
	pool_init(&dev->peer_pool, sizeof(struct peer), 64);
	pool_init(&dev->keypairs_pool, sizeof(struct nt_keypairs), 32);
	nt_cookie_checker_init(&dev->cookie_checker);
	if (nt_ratelimiter_init(&dev->ratelimiter, NT_RATELIMITER_DEFAULT_CAPACITY, &sys_rng))
		return -ENOMEM;
	if (nt_index_init(&dev->indices, NT_INDEX_DEFAULT_MAX_SLOTS))
		return -EINVAL;
	return 0;
}

void device_destroy(struct device *dev)
{
	device_remove_all_peers(dev);
	nt_allowedips_free(dev->aips);
	nt_ratelimiter_free(&dev->ratelimiter);
	nt_cookie_checker_wipe(&dev->cookie_checker);
	if (dev->static_identity)
		sodium_free(dev->static_identity); /* wipes */
	pool_destroy(&dev->peer_pool);
	pool_destroy(&dev->keypairs_pool);
	free(dev->peer_hash);
	nt_index_free(&dev->indices);
	free(dev->heap);
	dev->static_identity = NULL;
	dev->peer_hash = NULL;
	dev->heap = NULL;
}

/* ---- session indices: lib/index.c, owned by peers ---- */

/* A fresh random index no session of this device uses; 0 at the cap or out of memory.
 * Indices are random so that they say nothing about how many sessions exist. */
uint32_t index_assign(struct device *dev, struct peer *peer)
{
	uint32_t index = 0;
	int err = nt_index_assign(&dev->indices, peer, &sys_rng, &index);

	if (err) {
		peer_error(peer, "no session index: %s (%zu in use)", strerror(-err), nt_index_count(&dev->indices));
		return 0;
	}
	return index;
}

struct peer *index_lookup(struct device *dev, uint32_t index)
{
	return nt_index_lookup(&dev->indices, index);
}

/* Forget index unless the peer's pending handshake or one of its keypairs still uses it. */
void index_release(struct device *dev, struct peer *peer, uint32_t index)
{
	if (nt_index_lookup(&dev->indices, index) != peer)
		return;
	if (peer->hs.state != NT_HS_ZEROED && peer->hs.local_index == index)
		return;
	if (peer->kps && nt_keypairs_find(peer->kps, index))
		return;
	nt_index_release(&dev->indices, index, peer);
}

void index_release_drops(struct device *dev, struct peer *peer, const struct nt_keypair_drops *drops)
{
	for (unsigned i = 0; i < drops->count; i++)
		index_release(dev, peer, drops->index[i]);
}

/* ---- the timer heap ---- */

static bool heap_less(const struct peer *a, const struct peer *b)
{
	return nt_timers_next_deadline(&a->timers) < nt_timers_next_deadline(&b->timers);
}

static void heap_set(struct device *dev, size_t pos, struct peer *p)
{
	dev->heap[pos] = p;
	p->heap_pos = pos;
}

static void heap_fix(struct device *dev, size_t pos)
{
	struct peer *p = dev->heap[pos];

	while (pos > 0 && heap_less(p, dev->heap[(pos - 1) / 2])) {
		heap_set(dev, pos, dev->heap[(pos - 1) / 2]);
		pos = (pos - 1) / 2;
	}
	for (;;) {
		size_t child = 2 * pos + 1;
		if (child >= dev->heap_len)
			break;
		if (child + 1 < dev->heap_len && heap_less(dev->heap[child + 1], dev->heap[child]))
			child++;
		if (!heap_less(dev->heap[child], p))
			break;
		heap_set(dev, pos, dev->heap[child]);
		pos = child;
	}
	heap_set(dev, pos, p);
}

static void heap_remove(struct device *dev, struct peer *p)
{
	size_t pos = p->heap_pos;

	if (pos == SIZE_MAX)
		return;
	p->heap_pos = SIZE_MAX;
	if (--dev->heap_len != pos) {
		heap_set(dev, pos, dev->heap[dev->heap_len]);
		heap_fix(dev, pos);
	}
}

/* Call after anything that may have moved a peer's deadlines. */
void peer_timers_changed(struct peer *peer)
{
	struct device *dev = peer->dev;

	if (peer->heap_pos == SIZE_MAX) {
		if (dev->heap_len == dev->heap_cap) {
			size_t cap = dev->heap_cap ? dev->heap_cap * 2 : 64;
			struct peer **heap = realloc(dev->heap, cap * sizeof(*heap));
			if (!heap)
				return; /* the peer's timers stay unscheduled until memory returns */
			dev->heap = heap;
			dev->heap_cap = cap;
		}
		heap_set(dev, dev->heap_len++, peer);
	}
	heap_fix(dev, peer->heap_pos);
}

uint64_t device_next_deadline(const struct device *dev)
{
	return dev->heap_len ? nt_timers_next_deadline(&dev->heap[0]->timers) : UINT64_MAX;
}

static void peer_run_timers(struct peer *peer, unsigned actions)
{
	if (actions & NT_TIMER_DROP_STAGED) {
		peer_verbose(peer, "handshake did not complete after %llu seconds, giving up",
			     (unsigned long long)(NT_REKEY_ATTEMPT_TIME / NT_NSEC_PER_SEC));
		peer_drop_staged(peer);
	}
	if (actions & NT_TIMER_ERASE_KEYS) {
		peer_verbose(peer, "erasing keys after %llu seconds without a new handshake",
			     (unsigned long long)(3 * NT_REJECT_AFTER_TIME / NT_NSEC_PER_SEC));
		peer_clear_sessions(peer);
	}
	if (actions & NT_TIMER_CLEAR_ENDPOINT_SOURCE)
		peer->src.set = false; /* a retry may need another route: let routing pick the source */
	if (actions & NT_TIMER_RETRY_INITIATION)
		send_initiation(peer, true);
	else if (actions & NT_TIMER_SEND_INITIATION)
		send_initiation(peer, false);
	if (actions & NT_TIMER_SEND_KEEPALIVE)
		send_keepalive(peer);
}

void device_run_timers(struct device *dev, uint64_t now)
{
	while (dev->heap_len && nt_timers_next_deadline(&dev->heap[0]->timers) <= now) {
		struct peer *peer = dev->heap[0];
		unsigned actions = nt_timers_expire(&peer->timers, now);

		peer_timers_changed(peer);
		if (dev->up)
			peer_run_timers(peer, actions);
		peer_timers_changed(peer);
	}
	if (now >= dev->next_ratelimiter_gc) {
		nt_ratelimiter_gc(&dev->ratelimiter, now);
		dev->next_ratelimiter_gc = now + NT_NSEC_PER_SEC;
	}
}

/* ---- peers ---- */

struct peer *peer_lookup(struct device *dev, const uint8_t key[NT_KEY_LEN])
{
	for (struct peer *p = dev->peer_hash[key_hash(dev, key)]; p; p = p->hash_next)
		if (nt_equal(p->public_key, key, NT_KEY_LEN))
			return p;
	return NULL;
}

struct peer *peer_create(struct device *dev, const uint8_t key[NT_KEY_LEN])
{
	char b64[NT_KEY_B64_LEN + 1];
	struct peer *peer;
	size_t h;

	if (dev->peer_count + 1 > dev->peer_hash_size && peer_hash_grow(dev))
		return NULL;
	/* The handshake holds the PSK and the session secrets; the keypairs the session keys:
	 * both come from pools of guarded, locked memory. */
	peer = pool_alloc(&dev->peer_pool);
	if (!peer)
		return NULL;
	peer->dev = dev;
	memcpy(peer->public_key, key, NT_KEY_LEN);
	nt_key_to_base64(b64, key);
	memcpy(peer->short_key, b64, 8);
	memcpy(peer->short_key + 8, "...", 4);
	nt_handshake_init(&peer->hs, dev->static_identity, key, NULL);
	nt_cookie_maker_init(&peer->cookie, key);
	nt_timers_init(&peer->timers);
	peer->heap_pos = SIZE_MAX;

	peer->prev = dev->peers_last;
	if (dev->peers_last)
		dev->peers_last->next = peer;
	else
		dev->peers_first = peer;
	dev->peers_last = peer;
	h = key_hash(dev, key);
	peer->hash_next = dev->peer_hash[h];
	dev->peer_hash[h] = peer;
	dev->peer_count++;
	peer_verbose(peer, "created");
	return peer;
}

void peer_clear_sessions(struct peer *peer)
{
	struct nt_keypair_drops drops = { .count = 0 };
	uint32_t hs_index = peer->hs.local_index;
	bool had_hs = peer->hs.state != NT_HS_ZEROED;

	if (peer->kps) {
		nt_keypairs_clear(peer->kps, &drops);
		pool_free(&peer->dev->keypairs_pool, peer->kps);
		peer->kps = NULL;
	}
	nt_handshake_clear(&peer->hs);
	index_release_drops(peer->dev, peer, &drops);
	if (had_hs)
		index_release(peer->dev, peer, hs_index);
}

struct nt_keypairs *peer_keypairs(struct peer *peer)
{
	if (!peer->kps && (peer->kps = pool_alloc(&peer->dev->keypairs_pool)))
		nt_keypairs_init(peer->kps);
	return peer->kps;
}

void peer_remove(struct peer *peer)
{
	struct device *dev = peer->dev;
	struct peer **pp = &dev->peer_hash[key_hash(dev, peer->public_key)];

	peer_verbose(peer, "removed");
	peer_clear_sessions(peer);
	peer_drop_staged(peer);
	nt_timers_stop(&peer->timers);
	heap_remove(dev, peer);
	nt_allowedips_remove_owner(dev->aips, &peer->aips);
	while (*pp != peer)
		pp = &(*pp)->hash_next;
	*pp = peer->hash_next;
	if (peer->prev)
		peer->prev->next = peer->next;
	else
		dev->peers_first = peer->next;
	if (peer->next)
		peer->next->prev = peer->prev;
	else
		dev->peers_last = peer->prev;
	dev->peer_count--;
	nt_handshake_destroy(&peer->hs);
	nt_cookie_maker_wipe(&peer->cookie);
	pool_free(&dev->peer_pool, peer); /* wipes */
}

void device_remove_all_peers(struct device *dev)
{
	while (dev->peers_first)
		peer_remove(dev->peers_first);
}

int device_set_private_key(struct device *dev, const uint8_t key[NT_KEY_LEN])
{
	struct peer *self;
	uint8_t clamped[NT_KEY_LEN];
	bool same;

	/* The same key again (stock `wg syncconf` always sends it) must not drop sessions. */
	if (key && !nt_is_zero(key, NT_KEY_LEN)) {
		memcpy(clamped, key, NT_KEY_LEN);
		nt_key_clamp(clamped);
		same = dev->static_identity->has_key && nt_equal(clamped, dev->static_identity->private_key, NT_KEY_LEN);
		sodium_memzero(clamped, sizeof(clamped));
	} else {
		same = !dev->static_identity->has_key;
	}
	if (same)
		return 0;
	nt_noise_static_init(dev->static_identity, key);
	nt_cookie_checker_set_public_key(&dev->cookie_checker,
					 dev->static_identity->has_key ? dev->static_identity->public_key : NULL);
	/* A peer with our own public key would be talking to itself. */
	if (dev->static_identity->has_key && (self = peer_lookup(dev, dev->static_identity->public_key)))
		peer_remove(self);
	for (struct peer *p = dev->peers_first; p; p = p->next) {
		uint8_t psk[NT_KEY_LEN];

		peer_clear_sessions(p);
		/* A new identity may handshake at once: the REKEY_TIMEOUT rate limit was for the
		 * old one (the kernel's selftest changes a key and expects traffic right away). */
		p->timers.initiation_sent = false;
		memcpy(psk, p->hs.preshared_key, NT_KEY_LEN);
		nt_handshake_init(&p->hs, dev->static_identity, p->public_key, psk);
		sodium_memzero(psk, sizeof(psk));
	}
	return 0;
}

/* The link's up/down state gates the peers: down clears sessions and stops timers; up
 * lets persistent keepalives (and so handshakes) start again. */
void device_set_up(struct device *dev, bool up)
{
	if (dev->up == up)
		return;
	dev->up = up;
	log_verbose("interface is %s", up ? "up" : "down");
	for (struct peer *p = dev->peers_first; p; p = p->next) {
		if (!up) {
			peer_clear_sessions(p);
			peer_drop_staged(p);
			nt_timers_stop(&p->timers);
		} else if (p->persistent_keepalive) {
			nt_timers_set_persistent_keepalive(&p->timers, p->persistent_keepalive, now_ns());
		}
		peer_timers_changed(p);
	}
}
