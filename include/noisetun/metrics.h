/* The Prometheus text exposition (format 0.0.4) of noisetun's counters: one formatter for
 * `noisetun metrics` (from a get reply) and the daemon's --metrics-listen (from the device),
 * so both print the same names, types, help and labels.
 *
 * The caller fills a snapshot (struct nt_metrics_device per interface, its peers and its
 * drop counters) and nt_metrics_format writes the text: every metric family once, with its
 * HELP and TYPE lines, then its samples for every interface, as the format requires. Label
 * values are escaped (\\, \", \n) and bytes that are not UTF-8 become '?': a peer's name is
 * the operator's text and an endpoint a peer's doing. Pure: no I/O, no clock. */
#ifndef NOISETUN_METRICS_H
#define NOISETUN_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "noisetun/crypto.h"
#include "noisetun/engine.h"

/* The engine's drop counters (struct nt_engine: drops[] without NT_OK, and the four named
 * ones); a snapshot may carry more (a reply from a newer daemon), up to the max. */
#define NT_METRICS_ENGINE_DROPS (NT_STATUS_MAX - 1 + 4)
#define NT_METRICS_MAX_DROPS    48

struct nt_metrics_drop {
	const char *reason;             /* the label value: "decrypt", "replay", "no_route", ... */
	uint64_t count;
};

struct nt_metrics_peer {
	uint8_t public_key[NT_KEY_LEN];
	const char *name;               /* NULL or "": none (label name="") */
	const char *endpoint;           /* "a.b.c.d:port", "[v6]:port"; NULL or "": none */
	uint64_t rx_bytes, tx_bytes, rx_packets, tx_packets;
	uint64_t last_handshake_ns;     /* wall clock, ns since the epoch; 0: never */
	uint64_t handshakes, handshake_attempts, handshake_failures;
	bool has_session;
	uint64_t session_age_ns;
};

struct nt_metrics_device {
	const char *ifname;
	bool up, under_load;
	uint64_t cookie_replies_sent;
	/* The asynchronous responder handshakes (NOISETUN_HS_THREADS): jobs submitted and not
	 * yet collected (nt_engine_jobs_pending, at most NT_ENGINE_JOBS_MAX), and results a
	 * configuration change made stale (the engine's hs_jobs_discarded). */
	uint64_t handshake_jobs_pending, handshake_jobs_discarded;
	struct nt_metrics_drop drops[NT_METRICS_MAX_DROPS];
	size_t drops_count;
	const struct nt_metrics_peer *peers;
	size_t peers_count;
};

/* The label value of each engine drop counter, in the order nt_metrics_engine_drops
 * fills them (also the key suffix of the control socket's noisetun_drops_REASON lines). */
const char *nt_metrics_drop_reason(size_t i);
/* d->drops from the engine's counters (NT_METRICS_ENGINE_DROPS of them). */
void nt_metrics_engine_drops(const struct nt_engine *e, struct nt_metrics_device *d);

/* The exposition of n devices into buf (NUL-terminated when size > 0, truncated if too
 * small); returns the length the whole text needs, without the NUL, as snprintf. */
size_t nt_metrics_format(char *buf, size_t size, const struct nt_metrics_device *devs, size_t n);

#define NT_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* ---- the HTTP side of --metrics-listen: the request, parsed here so it can be tested ---- */

/* The length of the request head in buf[0, len) (through its blank line: CRLF CRLF, or
 * LF LF), 0 while it is not all there. *scan (0 at first) remembers how far a previous
 * call looked, so bytes trickling in are looked at once each. */
size_t nt_metrics_http_head_end(const char *buf, size_t len, size_t *scan);

/* The status a request head gets: 200 for GET /metrics (any query string), 404 for
 * another path, 405 for another method, 400 when the request line is not "METHOD SP
 * TARGET SP HTTP/1.x" of visible ASCII. Only the request line is read: headers change
 * nothing. */
int nt_metrics_http_status(const char *head, size_t len);

#endif
