/* The Prometheus exposition formatter (lib/metrics.c): families once each with HELP and
 * TYPE, samples grouped under them across interfaces, label values escaped, the snprintf
 * contract on a short buffer. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "noisetun/encoding.h"
#include "noisetun/metrics.h"
#include "util.h"

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static char *format(const struct nt_metrics_device *d, size_t n)
{
	size_t len = nt_metrics_format(NULL, 0, d, n);
	char *buf = malloc(len + 1);

	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(nt_metrics_format(buf, len + 1, d, n), len);
	ck_assert_uint_eq(strlen(buf), len);
	return buf;
}

static struct nt_metrics_peer peer(uint8_t key_byte, const char *name, const char *endpoint)
{
	struct nt_metrics_peer p = { .name = name, .endpoint = endpoint };

	memset(p.public_key, key_byte, sizeof(p.public_key));
	return p;
}

START_TEST(test_names_types_and_values)
{
	struct nt_metrics_peer p = peer(0, "laptop", "192.0.2.1:51820");
	struct nt_metrics_device d = { .ifname = "wg0", .up = true, .cookie_replies_sent = 7,
				       .handshake_jobs_pending = 11, .handshake_jobs_discarded = 12,
				       .peers = &p, .peers_count = 1 };
	struct nt_engine e = { 0 };
	char *text;

	p.rx_bytes = 1234;
	p.tx_bytes = 5678;
	p.rx_packets = 9;
	p.tx_packets = 10;
	p.handshakes = 3;
	p.handshake_attempts = 4;
	p.handshake_failures = 1;
	p.last_handshake_ns = 1700000000123456789ULL;
	p.has_session = true;
	p.session_age_ns = 2500000000ULL;
	e.drops[NT_DROP_DECRYPT] = 5;
	e.drops_no_peer = 6;
	nt_metrics_engine_drops(&e, &d);
	ck_assert_uint_eq(d.drops_count, NT_METRICS_ENGINE_DROPS);
	text = format(&d, 1);

#define PK "public_key=\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\",name=\"laptop\""
	ck_assert_ptr_nonnull(strstr(text, "# HELP noisetun_up "));
	ck_assert_ptr_nonnull(strstr(text, "# TYPE noisetun_up gauge\nnoisetun_up{interface=\"wg0\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "noisetun_peers{interface=\"wg0\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "noisetun_under_load{interface=\"wg0\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(text, "# TYPE noisetun_cookie_replies_sent_total counter\n"
					   "noisetun_cookie_replies_sent_total{interface=\"wg0\"} 7\n"));
	ck_assert_ptr_nonnull(strstr(text, "# HELP noisetun_handshake_jobs_pending "));
	ck_assert_ptr_nonnull(strstr(text, "# TYPE noisetun_handshake_jobs_pending gauge\n"
					   "noisetun_handshake_jobs_pending{interface=\"wg0\"} 11\n"));
	ck_assert_ptr_nonnull(strstr(text, "# HELP noisetun_handshake_jobs_discarded_total "));
	ck_assert_ptr_nonnull(strstr(text, "# TYPE noisetun_handshake_jobs_discarded_total counter\n"
					   "noisetun_handshake_jobs_discarded_total{interface=\"wg0\"} 12\n"));
	ck_assert_ptr_nonnull(strstr(text, "noisetun_drops_total{interface=\"wg0\",reason=\"decrypt\"} 5\n"));
	ck_assert_ptr_nonnull(strstr(text, "noisetun_drops_total{interface=\"wg0\",reason=\"no_route\"} 6\n"));
	ck_assert_ptr_nonnull(strstr(text, "noisetun_drops_total{interface=\"wg0\",reason=\"replay\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(text, "noisetun_peer_info{interface=\"wg0\"," PK ",endpoint=\"192.0.2.1:51820\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "# TYPE noisetun_peer_receive_bytes_total counter\n"
					   "noisetun_peer_receive_bytes_total{interface=\"wg0\"," PK "} 1234\n"));
	ck_assert_ptr_nonnull(strstr(text, "noisetun_peer_transmit_bytes_total{interface=\"wg0\"," PK "} 5678\n"));
	ck_assert_ptr_nonnull(strstr(text, "noisetun_peer_receive_packets_total{interface=\"wg0\"," PK "} 9\n"));
	ck_assert_ptr_nonnull(strstr(text, "noisetun_peer_transmit_packets_total{interface=\"wg0\"," PK "} 10\n"));
	ck_assert_ptr_nonnull(strstr(text, "noisetun_peer_handshakes_total{interface=\"wg0\"," PK "} 3\n"));
	ck_assert_ptr_nonnull(strstr(text, "noisetun_peer_handshake_attempts_total{interface=\"wg0\"," PK "} 4\n"));
	ck_assert_ptr_nonnull(strstr(text, "noisetun_peer_handshake_failures_total{interface=\"wg0\"," PK "} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "# TYPE noisetun_peer_last_handshake_timestamp_seconds gauge\n"
					   "noisetun_peer_last_handshake_timestamp_seconds{interface=\"wg0\"," PK
					   "} 1700000000.123456789\n"));
	ck_assert_ptr_nonnull(strstr(text, "noisetun_peer_session_age_seconds{interface=\"wg0\"," PK "} 2.500000000\n"));
	/* every counter's name ends in _total; every family has one HELP and one TYPE */
	for (const char *l = text; *l; l = strchr(l, '\n') + 1) {
		if (!strncmp(l, "# TYPE ", 7)) {
			const char *type = strchr(l + 7, ' ') + 1;
			if (!strncmp(type, "counter", 7))
				ck_assert(!strncmp(type - 7, "_total ", 7));
		}
	}
	ck_assert_uint_eq(count(text, "# HELP "), count(text, "# TYPE "));
	ck_assert_uint_eq(count(text, "# HELP "), 17);
	ck_assert_uint_eq(text[strlen(text) - 1], '\n');
	free(text);
#undef PK
}
END_TEST

START_TEST(test_label_escaping)
{
	struct nt_metrics_peer p = peer(0xff, "a\\b\"c\nd", "[2001:db8::1]:51820");
	struct nt_metrics_device d = { .ifname = "wg\"0", .peers = &p, .peers_count = 1 };
	char *text;

	text = format(&d, 1);
	ck_assert_ptr_nonnull(strstr(text, "name=\"a\\\\b\\\"c\\nd\""));
	ck_assert_ptr_nonnull(strstr(text, "interface=\"wg\\\"0\""));
	ck_assert_ptr_nonnull(strstr(text, "endpoint=\"[2001:db8::1]:51820\""));
	ck_assert_ptr_null(strstr(text, "c\nd")); /* no raw newline in a value */
	free(text);

	/* UTF-8 passes; bytes that are not UTF-8 become '?' */
	p.name = "caf\xc3\xa9 \xff\xc0\xaf \xed\xa0\x80 \xe2\x82";
	text = format(&d, 1);
	ck_assert_ptr_nonnull(strstr(text, "name=\"caf\xc3\xa9 ??? ??? ??\""));
	free(text);

	/* no name, no endpoint: empty labels, still present */
	p.name = NULL;
	p.endpoint = NULL;
	text = format(&d, 1);
	ck_assert_ptr_nonnull(strstr(text, ",name=\"\",endpoint=\"\"} 1\n"));
	free(text);
}
END_TEST

START_TEST(test_families_grouped_across_interfaces)
{
	struct nt_metrics_peer pa[2] = { peer(1, "x", ""), peer(2, "", "") }, pb = peer(3, "y", "");
	struct nt_metrics_device d[2] = {
		{ .ifname = "wg0", .handshake_jobs_pending = 3, .peers = pa, .peers_count = 2 },
		{ .ifname = "wg1", .up = true, .handshake_jobs_discarded = 4, .peers = &pb, .peers_count = 1 },
	};
	const char *a, *b, *next;
	char *text = format(d, 2);

	/* one HELP per family, and both interfaces' samples before the next family */
	ck_assert_uint_eq(count(text, "# HELP noisetun_peer_receive_bytes_total "), 1);
	ck_assert_uint_eq(count(text, "noisetun_peer_receive_bytes_total{"), 3);
	a = strstr(text, "noisetun_up{interface=\"wg0\"} 0\n");
	b = strstr(text, "noisetun_up{interface=\"wg1\"} 1\n");
	next = strstr(text, "# HELP noisetun_peers ");
	ck_assert(a && b && next && a < b && b < next);
	ck_assert_uint_eq(count(text, "# HELP noisetun_handshake_jobs_pending "), 1);
	a = strstr(text, "noisetun_handshake_jobs_pending{interface=\"wg0\"} 3\n");
	b = strstr(text, "noisetun_handshake_jobs_pending{interface=\"wg1\"} 0\n");
	next = strstr(text, "# HELP noisetun_handshake_jobs_discarded_total ");
	ck_assert(a && b && next && a < b && b < next);
	a = strstr(text, "noisetun_handshake_jobs_discarded_total{interface=\"wg0\"} 0\n");
	b = strstr(text, "noisetun_handshake_jobs_discarded_total{interface=\"wg1\"} 4\n");
	next = strstr(text, "# HELP noisetun_drops_total ");
	ck_assert(a && b && next && a < b && b < next);
	/* without a session, no session age sample (the family stays declared) */
	ck_assert_uint_eq(count(text, "noisetun_peer_session_age_seconds{"), 0);
	ck_assert_uint_eq(count(text, "noisetun_peer_last_handshake_timestamp_seconds{"), 3);
	ck_assert_ptr_nonnull(strstr(text, "} 0.000000000\n"));
	free(text);
}
END_TEST

START_TEST(test_short_buffer)
{
	struct nt_metrics_peer p = peer(0, "n", "");
	struct nt_metrics_device d = { .ifname = "wg0", .peers = &p, .peers_count = 1 };
	size_t len = nt_metrics_format(NULL, 0, &d, 1);
	char *full = format(&d, 1), small[100];

	memset(small, 'X', sizeof(small));
	ck_assert_uint_eq(nt_metrics_format(small, 50, &d, 1), len);
	ck_assert_uint_eq(strlen(small), 49);
	ck_assert(!memcmp(small, full, 49));
	ck_assert_uint_eq((unsigned char)small[50], 'X'); /* nothing past size */
	ck_assert_uint_eq(nt_metrics_format(small, 1, &d, 1), len);
	ck_assert_uint_eq(small[0], '\0');
	free(full);
}
END_TEST

static int status(const char *head)
{
	return nt_metrics_http_status(head, strlen(head));
}

START_TEST(test_http_status)
{
	ck_assert_int_eq(status("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
	ck_assert_int_eq(status("GET /metrics HTTP/1.0\n\n"), 200);
	ck_assert_int_eq(status("GET /metrics?name[]=x&y HTTP/1.1\r\n\r\n"), 200);
	ck_assert_int_eq(status("GET /metrics? HTTP/1.1\r\n\r\n"), 200);
	/* other paths */
	ck_assert_int_eq(status("GET / HTTP/1.1\r\n\r\n"), 404);
	ck_assert_int_eq(status("GET /metricsx HTTP/1.1\r\n\r\n"), 404);
	ck_assert_int_eq(status("GET /metric HTTP/1.1\r\n\r\n"), 404);
	ck_assert_int_eq(status("GET /metrics/ HTTP/1.1\r\n\r\n"), 404);
	ck_assert_int_eq(status("GET http://x/metrics HTTP/1.1\r\n\r\n"), 404);
	ck_assert_int_eq(status("POST / HTTP/1.1\r\n\r\n"), 404);
	/* other methods */
	ck_assert_int_eq(status("POST /metrics HTTP/1.1\r\n\r\n"), 405);
	ck_assert_int_eq(status("HEAD /metrics HTTP/1.1\r\n\r\n"), 405);
	ck_assert_int_eq(status("get /metrics HTTP/1.1\r\n\r\n"), 405);
	ck_assert_int_eq(status("GETX /metrics HTTP/1.1\r\n\r\n"), 405);
	/* not a request line */
	ck_assert_int_eq(status("HELLO\r\n\r\n"), 400);
	ck_assert_int_eq(status("GET /metrics\r\n\r\n"), 400);            /* HTTP/0.9 */
	ck_assert_int_eq(status("GET /metrics HTTP/2.0\r\n\r\n"), 400);
	ck_assert_int_eq(status("GET /metrics HTTP/1.1x\r\n\r\n"), 400);
	ck_assert_int_eq(status("GET  /metrics HTTP/1.1\r\n\r\n"), 400);   /* empty target */
	ck_assert_int_eq(status(" /metrics HTTP/1.1\r\n\r\n"), 400);       /* empty method */
	ck_assert_int_eq(status("GET /metrics HTTP/1.1 x\r\n\r\n"), 400);
	ck_assert_int_eq(status("GET /met\trics HTTP/1.1\r\n\r\n"), 400);
	ck_assert_int_eq(status("GET /m\x80 HTTP/1.1\r\n\r\n"), 400);
	ck_assert_int_eq(status("GET /metrics HTTP/1.1\r\r\n\r\n"), 400);
	ck_assert_int_eq(status(""), 400);
	ck_assert_int_eq(nt_metrics_http_status("GET /metrics HTTP/1.1\0\r\n\r\n", 26), 400);
	/* only the request line counts */
	ck_assert_int_eq(status("GET /metrics HTTP/1.1\r\nX: POST / HTTP/1.1\r\n\r\n"), 200);
}
END_TEST

START_TEST(test_http_head_end)
{
	const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nTRAILING";
	size_t whole = strlen(req) - strlen("TRAILING"), scan = 0, end = 0, i;

	ck_assert_uint_eq(nt_metrics_http_head_end(req, strlen(req), &scan), whole);
	/* a byte at a time: found exactly when its last byte arrives, never before */
	scan = 0;
	for (i = 1; i <= strlen(req) && !end; i++)
		end = nt_metrics_http_head_end(req, i, &scan);
	ck_assert_uint_eq(end, whole);
	ck_assert_uint_eq(i - 1, whole);
	scan = 0;
	ck_assert_uint_eq(nt_metrics_http_head_end("GET / HTTP/1.0\n\n", 16, &scan), 16);
	scan = 0;
	ck_assert_uint_eq(nt_metrics_http_head_end("GET / HTTP/1.0\r\n\n", 17, &scan), 17);
	scan = 0;
	ck_assert_uint_eq(nt_metrics_http_head_end("GET / HTTP/1.0\r\n\r", 17, &scan), 0);
	scan = 0;
	ck_assert_uint_eq(nt_metrics_http_head_end("\r\n", 2, &scan), 0);
	scan = 0;
	ck_assert_uint_eq(nt_metrics_http_head_end("", 0, &scan), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("format");

	tcase_add_test(tc, test_names_types_and_values);
	tcase_add_test(tc, test_label_escaping);
	tcase_add_test(tc, test_families_grouped_across_interfaces);
	tcase_add_test(tc, test_short_buffer);
	tcase_add_test(tc, test_http_status);
	tcase_add_test(tc, test_http_head_end);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
