/* The engine: the protocol's sequencing over the primitives of lib/ (Noise, cookies,
 * keypairs, timers, allowed IPs, the index table), with no fd, no clock read and no global.
 *
 * The host (the daemon, a test, a fuzzer) owns the sockets, the TUN and the clock. It
 * hands the engine inputs and gets back what to do:
 *
 *   inputs                                   outputs (in a struct nt_engine_out)
 *   nt_engine_receive    datagrams (a batch) sends:  bytes for an endpoint, from a source
 *   nt_engine_tun_packet one packet read     tun:    plaintext IP packets for the TUN
 *   nt_engine_timers     the time            events: handshake done, endpoint changed, ...
 *   nt_engine_collect    finished handshake jobs (a host with host.submit)
 *   nt_engine_peer_add/remove, _set_private_key, _set_up: configuration
 *   nt_engine_next_deadline: when to call nt_engine_timers next.
 *   Drops are counted in the engine (drops[status] and the four named counters below).
 *
 * Outputs go into bounded queues the host provides (struct nt_engine_out). When one is
 * full the engine calls out->flush, which must carry out everything queued (send, write,
 * log); the engine then empties the queues and goes on. At the end of a batch the host
 * calls nt_engine_flush(out) once. So a batch stays a batch: a wakeup's datagrams are
 * decrypted in place and written to the TUN together (coalesced, with offloads), and what
 * a TUN read seals goes out as one sendmmsg/GSO batch.
 *
 * Time is two numbers per call (struct nt_now): a monotonic clock for every timer and a
 * wall clock for handshake timestamps and last_handshake_wall.
 *
 * Memory: the host allocates each struct nt_peer (zeroed, e.g. in locked memory: it holds
 * the PSK and handshake secrets) and the static identity; the engine asks the host for a
 * peer's keypairs (host.keypairs_alloc) when a session begins and gives them back
 * (host.keypairs_free) when the sessions are cleared. The rest (index table, peer hash,
 * timer heap, staged packets) the engine mallocs itself, each with a bound.
 *
 * A host that adds fields of its own to a peer or an engine can embed the fields with
 * NT_PEER_FIELDS / NT_ENGINE_FIELDS, as the kernel's struct_group does:
 *   struct peer { union { struct nt_peer np; struct { NT_PEER_FIELDS }; }; ... };
 * so that peer->np is the engine's view and peer->hs, peer->endpoint read as before. */
#ifndef NOISETUN_ENGINE_H
#define NOISETUN_ENGINE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "noisetun/allowedips.h"
#include "noisetun/cookie.h"
#include "noisetun/crypto.h"
#include "noisetun/index.h"
#include "noisetun/keypair.h"
#include "noisetun/messages.h"
#include "noisetun/noise.h"
#include "noisetun/offload.h"
#include "noisetun/ratelimiter.h"
#include "noisetun/timers.h"

/* Handshake messages one batch may carry before it counts as load; also the budget of
 * handshake segments after the first of a UDP GRO super-datagram per nt_engine_receive. */
#define NT_ENGINE_HANDSHAKE_QUEUE 64
/* Per nt_engine_receive: the batch's data and cookie messages are handled first; of its
 * handshake messages at most NT_ENGINE_HELD_MAX are kept (the rest dropped unread) and
 * handled after them, in arrival order (their state-free crypto over host.parallel, or
 * queued as jobs for host.submit).
 * Under load only those with a valid mac2 are processed, and at most NT_ENGINE_COOKIE_BUDGET of
 * the others get a cookie reply, at first at most NT_ENGINE_COOKIE_PER_SOURCE per source
 * address, and none to a source address past its own cookie_ratelimiter (the rate limiter's
 * 20/s with a burst of 5: a peer needs one cookie per 2 minutes; a flood from one address
 * gets 20 replies a second, not one per datagram); the rest are dropped
 * (drops[NT_DROP_FLOOD]) before any cryptography. So a
 * flood costs a bounded amount of work per wakeup, and a host that reads in batches
 * drains its socket faster than one attacker core can fill it. */
#define NT_ENGINE_HELD_MAX          128
#define NT_ENGINE_COOKIE_BUDGET     16
#define NT_ENGINE_COOKIE_PER_SOURCE 2
/* Under load, the handshakes with a valid mac2 one nt_engine_receive processes: with
 * host.parallel the host waits for them (4 X25519 each), so this bounds how long a batch's
 * handshakes can hold up its next read; with host.submit it bounds what one batch adds to
 * the job ring. Not under load a batch has fewer than 8. */
#define NT_ENGINE_ADMITTED_MAX      32

/* ---- endpoints ---- */
union nt_endpoint {
	struct sockaddr sa;             /* family AF_UNSPEC: unknown */
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
};
/* The local address a peer reached us at, so replies leave from it (sticky source, as the
 * kernel does when a host has several addresses). */
struct nt_endpoint_src {
	bool set;
	int ifindex;
	union {
		struct in_addr v4;
		struct in6_addr v6;
	};
};

bool nt_endpoint_equal(const union nt_endpoint *a, const union nt_endpoint *b);
/* The address ‖ port bytes that identify a source for cookies; returns the length. */
size_t nt_endpoint_cookie_src(const union nt_endpoint *ep, uint8_t out[18]);
/* Unmap ::ffff:a.b.c.d to AF_INET so one peer has one form of an IPv4 address. */
void nt_endpoint_normalize(union nt_endpoint *ep);

struct nt_now {
	uint64_t mono;                  /* ns, monotonic (CLOCK_BOOTTIME in the daemon) */
	uint64_t wall;                  /* ns since the epoch */
};

/* A packet waiting for a session. */
struct nt_staged {
	uint16_t len;
	uint8_t data[];
};

struct nt_engine;

/* ---- a peer ---- */
#define NT_PEER_FIELDS                                                                             \
	struct nt_peer *hash_next;        /* the engine's public key hash chain */                 \
	uint8_t public_key[NT_KEY_LEN];                                                            \
	struct nt_handshake hs;           /* holds the PSK */                                      \
	struct nt_cookie_maker cookie;                                                             \
	struct nt_keypairs *kps;          /* from host.keypairs_alloc while a session exists */    \
	struct nt_timers timers;                                                                   \
	struct nt_allowedips_owner aips;  /* its prefixes in the engine's aips */                  \
	union nt_endpoint endpoint;       /* follows the latest authenticated packet (roaming) */  \
	struct nt_endpoint_src src;       /* where the peer last reached us */                     \
	uint64_t rx_bytes, tx_bytes;                                                               \
	/* Metrics (counters, never reset while the peer exists): */                               \
	uint64_t rx_packets, tx_packets;  /* authenticated messages, counted as rx/tx_bytes */     \
	uint64_t handshakes;              /* completed: established or confirmed */                \
	uint64_t handshake_attempts;      /* initiations sent (retries included) */                \
	uint64_t handshake_failures;      /* initiations timed out or superseded, unanswered */    \
	uint64_t last_handshake_wall;     /* ns since the epoch; 0: never */                       \
	uint16_t persistent_keepalive;    /* seconds; 0: off */                                    \
	struct nt_staged **staged;        /* NT_MAX_STAGED_PACKETS slots, allocated on first use */ \
	unsigned staged_head, staged_count;                                                        \
	size_t heap_pos;                  /* in the engine's timer heap, or SIZE_MAX */             \
	uint64_t session_expiry;          /* REJECT_AFTER_TIME after the last session derived:     \
					   * NT_EV_SESSION_EXPIRED; UINT64_MAX: none pending */ \
	/* Lifecycle (nt_engine_peer_set_lifecycle): no handshake, no session while disabled   \
	 * or from valid_until on. */                                                              \
	bool disabled;                                                                             \
	bool blocked;                     /* the block was applied: sessions ended, event sent */  \
	uint64_t valid_until;             /* wall ns since the epoch; 0: no limit */               \
	uint64_t expiry_mono;             /* valid_until on the monotonic clock, when it was set */\
	/* PSK mismatch reports: once per initiation (its local index) and, as responder, the   \
	 * responses in a row the initiator never used. */                                        \
	uint32_t mismatch_reported_index;                                                          \
	uint8_t unconfirmed_responses;

struct nt_peer {
	NT_PEER_FIELDS
};

/* ---- what the engine needs of its host ---- */
struct nt_engine_host {
	const struct nt_rng *rng;       /* ephemerals, indices, cookie secrets, timer jitter */
	/* A struct nt_keypairs (zeroed or not: the engine initialises it); NULL when out of
	 * memory. keypairs_free gets it back wiped of keys; it should wipe it again if it
	 * recycles memory. */
	void *(*keypairs_alloc)(void *ctx);
	void (*keypairs_free)(void *ctx, void *kps);
	/* Optional (NULL: all on the calling thread): run fn(arg, i) for every i in [0, n),
	 * spread over the host's threads, and return once all are done. The engine calls it
	 * from nt_engine_receive for the state-free part of a batch's admitted initiations
	 * (nt_noise_prepare_initiation: 4 of a responder's 4 X25519); they only read the
	 * engine, which changes nothing until parallel returns. With it, rng->fill must be
	 * safe to call from any of those threads. */
	void (*parallel)(void *ctx, void (*fn)(void *arg, size_t i), void *arg, size_t n);
	/* The threads parallel spreads over, the caller's included (0 or 1: none). With 2 or
	 * more, a batch's transport data is sealed and opened over them too (issue 19): its
	 * counters and replay checks stay on the calling thread, in order (protocol.md), and
	 * only the AEAD of a large enough batch is split, in chunks of whole messages, each
	 * with a cipher of its own. */
	unsigned parallel_threads;
	/* Optional, both or neither (NULL: the synchronous path above): asynchronous
	 * handshakes (issue 16), so that the data path never waits for one.
	 *
	 * submit: run fn(job) once, on any thread, soon; when it has returned, make the loop
	 *   thread call nt_engine_collect (an eventfd, say). It must not fail: a host whose
	 *   own queue is full runs fn(job) itself. fn touches nothing but the job and what
	 *   nt_noise_prepare_initiation reads (the identity, the peer table, the peers'
	 *   static-static DH), and marks the job done as its very last store.
	 * barrier: return once every fn submitted so far has returned.
	 *
	 * The engine keeps each admitted initiation as a job in a ring of NT_ENGINE_JOBS_MAX
	 * (a copy of the message, its source and local address, the nt_initiation_work;
	 * allocated with secrets_alloc, wiped when done); a full ring drops the initiation
	 * (drops[NT_DROP_FLOOD]). The ring is a handshake queue for the cookie rule, as the
	 * kernel's is: NT_ENGINE_JOBS_MAX / 8 jobs not yet collected are load (as 8
	 * handshakes in one batch are), so a flood spread thin over batches still turns
	 * cookies on.
	 *
	 * Consistency rule: what fn reads changes only in nt_engine_peer_add,
	 * nt_engine_peer_remove, nt_engine_set_private_key, nt_engine_set_up(down) and
	 * nt_engine_destroy. Each of them, when jobs are pending, first calls barrier (after
	 * raising the config epoch, which makes queued jobs skip their work), then discards
	 * what the change made stale: a removed peer's jobs; every job on a new private key,
	 * on down and on destroy (the initiator retries). A peer add keeps the jobs (it frees
	 * nothing a result points to). So no result is applied against state it was not
	 * prepared for, nor points to a freed peer. The PSK is read only on the loop thread
	 * (nt_noise_finish_response), so changing it needs nothing.
	 *
	 * Order: nt_engine_collect applies results in submission order (a job done early
	 * waits for those before it), with the replay timestamp and flood guard checked then
	 * (nt_noise_complete_initiation), against the peer's state as it is at that moment.
	 * A batch's responses (cheap, 2 X25519) are not queued: they are consumed at once,
	 * ahead of initiations of the same batch; either order is one a network could have
	 * made. With submit, rng->fill must be thread-safe. */
	void (*submit)(void *ctx, void (*fn)(void *job), void *job);
	void (*barrier)(void *ctx);
	/* Optional (NULL: calloc/free): memory for secrets the engine keeps itself (the job
	 * ring), e.g. sodium_malloc. The engine wipes it before secrets_free. */
	void *(*secrets_alloc)(void *ctx, size_t len);
	void (*secrets_free)(void *ctx, void *p);
	void *ctx;
};

/* Transport messages sealed or opened in one run of the AEAD, at most; a batch with more
 * runs it again. Chunks of one run (and ciphers kept per chunk), at most. */
#define NT_ENGINE_CRYPTO_OPS  1024
#define NT_ENGINE_CRYPTO_LANES 32
struct nt_crypto_op;
struct nt_crypto_lane;
struct nt_rx_data;

/* Admitted initiations waiting for (or done by) host.submit, at most. */
#define NT_ENGINE_JOBS_MAX 256
struct nt_engine_job;

/* ---- the engine ---- */
#define NT_ENGINE_FIELDS                                                                           \
	struct nt_noise_static *static_identity; /* the host's: holds the private key */          \
	struct nt_cookie_checker cookie_checker;                                                   \
	struct nt_ratelimiter ratelimiter;                                                         \
	struct nt_ratelimiter cookie_ratelimiter; /* cookie replies per source, under load */     \
	uint64_t last_under_load;                                                                  \
	bool was_under_load;                                                                       \
	uint64_t next_ratelimiter_gc;                                                              \
	struct nt_allowedips *aips;       /* cryptokey routing: prefix -> &peer->aips */           \
	struct nt_index_table indices;    /* local session index -> struct nt_peer */              \
	struct nt_peer **peer_hash;       /* by public key */                                      \
	size_t peer_hash_size, peer_hash_count;                                                    \
	struct nt_peer **heap;            /* min-heap of peers by next timer deadline */           \
	size_t heap_len, heap_cap;                                                                 \
	bool up;                          /* the link: nothing is processed while down */          \
	unsigned mtu;                     /* data messages are padded within it */                 \
	struct nt_engine_host host;                                                                \
	uint64_t jitter_state;                                                                     \
	/* Drops, one taxonomy: why a datagram or a TUN packet went nowhere. */                    \
	uint64_t drops[NT_STATUS_MAX];    /* by the status the core returned */                    \
	uint64_t drops_no_peer;           /* TUN: no allowed IP routes the destination */          \
	uint64_t drops_source;            /* received: inner source not the peer's */              \
	uint64_t drops_no_endpoint;       /* TUN: the peer has no endpoint */                      \
	uint64_t drops_staged;            /* TUN: the staging queue overflowed */                  \
	uint64_t cookie_replies_sent;     /* cookie replies queued while under load */             \
	/* Unauthenticated handshake traffic, counted (never an event each: a flood would     \
	 * cost an event per datagram); a host aggregates them for its subscribers. */        \
	uint64_t hs_bad_mac;              /* handshake messages with a wrong mac1 */               \
	uint64_t hs_ratelimited;          /* handshakes over the per-source rate limit */ \
	uint64_t drops_blocked;           /* TUN or received: the peer is disabled or expired */  \
	uint64_t next_expiry;             /* monotonic ns: the earliest valid_until to enforce */ \
	/* Asynchronous handshakes (host.submit): a ring, in submission order. */                 \
	struct nt_engine_job *jobs;       /* NT_ENGINE_JOBS_MAX, from host.secrets_alloc */        \
	unsigned jobs_head, jobs_count;   /* submitted and not yet collected */                    \
	uint64_t config_epoch;            /* raised before a barrier; atomic for the workers */    \
	uint64_t hs_jobs_discarded;       /* results a configuration change made stale */        \
	/* Transport AEAD in batches: sealing (from nt_engine_tun_packet, run before the sends \
	 * leave: nt_engine_flush) and opening (within nt_engine_receive) are queued as ops,  \
	 * with a copy of the key each, and run together, split over host.parallel when large. */ \
	struct nt_crypto_op *ops;         /* NT_ENGINE_CRYPTO_OPS, from host.secrets_alloc */     \
	struct nt_rx_data *rx;            /* per op being opened: the message, for afterwards */  \
	size_t ops_len, ops_bytes;                                                                 \
	struct nt_crypto_lane *lanes;     /* ciphers per chunk, from host.secrets_alloc */        \
	unsigned lanes_len;               /* 1 + (threads > 1 ? chunks : 0) */                     \
	size_t chunk_start[NT_ENGINE_CRYPTO_LANES + 1];

struct nt_engine {
	NT_ENGINE_FIELDS
};

/* ---- outputs ---- */
struct nt_send {
	struct nt_peer *peer;           /* NULL: a cookie reply, which belongs to no peer */
	union nt_endpoint to;
	/* The source to send from: &peer->src (a host whose send fails with the source gone
	 * clears ->set and retries), or &src_copy. */
	struct nt_endpoint_src *src;
	struct nt_endpoint_src src_copy;
	uint8_t *data;                  /* in out->bytes, or sealed in place in the host's buffer */
	size_t len;
	/* A message the engine does not count: the host adds len to peer->tx_bytes once the
	 * send succeeded (handshake messages, keepalives, staged data). Data sealed from a TUN
	 * read is counted when sealed, as a batch is. */
	bool count_tx;
};

enum nt_event_type {
	NT_EV_INITIATION_RECEIVED,      /* peer */
	NT_EV_INITIATION_DROPPED,       /* no peer: status says why (unknown key, replay, ...) */
	NT_EV_RESPONSE_SENT,            /* peer */
	NT_EV_RESPONSE_DROPPED,         /* peer, status */
	NT_EV_SESSION_ESTABLISHED,      /* peer: our initiation was answered (handshake done) */
	NT_EV_SESSION_CONFIRMED,        /* peer: the initiator sent on the session we answered */
	NT_EV_COOKIE_RECEIVED,          /* peer: it is under load */
	NT_EV_ENDPOINT_CHANGED,         /* peer, endpoint: the new one */
	NT_EV_INITIATION_SENT,          /* peer, value 1: a retry */
	NT_EV_INITIATION_FAILED,        /* peer, status: could not create one */
	NT_EV_NO_INDEX,                 /* peer, err (-errno), value: indices in use */
	NT_EV_HANDSHAKE_GAVE_UP,        /* peer: staged packets dropped after REKEY_ATTEMPT_TIME */
	NT_EV_KEYS_ERASED,              /* peer: no handshake for 3 x REJECT_AFTER_TIME */
	NT_EV_UNDER_LOAD,               /* no peer: a batch started the under-load state */
	NT_EV_SESSION_EXPIRED,          /* peer: no session derived for REJECT_AFTER_TIME, so none
					 * is usable (the peer is down) */
	NT_EV_LOAD_ENDED,               /* no peer: the under-load state is over */
	NT_EV_PEER_BLOCKED,             /* peer, value: NT_BLOCK_*: its sessions ended, no handshake */
	NT_EV_HANDSHAKE_REFUSED,        /* peer, value: NT_BLOCK_*: an initiation from a blocked peer */
	NT_EV_PEER_UNBLOCKED,           /* peer: enabled again, or its validity extended */
	/* peer, value 0: our initiation's response did not authenticate (its only key input we
	 * cannot check is the PSK); value 1 (responder): n responses in a row (err) were never
	 * used by the initiator, which then started again. Once per initiation. */
	NT_EV_LIKELY_PSK_MISMATCH,
};
#define NT_EV_COUNT (NT_EV_LIKELY_PSK_MISMATCH + 1)

struct nt_event {
	enum nt_event_type type;
	struct nt_peer *peer;
	enum nt_status status;
	int err;
	uint64_t value;
	union nt_endpoint endpoint;
};

/* Queues the host provides; lengths start at 0 and only the engine (nt_engine_flush)
 * resets them. Each cap must be at least 1, bytes_cap at least NT_ENGINE_MIN_BYTES. */
struct nt_engine_out {
	struct nt_send *sends;
	size_t sends_len, sends_cap;
	struct nt_gro_packet *tun;      /* data: plaintext in the datagram's buffer, cap: room */
	size_t tun_len, tun_cap;
	struct nt_event *events;
	size_t events_len, events_cap;
	uint8_t *bytes;                 /* where the engine writes the messages it makes */
	size_t bytes_used, bytes_cap;
	/* Carry out everything queued; the engine empties the queues after it returns. */
	void (*flush)(void *ctx, struct nt_engine_out *out);
	void *ctx;
	/* The engine's: one whose sends wait for their seal (run by nt_engine_flush). */
	struct nt_engine *sealing;
};
/* A staged packet sealed: the largest message the engine writes into out->bytes. */
#define NT_ENGINE_MIN_BYTES (65535 + NT_DATA_MIN_LEN + NT_DATA_PAD + 16)

/* out->flush, then empty the queues. */
void nt_engine_flush(struct nt_engine_out *out);

/* ---- inputs ---- */

/* identity: the host's (sodium_malloc'd), nt_noise_static_init'ed; 0 or -errno. */
int nt_engine_init(struct nt_engine *e, struct nt_noise_static *identity, const struct nt_engine_host *host,
		   size_t max_indices, size_t ratelimiter_capacity);
/* Frees what the engine allocated; the peers must have been removed first. */
void nt_engine_destroy(struct nt_engine *e);

/* A new peer in zeroed memory; 0 or -ENOMEM. */
int nt_engine_peer_add(struct nt_engine *e, struct nt_peer *p, const uint8_t key[NT_KEY_LEN]);
/* Clears its sessions, staged packets, timers, allowed IPs; the host then frees p. */
void nt_engine_peer_remove(struct nt_engine *e, struct nt_peer *p);
struct nt_peer *nt_engine_peer_lookup(const struct nt_engine *e, const uint8_t key[NT_KEY_LEN]);
/* Call after changing p->timers from outside (persistent keepalive). */
void nt_engine_peer_timers_changed(struct nt_engine *e, struct nt_peer *p);
/* A new private key (NULL: none): sessions of every peer are cleared. The same key again
 * changes nothing. Returns a peer whose public key is now our own, which the host must
 * remove (nt_engine_peer_remove), or NULL. */
struct nt_peer *nt_engine_set_private_key(struct nt_engine *e, const uint8_t key[NT_KEY_LEN]);
/* The link's state gates the peers: down clears sessions and stops timers; up restarts
 * persistent keepalives. */
void nt_engine_set_up(struct nt_engine *e, bool up, struct nt_now now);

/* A received datagram: data/len in a buffer of cap bytes (decrypted in place; the TUN
 * queue points into it until flushed, and coalescing may grow a packet up to cap). */
struct nt_datagram {
	uint8_t *data;
	size_t len, cap;
	size_t segment;                 /* the UDP GRO size: len bytes are datagrams of this
					 * size back to back, the last maybe shorter; 0: one */
	bool truncated;                 /* MSG_TRUNC: dropped */
	union nt_endpoint from;         /* normalized (no v4-mapped v6) */
	struct nt_endpoint_src local;   /* the address it was sent to */
};
/* One wakeup's datagrams. The load (for the cookie rule) is their handshake count, or
 * the asynchronous jobs pending (nt_engine_jobs_pending) at 1/8 of the ring. */
void nt_engine_receive(struct nt_engine *e, struct nt_datagram *dgrams, size_t n, struct nt_now now,
		       struct nt_engine_out *out);

/* Apply the finished asynchronous handshakes (host.submit) in submission order: their
 * responses, sessions and events go to out, as nt_engine_receive's would. Call it from
 * the loop thread when the host is told jobs finished (nt_engine_receive calls it too). */
void nt_engine_collect(struct nt_engine *e, struct nt_now now, struct nt_engine_out *out);
/* Jobs submitted and not yet collected (the load they add). */
size_t nt_engine_jobs_pending(const struct nt_engine *e);

/* One IP packet read from the TUN at pkt, with NT_DATA_HEADER_LEN bytes of room before it
 * and NT_ENGINE_TAIL_ROOM after its len: route it by destination, then seal it in place
 * and queue the send, or (no usable session) stage a copy and start a handshake. */
#define NT_ENGINE_TAIL_ROOM (NT_DATA_PAD + NT_AEAD_TAG_LEN)
void nt_engine_tun_packet(struct nt_engine *e, uint8_t *pkt, size_t len, struct nt_now now,
			  struct nt_engine_out *out);

/* Start a handshake with p now, as a TUN packet without a session would: not while down,
 * without an endpoint, or within REKEY_TIMEOUT of the last initiation. */
void nt_engine_initiate(struct nt_engine *e, struct nt_peer *p, struct nt_now now, struct nt_engine_out *out);

/* Lifecycle: disabled, or valid until a wall time (ns since the epoch; 0: no limit). A peer
 * that is blocked (disabled, or now.wall >= valid_until) keeps its configuration, but its
 * sessions and staged packets go at once and no handshake with it succeeds, as initiator
 * or responder: NT_EV_PEER_BLOCKED says so, once; NT_EV_PEER_UNBLOCKED when it ends. An
 * expiry that passes later is enforced by nt_engine_timers (nt_engine_next_deadline
 * includes it) and by any packet of the peer, on either clock. */
enum { NT_BLOCK_NONE = 0, NT_BLOCK_DISABLED = 1, NT_BLOCK_EXPIRED = 2 };
void nt_engine_peer_set_lifecycle(struct nt_engine *e, struct nt_peer *p, bool disabled, uint64_t valid_until,
				  struct nt_now now, struct nt_engine_out *out);
/* NT_BLOCK_NONE, or why p is blocked at now. */
int nt_engine_peer_block_reason(const struct nt_peer *p, struct nt_now now);

/* Run every peer timer due at now (handshake retries, keepalives, key erasure). */
void nt_engine_timers(struct nt_engine *e, struct nt_now now, struct nt_engine_out *out);
/* The earliest timer deadline (monotonic ns), UINT64_MAX if none. */
uint64_t nt_engine_next_deadline(const struct nt_engine *e);

/* ---- metrics ---- */
/* Whether the cookie rule holds at now: a batch was under load less than
 * NT_COOKIE_UNDER_LOAD_HOLD ago. */
bool nt_engine_under_load(const struct nt_engine *e, uint64_t now);
/* The age of the peer's current session (its newest keypair that may send) at now, in ns;
 * false when it has none. */
bool nt_engine_session_age(const struct nt_peer *p, uint64_t now, uint64_t *age);

#endif
