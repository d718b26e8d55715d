/* Config files in the wg-quick format, read the way wg(8) and wg-quick(8) read them.
 *
 * Line rules (wireguard-tools 1.0.20210914, checked against the binaries):
 *   - a line is cut at its first '#'; every whitespace character is then removed from what
 *     is left, so "Listen Port = 5 1" is ListenPort=51 and "[ Peer ]" is [Peer] (wg);
 *   - section names and keys match without regard to case (wg: strcasecmp; wg-quick:
 *     nocasematch), so are "off", "true" and "false";
 *   - exceptions for the wg-quick keys: Address and DNS split on commas and whitespace
 *     (wg-quick's ${value//,/ } word splitting); the hooks take the rest of the line after
 *     the first '=' verbatim, '#' included, trimmed at both ends (wg-quick would cut at '#');
 *   - a single-value key given twice: the last wins (wg); Address, DNS, AllowedIPs and the
 *     hooks accumulate.
 * Stricter than wg on purpose: ports and numbers are decimal (no service names), a port
 * above 65535 is an error (getaddrinfo wraps it), two [Peer]s with one PublicKey are an
 * error (the control protocol refuses a repeated key), and so is a second [Interface] (wg
 * merges them: a hook under one after the [Peer]s would run as root unseen). Pure: no
 * I/O, no locale. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "noisetun/config.h"
#include "noisetun/crypto.h"
#include "noisetun/encoding.h"

enum section { SECTION_NONE, SECTION_INTERFACE, SECTION_PEER };

/* How a key's value is taken from its line. */
enum value_form {
	VALUE_STRIPPED, /* the comment-free line with all whitespace removed, after the '=' */
	VALUE_WORDS,    /* the comment-free line after the '=', split on ',' and whitespace */
	VALUE_RAW,      /* the whole line after the '=', trimmed */
};

struct parser {
	struct nt_config *cfg;
	struct nt_config_error *err;
	enum section section;
	unsigned line;
	unsigned interface_line; /* of the [Interface], 0 before one */
	const struct key_def *key;
	char *scratch; /* the whitespace-free line; as long as the whole text */
};

struct key_def {
	const char *name;
	enum section section;
	bool wg_quick;
	bool empty_ok; /* an empty value means "unset" (wg-quick), else "missing value" */
	enum value_form form;
	int (*parse)(struct parser *p, const char *value, size_t len);
};

/* ------------------------------------------------------------------ small helpers */

/* isspace() in the C locale, without the locale. */
static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool equal_ci(const char *s, size_t len, const char *word)
{
	size_t n = strlen(word);

	if (n != len)
		return false;
	for (size_t i = 0; i < n; i++)
		if (ascii_lower(s[i]) != ascii_lower(word[i]))
			return false;
	return true;
}

static int fail(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct parser *p, const char *fmt, ...)
{
	va_list ap;

	p->err->line = p->line;
	va_start(ap, fmt);
	vsnprintf(p->err->message, sizeof(p->err->message), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* A value for a message: at most 100 characters, control characters as '?'. */
#define QUOTE_MAX 100
static const char *quote(char buf[static QUOTE_MAX + 4], const char *s, size_t len)
{
	size_t n = len > QUOTE_MAX ? QUOTE_MAX : len;

	for (size_t i = 0; i < n; i++)
		buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	if (len > n) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}

/* Digits of one base only, at least one, value <= max; max < 2^60 so nothing wraps. */
static int parse_number(uint64_t *out, const char *s, size_t len, unsigned base, uint64_t max)
{
	uint64_t v = 0;

	if (!len)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		char c = ascii_lower(s[i]);
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return -EINVAL;
		v = v * base + d;
		if (v > max)
			return -EINVAL;
	}
	*out = v;
	return 0;
}

/* Room for one more element when count is 0 or a power of two (capacity = next power of
 * two), so appends cost amortised O(1) without a capacity field in the public structs. */
static int grow(void **array, size_t count, size_t size)
{
	void *bigger;
	size_t cap;

	if (count & (count - 1))
		return 0;
	cap = count ? count * 2 : 1;
	if (cap > SIZE_MAX / size)
		return -ENOMEM;
	bigger = realloc(*array, cap * size);
	if (!bigger)
		return -ENOMEM;
	*array = bigger;
	return 0;
}

static int append_string(char ***array, size_t *count, const char *s, size_t len)
{
	char *copy;

	if (grow((void **)array, *count, sizeof(**array)))
		return -ENOMEM;
	copy = strndup(s, len);
	if (!copy)
		return -ENOMEM;
	(*array)[(*count)++] = copy;
	return 0;
}

static struct nt_config_peer *current_peer(struct parser *p)
{
	return &p->cfg->peers[p->cfg->peers_count - 1];
}

/* A 44-character base64 key. Secret keys are never echoed into messages. */
static int parse_key(struct parser *p, uint8_t key[static NT_KEY_LEN], const char *value, size_t len,
		     bool secret)
{
	char text[NT_KEY_B64_LEN + 1], q[QUOTE_MAX + 4];
	int ret = -EINVAL;

	if (len == NT_KEY_B64_LEN) {
		memcpy(text, value, len);
		text[len] = '\0';
		ret = nt_key_from_base64(key, text);
		nt_wipe(text, sizeof(text));
	}
	if (!ret)
		return 0;
	if (secret)
		return fail(p, "%s: the value is not a key (44 characters of base64)", p->key->name);
	return fail(p, "%s: \"%s\" is not a key (44 characters of base64)", p->key->name, quote(q, value, len));
}

/* ------------------------------------------------------------------ [Interface] */

static int parse_private_key(struct parser *p, const char *value, size_t len)
{
	int ret = parse_key(p, p->cfg->private_key, value, len, true);

	p->cfg->has_private_key = !ret;
	return ret;
}

static int parse_listen_port(struct parser *p, const char *value, size_t len)
{
	char q[QUOTE_MAX + 4];
	uint64_t v;

	if (parse_number(&v, value, len, 10, UINT16_MAX))
		return fail(p, "ListenPort: \"%s\" is not a port number (0-65535)", quote(q, value, len));
	p->cfg->has_listen_port = true;
	p->cfg->listen_port = (uint16_t)v;
	return 0;
}

/* As wg: "off", decimal, or "0x" and hex (lowercase x: wg reads "0X10" as decimal and fails). */
static int parse_fwmark(struct parser *p, const char *value, size_t len)
{
	char q[QUOTE_MAX + 4];
	uint64_t v = 0;
	int ret;

	if (equal_ci(value, len, "off"))
		ret = 0;
	else if (len > 2 && value[0] == '0' && value[1] == 'x')
		ret = parse_number(&v, value + 2, len - 2, 16, UINT32_MAX);
	else
		ret = parse_number(&v, value, len, 10, UINT32_MAX);
	if (ret)
		return fail(p, "FwMark: \"%s\" is not \"off\" or a number (0-0xffffffff)", quote(q, value, len));
	p->cfg->has_fwmark = true;
	p->cfg->fwmark = (uint32_t)v;
	return 0;
}

static int parse_address(struct parser *p, const char *value, size_t len)
{
	struct nt_uapi_allowed_ip ip;
	struct nt_config_address *a;
	char q[QUOTE_MAX + 4];

	if (nt_uapi_parse_allowed_ip(&ip, value, len))
		return fail(p, "Address: \"%s\" is not an IP address with an optional /prefix", quote(q, value, len));
	if (grow((void **)&p->cfg->addresses, p->cfg->addresses_count, sizeof(*a)))
		return -ENOMEM;
	a = &p->cfg->addresses[p->cfg->addresses_count++];
	a->family = ip.family;
	a->cidr = ip.cidr;
	memcpy(a->addr, ip.addr, sizeof(a->addr));
	return 0;
}

/* wg-quick tells servers from search domains by shape: digits and dots, or any ':'. Those
 * must then be addresses (an IPv6 one may carry a %scope, as resolv.conf allows). */
static int parse_dns(struct parser *p, const char *value, size_t len)
{
	char text[INET6_ADDRSTRLEN + 1], q[QUOTE_MAX + 4];
	uint8_t raw[16];
	bool digits_dots = true;
	const char *colon = memchr(value, ':', len);

	for (size_t i = 0; i < len; i++)
		if (!((value[i] >= '0' && value[i] <= '9') || value[i] == '.'))
			digits_dots = false;
	if (digits_dots || colon) {
		const char *percent = memchr(value, '%', len);
		size_t addr_len = percent && colon ? (size_t)(percent - value) : len;
		int family = colon ? AF_INET6 : AF_INET;

		if (addr_len >= sizeof(text) || (percent && addr_len + 1 == len))
			goto bad;
		memcpy(text, value, addr_len);
		text[addr_len] = '\0';
		if (inet_pton(family, text, raw) != 1)
			goto bad;
	}
	return append_string(&p->cfg->dns, &p->cfg->dns_count, value, len);
bad:
	return fail(p, "DNS: \"%s\" is not an IP address", quote(q, value, len));
}

/* Empty, as in wg-quick, leaves the MTU to be computed. */
static int parse_mtu(struct parser *p, const char *value, size_t len)
{
	char q[QUOTE_MAX + 4];
	uint64_t v;

	if (!len) {
		p->cfg->has_mtu = false;
		return 0;
	}
	if (parse_number(&v, value, len, 10, 65535) || v < 68)
		return fail(p, "MTU: \"%s\" is not an MTU (68-65535)", quote(q, value, len));
	p->cfg->has_mtu = true;
	p->cfg->mtu = (uint32_t)v;
	return 0;
}

/* The names ip(8) knows without rt_tables. */
static const struct {
	const char *name;
	uint32_t id;
} builtin_tables[] = { { "default", 253 }, { "main", 254 }, { "local", 255 } };

/* A table name as rt_tables would have it: letters, digits, '_', '-', '.', starting with
 * a letter or '_' (a digit starts a number). */
static bool valid_table_name(const char *s, size_t len)
{
	if (!len || len > NT_TABLE_NAME_MAX || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '_' || s[i] == '-' || s[i] == '.'))
			return false;
	return true;
}

static int parse_table(struct parser *p, const char *value, size_t len)
{
	char q[QUOTE_MAX + 4];
	uint64_t v;

	p->cfg->table_id = 0;
	free(p->cfg->table_name);
	p->cfg->table_name = NULL;
	if (!len || equal_ci(value, len, "auto")) {
		p->cfg->table = NT_TABLE_AUTO;
	} else if (equal_ci(value, len, "off")) {
		p->cfg->table = NT_TABLE_OFF;
	} else if (!parse_number(&v, value, len, 10, UINT32_MAX) && v) {
		p->cfg->table = NT_TABLE_ID;
		p->cfg->table_id = (uint32_t)v;
	} else if (valid_table_name(value, len)) {
		if (!(p->cfg->table_name = strndup(value, len)))
			return -ENOMEM;
		p->cfg->table = NT_TABLE_NAME;
		for (size_t i = 0; i < sizeof(builtin_tables) / sizeof(builtin_tables[0]); i++) {
			if (!strcmp(p->cfg->table_name, builtin_tables[i].name)) {
				p->cfg->table = NT_TABLE_ID;
				p->cfg->table_id = builtin_tables[i].id;
			}
		}
	} else {
		return fail(p, "Table: \"%s\" is not \"auto\", \"off\", a table number (1-4294967295) or a table name",
			    quote(q, value, len));
	}
	return 0;
}

int nt_rt_tables_lookup(const char *text, size_t len, const char *name, uint32_t *id)
{
	const char *end = text + len;
	size_t name_len = strlen(name);

	for (const char *line = text; line < end;) {
		const char *eol = memchr(line, '\n', (size_t)(end - line)), *s = line, *word;
		uint64_t v = 0;
		bool hex, any = false;

		if (!eol)
			eol = end;
		while (s < eol && (*s == ' ' || *s == '\t'))
			s++;
		/* "ID NAME", the ID decimal or 0x hex; '#' starts a comment line. */
		hex = eol - s > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
		if (hex)
			s += 2;
		for (; s < eol; s++) {
			unsigned d;
			if (*s >= '0' && *s <= '9')
				d = (unsigned)(*s - '0');
			else if (hex && ((*s | 0x20) >= 'a' && (*s | 0x20) <= 'f'))
				d = (unsigned)((*s | 0x20) - 'a' + 10);
			else
				break;
			v = v * (hex ? 16 : 10) + d;
			any = true;
			if (v > UINT32_MAX)
				break;
		}
		if (any && v && v <= UINT32_MAX && s < eol && (*s == ' ' || *s == '\t')) {
			while (s < eol && (*s == ' ' || *s == '\t'))
				s++;
			word = s;
			while (s < eol && *s != ' ' && *s != '\t' && *s != '\r' && *s != '#')
				s++;
			if ((size_t)(s - word) == name_len && !memcmp(word, name, name_len)) {
				*id = (uint32_t)v;
				return 0;
			}
		}
		line = eol + 1;
	}
	return -ENOENT;
}

static int parse_pre_up(struct parser *p, const char *value, size_t len)
{
	return append_string(&p->cfg->pre_up, &p->cfg->pre_up_count, value, len);
}

static int parse_post_up(struct parser *p, const char *value, size_t len)
{
	return append_string(&p->cfg->post_up, &p->cfg->post_up_count, value, len);
}

static int parse_pre_down(struct parser *p, const char *value, size_t len)
{
	return append_string(&p->cfg->pre_down, &p->cfg->pre_down_count, value, len);
}

static int parse_post_down(struct parser *p, const char *value, size_t len)
{
	return append_string(&p->cfg->post_down, &p->cfg->post_down_count, value, len);
}

/* noisetun's event hooks (OnPeerUp, ...): wg-quick keys for strip's purpose (`noisetun
 * strip` drops them), several allowed, in file order. */
#define ON_EVENT_PARSER(fn, idx)                                                   \
	static int fn(struct parser *p, const char *value, size_t len)             \
	{                                                                          \
		return append_string(&p->cfg->on_event[idx], &p->cfg->on_event_count[idx], value, len); \
	}
const char *nt_config_on_key(unsigned which)
{
	static const char *const names[NT_CONFIG_ON_COUNT] = {
		"OnPeerUp", "OnPeerDown", "OnHandshakeFailed", "OnEndpointChange",
	};

	return which < NT_CONFIG_ON_COUNT ? names[which] : NULL;
}

ON_EVENT_PARSER(parse_on_peer_up, NT_CONFIG_ON_PEER_UP)
ON_EVENT_PARSER(parse_on_peer_down, NT_CONFIG_ON_PEER_DOWN)
ON_EVENT_PARSER(parse_on_handshake_failed, NT_CONFIG_ON_HANDSHAKE_FAILED)
ON_EVENT_PARSER(parse_on_endpoint_change, NT_CONFIG_ON_ENDPOINT_CHANGE)

static int parse_save_config(struct parser *p, const char *value, size_t len)
{
	char q[QUOTE_MAX + 4];

	if (equal_ci(value, len, "true"))
		p->cfg->save_config = true;
	else if (equal_ci(value, len, "false"))
		p->cfg->save_config = false;
	else
		return fail(p, "SaveConfig: \"%s\" is neither true nor false", quote(q, value, len));
	return 0;
}

/* ------------------------------------------------------------------ [Peer] */

static int parse_public_key(struct parser *p, const char *value, size_t len)
{
	struct nt_config_peer *peer = current_peer(p);
	int ret = parse_key(p, peer->public_key, value, len, false);

	/* All zeros also marks "no PublicKey yet"; no peer can have it anyway. */
	if (!ret && nt_is_zero(peer->public_key, NT_KEY_LEN))
		ret = fail(p, "PublicKey: the all-zero key is not a public key");
	return ret;
}

static int parse_preshared_key(struct parser *p, const char *value, size_t len)
{
	struct nt_config_peer *peer = current_peer(p);
	int ret = parse_key(p, peer->preshared_key, value, len, true);

	peer->has_preshared_key = !ret;
	return ret;
}

/* Comma-separated; an empty entry is an error, as in wg. */
static int parse_allowed_ips(struct parser *p, const char *value, size_t len)
{
	struct nt_config_peer *peer = current_peer(p);
	char q[QUOTE_MAX + 4];
	size_t start = 0;

	while (start <= len) {
		const char *comma = memchr(value + start, ',', len - start);
		size_t end = comma ? (size_t)(comma - value) : len;
		struct nt_uapi_allowed_ip ip;

		if (end == start)
			return fail(p, "AllowedIPs: \"%s\" has an empty entry", quote(q, value, len));
		if (nt_uapi_parse_allowed_ip(&ip, value + start, end - start))
			return fail(p, "AllowedIPs: \"%s\" is not an IP prefix", quote(q, value + start, end - start));
		if (grow((void **)&peer->allowed_ips, peer->allowed_ips_count, sizeof(ip)))
			return -ENOMEM;
		peer->allowed_ips[peer->allowed_ips_count++] = ip;
		start = end + 1;
	}
	return 0;
}

/* host:port or [host]:port. The host stays unresolved and unchecked: a name, an IPv4
 * address, or an IPv6 one (bracketed, or bare: the port is after the last ':', as wg).
 * 0 with *host (malloc'd) and *port, -EINVAL or -ENOMEM. */
static int split_endpoint(const char *value, size_t len, char **host_out, uint16_t *port_out)
{
	const char *host = value, *port;
	size_t host_len;
	uint64_t v;

	if (len && value[0] == '[') {
		const char *close = memchr(value, ']', len);

		if (!close || close + 1 == value + len || close[1] != ':')
			return -EINVAL;
		host = value + 1;
		host_len = (size_t)(close - host);
		port = close + 2;
	} else {
		const char *colon = memrchr(value, ':', len);

		if (!colon)
			return -EINVAL;
		host_len = (size_t)(colon - value);
		port = colon + 1;
	}
	if (!host_len || memchr(host, '[', host_len) || memchr(host, ']', host_len) ||
	    parse_number(&v, port, len - (size_t)(port - value), 10, UINT16_MAX))
		return -EINVAL; /* (port 0 passes, as wg's: its showconf writes what a device has) */
	if (!(*host_out = strndup(host, host_len)))
		return -ENOMEM;
	*port_out = (uint16_t)v;
	return 0;
}

static int parse_endpoint(struct parser *p, const char *value, size_t len)
{
	struct nt_config_peer *peer = current_peer(p);
	char q[QUOTE_MAX + 4], *copy;
	uint16_t port;
	int err = split_endpoint(value, len, &copy, &port);

	if (err == -ENOMEM)
		return err;
	if (err)
		return fail(p, "Endpoint: \"%s\" is not host:port or [IPv6 address]:port (port 0-65535)",
			    quote(q, value, len));
	free(peer->endpoint_host);
	peer->endpoint_host = copy;
	peer->endpoint_port = port;
	peer->endpoint_line = p->line;
	peer->has_endpoint = true;
	return 0;
}

static int parse_persistent_keepalive(struct parser *p, const char *value, size_t len)
{
	struct nt_config_peer *peer = current_peer(p);
	char q[QUOTE_MAX + 4];
	uint64_t v = 0;

	if (!equal_ci(value, len, "off") && parse_number(&v, value, len, 10, UINT16_MAX))
		return fail(p, "PersistentKeepalive: \"%s\" is not \"off\" or a number of seconds (0-65535)",
			    quote(q, value, len));
	peer->has_persistent_keepalive = true;
	peer->persistent_keepalive = (uint16_t)v;
	return 0;
}

/* ------------------------------------------------------------------ lines */

static const struct key_def keys[] = {
	{ "PrivateKey", SECTION_INTERFACE, false, false, VALUE_STRIPPED, parse_private_key },
	{ "ListenPort", SECTION_INTERFACE, false, false, VALUE_STRIPPED, parse_listen_port },
	{ "FwMark", SECTION_INTERFACE, false, false, VALUE_STRIPPED, parse_fwmark },
	{ "Address", SECTION_INTERFACE, true, true, VALUE_WORDS, parse_address },
	{ "DNS", SECTION_INTERFACE, true, true, VALUE_WORDS, parse_dns },
	{ "MTU", SECTION_INTERFACE, true, true, VALUE_STRIPPED, parse_mtu },
	{ "Table", SECTION_INTERFACE, true, true, VALUE_STRIPPED, parse_table },
	{ "PreUp", SECTION_INTERFACE, true, true, VALUE_RAW, parse_pre_up },
	{ "PostUp", SECTION_INTERFACE, true, true, VALUE_RAW, parse_post_up },
	{ "PreDown", SECTION_INTERFACE, true, true, VALUE_RAW, parse_pre_down },
	{ "PostDown", SECTION_INTERFACE, true, true, VALUE_RAW, parse_post_down },
	{ "SaveConfig", SECTION_INTERFACE, true, false, VALUE_STRIPPED, parse_save_config },
	{ "OnPeerUp", SECTION_INTERFACE, true, true, VALUE_RAW, parse_on_peer_up },
	{ "OnPeerDown", SECTION_INTERFACE, true, true, VALUE_RAW, parse_on_peer_down },
	{ "OnHandshakeFailed", SECTION_INTERFACE, true, true, VALUE_RAW, parse_on_handshake_failed },
	{ "OnEndpointChange", SECTION_INTERFACE, true, true, VALUE_RAW, parse_on_endpoint_change },
	{ "PublicKey", SECTION_PEER, false, false, VALUE_STRIPPED, parse_public_key },
	{ "PresharedKey", SECTION_PEER, false, false, VALUE_STRIPPED, parse_preshared_key },
	{ "AllowedIPs", SECTION_PEER, false, false, VALUE_STRIPPED, parse_allowed_ips },
	{ "Endpoint", SECTION_PEER, false, false, VALUE_STRIPPED, parse_endpoint },
	{ "PersistentKeepalive", SECTION_PEER, false, false, VALUE_STRIPPED, parse_persistent_keepalive },
};

static const struct key_def *lookup_key(const char *s, size_t len)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (equal_ci(s, len, keys[i].name))
			return &keys[i];
	return NULL;
}

static const char *section_name(enum section s)
{
	return s == SECTION_INTERFACE ? "[Interface]" : "[Peer]";
}

/* Comment cut, whitespace removed: into out (room for len bytes); returns the length. */
static size_t squeeze(char *out, const char *line, size_t len)
{
	const char *hash = memchr(line, '#', len);
	size_t n = 0;

	if (hash)
		len = (size_t)(hash - line);
	for (size_t i = 0; i < len; i++)
		if (!is_space(line[i]))
			out[n++] = line[i];
	return n;
}

static bool may_hold_secret(const char *s, size_t len)
{
	return (len >= 10 && equal_ci(s, 10, "PrivateKey")) || (len >= 12 && equal_ci(s, 12, "PresharedKey"));
}

static int start_peer(struct parser *p)
{
	struct nt_config *cfg = p->cfg;

	if (grow((void **)&cfg->peers, cfg->peers_count, sizeof(*cfg->peers)))
		return -ENOMEM;
	memset(&cfg->peers[cfg->peers_count], 0, sizeof(*cfg->peers));
	cfg->peers[cfg->peers_count++].line = p->line;
	return 0;
}

/* Each word of a VALUE_WORDS value (split on ',' and whitespace; empty words skipped). */
static int parse_words(struct parser *p, const char *value, size_t len)
{
	size_t i = 0;
	int ret;

	while (i < len) {
		size_t start;

		while (i < len && (value[i] == ',' || is_space(value[i])))
			i++;
		start = i;
		while (i < len && value[i] != ',' && !is_space(value[i]))
			i++;
		if (i > start && (ret = p->key->parse(p, value + start, i - start)))
			return ret;
	}
	return 0;
}

/* The part of text before its first c (all of it without one), trimmed: for messages. */
static size_t trimmed_before(const char **text, size_t len, char c)
{
	const char *s = *text, *stop = memchr(s, c, len);

	if (stop)
		len = (size_t)(stop - s);
	while (len && is_space(s[0]))
		s++, len--;
	while (len && is_space(s[len - 1]))
		len--;
	*text = s;
	return len;
}

bool nt_config_valid_name(const char *s, size_t len)
{
	if (!len || len > NT_CONFIG_NAME_MAX || s[0] == ' ' || s[len - 1] == ' ')
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

/* "# friendly_name = NAME" or "# Name = NAME" (keys in any case, blanks around each part)
 * in a [Peer]: the peer's name. Any other comment, or a name that is not valid, is left
 * alone: comments never make a file fail. */
static int parse_name_comment(struct parser *p, const char *line, size_t len)
{
	struct nt_config_peer *peer = current_peer(p);
	size_t i = 0, key_start, key_len;
	char *copy;

	while (i < len && is_space(line[i]))
		i++;
	if (i == len || line[i] != '#')
		return 0;
	i++;
	while (i < len && is_space(line[i]))
		i++;
	key_start = i;
	while (i < len && line[i] != '=' && !is_space(line[i]))
		i++;
	key_len = i - key_start;
	if (!equal_ci(line + key_start, key_len, "friendly_name") && !equal_ci(line + key_start, key_len, "Name"))
		return 0;
	while (i < len && is_space(line[i]))
		i++;
	if (i == len || line[i] != '=')
		return 0;
	i++;
	while (i < len && is_space(line[i]))
		i++;
	while (len > i && is_space(line[len - 1]))
		len--;
	if (!nt_config_valid_name(line + i, len - i))
		return 0;
	copy = strndup(line + i, len - i);
	if (!copy)
		return -ENOMEM;
	free(peer->name);
	peer->name = copy;
	peer->name_line = p->line;
	return 0;
}

bool nt_config_comment_value(const char *line, size_t len, const char *key, const char **value, size_t *value_len)
{
	size_t i = 0, start;

	while (len && is_space(line[len - 1]))
		len--;
	while (i < len && is_space(line[i]))
		i++;
	if (i == len || line[i++] != '#')
		return false;
	while (i < len && is_space(line[i]))
		i++;
	start = i;
	while (i < len && line[i] != '=' && !is_space(line[i]))
		i++;
	if (!equal_ci(line + start, i - start, key))
		return false;
	while (i < len && is_space(line[i]))
		i++;
	if (i == len || line[i++] != '=')
		return false;
	while (i < len && is_space(line[i]))
		i++;
	*value = line + i;
	*value_len = len - i;
	return true;
}

bool nt_config_is_noisetun_comment(const char *line, size_t len)
{
	const char *v;
	size_t n;

	return nt_config_comment_value(line, len, NT_CONFIG_MSS_CLAMP_KEY, &v, &n) ||
	       nt_config_comment_value(line, len, NT_CONFIG_PSK_FILE_KEY, &v, &n) ||
	       nt_config_comment_value(line, len, NT_CONFIG_DISABLED_KEY, &v, &n) ||
	       nt_config_comment_value(line, len, NT_CONFIG_VALID_UNTIL_KEY, &v, &n) ||
	       nt_config_comment_value(line, len, NT_CONFIG_FALLBACK_KEY, &v, &n);
}

static int digits(const char *s, size_t n, unsigned *out)
{
	unsigned v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int nt_config_parse_rfc3339(const char *s, size_t len, int64_t *secs)
{
	static const unsigned mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	unsigned y, mo, d, h, mi, sec, oh = 0, om = 0;
	size_t i = 19;
	int sign = 0;
	int64_t t;

	if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    s[13] != ':' || s[16] != ':' || digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d) ||
	    digits(s + 11, 2, &h) || digits(s + 14, 2, &mi) || digits(s + 17, 2, &sec))
		return -EINVAL;
	if (i < len && s[i] == '.') {
		size_t start = ++i;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == start)
			return -EINVAL;
	}
	if (i < len && (s[i] == 'Z' || s[i] == 'z') && i + 1 == len) {
		sign = 0;
	} else if (i < len && (s[i] == '+' || s[i] == '-') && len - i == 6 && s[i + 3] == ':' &&
		   !digits(s + i + 1, 2, &oh) && !digits(s + i + 4, 2, &om) && oh < 24 && om < 60) {
		sign = s[i] == '+' ? 1 : -1;
	} else {
		return -EINVAL;
	}
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return -EINVAL;
	t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + (sec == 60 ? 59 : sec);
	t -= sign * (int64_t)(oh * 3600 + om * 60);
	*secs = t;
	return 0;
}

bool nt_config_peer_inactive(const struct nt_config_peer *p, int64_t now)
{
	return p->disabled || (p->valid_until && (int64_t)p->valid_until <= now);
}

/* A [Peer]'s noisetun comments: its PSK file and lifecycle. 1: the line was one. */
static int parse_peer_noisetun_comment(struct parser *p, const char *line, size_t len)
{
	struct nt_config_peer *peer;
	char q[QUOTE_MAX + 4], *copy;
	const char *v;
	size_t n;
	int64_t t;

	if (nt_config_comment_value(line, len, NT_CONFIG_PSK_FILE_KEY, &v, &n)) {
		if (p->section != SECTION_PEER)
			return fail(p, "%s: a setting of [Peer]", NT_CONFIG_PSK_FILE_KEY);
		peer = current_peer(p);
		if (!n || v[0] != '/' || memchr(v, '\0', n) || n > 4095)
			return fail(p, "%s: \"%s\" is not an absolute path", NT_CONFIG_PSK_FILE_KEY, quote(q, v, n));
		if (!(copy = strndup(v, n)))
			return -ENOMEM;
		free(peer->psk_file);
		peer->psk_file = copy;
		return 1;
	}
	if (nt_config_comment_value(line, len, NT_CONFIG_DISABLED_KEY, &v, &n)) {
		if (p->section != SECTION_PEER)
			return fail(p, "%s: a setting of [Peer]", NT_CONFIG_DISABLED_KEY);
		peer = current_peer(p);
		if (equal_ci(v, n, "true") || equal_ci(v, n, "yes") || equal_ci(v, n, "on"))
			peer->disabled = true;
		else if (equal_ci(v, n, "false") || equal_ci(v, n, "no") || equal_ci(v, n, "off"))
			peer->disabled = false;
		else
			return fail(p, "%s: \"%s\" is neither true nor false", NT_CONFIG_DISABLED_KEY, quote(q, v, n));
		return 1;
	}
	if (nt_config_comment_value(line, len, NT_CONFIG_FALLBACK_KEY, &v, &n)) {
		struct nt_config_endpoint *e;
		int err;

		if (p->section != SECTION_PEER)
			return fail(p, "%s: a setting of [Peer]", NT_CONFIG_FALLBACK_KEY);
		peer = current_peer(p);
		if (peer->fallbacks_count == NT_CONFIG_MAX_FALLBACKS)
			return fail(p, "%s: at most %d per [Peer]", NT_CONFIG_FALLBACK_KEY, NT_CONFIG_MAX_FALLBACKS);
		if (grow((void **)&peer->fallbacks, peer->fallbacks_count, sizeof(*peer->fallbacks)))
			return -ENOMEM;
		e = &peer->fallbacks[peer->fallbacks_count];
		err = split_endpoint(v, n, &e->host, &e->port);
		if (err == -ENOMEM)
			return err;
		if (err)
			return fail(p, "%s: \"%s\" is not host:port or [IPv6 address]:port (port 0-65535)",
				    NT_CONFIG_FALLBACK_KEY, quote(q, v, n));
		peer->fallbacks_count++;
		return 1;
	}
	if (nt_config_comment_value(line, len, NT_CONFIG_VALID_UNTIL_KEY, &v, &n)) {
		if (p->section != SECTION_PEER)
			return fail(p, "%s: a setting of [Peer]", NT_CONFIG_VALID_UNTIL_KEY);
		peer = current_peer(p);
		if (nt_config_parse_rfc3339(v, n, &t) || t <= 0 || t >= ((int64_t)1 << 40))
			return fail(p, "%s: \"%s\" is not an RFC 3339 time (2026-12-31T23:59:59Z)",
				    NT_CONFIG_VALID_UNTIL_KEY, quote(q, v, n));
		peer->valid_until = (uint64_t)t;
		return 1;
	}
	return 0;
}

/* "# noisetun-mss-clamp = on|off" (or true|false) in [Interface]: noisetun's own setting,
 * a comment so that wg-quick and wg read the file as before. Unlike other comments, a
 * wrong value or place is an error: the line is clearly meant for us, and a setting that
 * silently does nothing is worse. */
static int parse_noisetun_comment(struct parser *p, const char *line, size_t len)
{
	char q[QUOTE_MAX + 4];
	const char *v;
	size_t n;

	if (!nt_config_comment_value(line, len, NT_CONFIG_MSS_CLAMP_KEY, &v, &n))
		return 0;
	if (p->section != SECTION_INTERFACE)
		return fail(p, "%s: a setting of [Interface]", NT_CONFIG_MSS_CLAMP_KEY);
	if (equal_ci(v, n, "on") || equal_ci(v, n, "true"))
		p->cfg->no_mss_clamp = false;
	else if (equal_ci(v, n, "off") || equal_ci(v, n, "false"))
		p->cfg->no_mss_clamp = true;
	else
		return fail(p, "%s: \"%s\" is neither on nor off", NT_CONFIG_MSS_CLAMP_KEY, quote(q, v, n));
	return 0;
}

static int parse_line(struct parser *p, const char *line, size_t len, int flags)
{
	char *s = p->scratch, q[QUOTE_MAX + 4];
	size_t n = squeeze(s, line, len), key_len, raw_len;
	const char *eq, *raw = line, *raw_value;

	if (!n) {
		int ret = parse_noisetun_comment(p, line, len);

		if (!ret)
			ret = parse_peer_noisetun_comment(p, line, len);
		if (ret)
			return ret < 0 ? ret : 0;
		if (p->section != SECTION_PEER)
			return 0;
		return parse_name_comment(p, line, len);
	}
	if (memchr(line, '\0', len))
		return fail(p, "the line contains a NUL byte");
	if (s[0] == '[') {
		if (equal_ci(s, n, "[Interface]")) {
			/* wg would merge the two; a second one is where a forged hook hides. */
			if (p->interface_line)
				return fail(p, "a second [Interface] section (the first is at line %u)",
					    p->interface_line);
			p->interface_line = p->line;
			p->section = SECTION_INTERFACE;
		} else if (equal_ci(s, n, "[Peer]"))
			p->section = SECTION_PEER;
		else
			return fail(p, "\"%s\" is not a section ([Interface] or [Peer])",
				    quote(q, raw, trimmed_before(&raw, len, '#')));
		return p->section == SECTION_PEER ? start_peer(p) : 0;
	}

	eq = memchr(s, '=', n);
	key_len = eq ? (size_t)(eq - s) : n;
	p->key = lookup_key(s, key_len);
	/* "PrivateKeyABC...=" with its '=' forgotten: never quote what may be a secret. */
	if (!p->key && may_hold_secret(s, key_len))
		return fail(p, "expected \"Key = value\", [Interface] or [Peer]");
	if (!eq)
		return fail(p, "\"%s\" is not \"Key = value\", [Interface] or [Peer]",
			    quote(q, raw, trimmed_before(&raw, len, '#')));
	if (p->section == SECTION_NONE && p->key)
		return fail(p, "%s: key before any [Interface] or [Peer] section", p->key->name);
	if (p->section == SECTION_NONE)
		return fail(p, "\"%s\": key before any [Interface] or [Peer] section",
			    quote(q, raw, trimmed_before(&raw, len, '=')));
	if (!p->key)
		return fail(p, "unknown key \"%s\" in %s", quote(q, raw, trimmed_before(&raw, len, '=')),
			    section_name(p->section));
	if (p->key->section != p->section)
		return fail(p, "%s: not a key of %s (it belongs in %s)", p->key->name,
			    section_name(p->section), section_name(p->key->section));
	if (p->key->wg_quick && (flags & NT_CONFIG_WG_ONLY))
		return fail(p, "%s: a wg-quick key, not accepted here (remove it, or use \"noisetun strip\")",
			    p->key->name);

	/* The raw value starts after the line's first '=', which is the same '=': no '#' can
	 * precede it, or the squeezed line would have had no '='. */
	raw_value = memchr(line, '=', len) + 1;
	raw_len = len - (size_t)(raw_value - line);
	switch (p->key->form) {
	case VALUE_RAW:
		while (raw_len && is_space(raw_value[0]))
			raw_value++, raw_len--;
		while (raw_len && is_space(raw_value[raw_len - 1]))
			raw_len--;
		return p->key->parse(p, raw_value, raw_len);
	case VALUE_WORDS: {
		const char *hash = memchr(raw_value, '#', raw_len);

		return parse_words(p, raw_value, hash ? (size_t)(hash - raw_value) : raw_len);
	}
	case VALUE_STRIPPED:
	default:
		if (key_len + 1 == n && !p->key->empty_ok)
			return fail(p, "%s: missing value", p->key->name);
		return p->key->parse(p, s + key_len + 1, n - key_len - 1);
	}
}

static int compare_peer_keys(const void *a, const void *b)
{
	const struct nt_config_peer *x = *(const struct nt_config_peer *const *)a;
	const struct nt_config_peer *y = *(const struct nt_config_peer *const *)b;
	int c = memcmp(x->public_key, y->public_key, NT_KEY_LEN);

	return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* Every [Peer] names a PublicKey, and no two name the same one. */
static int check_peers(struct parser *p)
{
	static const uint8_t zero[NT_KEY_LEN];
	struct nt_config *cfg = p->cfg;
	const struct nt_config_peer **sorted;
	int ret = 0;

	for (size_t i = 0; i < cfg->peers_count; i++) {
		if (!memcmp(cfg->peers[i].public_key, zero, NT_KEY_LEN)) {
			p->line = cfg->peers[i].line;
			return fail(p, "[Peer] without a PublicKey");
		}
		if (cfg->peers[i].psk_file && cfg->peers[i].has_preshared_key) {
			p->line = cfg->peers[i].line;
			return fail(p, "[Peer]: PresharedKey and %s: one or the other", NT_CONFIG_PSK_FILE_KEY);
		}
	}
	if (cfg->peers_count < 2)
		return 0;
	sorted = calloc(cfg->peers_count, sizeof(*sorted));
	if (!sorted)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->peers_count; i++)
		sorted[i] = &cfg->peers[i];
	qsort(sorted, cfg->peers_count, sizeof(*sorted), compare_peer_keys);
	for (size_t i = 1; i < cfg->peers_count && !ret; i++) {
		if (!memcmp(sorted[i - 1]->public_key, sorted[i]->public_key, NT_KEY_LEN)) {
			p->line = sorted[i]->line;
			ret = fail(p, "[Peer]: the same PublicKey as the [Peer] at line %u", sorted[i - 1]->line);
		}
	}
	free(sorted);
	return ret;
}

int nt_config_parse(struct nt_config *out, const char *text, size_t len, int flags, struct nt_config_error *err)
{
	struct parser p = { .cfg = out, .err = err, .section = SECTION_NONE };
	size_t start = 0;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	err->line = 0;
	err->message[0] = '\0';
	p.scratch = malloc(len ? len : 1);
	if (!p.scratch) {
		ret = -ENOMEM;
		goto out;
	}
	while (start < len && !ret) {
		const char *nl = memchr(text + start, '\n', len - start);
		size_t end = nl ? (size_t)(nl - text) : len;

		p.line++;
		ret = parse_line(&p, text + start, end - start, flags);
		start = end + 1;
	}
	if (!ret)
		ret = check_peers(&p);
out:
	if (p.scratch) {
		nt_wipe(p.scratch, len ? len : 1);
		free(p.scratch);
	}
	if (ret == -ENOMEM) {
		err->line = 0;
		snprintf(err->message, sizeof(err->message), "out of memory");
	}
	if (ret)
		nt_config_free(out);
	return ret;
}

static void free_strings(char **array, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(array[i]);
	free(array);
}

void nt_config_free(struct nt_config *cfg)
{
	for (size_t i = 0; i < cfg->peers_count; i++) {
		free(cfg->peers[i].allowed_ips);
		free(cfg->peers[i].endpoint_host);
		free(cfg->peers[i].name);
		free(cfg->peers[i].psk_file);
		for (size_t j = 0; j < cfg->peers[i].fallbacks_count; j++)
			free(cfg->peers[i].fallbacks[j].host);
		free(cfg->peers[i].fallbacks);
	}
	if (cfg->peers)
		nt_wipe(cfg->peers, cfg->peers_count * sizeof(*cfg->peers));
	free(cfg->peers);
	free(cfg->addresses);
	free_strings(cfg->dns, cfg->dns_count);
	free_strings(cfg->pre_up, cfg->pre_up_count);
	free_strings(cfg->post_up, cfg->post_up_count);
	free_strings(cfg->pre_down, cfg->pre_down_count);
	free_strings(cfg->post_down, cfg->post_down_count);
	for (size_t i = 0; i < NT_CONFIG_ON_COUNT; i++)
		free_strings(cfg->on_event[i], cfg->on_event_count[i]);
	free(cfg->table_name);
	nt_wipe(cfg, sizeof(*cfg));
}

/* ------------------------------------------------------------------ strip */

size_t nt_config_drop_peers(char *out, const char *text, size_t len, const bool *drop, size_t drop_count)
{
	size_t start = 0, n = 0, peer = 0;
	bool dropping = false;

	while (start < len) {
		const char *nl = memchr(text + start, '\n', len - start);
		size_t end = nl ? (size_t)(nl - text) + 1 : len, squeezed;
		/* out + n has room for this line: nothing written is longer than what was read. */
		char *scratch = out + n;

		squeezed = squeeze(scratch, text + start, end - start);
		if (squeezed && scratch[0] == '[') {
			if (equal_ci(scratch, squeezed, "[Peer]")) {
				dropping = peer < drop_count && drop[peer];
				peer++;
			} else {
				dropping = false;
			}
		}
		if (!dropping) {
			memmove(out + n, text + start, end - start);
			n += end - start;
		}
		start = end;
	}
	out[n] = '\0';
	return n;
}

static bool is_wg_quick_key(const char *s, size_t len)
{
	const struct key_def *def = lookup_key(s, len);

	return def && def->wg_quick;
}

size_t nt_config_strip(char *out, const char *text, size_t len)
{
	bool interface_section = false;
	size_t start = 0, n = 0;

	while (start < len) {
		const char *nl = memchr(text + start, '\n', len - start);
		size_t end = nl ? (size_t)(nl - text) : len, squeezed, from, to;
		const char *eq;
		/* out + n is free room at least as long as this line: what is written so far is
		 * no longer than what was read, and the line is rewritten from text below. */
		char *scratch = out + n;

		squeezed = squeeze(scratch, text + start, end - start);
		if (squeezed && scratch[0] == '[') {
			interface_section = equal_ci(scratch, squeezed, "[Interface]");
		} else if (squeezed && interface_section) {
			eq = memchr(scratch, '=', squeezed);
			if (is_wg_quick_key(scratch, eq ? (size_t)(eq - scratch) : squeezed)) {
				start = end + 1;
				continue;
			}
		}
		/* As bash's `read -r line`: ends trimmed of blanks, NUL bytes dropped, and a last
		 * line without '\n' kept only when something is left of it. */
		from = start;
		to = end;
		while (from < to && (text[from] == ' ' || text[from] == '\t' || !text[from]))
			from++;
		while (to > from && (text[to - 1] == ' ' || text[to - 1] == '\t' || !text[to - 1]))
			to--;
		if (nl || to > from) {
			for (size_t i = from; i < to; i++)
				if (text[i])
					out[n++] = text[i];
			out[n++] = '\n';
		}
		start = end + 1;
	}
	return n;
}
