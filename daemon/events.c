/* Events (docs/events.md): what happened to the tunnel, as one JSON object per line for
 * the control socket's subscribers (uapi.c: `events=1`), a log line (log.c: with journal
 * fields), and for four of them a message to the monitor, which runs the config's hooks
 * (hooks.c). All authenticated events come from the engine's events (device.c hands them
 * over) or from applying a set; the unauthenticated ones (bad mac, unknown key, cookie
 * replies, rate limits) are only counted, and summed once a second for the subscribers
 * that asked for them, so a flood of forged handshakes costs a subscriber one line a
 * second, and the data path no formatting at all.
 *
 * Key material never gets here: a line carries the peer's public key, its name, its
 * endpoint and numbers. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "noisetun/encoding.h"
#include "noisetund.h"
#include "privsep.h"

/* ---- the JSON line ---- */

struct line {
	char buf[EVENT_LINE_MAX];
	size_t len;
	bool overflow;
};

static void put(struct line *l, const char *s, size_t n)
{
	if (l->overflow || l->len + n >= sizeof(l->buf)) {
		l->overflow = true;
		return;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static void puts_(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

static void putf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct line *l, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		l->overflow = true;
		return;
	}
	put(l, tmp, (size_t)n);
}

static void put_string(struct line *l, const char *s)
{
	char tmp[NT_CONFIG_NAME_MAX * 6 + 3];

	put(l, tmp, nt_json_string(tmp, sizeof(tmp), s));
}

/* UTC date of a count of days since 1970-01-01 (the proleptic Gregorian calendar in
 * 400-year eras). Our own: gmtime_r and strftime may read /etc/localtime on first use, a
 * file the sandboxed worker may not open. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;

	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static void line_start(struct line *l, struct device *dev, const char *event)
{
	uint64_t wall = wall_ns(), sec = wall / NT_NSEC_PER_SEC;
	unsigned mon, day, tod = (unsigned)(sec % 86400);
	int64_t year;

	l->len = 0;
	l->overflow = false;
	civil_from_days((int64_t)(sec / 86400), &year, &mon, &day);
	putf(l, "{\"time\":\"%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ\",\"interface\":", (long long)year, mon, day,
	     tod / 3600, tod / 60 % 60, tod % 60, (unsigned)(wall % NT_NSEC_PER_SEC / 1000000));
	put_string(l, dev->ifname);
	putf(l, ",\"event\":\"%s\"", event);
}

/* The peer, name and endpoint fields; null where there is none. */
static void put_peer(struct line *l, const struct peer *p, const union nt_endpoint *ep)
{
	char b64[NT_KEY_B64_LEN + 1], epbuf[80];

	if (p) {
		nt_key_to_base64(b64, p->public_key);
		putf(l, ",\"peer\":\"%s\",\"name\":", b64);
		if (p->name[0])
			put_string(l, p->name);
		else
			puts_(l, "null");
	} else {
		puts_(l, ",\"peer\":null,\"name\":null");
	}
	if (ep && ep->sa.sa_family != AF_UNSPEC && endpoint_format(epbuf, sizeof(epbuf), ep))
		putf(l, ",\"endpoint\":\"%s\"", epbuf);
	else
		puts_(l, ",\"endpoint\":null");
}

static void line_end(struct line *l)
{
	put(l, "}\n", 2);
}

/* {"event":"lost","count":N} with the common fields, for uapi.c; its length (0: none). */
size_t events_lost_line(struct device *dev, char *buf, size_t size, uint64_t count)
{
	struct line l;

	line_start(&l, dev, "lost");
	put_peer(&l, NULL, NULL);
	putf(&l, ",\"count\":%llu", (unsigned long long)count);
	line_end(&l);
	if (l.overflow || l.len > size)
		return 0;
	memcpy(buf, l.buf, l.len);
	return l.len;
}

/* ---- what an event does ---- */

static const char *const hook_event_names[HOOK_EV_COUNT] = {
	[HOOK_EV_PEER_UP] = "peer_up",
	[HOOK_EV_PEER_DOWN] = "peer_down",
	[HOOK_EV_HANDSHAKE_FAILED] = "handshake_failed",
	[HOOK_EV_ENDPOINT_CHANGED] = "endpoint_changed",
};

const char *hook_event_name(unsigned kind)
{
	return kind < HOOK_EV_COUNT ? hook_event_names[kind] : NULL;
}

/* Send the line to the subscribers, log it (priority < 0: not logged), and for a hook's
 * event tell the monitor. message: the log line's text after "peer ...: ". */
static void deliver(struct device *dev, struct line *l, const char *event, const struct peer *p,
		    const union nt_endpoint *ep, int priority, int hook, const char *message)
{
	char key[NT_KEY_B64_LEN + 1], epbuf[80] = "";
	struct log_fields f = { .event = event };

	line_end(l);
	if (!l->overflow)
		uapi_events_broadcast(dev, l->buf, l->len, false);
	if (priority >= 0) {
		if (p) {
			nt_key_to_base64(key, p->public_key);
			f.peer = key;
			f.name = p->name;
		}
		if (ep && ep->sa.sa_family != AF_UNSPEC)
			endpoint_format(epbuf, sizeof(epbuf), ep);
		f.endpoint = epbuf;
		log_event_msg(priority, p, &f, "%s", message);
	}
	if (hook >= 0 && p)
		privsep_hook_event((unsigned)hook, p->public_key, ep);
}

static void peer_event(struct device *dev, const char *event, struct peer *p, const union nt_endpoint *ep,
		       const char *extra, int priority, int hook, const char *message)
{
	struct line l;

	if (priority < 0 && hook < 0 && !uapi_events_subscribers())
		return; /* nobody to tell: a set of many peers formats nothing */
	line_start(&l, dev, event);
	put_peer(&l, p, ep);
	if (extra)
		puts_(&l, extra);
	deliver(dev, &l, event, p, ep, priority, hook, message);
}

static void peer_down(struct device *dev, struct peer *p, const char *reason)
{
	char extra[64], msg[96];

	if (!p->up)
		return;
	p->up = false;
	snprintf(extra, sizeof(extra), ",\"reason\":\"%s\"", reason);
	snprintf(msg, sizeof(msg), "peer down (%s)", reason);
	peer_event(dev, "peer_down", p, &p->endpoint, extra, LOG_NOTICE, HOOK_EV_PEER_DOWN, msg);
}

static void handshake(struct device *dev, struct peer *p, const char *role)
{
	char extra[64], msg[64];

	snprintf(extra, sizeof(extra), ",\"role\":\"%s\"", role);
	snprintf(msg, sizeof(msg), "handshake completed (%s), new session", role);
	peer_event(dev, "handshake", p, &p->endpoint, extra, LOG_INFO, -1, msg);
	if (!p->up) {
		p->up = true;
		peer_event(dev, "peer_up", p, &p->endpoint, NULL, LOG_NOTICE, HOOK_EV_PEER_UP, "peer up");
	}
}

/* ---- unauthenticated traffic, summed ---- */

static struct {
	uint64_t bad_mac, cookies, ratelimited, unknown_peer, replayed, invalid, last_ns;
	uint64_t seen_unknown_peer, seen_replayed, seen_invalid; /* counted from events */
	uint64_t snap_bad_mac, snap_cookies, snap_ratelimited;
} ua;

static void unauth_drop(enum nt_status st)
{
	switch (st) {
	case NT_DROP_UNKNOWN_PEER:
		ua.seen_unknown_peer++;
		break;
	case NT_DROP_TIMESTAMP:
	case NT_DROP_FLOOD:
		ua.seen_replayed++;
		break;
	default:
		ua.seen_invalid++;
		break;
	}
}

/* The counters as they are now become the base of the next sum (a new subscriber's first
 * line covers only what happened after it subscribed). */
void events_unauth_reset(struct device *dev)
{
	ua.snap_bad_mac = dev->hs_bad_mac;
	ua.snap_cookies = dev->cookie_replies_sent;
	ua.snap_ratelimited = dev->hs_ratelimited;
	ua.unknown_peer = ua.seen_unknown_peer;
	ua.replayed = ua.seen_replayed;
	ua.invalid = ua.seen_invalid;
	ua.last_ns = now_ns();
}

/* Once a second (the control socket's tick): one line with what came since the last, if
 * anything did, to the subscribers that asked for it. */
void events_tick(struct device *dev)
{
	uint64_t bad_mac = dev->hs_bad_mac - ua.snap_bad_mac, cookies = dev->cookie_replies_sent - ua.snap_cookies,
		 limited = dev->hs_ratelimited - ua.snap_ratelimited, unknown = ua.seen_unknown_peer - ua.unknown_peer,
		 replayed = ua.seen_replayed - ua.replayed, invalid = ua.seen_invalid - ua.invalid,
		 interval = (now_ns() - ua.last_ns) / 1000000;
	struct line l;

	if (!bad_mac && !cookies && !limited && !unknown && !replayed && !invalid)
		return;
	events_unauth_reset(dev);
	if (!uapi_events_unauth_subscribers())
		return;
	line_start(&l, dev, "unauthenticated");
	puts_(&l, ",\"peer\":null,\"name\":null,\"endpoint\":null");
	putf(&l, ",\"interval_ms\":%llu,\"bad_mac\":%llu,\"unknown_peer\":%llu", (unsigned long long)interval,
	     (unsigned long long)bad_mac, (unsigned long long)unknown);
	putf(&l, ",\"replayed\":%llu,\"invalid\":%llu", (unsigned long long)replayed, (unsigned long long)invalid);
	putf(&l, ",\"cookie_sent\":%llu,\"rate_limited\":%llu}\n", (unsigned long long)cookies,
	     (unsigned long long)limited);
	if (!l.overflow)
		uapi_events_broadcast(dev, l.buf, l.len, true);
}

/* ---- the engine's events ---- */

void events_engine(struct device *dev, const struct nt_event *ev)
{
	struct peer *p = ev->peer ? PEER(ev->peer) : NULL;
	char extra[96];
	struct line l;

	switch (ev->type) {
	case NT_EV_SESSION_ESTABLISHED:
		handshake(dev, p, "initiator");
		break;
	case NT_EV_SESSION_CONFIRMED:
		handshake(dev, p, "responder");
		break;
	case NT_EV_ENDPOINT_CHANGED:
		peer_event(dev, "endpoint_changed", p, &ev->endpoint, NULL, LOG_INFO, HOOK_EV_ENDPOINT_CHANGED,
			   "endpoint changed");
		break;
	case NT_EV_HANDSHAKE_GAVE_UP:
		snprintf(extra, sizeof(extra), ",\"after_s\":%llu,\"staged_dropped\":%llu",
			 (unsigned long long)(NT_REKEY_ATTEMPT_TIME / NT_NSEC_PER_SEC), (unsigned long long)ev->value);
		peer_event(dev, "handshake_failed", p, &p->endpoint, extra, LOG_NOTICE, HOOK_EV_HANDSHAKE_FAILED,
			   "handshake attempts given up");
		peer_down(dev, p, "handshake_failed");
		break;
	case NT_EV_SESSION_EXPIRED:
		peer_down(dev, p, "session_expired");
		break;
	case NT_EV_KEYS_ERASED:
		peer_down(dev, p, "keys_erased");
		break;
	case NT_EV_UNDER_LOAD:
		line_start(&l, dev, "under_load");
		put_peer(&l, NULL, NULL);
		putf(&l, ",\"handshakes\":%llu", (unsigned long long)ev->value);
		deliver(dev, &l, "under_load", NULL, NULL, LOG_NOTICE, -1,
			"under load: handshakes need a cookie (mac2) now");
		break;
	case NT_EV_LOAD_ENDED:
		line_start(&l, dev, "load_ended");
		put_peer(&l, NULL, NULL);
		deliver(dev, &l, "load_ended", NULL, NULL, LOG_NOTICE, -1, "load ended");
		break;
	case NT_EV_INITIATION_DROPPED:
		unauth_drop(ev->status);
		break;
	case NT_EV_RESPONSE_DROPPED:
		unauth_drop(ev->status);
		break;
	case NT_EV_PEER_BLOCKED: /* logged by device.c */
		peer_event(dev, ev->value == NT_BLOCK_DISABLED ? "peer_disabled" : "peer_expired", p, &p->endpoint, NULL,
			   -1, -1, NULL);
		peer_down(dev, p, ev->value == NT_BLOCK_DISABLED ? "disabled" : "expired");
		break;
	case NT_EV_PEER_UNBLOCKED:
		peer_event(dev, "peer_enabled", p, &p->endpoint, NULL, -1, -1, NULL);
		break;
	case NT_EV_LIKELY_PSK_MISMATCH:
		peer_event(dev, "psk_mismatch", p, &p->endpoint,
			   ev->value ? ",\"role\":\"responder\"" : ",\"role\":\"initiator\"", -1, -1, NULL);
		break;
	case NT_EV_HANDSHAKE_REFUSED: /* a blocked peer's initiation: logged, one per attempt */
	case NT_EV_INITIATION_RECEIVED:
	case NT_EV_RESPONSE_SENT:
	case NT_EV_COOKIE_RECEIVED:
	case NT_EV_INITIATION_SENT:
	case NT_EV_INITIATION_FAILED:
	case NT_EV_NO_INDEX:
		break;
	}
}

/* ---- configuration ---- */

void events_peer(struct device *dev, enum peer_change what, struct peer *p, unsigned changes)
{
	char extra[128];
	size_t n = 0;

	switch (what) {
	case PEER_ADDED:
		peer_event(dev, "peer_added", p, &p->endpoint, NULL, -1, -1, NULL); /* logged: "created" */
		break;
	case PEER_REMOVED:
		peer_event(dev, "peer_removed", p, &p->endpoint, NULL, -1, -1, NULL); /* logged: "removed" */
		break;
	case PEER_PSK_CHANGED:
		peer_event(dev, "psk_changed", p, &p->endpoint, NULL, -1, -1, NULL);
		peer_verbose(p, "preshared key changed");
		break;
	case PEER_CHANGED:
		n = (size_t)snprintf(extra, sizeof(extra), ",\"changes\":[");
		if (changes & PEER_CHANGED_ENDPOINT)
			n += (size_t)snprintf(extra + n, sizeof(extra) - n, "\"endpoint\",");
		if (changes & PEER_CHANGED_ALLOWED_IPS)
			n += (size_t)snprintf(extra + n, sizeof(extra) - n, "\"allowed_ips\",");
		if (changes & PEER_CHANGED_KEEPALIVE)
			n += (size_t)snprintf(extra + n, sizeof(extra) - n, "\"persistent_keepalive\",");
		if (extra[n - 1] == ',')
			n--;
		snprintf(extra + n, sizeof(extra) - n, "]");
		peer_event(dev, "peer_changed", p, &p->endpoint, extra, -1, -1, NULL);
		peer_verbose(p, "changed");
		break;
	}
}

void events_reload(struct device *dev, int err, size_t peers)
{
	struct line l;
	char msg[96];

	line_start(&l, dev, "reload");
	put_peer(&l, NULL, NULL);
	putf(&l, ",\"errno\":%d,\"peers\":%zu", err, peers);
	snprintf(msg, sizeof(msg), "configuration reloaded: %s, %zu peers", err ? strerror(-err) : "applied", peers);
	deliver(dev, &l, "reload", NULL, NULL, err ? LOG_ERR : LOG_NOTICE, -1, msg);
}

/* The link went down: every session is gone. */
void events_link_down(struct device *dev)
{
	for (struct peer *p = dev->peers_first; p; p = p->next)
		peer_down(dev, p, "interface_down");
}
