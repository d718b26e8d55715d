/* libFuzzer target: key and endpoint strings. The same input goes to each parser:
 *   nt_key_from_base64, nt_key_from_hex (NUL-terminated copies): on success the key
 *     encodes back to the input (hex: to its lowercase form), on failure the key is wiped;
 *   nt_uapi_parse_endpoint: on success the formatted form fits NT_UAPI_ENDPOINT_STRLEN and
 *     parses back to the same endpoint; on failure *out is zeroed;
 *   nt_uapi_parse_allowed_ip: family and cidr in bounds, IPv4 zero-padded, and
 *     "address/cidr" printed back parses to the same prefix;
 *   nt_key_file_parse (exact-size copy): accepted only as a key that encodes back to the
 *     first 44 bytes followed by whitespace alone; each refusal for its own reason. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "noisetun/encoding.h"
#include "noisetun/uapi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                                            \
	do {                                                                 \
		fprintf(stderr, "fuzz_keys: " __VA_ARGS__);                  \
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

static void check_keys(const char *text, size_t size)
{
	uint8_t key[NT_KEY_LEN];
	char back[NT_KEY_HEX_LEN + 1];

	memset(key, 0xa5, sizeof(key));
	if (nt_key_from_base64(key, text) == 0) {
		nt_key_to_base64(back, key);
		if (size != NT_KEY_B64_LEN || strcmp(back, text))
			FAIL("base64 \"%s\" parsed, but encodes back as \"%s\"", text, back);
	} else if (!is_zero(key, sizeof(key))) {
		FAIL("a refused base64 key was not wiped");
	}

	memset(key, 0xa5, sizeof(key));
	if (nt_key_from_hex(key, text) == 0) {
		nt_key_to_hex(back, key);
		if (size != NT_KEY_HEX_LEN)
			FAIL("hex key of %zu bytes accepted", size);
		for (size_t i = 0; i < NT_KEY_HEX_LEN; i++) {
			char c = text[i] >= 'A' && text[i] <= 'F' ? (char)(text[i] - 'A' + 'a') : text[i];

			if (back[i] != c)
				FAIL("hex \"%s\" parsed, but encodes back as \"%s\"", text, back);
		}
	} else if (!is_zero(key, sizeof(key))) {
		FAIL("a refused hex key was not wiped");
	}
}

static void check_endpoint(const char *s, size_t len)
{
	struct nt_uapi_endpoint ep, again;
	char text[NT_UAPI_ENDPOINT_STRLEN];
	size_t n;

	memset(&ep, 0xa5, sizeof(ep));
	if (nt_uapi_parse_endpoint(&ep, s, len)) {
		if (!is_zero(&ep, sizeof(ep)))
			FAIL("a refused endpoint left *out non-zero");
		return;
	}
	if (ep.family != AF_INET && ep.family != AF_INET6)
		FAIL("endpoint of family %u", ep.family);
	if (ep.family == AF_INET && (ep.scope_id || !is_zero(ep.addr + 4, 12)))
		FAIL("IPv4 endpoint with a scope or stray address bytes");
	n = nt_uapi_format_endpoint(text, sizeof(text), &ep);
	if (!n || strlen(text) != n)
		FAIL("a parsed endpoint does not format into %zu bytes", sizeof(text));
	if (nt_uapi_parse_endpoint(&again, text, n))
		FAIL("\"%s\" (formatted from \"%.*s\") does not parse", text, (int)len, s);
	if (again.family != ep.family || again.port != ep.port || again.scope_id != ep.scope_id ||
	    memcmp(again.addr, ep.addr, sizeof(ep.addr)))
		FAIL("\"%.*s\" -> \"%s\" parses to another endpoint", (int)len, s, text);
	/* Too small a buffer: 0 and an empty string, never an overflow. */
	if (nt_uapi_format_endpoint(text, n, &ep) != 0 || text[0])
		FAIL("format_endpoint into %zu bytes for %zu characters", n, n);
}

static void check_allowed_ip(const char *s, size_t len)
{
	struct nt_uapi_allowed_ip ip, again;
	char addr[INET6_ADDRSTRLEN], text[INET6_ADDRSTRLEN + 8];
	int n;

	memset(&ip, 0xa5, sizeof(ip));
	if (nt_uapi_parse_allowed_ip(&ip, s, len)) {
		if (!is_zero(&ip, sizeof(ip)))
			FAIL("a refused prefix left *out non-zero");
		return;
	}
	if (ip.family == AF_INET) {
		if (ip.cidr > 32 || !is_zero(ip.addr + 4, 12))
			FAIL("IPv4 prefix with cidr %u or stray bytes", ip.cidr);
	} else if (ip.family == AF_INET6) {
		if (ip.cidr > 128)
			FAIL("IPv6 prefix with cidr %u", ip.cidr);
	} else {
		FAIL("prefix of family %u", ip.family);
	}
	if (!inet_ntop(ip.family, ip.addr, addr, sizeof(addr)))
		FAIL("inet_ntop refuses a parsed prefix");
	n = snprintf(text, sizeof(text), "%s/%u", addr, ip.cidr);
	if (nt_uapi_parse_allowed_ip(&again, text, (size_t)n) || again.family != ip.family ||
	    again.cidr != ip.cidr || memcmp(again.addr, ip.addr, sizeof(ip.addr)))
		FAIL("\"%.*s\" -> \"%s\" does not parse back to the same prefix", (int)len, s, text);
}

static bool is_ws(char c)
{
	return memchr(" \t\n\v\f\r", c, 6) != NULL;
}

static void check_key_file(const char *text, size_t len)
{
	uint8_t key[NT_KEY_LEN];
	char b64[NT_KEY_B64_LEN + 1];
	size_t bad = 0;
	int ret = nt_key_file_parse(key, text, len, &bad);

	if (ret == 0) {
		nt_key_to_base64(b64, key);
		if (len < NT_KEY_B64_LEN || memcmp(b64, text, NT_KEY_B64_LEN))
			FAIL("key file: accepted what is not a key");
		for (size_t i = NT_KEY_B64_LEN; i < len; i++)
			if (!is_ws(text[i]))
				FAIL("key file: accepted a key followed by more than whitespace");
	} else if (ret == -ENODATA ? len != 0 : ret == -EMSGSIZE ? len == 0 || len >= NT_KEY_B64_LEN
		   : ret == -EINVAL ? bad < NT_KEY_B64_LEN || bad >= len || is_ws(text[bad])
		   : ret != -EBADMSG) {
		FAIL("key file: refused with %d for the wrong reason", ret);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *exact = malloc(size ? size : 1);

	if (!text || !exact)
		abort();
	if (size)
		memcpy(text, data, size);
	text[size] = '\0';
	if (size)
		memcpy(exact, data, size);
	check_keys(text, strlen(text));
	check_endpoint(exact, size);
	check_allowed_ip(exact, size);
	check_key_file(exact, size);
	free(text);
	free(exact);
	return 0;
}
