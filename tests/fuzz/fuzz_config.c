/* libFuzzer target: config files, nt_config_parse in both modes, and nt_config_strip.
 *
 * The input is the file's text, in an exact-size heap copy. Beyond "no crash, no leak":
 *   - a refusal leaves *out empty and err->message a NUL-terminated, non-empty string; a
 *     success leaves err->message empty;
 *   - every parsed field is in bounds (families, cidrs, IPv4 zero-padding, strings present
 *     and NUL-terminated, counts matching arrays, distinct public keys);
 *   - what `wg setconf` accepts (NT_CONFIG_WG_ONLY) wg-quick accepts too, with the same
 *     result; wg-quick-only results never appear in the WG_ONLY result;
 *   - `wg-quick strip` of a file wg-quick accepts is a file WG_ONLY accepts, with the same
 *     wg settings (the contract of `wg-quick strip | wg setconf`), and it fits len + 1. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "noisetun/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                                            \
	do {                                                                 \
		fprintf(stderr, "fuzz_config: " __VA_ARGS__);                \
		fputc('\n', stderr);                                         \
		abort();                                                     \
	} while (0)

static bool is_zero(const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

static void check_prefix(uint8_t family, uint8_t cidr, const uint8_t addr[16], const char *what)
{
	if (family == AF_INET) {
		if (cidr > 32 || !is_zero(addr + 4, 12))
			FAIL("%s: IPv4 with cidr %u or stray bytes", what, cidr);
	} else if (family == AF_INET6) {
		if (cidr > 128)
			FAIL("%s: IPv6 with cidr %u", what, cidr);
	} else {
		FAIL("%s: family %u", what, family);
	}
}

static void check_strings(char *const *s, size_t count, const char *what)
{
	if ((count == 0) != (s == NULL) && count)
		FAIL("%s: %zu strings and no array", what, count);
	for (size_t i = 0; i < count; i++)
		if (!s[i] || strlen(s[i]) > (size_t)1 << 30)
			FAIL("%s %zu: missing", what, i);
}

static void check_config(const struct nt_config *cfg, size_t text_len)
{
	if (cfg->addresses_count && !cfg->addresses)
		FAIL("addresses without an array");
	for (size_t i = 0; i < cfg->addresses_count; i++)
		check_prefix(cfg->addresses[i].family, cfg->addresses[i].cidr, cfg->addresses[i].addr, "Address");
	check_strings(cfg->dns, cfg->dns_count, "DNS");
	check_strings(cfg->pre_up, cfg->pre_up_count, "PreUp");
	check_strings(cfg->post_up, cfg->post_up_count, "PostUp");
	check_strings(cfg->pre_down, cfg->pre_down_count, "PreDown");
	check_strings(cfg->post_down, cfg->post_down_count, "PostDown");
	for (size_t i = 0; i < cfg->dns_count; i++)
		if (!cfg->dns[i][0] || strlen(cfg->dns[i]) > text_len)
			FAIL("an empty or impossible DNS entry");
	if ((cfg->peers_count == 0) != (cfg->peers == NULL) && cfg->peers_count)
		FAIL("peers without an array");
	for (size_t i = 0; i < cfg->peers_count; i++) {
		const struct nt_config_peer *p = &cfg->peers[i];

		if (is_zero(p->public_key, sizeof(p->public_key)))
			FAIL("peer %zu without a public key", i);
		if (p->allowed_ips_count && !p->allowed_ips)
			FAIL("peer %zu: allowed IPs without an array", i);
		for (size_t k = 0; k < p->allowed_ips_count; k++)
			check_prefix(p->allowed_ips[k].family, p->allowed_ips[k].cidr, p->allowed_ips[k].addr, "AllowedIPs");
		if (p->has_endpoint != (p->endpoint_host != NULL))
			FAIL("peer %zu: has_endpoint %d with host %p", i, p->has_endpoint, (void *)p->endpoint_host);
		if (p->has_endpoint && (!p->endpoint_host[0] || strlen(p->endpoint_host) > text_len))
			FAIL("peer %zu: endpoint \"%s\" port %u", i, p->endpoint_host, p->endpoint_port);
		for (size_t k = 0; k < i; k++)
			if (!memcmp(cfg->peers[k].public_key, p->public_key, sizeof(p->public_key)))
				FAIL("peers %zu and %zu share a public key", k, i);
	}
}

static void check_refusal(const struct nt_config *cfg, const struct nt_config_error *err, int ret)
{
	if (ret != -EINVAL && ret != -ENOMEM)
		FAIL("returned %d", ret);
	if (!is_zero(cfg, sizeof(*cfg)))
		FAIL("a refused file left the config non-empty");
	if (!memchr(err->message, '\0', sizeof(err->message)) || !err->message[0])
		FAIL("a refusal without a message");
}

/* The settings `wg setconf` applies: equal in both results. */
static void check_same_wg(const struct nt_config *a, const struct nt_config *b, const char *what)
{
	if (a->has_private_key != b->has_private_key ||
	    (a->has_private_key && memcmp(a->private_key, b->private_key, sizeof(a->private_key))) ||
	    a->has_listen_port != b->has_listen_port || (a->has_listen_port && a->listen_port != b->listen_port) ||
	    a->has_fwmark != b->has_fwmark || (a->has_fwmark && a->fwmark != b->fwmark))
		FAIL("%s: the [Interface] settings differ", what);
	if (a->peers_count != b->peers_count)
		FAIL("%s: %zu peers vs %zu", what, a->peers_count, b->peers_count);
	for (size_t i = 0; i < a->peers_count; i++) {
		const struct nt_config_peer *p = &a->peers[i], *q = &b->peers[i];

		if (memcmp(p->public_key, q->public_key, sizeof(p->public_key)) ||
		    p->has_preshared_key != q->has_preshared_key ||
		    (p->has_preshared_key && memcmp(p->preshared_key, q->preshared_key, sizeof(p->preshared_key))) ||
		    p->allowed_ips_count != q->allowed_ips_count ||
		    (p->allowed_ips_count &&
		     memcmp(p->allowed_ips, q->allowed_ips, p->allowed_ips_count * sizeof(*p->allowed_ips))) ||
		    p->has_endpoint != q->has_endpoint ||
		    (p->has_endpoint && (strcmp(p->endpoint_host, q->endpoint_host) || p->endpoint_port != q->endpoint_port)) ||
		    p->has_persistent_keepalive != q->has_persistent_keepalive ||
		    (p->has_persistent_keepalive && p->persistent_keepalive != q->persistent_keepalive))
			FAIL("%s: peer %zu differs", what, i);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size ? size : 1), *stripped;
	struct nt_config quick, wg, again;
	struct nt_config_error err;
	int rq, rw, rs;
	size_t n;

	if (!text)
		return 0;
	if (size)
		memcpy(text, data, size);

	memset(&err, 0xa5, sizeof(err));
	rq = nt_config_parse(&quick, text, size, NT_CONFIG_WG_QUICK, &err);
	if (rq)
		check_refusal(&quick, &err, rq);
	else if (err.message[0])
		FAIL("success with a message: %.256s", err.message);
	else
		check_config(&quick, size);

	memset(&err, 0xa5, sizeof(err));
	rw = nt_config_parse(&wg, text, size, NT_CONFIG_WG_ONLY, &err);
	if (rw) {
		check_refusal(&wg, &err, rw);
	} else {
		check_config(&wg, size);
		if (wg.addresses_count || wg.dns_count || wg.has_mtu || wg.table != NT_TABLE_AUTO || wg.pre_up_count ||
		    wg.post_up_count || wg.pre_down_count || wg.post_down_count || wg.save_config)
			FAIL("a wg-quick setting in a WG_ONLY result");
		if (rq)
			FAIL("WG_ONLY accepts what WG_QUICK refuses");
		check_same_wg(&quick, &wg, "WG_ONLY vs WG_QUICK");
	}

	/* out needs len + 1 bytes: exactly that, so a byte more shows. */
	stripped = malloc(size + 1);
	if (!stripped)
		abort();
	n = nt_config_strip(stripped, text, size);
	if (n > size + 1)
		FAIL("strip wrote %zu bytes for %zu", n, size);
	if (!rq) {
		rs = nt_config_parse(&again, stripped, n, NT_CONFIG_WG_ONLY, &err);
		if (rs)
			FAIL("the stripped form of an accepted file is refused: line %u: %.256s", err.line, err.message);
		check_same_wg(&quick, &again, "strip");
		nt_config_free(&again);
	}
	free(stripped);

	nt_config_free(&quick);
	nt_config_free(&wg);
	if (!is_zero(&quick, sizeof(quick)))
		FAIL("nt_config_free left the config non-zero");
	free(text);
	return 0;
}
