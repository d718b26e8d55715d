/* The device: its peers in creation order (the engine, lib/engine.c, holds their protocol
 * state, the session indices and the timer heap), the engine's output queues, and what the
 * engine's events say in the log. */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "noisetun/encoding.h"
#include "noisetund.h"
#include "privsep.h"
#include "watch.h"

static void *keypairs_alloc(void *ctx)
{
	struct device *dev = ctx;

	return pool_alloc(&dev->keypairs_pool);
}

static void keypairs_free(void *ctx, void *kps)
{
	struct device *dev = ctx;

	pool_free(&dev->keypairs_pool, kps); /* wipes */
}

/* The engine's handshake jobs hold secrets: guarded, locked memory, as the peers'. */
static void *secrets_alloc(void *ctx, size_t len)
{
	(void)ctx;
	return sodium_malloc(len);
}

static void secrets_free(void *ctx, void *p)
{
	(void)ctx;
	sodium_free(p); /* wipes */
}

int device_init(struct device *dev, const char *ifname)
{
	struct nt_engine_host host = { .rng = &sys_rng, .keypairs_alloc = keypairs_alloc,
				       .keypairs_free = keypairs_free, .submit = hspool_submit,
				       .barrier = hspool_barrier, .parallel = datapool_parallel,
				       .parallel_threads = datapool_threads(), .secrets_alloc = secrets_alloc,
				       .secrets_free = secrets_free, .ctx = dev };
	struct nt_noise_static *id = sodium_malloc(sizeof(*id));
	int err;

	memset(dev, 0, sizeof(*dev));
	dev->udp4 = dev->udp6 = dev->tun = dev->epoll = dev->timerfd = -1;
	dev->netlink = dev->inotify = dev->signalfd = -1;
	snprintf(dev->ifname, sizeof(dev->ifname), "%s", ifname);
	pool_init(&dev->peer_pool, sizeof(struct peer), 64);
	pool_init(&dev->keypairs_pool, sizeof(struct nt_keypairs), 32);
	if (!id)
		return -ENOMEM;
	nt_noise_static_init(id, NULL);
	/* From here on the engine holds id (device_destroy frees it), even if it fails. */
	err = nt_engine_init(&dev->eng, id, &host, NT_INDEX_DEFAULT_MAX_SLOTS, NT_RATELIMITER_DEFAULT_CAPACITY);
	return err;
}

void device_destroy(struct device *dev)
{
	struct nt_noise_static *id = dev->static_identity;

	device_remove_all_peers(dev);
	nt_engine_destroy(&dev->eng);
	if (id)
		sodium_free(id); /* wipes */
	pool_destroy(&dev->peer_pool);
	pool_destroy(&dev->keypairs_pool);
	dev->static_identity = NULL;
}

/* ---- the engine's outputs ---- */

#define SENDS_MAX  1024                   /* sealed messages per sendmmsg batch */
#define EVENTS_MAX 256
#define BYTES_MAX  (4 * NT_ENGINE_MIN_BYTES)

static void log_event(const struct nt_event *ev)
{
	struct peer *peer = ev->peer ? PEER(ev->peer) : NULL;
	char buf[64];

	switch (ev->type) {
	case NT_EV_INITIATION_RECEIVED:
		peer_verbose(peer, "received handshake initiation");
		break;
	case NT_EV_INITIATION_DROPPED:
		log_verbose("dropping handshake initiation: %s", nt_status_name(ev->status));
		break;
	case NT_EV_RESPONSE_SENT:
		peer_verbose(peer, "sending handshake response");
		break;
	case NT_EV_RESPONSE_DROPPED:
		peer_verbose(peer, "dropping handshake response: %s", nt_status_name(ev->status));
		break;
	case NT_EV_SESSION_ESTABLISHED:
		peer_verbose(peer, "received handshake response, session established");
		break;
	case NT_EV_SESSION_CONFIRMED:
		peer_verbose(peer, "session confirmed by the initiator");
		break;
	case NT_EV_COOKIE_RECEIVED:
		peer_verbose(peer, "received cookie reply; the peer is under load");
		break;
	case NT_EV_ENDPOINT_CHANGED:
		endpoint_format(buf, sizeof(buf), &ev->endpoint);
		peer_verbose(peer, "endpoint is now %s", buf);
		break;
	case NT_EV_INITIATION_SENT:
		peer_verbose(peer, "sending handshake initiation%s", ev->value ? " (retry)" : "");
		break;
	case NT_EV_INITIATION_FAILED:
		peer_verbose(peer, "cannot create a handshake initiation: %s", nt_status_name(ev->status));
		break;
	case NT_EV_NO_INDEX:
		peer_error(peer, "no session index: %s (%llu in use)", strerror(-ev->err), (unsigned long long)ev->value);
		break;
	case NT_EV_HANDSHAKE_GAVE_UP:
		peer_verbose(peer, "handshake did not complete after %llu seconds, giving up",
			     (unsigned long long)(NT_REKEY_ATTEMPT_TIME / NT_NSEC_PER_SEC));
		break;
	case NT_EV_KEYS_ERASED:
		peer_verbose(peer, "erasing keys after %llu seconds without a new handshake",
			     (unsigned long long)(3 * NT_REJECT_AFTER_TIME / NT_NSEC_PER_SEC));
		break;
	case NT_EV_UNDER_LOAD:
	case NT_EV_SESSION_EXPIRED:
	case NT_EV_LOAD_ENDED:
		break;
	case NT_EV_PEER_BLOCKED:
		peer_error(peer, "peer %s: sessions ended, no handshake until it is %s",
			   ev->value == NT_BLOCK_DISABLED ? "disabled" : "expired (ValidUntil passed)",
			   ev->value == NT_BLOCK_DISABLED ? "enabled" : "valid again");
		break;
	case NT_EV_HANDSHAKE_REFUSED:
		peer_verbose(peer, "refusing handshake initiation: the peer is %s",
			     ev->value == NT_BLOCK_DISABLED ? "disabled" : "expired");
		break;
	case NT_EV_PEER_UNBLOCKED:
		peer_error(peer, "peer enabled again: handshakes allowed");
		break;
	case NT_EV_LIKELY_PSK_MISMATCH:
		if (ev->value == 0)
			peer_error(peer, "handshake failed: likely preshared key mismatch (the response did not authenticate)");
		else
			peer_error(peer, "handshake failed: likely preshared key mismatch (%d responses in a row unused by the initiator)",
				   ev->err);
		break;
	}
}

static void out_flush(void *ctx, struct nt_engine_out *out)
{
	struct device *dev = ctx;

	for (size_t i = 0; i < out->events_len; i++) {
		const struct nt_event *ev = &out->events[i];

		log_event(ev);
		events_engine(dev, ev);
		/* a retry: the last initiation went unanswered, so endpoint failover (watch.c)
		 * hears of it, in the monitor when the daemon is split */
		if (ev->type == NT_EV_INITIATION_SENT && ev->value)
			dev->role == ROLE_WORKER ? privsep_handshake_failed(ev->peer->public_key)
					    : watch_handshake_failed(ev->peer->public_key);
	}
	send_out(dev, out->sends, out->sends_len);
	receive_write_tun(dev, out->tun, out->tun_len);
}

struct nt_engine_out *device_out(struct device *dev)
{
	static struct nt_send sends[SENDS_MAX];
	static struct nt_gro_packet tunq[TUNQ_MAX];
	static struct nt_event events[EVENTS_MAX];
	static uint8_t bytes[BYTES_MAX] __attribute__((aligned(64)));
	static struct nt_engine_out out = {
		.sends = sends, .sends_cap = SENDS_MAX, .tun = tunq, .tun_cap = TUNQ_MAX,
		.events = events, .events_cap = EVENTS_MAX, .bytes = bytes, .bytes_cap = BYTES_MAX,
		.flush = out_flush,
	};

	out.ctx = dev;
	return &out;
}

struct nt_now device_now(void)
{
	return (struct nt_now){ .mono = proto_now_ns(), .wall = wall_ns() };
}

/* Call after anything outside the engine that may have moved a peer's deadlines. */
void peer_timers_changed(struct peer *peer)
{
	nt_engine_peer_timers_changed(&peer->dev->eng, &peer->np);
}

uint64_t device_next_deadline(const struct device *dev)
{
	return nt_engine_next_deadline(&dev->eng);
}

void device_run_timers(struct device *dev, uint64_t now)
{
	struct nt_engine_out *out = device_out(dev);

	nt_engine_timers(&dev->eng, (struct nt_now){ .mono = now, .wall = wall_ns() }, out);
	nt_engine_flush(out);
}

void device_collect(struct device *dev)
{
	struct nt_engine_out *out = device_out(dev);

	nt_engine_collect(&dev->eng, device_now(), out);
	nt_engine_flush(out);
}

/* ---- peers ---- */

struct peer *peer_lookup(struct device *dev, const uint8_t key[NT_KEY_LEN])
{
	struct nt_peer *p = nt_engine_peer_lookup(&dev->eng, key);

	return p ? PEER(p) : NULL;
}

struct peer *peer_create(struct device *dev, const uint8_t key[NT_KEY_LEN])
{
	char b64[NT_KEY_B64_LEN + 1];
	struct peer *peer;

	/* The handshake holds the PSK and the session secrets; the keypairs the session keys:
	 * both come from pools of guarded, locked memory. */
	peer = pool_alloc(&dev->peer_pool);
	if (!peer)
		return NULL;
	if (nt_engine_peer_add(&dev->eng, &peer->np, key)) {
		pool_free(&dev->peer_pool, peer);
		return NULL;
	}
	peer->dev = dev;
	nt_key_to_base64(b64, key);
	memcpy(peer->short_key, b64, 8);
	memcpy(peer->short_key + 8, "...", 4);

	peer->prev = dev->peers_last;
	if (dev->peers_last)
		dev->peers_last->next = peer;
	else
		dev->peers_first = peer;
	dev->peers_last = peer;
	dev->peer_count++;
	peer_verbose(peer, "created");
	return peer;
}

void peer_remove(struct peer *peer)
{
	struct device *dev = peer->dev;

	peer_verbose(peer, "removed");
	nt_engine_peer_remove(&dev->eng, &peer->np);
	if (peer->prev)
		peer->prev->next = peer->next;
	else
		dev->peers_first = peer->next;
	if (peer->next)
		peer->next->prev = peer->prev;
	else
		dev->peers_last = peer->prev;
	dev->peer_count--;
	free(peer->endpoint_name);
	pool_free(&dev->peer_pool, peer); /* wipes */
}

void device_remove_all_peers(struct device *dev)
{
	while (dev->peers_first)
		peer_remove(dev->peers_first);
}

int device_set_private_key(struct device *dev, const uint8_t key[NT_KEY_LEN])
{
	struct nt_peer *self = nt_engine_set_private_key(&dev->eng, key);

	/* A peer with our own public key would be talking to itself. */
	if (self)
		peer_remove(PEER(self));
	return 0;
}

/* The link's up/down state gates the peers: down clears sessions and stops timers; up
 * lets persistent keepalives (and so handshakes) start again. */
void device_set_up(struct device *dev, bool up)
{
	if (dev->up == up)
		return;
	log_verbose("interface is %s", up ? "up" : "down");
	if (!up)
		events_link_down(dev);
	nt_engine_set_up(&dev->eng, up, device_now());
}
