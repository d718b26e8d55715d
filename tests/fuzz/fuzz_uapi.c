/* libFuzzer target: the control socket's set=1 body parser, nt_uapi_parse_set.
 *
 * The input is the body (the lines after "set=1\n"), in an exact-size heap copy. Beyond
 * "no crash, no leak", a result must agree with a plain second reading of the same lines:
 *   - success: one peer per public_key line, in order, each with the allowed_ip lines after
 *     its last replace_allowed_ips=true; every prefix of a known family, cidr within it,
 *     IPv4 addresses zero-padded; a scope name NUL-terminated and never with an index (a
 *     public key may repeat: sections apply in order); each device key present
 *     exactly when its line was;
 *     a peer's noisetun_name empty or valid (nt_config_valid_name), NUL-terminated;
 *   - failure: *out all zeros (nothing half-parsed left behind);
 *   - nt_uapi_set_free leaves the struct zeroed, and a second free is harmless;
 *   - what nt_uapi_format_set_flags writes of an accepted set (each flag) is accepted again.
 * The same bytes are also read as a get=1 reply (nt_uapi_parse_get, the CLI's and the
 * monitor's reading of another process's words) and as a set's reply: a get either fails
 * with *dev zeroed or holds one peer per public_key line, names empty or valid and
 * NUL-terminated; nt_uapi_device_free leaves it zeroed. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "noisetun/config.h"
#include "noisetun/uapi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                                            \
	do {                                                                 \
		fprintf(stderr, "fuzz_uapi: " __VA_ARGS__);                  \
		fputc('\n', stderr);                                         \
		abort();                                                     \
	} while (0)

static bool starts_with(const char *line, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && !memcmp(line, prefix, n);
}

static bool is_zero(const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

/* The second reading: line kinds only, trusting that the parser accepted every line. */
static void check_against_lines(const struct nt_uapi_set *set, const char *body, size_t len)
{
	size_t peers = 0, ips = 0, pos = 0;
	bool private_key = false, listen_port = false, fwmark = false;

	while (pos < len) {
		const char *line = body + pos, *nl = memchr(line, '\n', len - pos);
		size_t n;

		if (!nl)
			FAIL("accepted a body whose last line has no newline");
		n = (size_t)(nl - line);
		if (starts_with(line, n, "public_key=")) {
			if (peers && set->peers[peers - 1].allowed_ips_count != ips)
				FAIL("peer %zu has %zu allowed IPs, its lines say %zu", peers - 1,
				     set->peers[peers - 1].allowed_ips_count, ips);
			peers++;
			ips = 0;
			if (peers > set->peers_count)
				FAIL("more public_key lines than peers (%zu)", set->peers_count);
		} else if (starts_with(line, n, "replace_allowed_ips=")) {
			ips = 0;
		} else if (starts_with(line, n, "allowed_ip=")) {
			ips++;
		} else if (starts_with(line, n, "private_key=")) {
			private_key = true;
		} else if (starts_with(line, n, "listen_port=")) {
			listen_port = true;
		} else if (starts_with(line, n, "fwmark=")) {
			fwmark = true;
		}
		pos += n + 1;
	}
	if (peers != set->peers_count)
		FAIL("%zu public_key lines but %zu peers", peers, set->peers_count);
	if (peers && set->peers[peers - 1].allowed_ips_count != ips)
		FAIL("the last peer has %zu allowed IPs, its lines say %zu", set->peers[peers - 1].allowed_ips_count, ips);
	if (private_key != set->has_private_key || listen_port != set->has_listen_port || fwmark != set->has_fwmark)
		FAIL("a device key's presence disagrees with the lines");
}

static void check_set(const struct nt_uapi_set *set)
{
	if ((set->peers_count == 0) != (set->peers == NULL))
		FAIL("peers_count %zu with peers %p", set->peers_count, (void *)set->peers);
	for (size_t i = 0; i < set->peers_count; i++) {
		const struct nt_uapi_peer *p = &set->peers[i];

		if (p->allowed_ips_count && !p->allowed_ips)
			FAIL("peer %zu: %zu allowed IPs and no array", i, p->allowed_ips_count);
		for (size_t k = 0; k < p->allowed_ips_count; k++) {
			const struct nt_uapi_allowed_ip *ip = &p->allowed_ips[k];

			if (ip->family == AF_INET) {
				if (ip->cidr > 32 || !is_zero(ip->addr + 4, 12))
					FAIL("peer %zu: IPv4 prefix %zu with cidr %u or stray bytes", i, k, ip->cidr);
			} else if (ip->family == AF_INET6) {
				if (ip->cidr > 128)
					FAIL("peer %zu: IPv6 prefix %zu with cidr %u", i, k, ip->cidr);
			} else {
				FAIL("peer %zu: prefix %zu of family %u", i, k, ip->family);
			}
		}
		if (p->has_endpoint) {
			if (p->endpoint.family != AF_INET && p->endpoint.family != AF_INET6)
				FAIL("peer %zu: endpoint of family %u", i, p->endpoint.family);
			if (p->endpoint.family == AF_INET && (p->endpoint.scope_id || !is_zero(p->endpoint.addr + 4, 12)))
				FAIL("peer %zu: IPv4 endpoint with a scope or stray bytes", i);
		}
		if (p->has_endpoint && p->endpoint.scope_name[0] &&
		    (p->endpoint.scope_id || !memchr(p->endpoint.scope_name, '\0', sizeof(p->endpoint.scope_name))))
			FAIL("peer %zu: a scope name with an index too, or unterminated", i);
		/* a name: "" (clear) or valid, NUL-terminated, zeros after; none: all zeros */
		if (!p->has_name && !is_zero(p->name, sizeof(p->name)))
			FAIL("peer %zu: a name without has_name", i);
		if (p->has_name) {
			const char *end = memchr(p->name, '\0', sizeof(p->name));
			size_t n = end ? (size_t)(end - p->name) : sizeof(p->name);

			if (!end || (n && !nt_config_valid_name(p->name, n)) || !is_zero(end, sizeof(p->name) - n))
				FAIL("peer %zu: a name that is not valid, unterminated or with bytes after it", i);
		}
	}
}

static size_t count_lines(const char *text, size_t len, const char *prefix)
{
	size_t count = 0, pos = 0;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;

		if (!n)
			break; /* the reply's end */
		count += starts_with(text + pos, n, prefix);
		pos += n + 1;
	}
	return count;
}

/* What the one config writer makes of any device a get may describe, wg setconf's parser
 * reads back: the same number of peers, the same keys. */
static void check_config_text(const struct nt_uapi_device *dev)
{
	size_t n = nt_uapi_format_config(dev, NT_UAPI_CONFIG_SHOWCONF, NULL, NULL, 0);
	char *text = malloc(n + 1);
	struct nt_config cfg;
	struct nt_config_error err;

	if (!text)
		return;
	/* no daemon lists a peer twice, and a file may not: not a text to read back. Nor can
	 * a config file hold an endpoint whose scope (an interface name, which Linux lets
	 * hold almost anything) has a character of the file's own syntax, '[', ']', '#'...:
	 * wg's format has no escape for them, the control protocol's grammar takes them.
	 * Only names of [A-Za-z0-9_.-] are read back. */
	for (size_t i = 0; i < dev->peers_count; i++) {
		const char *scope = dev->peers[i].endpoint.scope_name;
		bool unwritable = dev->peers[i].has_endpoint &&
				  scope[strspn(scope, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")];

		for (size_t j = 0; j < i && !unwritable; j++)
			unwritable = !memcmp(dev->peers[i].public_key, dev->peers[j].public_key, 32);
		if (unwritable) {
			free(text);
			return;
		}
	}
	if (nt_uapi_format_config(dev, NT_UAPI_CONFIG_SHOWCONF, NULL, text, n + 1) != n || strlen(text) != n)
		FAIL("config: two lengths");
	if (nt_config_parse(&cfg, text, n, NT_CONFIG_WG_ONLY, &err))
		FAIL("config: its own text refused: line %u: %s\n%s", err.line, err.message, text);
	if (cfg.peers_count != dev->peers_count || cfg.has_private_key != dev->has_private_key)
		FAIL("config: %zu peers back of %zu", cfg.peers_count, dev->peers_count);
	for (size_t i = 0; i < cfg.peers_count; i++)
		if (memcmp(cfg.peers[i].public_key, dev->peers[i].public_key, 32) ||
		    cfg.peers[i].allowed_ips_count != dev->peers[i].allowed_ips_count)
			FAIL("config: peer %zu back otherwise", i);
	nt_config_free(&cfg);
	free(text);
}

static void check_get(const char *text, size_t size)
{
	struct nt_uapi_device dev;
	int ret = nt_uapi_parse_get(&dev, text, size);

	if (ret > 0 || (ret && !is_zero(&dev, sizeof(dev))))
		FAIL("get: returned %d, the device %s", ret, is_zero(&dev, sizeof(dev)) ? "zeroed" : "not zeroed");
	if (!ret) {
		if (dev.peers_count != count_lines(text, size, "public_key="))
			FAIL("get: %zu peers, not one per public_key line", dev.peers_count);
		for (size_t i = 0; i < dev.peers_count; i++) {
			const char *end = memchr(dev.peers[i].name, '\0', sizeof(dev.peers[i].name));

			if (!end || (end != dev.peers[i].name && !nt_config_valid_name(dev.peers[i].name, strlen(dev.peers[i].name))))
				FAIL("get: peer %zu: a name unterminated or not valid", i);
			if (!memchr(dev.peers[i].endpoint_name, '\0', sizeof(dev.peers[i].endpoint_name)))
				FAIL("get: peer %zu: an endpoint name unterminated", i);
		}
		if (dev.metrics.drops_count > NT_UAPI_MAX_DROPS)
			FAIL("get: %zu drop reasons", dev.metrics.drops_count);
		check_config_text(&dev);
	}
	nt_uapi_device_free(&dev);
	if (!is_zero(&dev, sizeof(dev)))
		FAIL("nt_uapi_device_free left the device non-zero");
	ret = nt_uapi_parse_set_reply(text, size);
	if (ret > 0)
		FAIL("set reply: returned %d", ret);
}

static void check_format(const struct nt_uapi_set *set)
{
	static const int flags[] = { 0, NT_UAPI_FORMAT_WG, NT_UAPI_FORMAT_NO_NAMES,
				     NT_UAPI_FORMAT_WG | NT_UAPI_FORMAT_NO_NAMES };

	for (size_t f = 0; f < sizeof(flags) / sizeof(flags[0]); f++) {
		size_t n = nt_uapi_format_set_flags(set, flags[f], NULL, 0);
		char *text = malloc(n + 1);
		struct nt_uapi_set back;

		if (!text)
			return;
		if (nt_uapi_format_set_flags(set, flags[f], text, n + 1) != n || strlen(text) != n)
			FAIL("format (flags %d): two lengths", flags[f]);
		if (nt_uapi_parse_set(&back, text, n))
			FAIL("format (flags %d): its own text refused", flags[f]);
		if (back.peers_count != set->peers_count)
			FAIL("format (flags %d): %zu peers back of %zu", flags[f], back.peers_count, set->peers_count);
		nt_uapi_set_free(&back);
		free(text);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *body = malloc(size ? size : 1);
	struct nt_uapi_set set;
	int ret;

	if (!body)
		return 0;
	if (size)
		memcpy(body, data, size);
	memset(&set, 0xa5, sizeof(set)); /* "need not be initialised" */
	ret = nt_uapi_parse_set(&set, body, size);
	if (ret == 0) {
		check_set(&set);
		check_against_lines(&set, body, size);
		check_format(&set);
	} else if (ret != -EINVAL && ret != -ENOMEM) {
		FAIL("returned %d", ret);
	} else if (!is_zero(&set, sizeof(set))) {
		FAIL("a refused body left the set non-zero");
	}
	nt_uapi_set_free(&set);
	if (!is_zero(&set, sizeof(set)))
		FAIL("nt_uapi_set_free left the set non-zero");
	nt_uapi_set_free(&set);
	check_get(body, size);
	free(body);
	return 0;
}
