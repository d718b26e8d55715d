/* libFuzzer target: what --metrics-listen reads from the network and what it writes.
 *   nt_metrics_http_head_end: the input fed whole and then in pieces (split where its
 *     first byte says) finds the same end, within the input, after a '\n';
 *   nt_metrics_http_status: one of 200/400/404/405, and 200 only for a request line that
 *     starts "GET /metrics" followed by ' ' or '?';
 *   nt_metrics_format, the input as a peer's name and endpoint: the text is exactly the
 *     length announced, every line is a comment or "name{labels} value", and no label
 *     value holds a raw newline, a bare quote or bytes that are not UTF-8 (checked by
 *     re-reading each value with the format's escapes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "noisetun/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                                            \
	do {                                                                 \
		fprintf(stderr, "fuzz_metrics: " __VA_ARGS__);               \
		fputc('\n', stderr);                                         \
		abort();                                                     \
	} while (0)

static void check_http(const char *buf, size_t size)
{
	size_t scan = 0, whole = nt_metrics_http_head_end(buf, size, &scan), end = 0, step;
	int st;

	if (whole > size || (whole && buf[whole - 1] != '\n'))
		FAIL("head end %zu of %zu", whole, size);
	/* in pieces: the same answer, found at the first piece that completes it */
	step = size ? (unsigned char)buf[0] % 7 + 1 : 1;
	scan = 0;
	for (size_t have = step < size ? step : size; have <= size; have += step) {
		end = nt_metrics_http_head_end(buf, have, &scan);
		if (end || have == size)
			break;
		if (have + step > size)
			have = size - step;
	}
	if (end != whole)
		FAIL("head end %zu whole, %zu in pieces of %zu", whole, end, step);

	st = nt_metrics_http_status(buf, size);
	if (st != 200 && st != 400 && st != 404 && st != 405)
		FAIL("status %d", st);
	if (st == 200 && (size < 13 || memcmp(buf, "GET /metrics", 12) || (buf[12] != ' ' && buf[12] != '?')))
		FAIL("200 for a request that is not GET /metrics");
}

/* A label value at *p (past its opening quote) is well-formed up to its closing quote. */
static const char *check_value(const char *p, const char *end)
{
	while (p < end && *p != '"') {
		if (*p == '\n')
			FAIL("raw newline in a label value");
		if (*p == '\\') {
			if (p + 1 >= end || (p[1] != '\\' && p[1] != '"' && p[1] != 'n'))
				FAIL("bad escape in a label value");
			p += 2;
			continue;
		}
		if ((unsigned char)*p >= 0x80) {
			unsigned char c = (unsigned char)*p;
			size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
			if (c < 0xc2 || c > 0xf4 || p + n > end)
				FAIL("not UTF-8 in a label value");
			for (size_t i = 1; i < n; i++)
				if (((unsigned char)p[i] & 0xc0) != 0x80)
					FAIL("not UTF-8 in a label value");
			p += n;
			continue;
		}
		p++;
	}
	if (p >= end)
		FAIL("label value not closed");
	return p + 1;
}

static void check_format(const uint8_t *data, size_t size)
{
	char *text_in = malloc(size + 1), *out;
	struct nt_metrics_peer peer = { 0 };
	struct nt_metrics_device dev = { .ifname = "wg0", .peers = &peer, .peers_count = 1 };
	size_t len, half;

	if (!text_in)
		return;
	memcpy(text_in, data, size);
	text_in[size] = '\0';
	half = strlen(text_in) / 2;
	peer.name = text_in + half;             /* the second half of the first string */
	peer.endpoint = text_in;
	peer.has_session = size & 1;
	len = nt_metrics_format(NULL, 0, &dev, 1);
	out = malloc(len + 1);
	if (!out) {
		free(text_in);
		return;
	}
	if (nt_metrics_format(out, len + 1, &dev, 1) != len || strlen(out) != len)
		FAIL("the text is not the length announced");
	for (const char *line = out, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (!nl)
			FAIL("the text does not end in a newline");
		if (*line == '#')
			continue;
		const char *p = strchr(line, '{');
		if (!p || p > nl)
			FAIL("a sample without labels");
		p++;
		while (*p != '}') {
			const char *eq = strchr(p, '=');
			if (!eq || eq > nl || eq[1] != '"')
				FAIL("a label without a value");
			p = check_value(eq + 2, nl);
			if (*p == ',')
				p++;
			else if (*p != '}')
				FAIL("garbage after a label value");
		}
		if (p[1] != ' ')
			FAIL("no value after the labels");
	}
	free(out);
	free(text_in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_http((const char *)data, size);
	check_format(data, size);
	return 0;
}
