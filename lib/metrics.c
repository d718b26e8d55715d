/* The Prometheus text exposition of noisetun's counters (include/noisetun/metrics.h).
 * Names follow the Prometheus conventions: the noisetun_ prefix, counters end in _total,
 * base units (bytes, seconds), timestamps as _timestamp_seconds. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "noisetun/encoding.h"
#include "noisetun/metrics.h"

static const char *const drop_reasons[NT_METRICS_ENGINE_DROPS] = {
	/* drops[NT_DROP_SIZE .. NT_DROP_MALFORMED], in enum nt_status order */
	"size", "no_key", "dh", "decrypt", "unknown_peer", "timestamp", "flood", "state", "index",
	"expired", "replay", "malformed",
	/* the named counters */
	"no_route", "source", "no_endpoint", "staged",
};
_Static_assert(NT_STATUS_MAX == 13, "a new nt_status needs its reason in drop_reasons");

const char *nt_metrics_drop_reason(size_t i)
{
	return i < NT_METRICS_ENGINE_DROPS ? drop_reasons[i] : NULL;
}

void nt_metrics_engine_drops(const struct nt_engine *e, struct nt_metrics_device *d)
{
	size_t n = 0;

	for (int st = NT_DROP_SIZE; st < NT_STATUS_MAX; st++, n++)
		d->drops[n] = (struct nt_metrics_drop){ drop_reasons[n], e->drops[st] };
	d->drops[n] = (struct nt_metrics_drop){ drop_reasons[n], e->drops_no_peer };
	n++;
	d->drops[n] = (struct nt_metrics_drop){ drop_reasons[n], e->drops_source };
	n++;
	d->drops[n] = (struct nt_metrics_drop){ drop_reasons[n], e->drops_no_endpoint };
	n++;
	d->drops[n] = (struct nt_metrics_drop){ drop_reasons[n], e->drops_staged };
	n++;
	d->drops_count = n;
}

/* ---- the writer: snprintf semantics over the whole text ---- */

struct writer {
	char *buf;
	size_t size, len;               /* len: what the text needs so far */
};

static void put(struct writer *w, const char *s, size_t n)
{
	if (w->len < w->size) {
		size_t room = w->size - 1 - w->len;
		memcpy(w->buf + w->len, s, n < room ? n : room);
	}
	w->len += n;
}

static void puts_(struct writer *w, const char *s)
{
	put(w, s, strlen(s));
}

static void __attribute__((format(printf, 2, 3))) putf(struct writer *w, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		put(w, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* The length of the UTF-8 sequence at s (n bytes left), 0 if it is not a valid one
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* A label value between quotes: \ " and newline escaped, invalid UTF-8 as '?'. */
static void label_value(struct writer *w, const char *v)
{
	const unsigned char *s = (const unsigned char *)(v ? v : "");
	size_t n = strlen((const char *)s);

	put(w, "\"", 1);
	while (n) {
		size_t k = utf8_len(s, n);

		if (!k)
			put(w, "?", 1), k = 1;
		else if (*s == '\\')
			put(w, "\\\\", 2);
		else if (*s == '"')
			put(w, "\\\"", 2);
		else if (*s == '\n')
			put(w, "\\n", 2);
		else
			put(w, (const char *)s, k);
		s += k;
		n -= k;
	}
	put(w, "\"", 1);
}

static void family(struct writer *w, const char *name, const char *type, const char *help)
{
	puts_(w, "# HELP ");
	puts_(w, name);
	puts_(w, " ");
	puts_(w, help);
	puts_(w, "\n# TYPE ");
	puts_(w, name);
	puts_(w, " ");
	puts_(w, type);
	puts_(w, "\n");
}

/* name{interface="..."[,public_key="...",name="..."] */
static void sample_start(struct writer *w, const char *name, const struct nt_metrics_device *d,
			 const struct nt_metrics_peer *p)
{
	puts_(w, name);
	puts_(w, "{interface=");
	label_value(w, d->ifname);
	if (p) {
		char b64[NT_KEY_B64_LEN + 1];

		nt_key_to_base64(b64, p->public_key);
		puts_(w, ",public_key=");
		label_value(w, b64);
		puts_(w, ",name=");
		label_value(w, p->name);
	}
}

static void sample_u64(struct writer *w, uint64_t v)
{
	putf(w, "} %llu\n", (unsigned long long)v);
}

/* ns as seconds with all nine decimals: exact, and a float to Prometheus. */
static void sample_ns(struct writer *w, uint64_t ns)
{
	putf(w, "} %llu.%09llu\n", (unsigned long long)(ns / 1000000000ULL), (unsigned long long)(ns % 1000000000ULL));
}

enum peer_field { RX_BYTES, TX_BYTES, RX_PACKETS, TX_PACKETS, HANDSHAKES, ATTEMPTS, FAILURES };

static uint64_t peer_field(const struct nt_metrics_peer *p, enum peer_field f)
{
	switch (f) {
	case RX_BYTES: return p->rx_bytes;
	case TX_BYTES: return p->tx_bytes;
	case RX_PACKETS: return p->rx_packets;
	case TX_PACKETS: return p->tx_packets;
	case HANDSHAKES: return p->handshakes;
	case ATTEMPTS: return p->handshake_attempts;
	case FAILURES: return p->handshake_failures;
	}
	return 0;
}

static const struct {
	const char *name, *help;
	enum peer_field field;
} peer_counters[] = {
	{ "noisetun_peer_receive_bytes_total", "Bytes received from the peer (UDP payload, as wg show's transfer).", RX_BYTES },
	{ "noisetun_peer_transmit_bytes_total", "Bytes sent to the peer (UDP payload, as wg show's transfer).", TX_BYTES },
	{ "noisetun_peer_receive_packets_total", "Authenticated messages received from the peer.", RX_PACKETS },
	{ "noisetun_peer_transmit_packets_total", "Messages sent to the peer (handshake, data, keepalive).", TX_PACKETS },
	{ "noisetun_peer_handshakes_total", "Handshakes completed with the peer (either side initiating).", HANDSHAKES },
	{ "noisetun_peer_handshake_attempts_total", "Handshake initiations sent to the peer, retries included.", ATTEMPTS },
	{ "noisetun_peer_handshake_failures_total", "Handshake initiations that got no response: timed out (REKEY_TIMEOUT, 5 s) or given up for a newer one.", FAILURES },
};

size_t nt_metrics_format(char *buf, size_t size, const struct nt_metrics_device *devs, size_t n)
{
	struct writer w = { .buf = buf, .size = size };

	if (size)
		buf[0] = '\0';

	family(&w, "noisetun_up", "gauge", "1 when the interface is up.");
	for (size_t i = 0; i < n; i++)
		sample_start(&w, "noisetun_up", &devs[i], NULL), sample_u64(&w, devs[i].up);
	family(&w, "noisetun_peers", "gauge", "Peers configured on the interface.");
	for (size_t i = 0; i < n; i++)
		sample_start(&w, "noisetun_peers", &devs[i], NULL), sample_u64(&w, devs[i].peers_count);
	family(&w, "noisetun_under_load", "gauge",
	       "1 while the interface answers handshakes with cookie replies (under load).");
	for (size_t i = 0; i < n; i++)
		sample_start(&w, "noisetun_under_load", &devs[i], NULL), sample_u64(&w, devs[i].under_load);
	family(&w, "noisetun_cookie_replies_sent_total", "counter", "Cookie replies sent to handshakes while under load.");
	for (size_t i = 0; i < n; i++)
		sample_start(&w, "noisetun_cookie_replies_sent_total", &devs[i], NULL),
			sample_u64(&w, devs[i].cookie_replies_sent);
	family(&w, "noisetun_handshake_jobs_pending", "gauge",
	       "Responder handshakes handed to the handshake threads and not yet applied.");
	for (size_t i = 0; i < n; i++)
		sample_start(&w, "noisetun_handshake_jobs_pending", &devs[i], NULL),
			sample_u64(&w, devs[i].handshake_jobs_pending);
	family(&w, "noisetun_handshake_jobs_discarded_total", "counter",
	       "Responder handshakes whose result was discarded: a configuration change (peer removed, new private key, link down) made it stale.");
	for (size_t i = 0; i < n; i++)
		sample_start(&w, "noisetun_handshake_jobs_discarded_total", &devs[i], NULL),
			sample_u64(&w, devs[i].handshake_jobs_discarded);
	family(&w, "noisetun_drops_total", "counter", "Datagrams and TUN packets dropped, by reason.");
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < devs[i].drops_count && k < NT_METRICS_MAX_DROPS; k++) {
			sample_start(&w, "noisetun_drops_total", &devs[i], NULL);
			puts_(&w, ",reason=");
			label_value(&w, devs[i].drops[k].reason);
			sample_u64(&w, devs[i].drops[k].count);
		}
	}

	family(&w, "noisetun_peer_info", "gauge", "Always 1: the peer, its name and its current endpoint as labels.");
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < devs[i].peers_count; k++) {
			sample_start(&w, "noisetun_peer_info", &devs[i], &devs[i].peers[k]);
			puts_(&w, ",endpoint=");
			label_value(&w, devs[i].peers[k].endpoint);
			sample_u64(&w, 1);
		}
	}
	for (size_t c = 0; c < sizeof(peer_counters) / sizeof(peer_counters[0]); c++) {
		family(&w, peer_counters[c].name, "counter", peer_counters[c].help);
		for (size_t i = 0; i < n; i++)
			for (size_t k = 0; k < devs[i].peers_count; k++)
				sample_start(&w, peer_counters[c].name, &devs[i], &devs[i].peers[k]),
					sample_u64(&w, peer_field(&devs[i].peers[k], peer_counters[c].field));
	}
	family(&w, "noisetun_peer_last_handshake_timestamp_seconds", "gauge",
	       "When the last handshake with the peer completed, in seconds since the epoch; 0: never.");
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < devs[i].peers_count; k++)
			sample_start(&w, "noisetun_peer_last_handshake_timestamp_seconds", &devs[i], &devs[i].peers[k]),
				sample_ns(&w, devs[i].peers[k].last_handshake_ns);
	family(&w, "noisetun_peer_session_age_seconds", "gauge",
	       "Age of the peer's current session (keypair); absent while there is none.");
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < devs[i].peers_count; k++)
			if (devs[i].peers[k].has_session)
				sample_start(&w, "noisetun_peer_session_age_seconds", &devs[i], &devs[i].peers[k]),
					sample_ns(&w, devs[i].peers[k].session_age_ns);
	if (size)
		buf[w.len < size ? w.len : size - 1] = '\0';
	return w.len;
}

/* ---- the HTTP request ---- */

size_t nt_metrics_http_head_end(const char *buf, size_t len, size_t *scan)
{
	size_t i = *scan > 3 ? *scan - 3 : 1;

	*scan = len;
	for (; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i - 1] == '\n')
			return i + 1;
		if (i >= 3 && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r')
			return i + 1;
	}
	return 0;
}

int nt_metrics_http_status(const char *head, size_t len)
{
	const char *eol = memchr(head, '\n', len), *sp[2], *path_end;
	size_t n, spaces = 0;

	if (!eol)
		return 400;
	n = (size_t)(eol - head);
	if (n && head[n - 1] == '\r')
		n--;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)head[i];

		if (c == ' ') {
			if (spaces == 2)
				return 400;
			sp[spaces++] = head + i;
		} else if (c < 0x21 || c > 0x7e) {
			return 400;
		}
	}
	/* "M T V": the method and the target not empty, the version exactly HTTP/1.0 or 1.1 */
	if (spaces != 2 || sp[0] == head || sp[1] == sp[0] + 1 || (size_t)(head + n - (sp[1] + 1)) != 8 ||
	    (memcmp(sp[1] + 1, "HTTP/1.1", 8) && memcmp(sp[1] + 1, "HTTP/1.0", 8)))
		return 400;
	path_end = memchr(sp[0] + 1, '?', (size_t)(sp[1] - (sp[0] + 1)));
	if (!path_end)
		path_end = sp[1];
	if ((size_t)(path_end - (sp[0] + 1)) != 8 || memcmp(sp[0] + 1, "/metrics", 8))
		return 404;
	if (sp[0] - head != 3 || memcmp(head, "GET", 3))
		return 405;
	return 200;
}
