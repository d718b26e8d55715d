/* set=1 request bodies (control-protocol.md "Requests"). The whole body is parsed into a
 * struct first; the daemon applies it only when every line was good.
 *
 * Grammar, line by line: key '=' value '\n', bytes 0x21..0x7e only (no spaces, NUL or CR),
 * at most NT_UAPI_MAX_LINE bytes. Device keys come before the first public_key. Numbers are
 * decimal digits with no sign (leading zeros allowed), booleans only "true",
 * protocol_version only "1". Where wireguard-go 0.0.20220316 is laxer (CRLF lines, a '+' or
 * '-' before a prefix length) we follow control-protocol.md and refuse. An endpoint scope may
 * be an interface name (stock `wg` sends one) and a public key may repeat (a [Peer] given
 * twice in a file): the kernel handles peer sections one after another, a second section
 * for the same key selecting the same peer again, and so does the daemon when it applies
 * peers[] in order. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "noisetun/config.h"
#include "noisetun/crypto.h"
#include "noisetun/encoding.h"
#include "noisetun/metrics.h"
#include "noisetun/uapi.h"

_Static_assert(NT_KEY_LEN == 32, "uapi keys are 32 bytes");
_Static_assert(NT_UAPI_NAME_MAX == NT_CONFIG_NAME_MAX, "a peer name fits both");
_Static_assert(sizeof(struct in6_addr) == 16 && sizeof(struct in_addr) == 4, "address sizes");

/* Long enough for any address inet_pton accepts (INET6_ADDRSTRLEN counts the NUL). */
#define ADDR_TEXT_MAX (INET6_ADDRSTRLEN - 1)

enum uapi_key {
	KEY_PRIVATE_KEY,
	KEY_LISTEN_PORT,
	KEY_FWMARK,
	KEY_NOISETUN_MSS_CLAMP,
	KEY_REPLACE_PEERS,
	KEY_PUBLIC_KEY,
	KEY_REMOVE,
	KEY_UPDATE_ONLY,
	KEY_PRESHARED_KEY,
	KEY_ENDPOINT,
	KEY_PERSISTENT_KEEPALIVE_INTERVAL,
	KEY_REPLACE_ALLOWED_IPS,
	KEY_ALLOWED_IP,
	KEY_PROTOCOL_VERSION,
	KEY_NOISETUN_NAME,
	KEY_NOISETUN_DISABLED,
	KEY_NOISETUN_VALID_UNTIL,
	KEY_NOISETUN_ENDPOINT_NAME,
	KEY_UNKNOWN,
};

static const struct {
	const char *name;
	size_t len;
} key_names[KEY_UNKNOWN] = {
#define K(id, str) [id] = { str, sizeof(str) - 1 }
	K(KEY_PRIVATE_KEY, "private_key"),
	K(KEY_LISTEN_PORT, "listen_port"),
	K(KEY_FWMARK, "fwmark"),
	K(KEY_NOISETUN_MSS_CLAMP, "noisetun_mss_clamp"),
	K(KEY_REPLACE_PEERS, "replace_peers"),
	K(KEY_PUBLIC_KEY, "public_key"),
	K(KEY_REMOVE, "remove"),
	K(KEY_UPDATE_ONLY, "update_only"),
	K(KEY_PRESHARED_KEY, "preshared_key"),
	K(KEY_ENDPOINT, "endpoint"),
	K(KEY_PERSISTENT_KEEPALIVE_INTERVAL, "persistent_keepalive_interval"),
	K(KEY_REPLACE_ALLOWED_IPS, "replace_allowed_ips"),
	K(KEY_ALLOWED_IP, "allowed_ip"),
	K(KEY_PROTOCOL_VERSION, "protocol_version"),
	K(KEY_NOISETUN_NAME, "noisetun_name"),
	K(KEY_NOISETUN_DISABLED, "noisetun_disabled"),
	K(KEY_NOISETUN_VALID_UNTIL, "noisetun_valid_until"),
	K(KEY_NOISETUN_ENDPOINT_NAME, "noisetun_endpoint_name"),
#undef K
};

static enum uapi_key lookup_key(const char *s, size_t len)
{
	for (size_t i = 0; i < KEY_UNKNOWN; i++)
		if (key_names[i].len == len && !memcmp(key_names[i].name, s, len))
			return (enum uapi_key)i;
	return KEY_UNKNOWN;
}

static bool value_is(const char *s, size_t len, const char *want)
{
	return strlen(want) == len && !memcmp(s, want, len);
}

/* Decimal digits only, at least one, value <= max (max < 2^60 so v * 10 + 9 cannot wrap). */
static int parse_decimal(uint64_t *out, const char *s, size_t len, uint64_t max)
{
	uint64_t v = 0;

	if (!len)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > max)
			return -EINVAL;
	}
	*out = v;
	return 0;
}

/* inet_pton wants a NUL-terminated string: copy, refusing text no address could be. */
static int parse_address(uint8_t addr[static 16], int family, const char *s, size_t len)
{
	char text[ADDR_TEXT_MAX + 1];
	uint8_t raw[16];

	if (!len || len > ADDR_TEXT_MAX || memchr(s, '\0', len))
		return -EINVAL;
	memcpy(text, s, len);
	text[len] = '\0';
	if (inet_pton(family, text, raw) != 1)
		return -EINVAL;
	memset(addr, 0, 16);
	memcpy(addr, raw, family == AF_INET ? 4 : 16);
	return 0;
}

static int parse_hex_key(uint8_t key[static NT_KEY_LEN], const char *s, size_t len)
{
	char text[NT_KEY_HEX_LEN + 1];
	int ret;

	if (len != NT_KEY_HEX_LEN)
		return -EINVAL;
	memcpy(text, s, len);
	text[len] = '\0';
	ret = nt_key_from_hex(key, text);
	nt_wipe(text, sizeof(text));
	return ret;
}

static int parse_prefix(struct nt_uapi_allowed_ip *out, const char *s, size_t len, bool need_cidr)
{
	const char *slash = memchr(s, '/', len);
	size_t addr_len = slash ? (size_t)(slash - s) : len;
	uint8_t family, max_cidr;
	uint64_t cidr;
	int ret;

	memset(out, 0, sizeof(*out));
	family = memchr(s, ':', addr_len) ? AF_INET6 : AF_INET;
	max_cidr = family == AF_INET ? 32 : 128;
	ret = parse_address(out->addr, family, s, addr_len);
	if (ret)
		goto out;
	if (slash) {
		ret = parse_decimal(&cidr, slash + 1, len - addr_len - 1, max_cidr);
	} else {
		cidr = max_cidr;
		ret = need_cidr ? -EINVAL : 0;
	}
	if (ret)
		goto out;
	out->family = family;
	out->cidr = (uint8_t)cidr;
out:
	if (ret)
		memset(out, 0, sizeof(*out));
	return ret;
}

int nt_uapi_parse_allowed_ip(struct nt_uapi_allowed_ip *out, const char *s, size_t len)
{
	return parse_prefix(out, s, len, false);
}

/* An interface name as Linux allows one (dev_valid_name): 1..15 bytes, not "." or "..", no
 * '/', ':' or whitespace; we also refuse '%' and anything outside 0x21..0x7e. A name of
 * digits only is a number and was tried as one. */
static int parse_scope_name(char name[static NT_UAPI_IFNAME_MAX + 1], const char *s, size_t len)
{
	bool digits = true;

	if (!len || len > NT_UAPI_IFNAME_MAX || (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x21 || c > 0x7e || c == '/' || c == ':' || c == '%')
			return -EINVAL;
		digits = digits && c >= '0' && c <= '9';
	}
	if (digits)
		return -EINVAL;
	memcpy(name, s, len);
	name[len] = '\0';
	return 0;
}

int nt_uapi_parse_endpoint(struct nt_uapi_endpoint *out, const char *s, size_t len)
{
	const char *host = s, *port_text, *close, *percent;
	size_t host_len;
	uint64_t port, scope = 0;
	int ret = -EINVAL;

	memset(out, 0, sizeof(*out));
	if (len && s[0] == '[') {
		/* "[v6addr%scope]:port"; the brackets are what keep the port apart. */
		close = memchr(s, ']', len);
		if (!close || (size_t)(close - s) + 1 >= len || close[1] != ':')
			goto out;
		host = s + 1;
		host_len = (size_t)(close - host);
		port_text = close + 2;
		percent = memchr(host, '%', host_len);
		if (percent) {
			const char *zone = percent + 1;
			size_t zone_len = host_len - (size_t)(percent - host) - 1;

			if (parse_decimal(&scope, zone, zone_len, UINT32_MAX) &&
			    parse_scope_name(out->scope_name, zone, zone_len))
				goto out;
			host_len = (size_t)(percent - host);
		}
		if (parse_address(out->addr, AF_INET6, host, host_len))
			goto out;
		out->family = AF_INET6;
	} else {
		/* "a.b.c.d:port"; a bare IPv6 address, whose port would be ambiguous, fails here. */
		port_text = memrchr(s, ':', len);
		if (!port_text)
			goto out;
		host_len = (size_t)(port_text - s);
		port_text++;
		if (parse_address(out->addr, AF_INET, host, host_len))
			goto out;
		out->family = AF_INET;
	}
	if (parse_decimal(&port, port_text, len - (size_t)(port_text - s), UINT16_MAX))
		goto out;
	out->port = (uint16_t)port;
	out->scope_id = (uint32_t)scope;
	ret = 0;
out:
	if (ret)
		memset(out, 0, sizeof(*out));
	return ret;
}

size_t nt_uapi_format_endpoint(char *buf, size_t size, const struct nt_uapi_endpoint *ep)
{
	char text[NT_UAPI_ENDPOINT_STRLEN + 16], addr[INET6_ADDRSTRLEN];
	int n = -1;

	if (ep->family == AF_INET && inet_ntop(AF_INET, ep->addr, addr, sizeof(addr)))
		n = snprintf(text, sizeof(text), "%s:%u", addr, (unsigned)ep->port);
	else if (ep->family == AF_INET6 && inet_ntop(AF_INET6, ep->addr, addr, sizeof(addr)) &&
		 ep->scope_name[0] && memchr(ep->scope_name, '\0', sizeof(ep->scope_name)))
		n = snprintf(text, sizeof(text), "[%s%%%s]:%u", addr, ep->scope_name, (unsigned)ep->port);
	else if (ep->family == AF_INET6 && inet_ntop(AF_INET6, ep->addr, addr, sizeof(addr)))
		n = ep->scope_id ? snprintf(text, sizeof(text), "[%s%%%u]:%u", addr,
					    (unsigned)ep->scope_id, (unsigned)ep->port)
				 : snprintf(text, sizeof(text), "[%s]:%u", addr, (unsigned)ep->port);
	if (n < 0 || (size_t)n >= sizeof(text) || (size_t)n >= size) {
		if (size)
			buf[0] = '\0';
		return 0;
	}
	memcpy(buf, text, (size_t)n + 1);
	return (size_t)n;
}

/* ---- the request ---- */

struct parse_state {
	struct nt_uapi_set *set;
	size_t peers_cap;
	size_t ips_cap; /* of the last peer, the only one still growing */
};

/* Peers hold preshared keys, so the array moves by hand and the old copy is wiped. */
static int append_peer(struct parse_state *st)
{
	struct nt_uapi_set *set = st->set;
	struct nt_uapi_peer *grown;
	size_t cap;

	if (set->peers_count == st->peers_cap) {
		cap = st->peers_cap ? 2 * st->peers_cap : 8;
		if (cap > SIZE_MAX / 2 / sizeof(*grown))
			return -ENOMEM;
		grown = malloc(cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		if (set->peers_count) {
			memcpy(grown, set->peers, set->peers_count * sizeof(*grown));
			nt_wipe(set->peers, set->peers_count * sizeof(*grown));
		}
		free(set->peers);
		set->peers = grown;
		st->peers_cap = cap;
	}
	memset(&set->peers[set->peers_count++], 0, sizeof(*set->peers));
	st->ips_cap = 0;
	return 0;
}

static int append_allowed_ip(struct parse_state *st, struct nt_uapi_peer *peer,
			     const struct nt_uapi_allowed_ip *ip)
{
	struct nt_uapi_allowed_ip *grown;
	size_t cap;

	if (peer->allowed_ips_count == st->ips_cap) {
		cap = st->ips_cap ? 2 * st->ips_cap : 4;
		if (cap > SIZE_MAX / 2 / sizeof(*grown))
			return -ENOMEM;
		grown = realloc(peer->allowed_ips, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		peer->allowed_ips = grown;
		st->ips_cap = cap;
	}
	peer->allowed_ips[peer->allowed_ips_count++] = *ip;
	return 0;
}

static int parse_line(struct parse_state *st, const char *line, size_t len)
{
	struct nt_uapi_set *set = st->set;
	struct nt_uapi_peer *peer = set->peers_count ? &set->peers[set->peers_count - 1] : NULL;
	struct nt_uapi_allowed_ip ip;
	const char *eq = memchr(line, '=', len), *value;
	size_t value_len;
	enum uapi_key key;
	uint64_t n;
	int ret;

	if (!eq)
		return -EINVAL;
	key = lookup_key(line, (size_t)(eq - line));
	value = eq + 1;
	value_len = len - (size_t)(value - line);
	/* A name may hold spaces and may be empty (to clear it): its own check, below. */
	for (size_t i = 0; i < (key == KEY_NOISETUN_NAME ? (size_t)(eq - line) : len); i++)
		if ((unsigned char)line[i] < 0x21 || (unsigned char)line[i] > 0x7e)
			return -EINVAL;
	if (!value_len && key != KEY_NOISETUN_NAME)
		return -EINVAL;

	/* Device keys only before the first peer, peer keys only after it. */
	if (key <= KEY_REPLACE_PEERS && peer)
		return -EINVAL;
	if (key > KEY_PUBLIC_KEY && !peer)
		return -EINVAL;

	switch (key) {
	case KEY_PRIVATE_KEY:
		ret = parse_hex_key(set->private_key, value, value_len);
		set->has_private_key = !ret;
		return ret;
	case KEY_LISTEN_PORT:
		ret = parse_decimal(&n, value, value_len, UINT16_MAX);
		if (!ret) {
			set->has_listen_port = true;
			set->listen_port = (uint16_t)n;
		}
		return ret;
	case KEY_FWMARK:
		ret = parse_decimal(&n, value, value_len, UINT32_MAX);
		if (!ret) {
			set->has_fwmark = true;
			set->fwmark = (uint32_t)n;
		}
		return ret;
	case KEY_NOISETUN_MSS_CLAMP: /* noisetun's own, device-wide: "# noisetun-mss-clamp" */
		set->has_mss_clamp = true;
		if (value_is(value, value_len, "true"))
			set->mss_clamp = true;
		else if (value_is(value, value_len, "false"))
			set->mss_clamp = false;
		else
			return -EINVAL;
		return 0;
	case KEY_REPLACE_PEERS:
		set->replace_peers = true;
		return value_is(value, value_len, "true") ? 0 : -EINVAL;
	case KEY_PUBLIC_KEY:
		ret = append_peer(st);
		if (ret)
			return ret;
		return parse_hex_key(set->peers[set->peers_count - 1].public_key, value, value_len);
	case KEY_REMOVE:
		peer->remove = true;
		return value_is(value, value_len, "true") ? 0 : -EINVAL;
	case KEY_UPDATE_ONLY:
		peer->update_only = true;
		return value_is(value, value_len, "true") ? 0 : -EINVAL;
	case KEY_PRESHARED_KEY:
		ret = parse_hex_key(peer->preshared_key, value, value_len);
		peer->has_preshared_key = !ret;
		return ret;
	case KEY_ENDPOINT:
		ret = nt_uapi_parse_endpoint(&peer->endpoint, value, value_len);
		peer->has_endpoint = !ret;
		return ret;
	case KEY_PERSISTENT_KEEPALIVE_INTERVAL:
		ret = parse_decimal(&n, value, value_len, UINT16_MAX);
		if (!ret) {
			peer->has_persistent_keepalive = true;
			peer->persistent_keepalive = (uint16_t)n;
		}
		return ret;
	case KEY_REPLACE_ALLOWED_IPS:
		/* Applied in order, the replace would drop every address listed before it. */
		peer->replace_allowed_ips = true;
		peer->allowed_ips_count = 0;
		return value_is(value, value_len, "true") ? 0 : -EINVAL;
	case KEY_ALLOWED_IP:
		ret = parse_prefix(&ip, value, value_len, true);
		if (ret)
			return ret;
		return append_allowed_ip(st, peer, &ip);
	case KEY_PROTOCOL_VERSION:
		return value_is(value, value_len, "1") ? 0 : -EINVAL;
	case KEY_NOISETUN_NAME:
		if (value_len && !nt_config_valid_name(value, value_len))
			return -EINVAL;
		peer->has_name = true;
		memset(peer->name, 0, sizeof(peer->name)); /* a longer name before: none of it left */
		memcpy(peer->name, value, value_len);
		return 0;
	/* noisetun's own (stock wg never sends them): the peer's lifecycle. */
	case KEY_NOISETUN_DISABLED:
		peer->has_lifecycle_disabled = true;
		if (value_is(value, value_len, "true"))
			peer->lifecycle_disabled = true;
		else if (value_is(value, value_len, "false"))
			peer->lifecycle_disabled = false;
		else
			return -EINVAL;
		return 0;
	case KEY_NOISETUN_VALID_UNTIL:
		/* Seconds since the epoch; 0: no limit. Below 2^40 (year 36812): the daemon
		 * keeps it in nanoseconds. */
		ret = parse_decimal(&n, value, value_len, (UINT64_C(1) << 40) - 1);
		if (!ret) {
			peer->has_valid_until = true;
			peer->valid_until = n;
		}
		return ret;
	case KEY_NOISETUN_ENDPOINT_NAME:
		if (value_is(value, value_len, "-")) {
			peer->has_endpoint_name = true;
			peer->endpoint_name[0] = '\0';
			return 0;
		}
		if (value_len > NT_UAPI_ENDPOINT_NAME_MAX)
			return -EINVAL;
		for (size_t i = 0; i < value_len; i++) {
			char c = value[i];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
			      c == '-' || c == '_' || c == ':' || c == '[' || c == ']' || c == '%'))
				return -EINVAL;
		}
		memcpy(peer->endpoint_name, value, value_len);
		peer->endpoint_name[value_len] = '\0';
		peer->has_endpoint_name = true;
		return 0;
	case KEY_UNKNOWN:
		break;
	}
	return -EINVAL;
}

int nt_uapi_parse_set(struct nt_uapi_set *out, const char *body, size_t len)
{
	struct parse_state st = { .set = out };
	size_t pos = 0, line_len;
	const char *nl;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	while (pos < len && !ret) {
		/* Look no further than the longest line allowed: a huge line costs O(1). */
		line_len = len - pos < NT_UAPI_MAX_LINE + 1 ? len - pos : NT_UAPI_MAX_LINE + 1;
		nl = memchr(body + pos, '\n', line_len);
		if (!nl) {
			ret = -EINVAL; /* too long, or the last line lacks its '\n' */
			break;
		}
		line_len = (size_t)(nl - (body + pos));
		ret = parse_line(&st, body + pos, line_len);
		pos += line_len + 1;
	}
	if (ret)
		nt_uapi_set_free(out);
	return ret;
}

void nt_uapi_set_free(struct nt_uapi_set *set)
{
	for (size_t i = 0; i < set->peers_count; i++)
		free(set->peers[i].allowed_ips);
	if (set->peers) {
		nt_wipe(set->peers, set->peers_count * sizeof(*set->peers));
		free(set->peers);
	}
	nt_wipe(set, sizeof(*set));
}

/* ---- the request, written ---- */

struct text {
	char *buf;
	size_t size, len;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_add(struct text *t, const char *fmt, ...)
{
	size_t room = t->len < t->size ? t->size - t->len : 0;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(room ? t->buf + t->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		t->len += (size_t)n;
}

static void text_key(struct text *t, const char *name, const uint8_t key[static NT_KEY_LEN])
{
	char hex[NT_KEY_HEX_LEN + 1];

	nt_key_to_hex(hex, key);
	text_add(t, "%s=%s\n", name, hex);
	nt_wipe(hex, sizeof(hex));
}

size_t nt_uapi_format_set(const struct nt_uapi_set *set, char *buf, size_t size)
{
	return nt_uapi_format_set_flags(set, 0, buf, size);
}

size_t nt_uapi_format_set_flags(const struct nt_uapi_set *set, int flags, char *buf, size_t size)
{
	struct text t = { .buf = buf, .size = size };

	if (size)
		buf[0] = '\0';
	if (set->has_private_key)
		text_key(&t, "private_key", set->private_key);
	if (set->has_listen_port)
		text_add(&t, "listen_port=%u\n", (unsigned)set->listen_port);
	if (set->has_fwmark)
		text_add(&t, "fwmark=%u\n", (unsigned)set->fwmark);
	if (set->has_mss_clamp)
		text_add(&t, "noisetun_mss_clamp=%s\n", set->mss_clamp ? "true" : "false");
	if (set->replace_peers)
		text_add(&t, "replace_peers=true\n");
	for (size_t i = 0; i < set->peers_count; i++) {
		const struct nt_uapi_peer *p = &set->peers[i];

		text_key(&t, "public_key", p->public_key);
		if (p->remove)
			text_add(&t, "remove=true\n");
		if (p->remove && (flags & NT_UAPI_FORMAT_WG))
			continue;
		if (p->update_only)
			text_add(&t, "update_only=true\n");
		if (p->has_preshared_key)
			text_key(&t, "preshared_key", p->preshared_key);
		if (p->has_endpoint) {
			char ep[NT_UAPI_ENDPOINT_STRLEN];
			nt_uapi_format_endpoint(ep, sizeof(ep), &p->endpoint);
			text_add(&t, "endpoint=%s\n", ep);
		}
		if (p->has_persistent_keepalive)
			text_add(&t, "persistent_keepalive_interval=%u\n", (unsigned)p->persistent_keepalive);
		if (p->replace_allowed_ips)
			text_add(&t, "replace_allowed_ips=true\n");
		for (size_t j = 0; j < p->allowed_ips_count; j++) {
			const struct nt_uapi_allowed_ip *a = &p->allowed_ips[j];
			char addr[INET6_ADDRSTRLEN] = "";
			inet_ntop(a->family, a->addr, addr, sizeof(addr));
			text_add(&t, "allowed_ip=%s/%u\n", addr, (unsigned)a->cidr);
		}
		if (p->has_name && !(flags & NT_UAPI_FORMAT_NO_NAMES))
			text_add(&t, "noisetun_name=%.*s\n", NT_UAPI_NAME_MAX, p->name);
		if (p->has_lifecycle_disabled)
			text_add(&t, "noisetun_disabled=%s\n", p->lifecycle_disabled ? "true" : "false");
		if (p->has_valid_until)
			text_add(&t, "noisetun_valid_until=%llu\n", (unsigned long long)p->valid_until);
		if (p->has_endpoint_name)
			text_add(&t, "noisetun_endpoint_name=%s\n", p->endpoint_name[0] ? p->endpoint_name : "-");
	}
	return t.len;
}

/* ---- get=1 replies, read (uapi.h "the one model of a running device") ---- */

_Static_assert(NT_UAPI_MAX_DROPS == NT_METRICS_MAX_DROPS, "show keeps every drop reason the daemon has");

static int get_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	/* parse_decimal stops at 2^60; counters go to 2^64 - 1 */
	uint64_t v = 0;

	if (!len)
		return -EPROTO;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - d) / 10)
			return -EPROTO;
		v = v * 10 + d;
	}
	if (v > max)
		return -EPROTO;
	*out = v;
	return 0;
}

static int get_key(uint8_t key[static NT_KEY_LEN], const char *s, size_t len)
{
	char hex[NT_KEY_HEX_LEN + 1];
	int ret;

	if (len != NT_KEY_HEX_LEN)
		return -EPROTO;
	memcpy(hex, s, len);
	hex[len] = '\0';
	ret = nt_key_from_hex(key, hex) ? -EPROTO : 0;
	nt_wipe(hex, sizeof(hex));
	return ret;
}

static int get_add_peer(struct nt_uapi_device *dev)
{
	struct nt_uapi_device_peer *bigger;
	size_t cap = dev->peers_count;

	/* Doubling; the old array holds preshared keys: wiped, not left to realloc. */
	if (!(cap & (cap - 1))) {
		if (!(bigger = nt_wiped_realloc(dev->peers, cap * sizeof(*bigger), (cap ? cap * 2 : 4) * sizeof(*bigger))))
			return -ENOMEM;
		dev->peers = bigger;
	}
	memset(&dev->peers[dev->peers_count++], 0, sizeof(*dev->peers));
	return 0;
}

int nt_uapi_device_peer_add_allowed_ip(struct nt_uapi_device_peer *peer, const struct nt_uapi_allowed_ip *ip)
{
	size_t n = peer->allowed_ips_count;
	struct nt_uapi_allowed_ip *bigger;

	/* Doubling: a peer may hold thousands. Room for 4 first, then twice as much each time
	 * it is full. */
	if (!n || (n >= 4 && !(n & (n - 1)))) {
		if (!(bigger = realloc(peer->allowed_ips, (n ? n * 2 : 4) * sizeof(*bigger))))
			return -ENOMEM;
		peer->allowed_ips = bigger;
	}
	peer->allowed_ips[peer->allowed_ips_count++] = *ip;
	return 0;
}

static int get_add_allowed_ip(struct nt_uapi_device_peer *peer, const char *s, size_t len)
{
	struct nt_uapi_allowed_ip ip;

	if (nt_uapi_parse_allowed_ip(&ip, s, len))
		return -EPROTO;
	return nt_uapi_device_peer_add_allowed_ip(peer, &ip);
}

#define KEY_IS(k) (klen == sizeof(k) - 1 && !memcmp(key, k, klen))

/* A noisetun_ line (names, lifecycle, metrics); unknown ones are skipped. */
static int get_line_noisetun(struct nt_uapi_device *dev, struct nt_uapi_device_peer *peer, const char *key,
			     size_t klen, const char *value, size_t vlen)
{
	struct nt_uapi_device_metrics *dm = &dev->metrics;
	uint64_t v;
	int ret;

	if (peer && KEY_IS("noisetun_endpoint_name")) {
		if (vlen <= NT_UAPI_ENDPOINT_NAME_MAX && !memchr(value, '\0', vlen)) {
			memcpy(peer->endpoint_name, value, vlen);
			peer->endpoint_name[vlen] = '\0';
		}
		return 0;
	}
	if (peer && (KEY_IS("noisetun_disabled") || KEY_IS("noisetun_blocked"))) {
		*(key[9] == 'd' ? &peer->disabled : &peer->blocked) = value_is(value, vlen, "true");
		return 0;
	}
	if (peer && KEY_IS("noisetun_valid_until"))
		return get_u64(value, vlen, UINT64_MAX, &peer->valid_until);
	if (peer && KEY_IS("noisetun_name")) {
		/* Printed to terminals and files: anything but a valid name is left out. */
		if (nt_config_valid_name(value, vlen)) {
			memcpy(peer->name, value, vlen);
			peer->name[vlen] = '\0';
		}
		return 0;
	}
	if ((ret = get_u64(value, vlen, UINT64_MAX, &v)))
		return ret;
	if (peer) {
		struct nt_uapi_peer_metrics *pm = &peer->metrics;

		if (KEY_IS("noisetun_rx_packets"))
			pm->rx_packets = v;
		else if (KEY_IS("noisetun_tx_packets"))
			pm->tx_packets = v;
		else if (KEY_IS("noisetun_handshakes"))
			pm->handshakes = v;
		else if (KEY_IS("noisetun_handshake_attempts"))
			pm->handshake_attempts = v;
		else if (KEY_IS("noisetun_handshake_failures"))
			pm->handshake_failures = v;
		else if (KEY_IS("noisetun_session_age_nsec"))
			pm->has_session = true, pm->session_age_ns = v;
		return 0;
	}
	if (KEY_IS("noisetun_up")) {
		dm->up = v != 0;
	} else if (KEY_IS("noisetun_under_load")) {
		dm->under_load = v != 0;
	} else if (KEY_IS("noisetun_cookie_replies_sent")) {
		dm->cookie_replies_sent = v;
	} else if (KEY_IS("noisetun_handshake_jobs_pending")) {
		dm->handshake_jobs_pending = v;
	} else if (KEY_IS("noisetun_handshake_jobs_discarded")) {
		dm->handshake_jobs_discarded = v;
	} else if (klen >= 15 && !memcmp(key, "noisetun_drops_", 15)) {
		const char *reason = key + 15;
		size_t rlen = klen - 15;

		/* a label of our own making: the daemon's word is not trusted for more */
		if (!rlen || rlen > NT_UAPI_DROP_REASON_MAX)
			return -EPROTO;
		for (size_t i = 0; i < rlen; i++)
			if (!((reason[i] >= 'a' && reason[i] <= 'z') || (reason[i] >= '0' && reason[i] <= '9') ||
			      reason[i] == '_'))
				return -EPROTO;
		if (dm->drops_count < NT_UAPI_MAX_DROPS) {
			memcpy(dm->drop_reasons[dm->drops_count], reason, rlen);
			dm->drop_reasons[dm->drops_count][rlen] = '\0';
			dm->drops[dm->drops_count++] = v;
		}
	}
	return 0;
}

int nt_uapi_get_line(struct nt_uapi_device *dev, const char *line, size_t len, int *daemon_errno)
{
	struct nt_uapi_device_peer *peer = dev->peers_count ? &dev->peers[dev->peers_count - 1] : NULL;
	const char *eq = memchr(line, '=', len), *key = line, *value;
	size_t klen, vlen;
	uint64_t v;
	int ret = 0;

	if (!eq || len > NT_UAPI_GET_MAX_LINE)
		return -EPROTO;
	klen = (size_t)(eq - line);
	value = eq + 1;
	vlen = len - klen - 1;
	if (KEY_IS("errno")) {
		bool neg = vlen && value[0] == '-';

		/* errno=-22 (wireguard-go, noisetund) or errno=22: either way an error */
		if (get_u64(value + neg, vlen - neg, INT32_MAX, &v))
			return -EPROTO;
		*daemon_errno = (int)v;
		return 1;
	}
	if (!peer && KEY_IS("private_key")) {
		ret = get_key(dev->private_key, value, vlen);
		dev->has_private_key = !ret && !nt_is_zero(dev->private_key, NT_KEY_LEN);
		if (dev->has_private_key)
			dev->has_public_key = !nt_dh_public(dev->public_key, dev->private_key);
	} else if (!peer && KEY_IS("listen_port")) {
		if (!(ret = get_u64(value, vlen, UINT16_MAX, &v)))
			dev->listen_port = (uint16_t)v;
	} else if (!peer && KEY_IS("fwmark")) {
		if (!(ret = get_u64(value, vlen, UINT32_MAX, &v)))
			dev->fwmark = (uint32_t)v;
	} else if (KEY_IS("public_key")) {
		if (!(ret = get_add_peer(dev)))
			ret = get_key(dev->peers[dev->peers_count - 1].public_key, value, vlen);
	} else if (peer && KEY_IS("preshared_key")) {
		ret = get_key(peer->preshared_key, value, vlen);
		peer->has_preshared_key = !ret && !nt_is_zero(peer->preshared_key, NT_KEY_LEN);
	} else if (peer && KEY_IS("endpoint")) {
		ret = nt_uapi_parse_endpoint(&peer->endpoint, value, vlen) ? -EPROTO : 0;
		peer->has_endpoint = !ret;
	} else if (peer && KEY_IS("last_handshake_time_sec")) {
		if (!(ret = get_u64(value, vlen, INT64_MAX, &v)))
			peer->last_handshake_sec = (int64_t)v;
	} else if (peer && KEY_IS("last_handshake_time_nsec")) {
		if (!(ret = get_u64(value, vlen, INT64_MAX, &v)))
			peer->last_handshake_nsec = (int64_t)v;
	} else if (peer && KEY_IS("rx_bytes")) {
		ret = get_u64(value, vlen, UINT64_MAX, &peer->rx_bytes);
	} else if (peer && KEY_IS("tx_bytes")) {
		ret = get_u64(value, vlen, UINT64_MAX, &peer->tx_bytes);
	} else if (peer && KEY_IS("persistent_keepalive_interval")) {
		if (!(ret = get_u64(value, vlen, UINT16_MAX, &v)))
			peer->persistent_keepalive = (uint16_t)v;
	} else if (peer && KEY_IS("allowed_ip")) {
		ret = get_add_allowed_ip(peer, value, vlen);
	} else if (klen > 9 && !memcmp(key, "noisetun_", 9)) {
		ret = get_line_noisetun(dev, peer, key, klen, value, vlen);
	}
	return ret;
}

#undef KEY_IS

int nt_uapi_parse_get(struct nt_uapi_device *dev, const char *reply, size_t len)
{
	int daemon_errno = -1, ret = 0;
	size_t pos = 0;

	memset(dev, 0, sizeof(*dev));
	for (;;) {
		const char *nl = pos < len ? memchr(reply + pos, '\n', len - pos) : NULL;
		size_t line_len;

		if (!nl) {
			ret = -EPROTO; /* cut short */
			break;
		}
		line_len = (size_t)(nl - (reply + pos));
		if (!line_len) {
			/* The empty line ends the reply; only after errno is it complete. */
			ret = daemon_errno < 0 || pos + 1 != len ? -EPROTO : -daemon_errno;
			break;
		}
		if (daemon_errno >= 0) {
			ret = -EPROTO; /* nothing but the empty line after errno= */
			break;
		}
		ret = nt_uapi_get_line(dev, reply + pos, line_len, &daemon_errno);
		if (ret < 0)
			break;
		pos += line_len + 1;
	}
	if (ret)
		nt_uapi_device_free(dev);
	return ret;
}

int nt_uapi_parse_set_reply(const char *reply, size_t len)
{
	const char *nl = memchr(reply, '\n', len);
	struct nt_uapi_device none = { 0 };
	size_t line_len = nl ? (size_t)(nl - reply) : 0;
	int daemon_errno = -1, ret;

	/* the errno line alone, then the empty line: nothing else is an answer to a set */
	if (!nl || line_len < 6 || memcmp(reply, "errno=", 6) || line_len + 2 != len || reply[len - 1] != '\n')
		return -EPROTO;
	ret = nt_uapi_get_line(&none, reply, line_len, &daemon_errno);
	nt_uapi_device_free(&none);
	return ret == 1 ? -daemon_errno : -EPROTO;
}

static void text_b64_key(struct text *t, const char *name, const uint8_t key[static NT_KEY_LEN])
{
	char b64[NT_KEY_B64_LEN + 1];

	nt_key_to_base64(b64, key);
	text_add(t, "%s = %s\n", name, b64);
	nt_wipe(b64, sizeof(b64));
}

size_t nt_uapi_format_config(const struct nt_uapi_device *dev, int flags, nt_uapi_endpoint_text_fn *endpoint,
			     char *buf, size_t size)
{
	struct text t = { .buf = buf, .size = size };

	if (size)
		buf[0] = '\0';
	if (flags & NT_UAPI_CONFIG_SHOWCONF)
		text_add(&t, "[Interface]\n");
	if (dev->listen_port)
		text_add(&t, "ListenPort = %u\n", (unsigned)dev->listen_port);
	if (dev->fwmark)
		text_add(&t, "FwMark = 0x%x\n", (unsigned)dev->fwmark);
	if (dev->has_private_key)
		text_b64_key(&t, "PrivateKey", dev->private_key);
	if ((flags & NT_UAPI_CONFIG_SHOWCONF) && !dev->peers_count)
		text_add(&t, "\n");
	for (size_t i = 0; i < dev->peers_count; i++) {
		const struct nt_uapi_device_peer *p = &dev->peers[i];
		size_t name_len = strnlen(p->name, sizeof(p->name));

		text_add(&t, "\n[Peer]\n");
		/* wg reads it as a comment; only a valid name is written (it comes from a reply) */
		if (name_len && name_len < sizeof(p->name) && nt_config_valid_name(p->name, name_len))
			text_add(&t, "# friendly_name = %s\n", p->name);
		text_b64_key(&t, "PublicKey", p->public_key);
		if (p->has_preshared_key && !nt_is_zero(p->preshared_key, NT_KEY_LEN))
			text_b64_key(&t, "PresharedKey", p->preshared_key);
		for (size_t j = 0; j < p->allowed_ips_count; j++) {
			char a[INET6_ADDRSTRLEN];

			if (!inet_ntop(p->allowed_ips[j].family, p->allowed_ips[j].addr, a, sizeof(a)))
				a[0] = '\0';
			text_add(&t, "%s%s/%u", j ? ", " : "AllowedIPs = ", a, (unsigned)p->allowed_ips[j].cidr);
		}
		if (p->allowed_ips_count)
			text_add(&t, "\n");
		if (p->has_endpoint) {
			char ep[NT_UAPI_ENDPOINT_STRLEN + 1088]; /* NI_MAXHOST + NI_MAXSERV, for the caller's */

			ep[0] = '\0';
			if (endpoint)
				endpoint(ep, sizeof(ep), &p->endpoint);
			else
				nt_uapi_format_endpoint(ep, sizeof(ep), &p->endpoint);
			if (ep[0])
				text_add(&t, "Endpoint = %s\n", ep);
		}
		if (p->persistent_keepalive)
			text_add(&t, "PersistentKeepalive = %u\n", (unsigned)p->persistent_keepalive);
	}
	return t.len;
}

/* ---- config to set (uapi.h) ---- */

static bool config_has_peer(const struct nt_config *cfg, const uint8_t key[static NT_KEY_LEN])
{
	for (size_t i = 0; i < cfg->peers_count; i++)
		if (nt_equal(cfg->peers[i].public_key, key, NT_KEY_LEN))
			return true;
	return false;
}

static const struct nt_uapi_device_peer *device_peer(const struct nt_uapi_device *dev, const uint8_t key[static NT_KEY_LEN])
{
	for (size_t i = 0; i < dev->peers_count; i++)
		if (nt_equal(dev->peers[i].public_key, key, NT_KEY_LEN))
			return &dev->peers[i];
	return NULL;
}

/* Syncconf: device keys only when they differ from cur. */
static void sync_device_keys(struct nt_uapi_set *set, const struct nt_uapi_device *cur)
{
	uint8_t want[NT_KEY_LEN] = { 0 }, have[NT_KEY_LEN] = { 0 };

	if (set->has_private_key) {
		if (!nt_is_zero(set->private_key, NT_KEY_LEN)) {
			memcpy(want, set->private_key, NT_KEY_LEN);
			nt_key_clamp(want); /* the device keeps (and reports) it clamped */
		}
		if (cur->has_private_key)
			memcpy(have, cur->private_key, NT_KEY_LEN);
		set->has_private_key = !nt_equal(want, have, NT_KEY_LEN);
		nt_wipe(want, sizeof(want));
		nt_wipe(have, sizeof(have));
	}
	if (set->has_listen_port && set->listen_port == cur->listen_port)
		set->has_listen_port = false;
	if (set->has_fwmark && set->fwmark == cur->fwmark)
		set->has_fwmark = false;
}

int nt_config_to_set(struct nt_uapi_set *set, const struct nt_config *cfg, const struct nt_uapi_endpoint *eps,
		     const struct nt_uapi_device *cur, int flags)
{
	size_t n = 0, removals = 0;

	memset(set, 0, sizeof(*set));
	for (size_t j = 0; cur && j < cur->peers_count; j++)
		removals += !config_has_peer(cfg, cur->peers[j].public_key);
	if (cfg->peers_count + removals && !(set->peers = calloc(cfg->peers_count + removals, sizeof(*set->peers))))
		return -ENOMEM;

	set->has_private_key = cfg->has_private_key || (flags & NT_CONFIG_SET_ABSENT_KEY);
	if (cfg->has_private_key)
		memcpy(set->private_key, cfg->private_key, NT_KEY_LEN);
	set->has_listen_port = cfg->has_listen_port || (flags & NT_CONFIG_SET_ABSENT_PORT);
	set->listen_port = cfg->has_listen_port ? cfg->listen_port : 0;
	set->has_fwmark = cfg->has_fwmark || (flags & NT_CONFIG_SET_ABSENT_FWMARK);
	set->fwmark = cfg->has_fwmark ? cfg->fwmark : 0;
	set->replace_peers = (flags & NT_CONFIG_SET_REPLACE_PEERS) != 0;
	if (cur) {
		sync_device_keys(set, cur);
		/* first, so that a removed peer's allowed IPs are free before the file's claim them */
		for (size_t j = 0; j < cur->peers_count; j++) {
			if (config_has_peer(cfg, cur->peers[j].public_key))
				continue;
			memcpy(set->peers[n].public_key, cur->peers[j].public_key, NT_KEY_LEN);
			set->peers[n++].remove = true;
		}
	}
	for (size_t i = 0; i < cfg->peers_count; i++) {
		const struct nt_config_peer *from = &cfg->peers[i];
		struct nt_uapi_peer *to = &set->peers[n++];

		memcpy(to->public_key, from->public_key, NT_KEY_LEN);
		to->has_preshared_key = from->has_preshared_key || cur;
		if (from->has_preshared_key)
			memcpy(to->preshared_key, from->preshared_key, NT_KEY_LEN);
		to->has_persistent_keepalive = from->has_persistent_keepalive || cur;
		to->persistent_keepalive = from->has_persistent_keepalive ? from->persistent_keepalive : 0;
		/* As wg: every [Peer] of a file replaces the allowed IPs it had. */
		to->replace_allowed_ips = true;
		to->allowed_ips = from->allowed_ips; /* borrowed */
		to->allowed_ips_count = from->allowed_ips_count;
		to->has_endpoint = eps && eps[i].family != 0;
		if (to->has_endpoint)
			to->endpoint = eps[i];
		/* The parser kept only a valid name. Against a running device, a name the file no
		 * longer has is removed (""); a file and a device without names send none, so
		 * that a daemon that keeps no names (wireguard-go) is not asked to. */
		if (from->name) {
			to->has_name = true;
			snprintf(to->name, sizeof(to->name), "%s", from->name);
		} else if (cur) {
			const struct nt_uapi_device_peer *running = device_peer(cur, from->public_key);

			to->has_name = running && running->name[0];
		}
	}
	set->peers_count = n;
	return 0;
}

void nt_config_set_free(struct nt_uapi_set *set)
{
	/* The allowed IPs are cfg's: only the peer array is ours. */
	if (set->peers) {
		nt_wipe(set->peers, set->peers_count * sizeof(*set->peers));
		free(set->peers);
	}
	nt_wipe(set, sizeof(*set));
}

void nt_uapi_device_free(struct nt_uapi_device *dev)
{
	for (size_t i = 0; i < dev->peers_count; i++)
		free(dev->peers[i].allowed_ips);
	if (dev->peers) {
		nt_wipe(dev->peers, dev->peers_count * sizeof(*dev->peers));
		free(dev->peers);
	}
	nt_wipe(dev, sizeof(*dev));
}
