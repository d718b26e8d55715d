/* set=1 request parser (lib/uapi.c): every key with good values, a numbered table of bad
 * bodies (each must give -EINVAL and leave the result zeroed), ordering rules, the 1 MiB
 * line, every truncation and single-byte mutation of a valid body (run under ASan, each on an
 * exactly sized heap copy), a 1,000 x 100 setconf-sized request, endpoint round trips, and
 * nt_uapi_format_set: a known answer, parse(format(x)) == x on a table of sets and on
 * random ones. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "noisetun/config.h"
#include "noisetun/crypto.h"
#include "noisetun/encoding.h"
#include "noisetun/uapi.h"

#include "util.h"

#define HEX_A  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define HEX_BU "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
#define HEX_C  "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"
#define HEX_0  "0000000000000000000000000000000000000000000000000000000000000000"
#define PEER_A "public_key=" HEX_A "\n"
#define PEER_C "public_key=" HEX_C "\n"

static bool set_is_empty(const struct nt_uapi_set *set)
{
	static const struct nt_uapi_set zero;

	return !memcmp(set, &zero, sizeof(zero));
}

/* Parse from an exactly sized heap copy, so ASan sees any read past len. */
static int parse(struct nt_uapi_set *out, const char *body, size_t len)
{
	char *copy = malloc(len ? len : 1);
	int ret;

	ck_assert_ptr_nonnull(copy);
	memcpy(copy, body, len);
	memset(out, 0xa5, sizeof(*out)); /* out need not be initialised */
	ret = nt_uapi_parse_set(out, copy, len);
	free(copy);
	return ret;
}

static int parse_str(struct nt_uapi_set *out, const char *body)
{
	return parse(out, body, strlen(body));
}

static void assert_ip(const struct nt_uapi_allowed_ip *ip, int family, const char *addr, int cidr)
{
	uint8_t want[16] = { 0 };

	ck_assert_int_eq(ip->family, family);
	ck_assert_int_eq(ip->cidr, cidr);
	ck_assert_int_eq(inet_pton(family, addr, want), 1);
	ck_assert_mem_eq(ip->addr, want, 16);
}


/* noisetun's own per-peer keys (issue 18): parsed, formatted back, bad values refused. */
START_TEST(test_noisetun_lifecycle_keys)
{
	struct nt_uapi_set set;
	char buf[512];

	ck_assert_int_eq(parse_str(&set, "public_key=" HEX_B "\nnoisetun_disabled=true\nnoisetun_valid_until=1798761599\n"), 0);
	ck_assert(set.peers[0].has_lifecycle_disabled && set.peers[0].lifecycle_disabled);
	ck_assert(set.peers[0].has_valid_until);
	ck_assert_uint_eq(set.peers[0].valid_until, 1798761599);
	nt_uapi_format_set(&set, buf, sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "noisetun_disabled=true\nnoisetun_valid_until=1798761599\n"));
	nt_uapi_set_free(&set);
	ck_assert_int_eq(parse_str(&set, "public_key=" HEX_B "\nnoisetun_disabled=false\n"), 0);
	ck_assert(set.peers[0].has_lifecycle_disabled && !set.peers[0].lifecycle_disabled && !set.peers[0].has_valid_until);
	nt_uapi_set_free(&set);
	ck_assert_int_eq(parse_str(&set, "public_key=" HEX_B "\nnoisetun_disabled=1\n"), -EINVAL);
	ck_assert_int_eq(parse_str(&set, "public_key=" HEX_B "\nnoisetun_valid_until=-1\n"), -EINVAL);
	ck_assert_int_eq(parse_str(&set, "public_key=" HEX_B "\nnoisetun_valid_until=1099511627776\n"), -EINVAL);
	ck_assert_int_eq(parse_str(&set, "noisetun_disabled=true\n"), -EINVAL); /* not a device key */
	ck_assert_int_eq(parse_str(&set, "public_key=" HEX_B "\nnoisetun_endpoint_name=vpn.example:51820\n"), 0);
	ck_assert(set.peers[0].has_endpoint_name);
	ck_assert_str_eq(set.peers[0].endpoint_name, "vpn.example:51820");
	nt_uapi_set_free(&set);
	ck_assert_int_eq(parse_str(&set, "public_key=" HEX_B "\nnoisetun_endpoint_name=-\n"), 0);
	ck_assert(set.peers[0].has_endpoint_name && !set.peers[0].endpoint_name[0]);
	nt_uapi_set_free(&set);
	ck_assert_int_eq(parse_str(&set, "public_key=" HEX_B "\nnoisetun_endpoint_name=a$b:1\n"), -EINVAL);
}
END_TEST

/* noisetun_mss_clamp: a device key (before any peer), true or false, written back. */
START_TEST(test_noisetun_mss_clamp_key)
{
	struct nt_uapi_set set;
	char buf[256];

	ck_assert_int_eq(parse_str(&set, "noisetun_mss_clamp=false\n"), 0);
	ck_assert(set.has_mss_clamp && !set.mss_clamp);
	nt_uapi_format_set(&set, buf, sizeof(buf));
	ck_assert_str_eq(buf, "noisetun_mss_clamp=false\n");
	nt_uapi_set_free(&set);
	ck_assert_int_eq(parse_str(&set, "listen_port=1\nnoisetun_mss_clamp=true\n"), 0);
	ck_assert(set.has_mss_clamp && set.mss_clamp);
	nt_uapi_set_free(&set);
	ck_assert_int_eq(parse_str(&set, "listen_port=1\n"), 0);
	ck_assert(!set.has_mss_clamp);
	nt_uapi_set_free(&set);
	ck_assert_int_eq(parse_str(&set, "noisetun_mss_clamp=off\n"), -EINVAL);
	ck_assert_int_eq(parse_str(&set, "public_key=" HEX_B "\nnoisetun_mss_clamp=true\n"), -EINVAL); /* not a peer key */
}
END_TEST

/* ---- good requests ---- */

START_TEST(test_empty_body)
{
	struct nt_uapi_set set;

	ck_assert_int_eq(parse(&set, "", 0), 0);
	ck_assert(set_is_empty(&set));
	nt_uapi_set_free(&set);
}
END_TEST

START_TEST(test_device_keys)
{
	struct nt_uapi_set set;

	ck_assert_int_eq(parse_str(&set, "private_key=" HEX_B "\nlisten_port=51820\n"
					 "fwmark=4294967295\nreplace_peers=true\n"), 0);
	ck_assert(set.has_private_key && set.has_listen_port && set.has_fwmark && set.replace_peers);
	ck_assert_hex(set.private_key, HEX_B);
	ck_assert_uint_eq(set.listen_port, 51820);
	ck_assert_uint_eq(set.fwmark, 4294967295u);
	ck_assert_uint_eq(set.peers_count, 0);
	nt_uapi_set_free(&set);
	ck_assert(set_is_empty(&set));

	/* Uppercase hex, zero values, leading zeros; the last of a repeated key wins. */
	ck_assert_int_eq(parse_str(&set, "private_key=" HEX_BU "\nprivate_key=" HEX_0 "\n"
					 "listen_port=065535\nlisten_port=0\nfwmark=0\nfwmark=000\n"), 0);
	ck_assert(set.has_private_key && set.has_listen_port && set.has_fwmark && !set.replace_peers);
	ck_assert_hex(set.private_key, HEX_0);
	ck_assert_uint_eq(set.listen_port, 0);
	ck_assert_uint_eq(set.fwmark, 0);
	nt_uapi_set_free(&set);

	ck_assert_int_eq(parse_str(&set, "private_key=" HEX_BU "\nlisten_port=0065535\n"), 0);
	ck_assert_hex(set.private_key, HEX_B);
	ck_assert_uint_eq(set.listen_port, 65535);
	ck_assert(!set.has_fwmark);
	nt_uapi_set_free(&set);
}
END_TEST

START_TEST(test_peer_keys)
{
	struct nt_uapi_set set;
	const struct nt_uapi_peer *p;

	ck_assert_int_eq(parse_str(&set, "listen_port=1\n" PEER_A "update_only=true\n"
					 "preshared_key=" HEX_BU "\nendpoint=192.0.2.1:51820\n"
					 "persistent_keepalive_interval=25\nreplace_allowed_ips=true\n"
					 "allowed_ip=10.0.0.2/32\nallowed_ip=2001:db8::/32\n"
					 "protocol_version=1\nallowed_ip=0.0.0.0/0\n"
					 "public_key=" HEX_BU "\nremove=true\npreshared_key=" HEX_0 "\n"
					 "endpoint=[fe80::1%3]:0\npersistent_keepalive_interval=0\n"
					 PEER_C), 0);
	ck_assert_uint_eq(set.peers_count, 3);

	p = &set.peers[0];
	ck_assert_hex(p->public_key, HEX_A);
	ck_assert(!p->remove && p->update_only && p->has_preshared_key && p->has_endpoint);
	ck_assert(p->has_persistent_keepalive && p->replace_allowed_ips);
	ck_assert_hex(p->preshared_key, HEX_B);
	ck_assert_int_eq(p->endpoint.family, AF_INET);
	ck_assert_uint_eq(p->endpoint.port, 51820);
	ck_assert_hex(p->endpoint.addr, "c0000201000000000000000000000000");
	ck_assert_uint_eq(p->persistent_keepalive, 25);
	ck_assert_uint_eq(p->allowed_ips_count, 3);
	assert_ip(&p->allowed_ips[0], AF_INET, "10.0.0.2", 32);
	assert_ip(&p->allowed_ips[1], AF_INET6, "2001:db8::", 32);
	assert_ip(&p->allowed_ips[2], AF_INET, "0.0.0.0", 0);

	p = &set.peers[1];
	ck_assert_hex(p->public_key, HEX_B);
	ck_assert(p->remove && !p->update_only && p->has_preshared_key && p->has_endpoint);
	ck_assert(p->has_persistent_keepalive && !p->replace_allowed_ips);
	ck_assert(nt_is_zero(p->preshared_key, 32));
	ck_assert_int_eq(p->endpoint.family, AF_INET6);
	ck_assert_uint_eq(p->endpoint.port, 0);
	ck_assert_uint_eq(p->endpoint.scope_id, 3);
	ck_assert_hex(p->endpoint.addr, "fe800000000000000000000000000001");
	ck_assert_uint_eq(p->persistent_keepalive, 0);
	ck_assert_uint_eq(p->allowed_ips_count, 0);
	ck_assert_ptr_null(p->allowed_ips);

	p = &set.peers[2];
	ck_assert_hex(p->public_key, HEX_C);
	ck_assert(!p->remove && !p->update_only && !p->has_preshared_key && !p->has_endpoint);
	ck_assert(!p->has_persistent_keepalive && !p->replace_allowed_ips);
	nt_uapi_set_free(&set);
	ck_assert(set_is_empty(&set));
	nt_uapi_set_free(&set); /* twice is harmless */
}
END_TEST

START_TEST(test_replace_allowed_ips_midway)
{
	struct nt_uapi_set set;
	const struct nt_uapi_peer *p;

	/* Applied in order, the replace drops what came before it in the same section. */
	ck_assert_int_eq(parse_str(&set, PEER_A "allowed_ip=10.0.0.1/32\nallowed_ip=10.0.0.2/32\n"
					 "allowed_ip=10.0.0.3/32\nallowed_ip=10.0.0.4/32\n"
					 "allowed_ip=10.0.0.5/32\nreplace_allowed_ips=true\n"
					 "allowed_ip=10.9.0.0/16\nallowed_ip=fd00::1/128\n"
					 PEER_C "allowed_ip=10.1.0.0/16\nreplace_allowed_ips=true\n"), 0);
	ck_assert_uint_eq(set.peers_count, 2);
	p = &set.peers[0];
	ck_assert(p->replace_allowed_ips);
	ck_assert_uint_eq(p->allowed_ips_count, 2);
	assert_ip(&p->allowed_ips[0], AF_INET, "10.9.0.0", 16);
	assert_ip(&p->allowed_ips[1], AF_INET6, "fd00::1", 128);
	p = &set.peers[1];
	ck_assert(p->replace_allowed_ips);
	ck_assert_uint_eq(p->allowed_ips_count, 0);
	nt_uapi_set_free(&set);
}
END_TEST

/* The line limit itself: NT_UAPI_MAX_LINE bytes of valid text pass, one more fails. */
static bool is_zero_bytes(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* noisetun_name: 1..64 printable bytes, spaces inside; an empty value clears (has_name with
 * ""); without the line has_name stays false. */
START_TEST(test_peer_name)
{
	static const char name64[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	char body[256];
	struct nt_uapi_set set;

	ck_assert_int_eq(parse_str(&set, PEER_A "noisetun_name=Alice's laptop #2 (x=y)\n" PEER_C "noisetun_name=\n"
				   "public_key=" HEX_B "\nallowed_ip=10.0.0.1/32\n"), 0);
	ck_assert_uint_eq(set.peers_count, 3);
	ck_assert(set.peers[0].has_name);
	ck_assert_str_eq(set.peers[0].name, "Alice's laptop #2 (x=y)");
	ck_assert(set.peers[1].has_name);
	ck_assert_str_eq(set.peers[1].name, "");
	ck_assert(!set.peers[2].has_name);
	ck_assert_str_eq(set.peers[2].name, "");
	nt_uapi_set_free(&set);

	ck_assert_uint_eq(strlen(name64), 64);
	snprintf(body, sizeof(body), PEER_A "noisetun_name=%s\n", name64);
	ck_assert_int_eq(parse_str(&set, body), 0);
	ck_assert_str_eq(set.peers[0].name, name64);
	nt_uapi_set_free(&set);

	/* the last one counts, as any repeated key, and leaves nothing of a longer one */
	ck_assert_int_eq(parse_str(&set, PEER_A "noisetun_name=abcdef\nnoisetun_name=b c\n"), 0);
	ck_assert_str_eq(set.peers[0].name, "b c");
	ck_assert(is_zero_bytes(set.peers[0].name + 3, sizeof(set.peers[0].name) - 3));
	nt_uapi_set_free(&set);

	/* spaces are for the name only: any other key with one is still refused */
	ck_assert_int_eq(parse_str(&set, PEER_A "noisetun_name=a b\nendpoint=1.2.3.4:1 \n"), -EINVAL);
	ck_assert(set_is_empty(&set));
}
END_TEST

START_TEST(test_longest_line)
{
	char body[NT_UAPI_MAX_LINE + 2];
	struct nt_uapi_set set;
	size_t key = strlen("listen_port=");

	for (size_t len = NT_UAPI_MAX_LINE; len <= NT_UAPI_MAX_LINE + 1; len++) {
		memcpy(body, "listen_port=", key);
		memset(body + key, '0', len - key);
		body[len - 1] = '7';
		body[len] = '\n';
		if (len == NT_UAPI_MAX_LINE) {
			ck_assert_int_eq(parse(&set, body, len + 1), 0);
			ck_assert_uint_eq(set.listen_port, 7);
			nt_uapi_set_free(&set);
		} else {
			ck_assert_int_eq(parse(&set, body, len + 1), -EINVAL);
			ck_assert(set_is_empty(&set));
		}
	}
}
END_TEST

/* ---- bad requests: each -EINVAL, nothing left behind ---- */

struct bad_body {
	const char *body;
	size_t len;
};

#define BAD(s) { (s), sizeof(s) - 1 }

static const struct bad_body bad_bodies[] = {
	/* 0: malformed lines */
	BAD("noequals\n"), BAD("\n"), BAD("=x\n"), BAD("=\n"), BAD("bogus=1\n"),
	BAD("Listen_port=1\n"), BAD("listen_port =1\n"), BAD(" listen_port=1\n"),
	BAD("listen_port=1"), BAD("listen_port=1\n\n"), BAD("listen_port=1\r\n"),
	BAD("listen_port=1\0\n"), BAD("listen_\0port=1\n"), BAD("listen_port=\x7f" "1\n"),
	BAD("fwmark=1\xff\n"), BAD("listen_port=1\tx\n"),
	/* 16: private_key */
	BAD("private_key=\n"), BAD("private_key=" HEX_A "a\n"), BAD("private_key=" HEX_A "\0\n"),
	BAD("private_key=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"),
	BAD("private_key=gaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"),
	BAD("private_key= aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"),
	BAD("private_key=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\0\n"),
	BAD("private_key=ghHkw8d5w2D1jOW0wVi8WS6B0KnVwTWw0ZJLLrixJV8=\n"),
	/* 24: numbers */
	BAD("listen_port=\n"), BAD("listen_port=65536\n"), BAD("listen_port=-1\n"),
	BAD("listen_port=+1\n"), BAD("listen_port= 1\n"), BAD("listen_port=1 \n"),
	BAD("listen_port=0x10\n"), BAD("listen_port=1e3\n"), BAD("listen_port=-0\n"),
	BAD("listen_port=18446744073709551617\n"), BAD("listen_port=99999999999999999999999\n"),
	BAD("fwmark=\n"), BAD("fwmark=4294967296\n"), BAD("fwmark=18446744073709551616\n"),
	BAD("fwmark=+5\n"), BAD("fwmark=0x1\n"), BAD("fwmark=none\n"),
	/* 41: booleans */
	BAD("replace_peers=false\n"), BAD("replace_peers=True\n"), BAD("replace_peers=TRUE\n"),
	BAD("replace_peers=1\n"), BAD("replace_peers=\n"), BAD("replace_peers\n"),
	BAD("replace_peers=true \n"), BAD("replace_peers=truee\n"), BAD("replace_peers=tru\n"),
	BAD(PEER_A "remove=false\n"), BAD(PEER_A "remove=yes\n"), BAD(PEER_A "update_only=false\n"),
	BAD(PEER_A "update_only=\n"), BAD(PEER_A "replace_allowed_ips=false\n"),
	BAD(PEER_A "replace_allowed_ips=1\n"),
	/* 56: keys out of place, repeated peers */
	BAD(PEER_A "private_key=" HEX_B "\n"), BAD(PEER_A "listen_port=1\n"),
	BAD(PEER_A "fwmark=1\n"), BAD(PEER_A "replace_peers=true\n"),
	BAD("remove=true\n"), BAD("update_only=true\n"), BAD("protocol_version=1\n"),
	BAD("allowed_ip=10.0.0.1/32\n"), BAD("endpoint=1.2.3.4:1\n"),
	/* a repeated peer is good (test_repeated_peers); a bad line in its second section is not */
	BAD(PEER_A PEER_A "remove=maybe\n"), BAD(PEER_A PEER_C PEER_A "bogus=1\n"),
	BAD("public_key=" HEX_B "\npublic_key=" HEX_BU "\nprotocol_version=3\n"),
	BAD(PEER_A "bogus=1\n"), BAD(PEER_A "public_key=\n"), BAD("public_key=" HEX_A "0\n"),
	/* 71: protocol_version, preshared_key, keepalive */
	BAD(PEER_A "protocol_version=2\n"), BAD(PEER_A "protocol_version=0\n"),
	BAD(PEER_A "protocol_version=01\n"), BAD(PEER_A "protocol_version=\n"),
	BAD(PEER_A "preshared_key=\n"), BAD(PEER_A "preshared_key=" HEX_A "a\n"),
	BAD(PEER_A "persistent_keepalive_interval=\n"),
	BAD(PEER_A "persistent_keepalive_interval=65536\n"),
	BAD(PEER_A "persistent_keepalive_interval=+1\n"),
	BAD(PEER_A "persistent_keepalive_interval=-1\n"),
	/* 81: endpoints */
	BAD(PEER_A "endpoint=\n"), BAD(PEER_A "endpoint=1.2.3.4\n"), BAD(PEER_A "endpoint=1.2.3.4:\n"),
	BAD(PEER_A "endpoint=1.2.3.4:65536\n"), BAD(PEER_A "endpoint=1.2.3.4:+1\n"),
	BAD(PEER_A "endpoint=1.2.3.4:-1\n"), BAD(PEER_A "endpoint=1.2.3.4:1x\n"),
	BAD(PEER_A "endpoint=::1:51820\n"), BAD(PEER_A "endpoint=[::1]\n"),
	BAD(PEER_A "endpoint=[::1]:\n"), BAD(PEER_A "endpoint=[::1]51820\n"),
	BAD(PEER_A "endpoint=[::1:51820\n"), BAD(PEER_A "endpoint=::1]:51820\n"),
	BAD(PEER_A "endpoint=[1.2.3.4]:1\n"), BAD(PEER_A "endpoint=[fe80::1%]:1\n"),
	BAD(PEER_A "endpoint=[fe80::1%eth/0]:1\n"), BAD(PEER_A "endpoint=[fe80::1%4294967296]:1\n"),
	BAD(PEER_A "endpoint=[fe80::1%a/]:1\n"), BAD(PEER_A "endpoint=localhost:1\n"),
	BAD(PEER_A "endpoint=1.2.3.300:1\n"), BAD(PEER_A "endpoint=01.2.3.4:1\n"),
	BAD(PEER_A "endpoint=1.2.3:1\n"), BAD(PEER_A "endpoint=1.2.3.4%1:1\n"),
	BAD(PEER_A "endpoint=:51820\n"), BAD(PEER_A "endpoint=[]:1\n"),
	BAD(PEER_A "endpoint=[::1]:1:2\n"), BAD(PEER_A "endpoint=[[::1]]:1\n"),
	BAD(PEER_A "endpoint=[::1\0]:1\n"), BAD(PEER_A "endpoint=1.2.3.4\0:1\n"),
	/* 109: scope names Linux would not allow */
	BAD(PEER_A "endpoint=[fe80::1%0123456789abcdef]:1\n"), BAD(PEER_A "endpoint=[fe80::1%.]:1\n"),
	BAD(PEER_A "endpoint=[fe80::1%..]:1\n"), BAD(PEER_A "endpoint=[fe80::1%a:b]:1\n"),
	BAD(PEER_A "endpoint=[fe80::1%a%b]:1\n"), BAD(PEER_A "endpoint=[fe80::1%eth0\x7f]:1\n"),
	BAD(PEER_A "endpoint=1.2.3.4%eth0:1\n"),
	/* 110: allowed IPs */
	BAD(PEER_A "allowed_ip=\n"), BAD(PEER_A "allowed_ip=10.0.0.300/32\n"),
	BAD(PEER_A "allowed_ip=10.0.0.1/33\n"), BAD(PEER_A "allowed_ip=::1/129\n"),
	BAD(PEER_A "allowed_ip=1.2.3.4/\n"), BAD(PEER_A "allowed_ip=/24\n"),
	BAD(PEER_A "allowed_ip=10.0.0.1/32x\n"), BAD(PEER_A "allowed_ip=10.0.0.1x/32\n"),
	BAD(PEER_A "allowed_ip=10.0.0.1/+8\n"), BAD(PEER_A "allowed_ip=10.0.0.1/-0\n"),
	BAD(PEER_A "allowed_ip=10.0.0.1/32/1\n"), BAD(PEER_A "allowed_ip=10.0.0.1/3 2\n"),
	BAD(PEER_A "allowed_ip=1.2.3/24\n"), BAD(PEER_A "allowed_ip=fe80::1%3/64\n"),
	BAD(PEER_A "allowed_ip=10.0.0.1\n"), BAD(PEER_A "allowed_ip=10.0.0.1/0x8\n"),
	BAD(PEER_A "allowed_ip=10.0.0.1/256\n"), BAD(PEER_A "allowed_ip=10.0.0.1/\0\n"),
	BAD(PEER_A "allowed_ip=10.0.0.1\0/32\n"), BAD(PEER_A "allowed_ip=1:2:3:4:5:6:7:8:9/64\n"),
	/* 130: noisetun_name: too long (65), control characters, a space at either end, outside
	 * a peer, a byte over 0x7e, a space in the key */
	BAD(PEER_A "noisetun_name=" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"),
	BAD(PEER_A "noisetun_name=lap\ttop\n"), BAD(PEER_A "noisetun_name=lap\x1b[31mtop\n"),
	BAD(PEER_A "noisetun_name=lap\rtop\n"), BAD(PEER_A "noisetun_name=lap\0top\n"),
	BAD(PEER_A "noisetun_name= laptop\n"), BAD(PEER_A "noisetun_name=laptop \n"),
	BAD(PEER_A "noisetun_name= \n"), BAD("noisetun_name=laptop\n"),
	BAD(PEER_A "noisetun_name=caf\xc3\xa9\n"), BAD(PEER_A "noisetun_name=\x7f\n"),
	BAD(PEER_A "noisetun_name =laptop\n"), BAD(PEER_A "Noisetun_name=laptop\n"),
	/* 143: one bad line at the end of a good request */
	BAD("private_key=" HEX_B "\nlisten_port=1\n" PEER_A "allowed_ip=10.0.0.1/32\n"
	    "allowed_ip=10.0.0.2/32\n" PEER_C "allowed_ip=10.0.1.0/24\nendpoint=1.2.3.4:1\n"
	    "allowed_ip=10.0.0.1/33\n"),
};

START_TEST(test_bad_bodies)
{
	const struct bad_body *b = &bad_bodies[_i];
	struct nt_uapi_set set;
	int ret = parse(&set, b->body, b->len);

	ck_assert_msg(ret == -EINVAL, "bad body %d gave %d: \"%s\"", _i, ret, b->body);
	ck_assert_msg(set_is_empty(&set), "bad body %d left a result behind", _i);

	/* The last line is the culprit: without it the body is good. */
	size_t good = b->len - 1;
	while (good && b->body[good - 1] != '\n')
		good--;
	ret = parse(&set, b->body, good);
	ck_assert_msg(ret == 0, "bad body %d gave %d without its last line", _i, ret);
	nt_uapi_set_free(&set);
}
END_TEST

/* A 1 MiB line is refused after reading NT_UAPI_MAX_LINE bytes, whatever follows. */
START_TEST(test_huge_line)
{
	size_t len = (size_t)1 << 20, prefix = strlen(PEER_A);
	char *body = malloc(len + 1);
	struct nt_uapi_set set;
	struct timespec t0, t1;

	ck_assert_ptr_nonnull(body);
	memcpy(body, PEER_A "allowed_ip=", prefix + 11);
	memset(body + prefix + 11, '1', len - prefix - 11);
	body[len] = '\n';
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 1000; i++) {
		memset(&set, 0xa5, sizeof(set));
		ck_assert_int_eq(nt_uapi_parse_set(&set, body, len + 1), -EINVAL);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert(set_is_empty(&set));
	/* 1000 scans of 1 MiB would take far longer than this even unoptimised. */
	ck_assert_int_lt((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000, 1000);

	/* A huge line of junk, with and without a final newline. */
	memset(body, 'x', len);
	ck_assert_int_eq(parse(&set, body, len), -EINVAL);
	ck_assert(set_is_empty(&set));
	ck_assert_int_eq(parse(&set, body, len + 1), -EINVAL);
	free(body);
}
END_TEST

/* ---- robustness: every prefix and single-byte mutation of a valid request ---- */

static const char full_body[] =
	"private_key=" HEX_BU "\nlisten_port=51820\nfwmark=4660\nreplace_peers=true\n"
	PEER_A "update_only=true\npreshared_key=" HEX_B "\nprotocol_version=1\n"
	"endpoint=192.0.2.1:51820\npersistent_keepalive_interval=25\nreplace_allowed_ips=true\n"
	"allowed_ip=10.0.0.2/32\nallowed_ip=2001:db8::1/128\n"
	PEER_C "remove=true\nendpoint=[fe80::1%3]:51821\nallowed_ip=0.0.0.0/0\nallowed_ip=::/0\n";

START_TEST(test_every_truncation)
{
	size_t len = sizeof(full_body) - 1;
	struct nt_uapi_set set;

	for (size_t cut = 0; cut <= len; cut++) {
		/* A prefix of good lines is a good request; a torn line is not. */
		int want = cut == 0 || full_body[cut - 1] == '\n' ? 0 : -EINVAL;
		int ret = parse(&set, full_body, cut);

		ck_assert_msg(ret == want, "cut at %zu gave %d", cut, ret);
		if (ret)
			ck_assert(set_is_empty(&set));
		nt_uapi_set_free(&set);
	}
	ck_assert_int_eq(parse(&set, full_body, len), 0);
	ck_assert_uint_eq(set.peers_count, 2);
	ck_assert_uint_eq(set.peers[0].allowed_ips_count, 2);
	ck_assert_uint_eq(set.peers[1].allowed_ips_count, 2);
	nt_uapi_set_free(&set);
}
END_TEST

START_TEST(test_every_byte_mutation)
{
	static const char subst[] = { '\0', '\n', '=', ':', '/', '[', ']', '%', ' ', 'x', 'F', '9', '0' };
	size_t len = sizeof(full_body) - 1;
	char *body = malloc(len);
	struct nt_uapi_set set;
	unsigned ok = 0, bad = 0;

	ck_assert_ptr_nonnull(body);
	for (size_t pos = 0; pos < len; pos++) {
		for (size_t k = 0; k < sizeof(subst); k++) {
			memcpy(body, full_body, len);
			body[pos] = subst[k];
			memset(&set, 0xa5, sizeof(set));
			int ret = nt_uapi_parse_set(&set, body, len);

			ck_assert_msg(ret == 0 || ret == -EINVAL, "pos %zu byte %d gave %d", pos, subst[k], ret);
			if (ret) {
				ck_assert(set_is_empty(&set));
				bad++;
			} else {
				ok++;
			}
			nt_uapi_set_free(&set);
		}
	}
	free(body);
	ck_assert_uint_gt(ok, 0);
	ck_assert_uint_gt(bad, 0);
}
END_TEST

/* ---- scale: 1,000 peers x 100 allowed IPs, as the daemon's test sends ---- */

#define BIG_PEERS 1000
#define BIG_IPS   100

static void big_peer_key(uint8_t key[static 32], unsigned i)
{
	for (unsigned j = 0; j < 32; j++)
		key[j] = (uint8_t)(i * 131 + j * 7 + (i >> 8) * 17);
	key[0] = (uint8_t)(i >> 8);
	key[1] = (uint8_t)i;
}

static char *big_request(size_t *len)
{
	size_t cap = (size_t)BIG_PEERS * BIG_IPS * 40 + 4096, n = 0;
	char *body = malloc(cap), hex[NT_KEY_HEX_LEN + 1];
	uint8_t key[32];

	ck_assert_ptr_nonnull(body);
	n += (size_t)sprintf(body + n, "private_key=%s\nlisten_port=51820\nfwmark=0\nreplace_peers=true\n", HEX_B);
	for (unsigned i = 0; i < BIG_PEERS; i++) {
		big_peer_key(key, i);
		nt_key_to_hex(hex, key);
		n += (size_t)sprintf(body + n, "public_key=%s\npreshared_key=%s\nendpoint=198.51.%u.%u:%u\n"
				     "persistent_keepalive_interval=%u\nreplace_allowed_ips=true\n",
				     hex, HEX_C, i >> 8, i & 255, 10000 + i, i % 60);
		for (unsigned j = 0; j < BIG_IPS; j++) {
			if (j % 2)
				n += (size_t)sprintf(body + n, "allowed_ip=fd00:%x::%x/128\n", i, j);
			else
				n += (size_t)sprintf(body + n, "allowed_ip=10.%u.%u.%u/32\n", i >> 8, i & 255, j);
		}
	}
	ck_assert_uint_lt(n, cap);
	*len = n;
	return body;
}

START_TEST(test_big_request)
{
	struct nt_uapi_set set;
	struct timespec t0, t1;
	uint8_t key[32];
	char want[64], hex[NT_KEY_HEX_LEN + 1];
	size_t len;
	char *body = big_request(&len);
	double ms;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(nt_uapi_parse_set(&set, body, len), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	printf("test_uapi: parsed %d peers x %d allowed IPs (%zu bytes) in %.1f ms\n",
	       BIG_PEERS, BIG_IPS, len, ms);
	/* Generous for sanitizers and valgrind; a quadratic parser misses it by far. */
	ck_assert(ms < 10000);

	ck_assert(set.has_private_key && set.replace_peers && set.has_fwmark && set.fwmark == 0);
	ck_assert_uint_eq(set.peers_count, BIG_PEERS);
	for (unsigned i = 0; i < BIG_PEERS; i++) {
		const struct nt_uapi_peer *p = &set.peers[i];

		big_peer_key(key, i);
		ck_assert_mem_eq(p->public_key, key, 32);
		ck_assert_uint_eq(p->allowed_ips_count, BIG_IPS);
		ck_assert_uint_eq(p->endpoint.port, 10000 + i);
		ck_assert_uint_eq(p->persistent_keepalive, i % 60);
	}
	for (unsigned i = 0; i < BIG_PEERS; i += 333) {
		const struct nt_uapi_peer *p = &set.peers[i];

		ck_assert_hex(p->preshared_key, HEX_C);
		ck_assert(p->has_endpoint && p->replace_allowed_ips);
		for (unsigned j = 0; j < BIG_IPS; j += 33) {
			if (j % 2) {
				snprintf(want, sizeof(want), "fd00:%x::%x", i, j);
				assert_ip(&p->allowed_ips[j], AF_INET6, want, 128);
			} else {
				snprintf(want, sizeof(want), "10.%u.%u.%u", i >> 8, i & 255, j);
				assert_ip(&p->allowed_ips[j], AF_INET, want, 32);
			}
		}
	}
	nt_uapi_set_free(&set);

	/* The same request with the first peer's key again at the very end: one more section,
	 * and a bad line after it still refuses the whole request. */
	big_peer_key(key, 0);
	nt_key_to_hex(hex, key);
	body = realloc(body, len + 200);
	ck_assert_ptr_nonnull(body);
	len += (size_t)sprintf(body + len, "public_key=%s\n", hex);
	ck_assert_int_eq(nt_uapi_parse_set(&set, body, len), 0);
	ck_assert_uint_eq(set.peers_count, BIG_PEERS + 1);
	ck_assert_mem_eq(set.peers[BIG_PEERS].public_key, set.peers[0].public_key, 32);
	nt_uapi_set_free(&set);
	len += (size_t)sprintf(body + len, "remove=no\n");
	ck_assert_int_eq(nt_uapi_parse_set(&set, body, len), -EINVAL);
	ck_assert(set_is_empty(&set));
	free(body);
}
END_TEST

/* ---- the address parsers and the get form ---- */

START_TEST(test_parse_allowed_ip)
{
	struct nt_uapi_allowed_ip ip;
#define PA(text) nt_uapi_parse_allowed_ip(&ip, (text), strlen(text))

	/* Alone, the prefix length is optional; host bits stay as given. */
	ck_assert_int_eq(PA("10.1.2.3"), 0);
	assert_ip(&ip, AF_INET, "10.1.2.3", 32);
	ck_assert_int_eq(PA("2001:db8::1"), 0);
	assert_ip(&ip, AF_INET6, "2001:db8::1", 128);
	ck_assert_int_eq(PA("10.1.2.3/08"), 0);
	assert_ip(&ip, AF_INET, "10.1.2.3", 8);
	ck_assert_int_eq(PA("::ffff:1.2.3.4/96"), 0);
	assert_ip(&ip, AF_INET6, "::ffff:1.2.3.4", 96);
	/* len bounds the text: what follows is not read. */
	ck_assert_int_eq(nt_uapi_parse_allowed_ip(&ip, "10.0.0.1/24junk", 11), 0);
	assert_ip(&ip, AF_INET, "10.0.0.1", 24);
	ck_assert_int_eq(nt_uapi_parse_allowed_ip(&ip, "10.0.0.1/24junk", 12), -EINVAL);
	ck_assert_int_eq(ip.family, 0);
	ck_assert_int_eq(PA(""), -EINVAL);
	/* The longest address text there is, and one character more. */
	ck_assert_int_eq(PA("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/1"), 0);
	assert_ip(&ip, AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 1);
	ck_assert_int_eq(PA("0ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"), -EINVAL);
	ck_assert_int_eq(PA("10.0.0.1/33"), -EINVAL);
	ck_assert_int_eq(PA("10.0.0.1/"), -EINVAL);
	ck_assert_int_eq(PA("::/0"), 0);
	assert_ip(&ip, AF_INET6, "::", 0);
#undef PA
}
END_TEST

START_TEST(test_endpoint_round_trip)
{
	static const char *const canonical[] = {
		"192.0.2.1:51820", "0.0.0.0:0", "255.255.255.255:65535", "[::1]:51820", "[::]:0",
		"[2001:db8::1]:1", "[fe80::1%3]:51820", "[fe80::1%4294967295]:65535",
		"[::ffff:192.0.2.1]:7", "[1:2:3:4:5:6:7:8]:9",
		"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535",
		"[fe80::1%eth0]:51820", "[fe80::1%lo]:1", "[2001:db8::1%a]:2", "[fe80::1%0x1]:3",
		"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%abcdefghijklmno]:65535", "[fe80::1%wg-0.1_x]:4",
	};
	static const char *const rewritten[][2] = {
		{ "192.0.2.1:051820", "192.0.2.1:51820" }, { "[FE80::0:1%03]:00", "[fe80::1%3]:0" },
		{ "[fe80::1%0]:1", "[fe80::1]:1" }, { "[2001:DB8:0:0:0:0:0:1]:1", "[2001:db8::1]:1" },
	};
	struct nt_uapi_endpoint ep, again;
	char buf[NT_UAPI_ENDPOINT_STRLEN];
	size_t n;

	for (size_t i = 0; i < sizeof(canonical) / sizeof(canonical[0]); i++) {
		ck_assert_int_eq(nt_uapi_parse_endpoint(&ep, canonical[i], strlen(canonical[i])), 0);
		n = nt_uapi_format_endpoint(buf, sizeof(buf), &ep);
		ck_assert_str_eq(buf, canonical[i]);
		ck_assert_uint_eq(n, strlen(canonical[i]));
		ck_assert_int_eq(nt_uapi_parse_endpoint(&again, buf, n), 0);
		ck_assert_mem_eq(&again, &ep, sizeof(ep));
	}
	for (size_t i = 0; i < sizeof(rewritten) / sizeof(rewritten[0]); i++) {
		ck_assert_int_eq(nt_uapi_parse_endpoint(&ep, rewritten[i][0], strlen(rewritten[i][0])), 0);
		nt_uapi_format_endpoint(buf, sizeof(buf), &ep);
		ck_assert_str_eq(buf, rewritten[i][1]);
	}

	/* Too small a buffer or an unknown family: an empty string and 0. */
	ck_assert_int_eq(nt_uapi_parse_endpoint(&ep, "[fe80::1%3]:51820", 17), 0);
	ck_assert_uint_eq(nt_uapi_format_endpoint(buf, 18, &ep), 17);
	ck_assert_uint_eq(nt_uapi_format_endpoint(buf, 17, &ep), 0);
	ck_assert_str_eq(buf, "");
	ck_assert_uint_eq(nt_uapi_format_endpoint(buf, 0, &ep), 0);
	ep.family = 0;
	strcpy(buf, "x");
	ck_assert_uint_eq(nt_uapi_format_endpoint(buf, sizeof(buf), &ep), 0);
	ck_assert_str_eq(buf, "");

	/* A failed parse leaves the endpoint zeroed. */
	memset(&ep, 0xa5, sizeof(ep));
	ck_assert_int_eq(nt_uapi_parse_endpoint(&ep, "[::1]:65536", 11), -EINVAL);
	ck_assert(nt_is_zero(&ep, sizeof(ep)));
}
END_TEST

/* Stock `wg` sends a scope as the interface name: kept as text for the daemon to resolve;
 * digits only are an index. Before: every name was -EINVAL. */
START_TEST(test_scope_names)
{
	struct nt_uapi_endpoint ep;
	struct nt_uapi_set set;

	ck_assert_int_eq(nt_uapi_parse_endpoint(&ep, "[fe80::1%eth0]:51820", 20), 0);
	ck_assert_int_eq(ep.family, AF_INET6);
	ck_assert_uint_eq(ep.port, 51820);
	ck_assert_uint_eq(ep.scope_id, 0);
	ck_assert_str_eq(ep.scope_name, "eth0");
	ck_assert_int_eq(nt_uapi_parse_endpoint(&ep, "[fe80::1%12]:1", 14), 0);
	ck_assert_uint_eq(ep.scope_id, 12);
	ck_assert_str_eq(ep.scope_name, "");
	/* 15 bytes, the longest name */
	ck_assert_int_eq(nt_uapi_parse_endpoint(&ep, "[fe80::1%abcdefghijklmno]:1", 27), 0);
	ck_assert_str_eq(ep.scope_name, "abcdefghijklmno");

	ck_assert_int_eq(parse_str(&set, PEER_A "endpoint=[fe80::1%eth0]:51820\n"), 0);
	ck_assert_str_eq(set.peers[0].endpoint.scope_name, "eth0");
	nt_uapi_set_free(&set);
}
END_TEST

/* A [Peer] given twice: as in the kernel, both sections are kept, in order, for the daemon
 * to apply one after the other to the same peer. Before: the whole request was -EINVAL. */
START_TEST(test_repeated_peers)
{
	struct nt_uapi_set set;

	ck_assert_int_eq(parse_str(&set, PEER_A "allowed_ip=10.0.0.1/32\n" PEER_C "public_key=" HEX_A "\n"
					 "persistent_keepalive_interval=5\nallowed_ip=10.0.0.2/32\n"
					 "public_key=" HEX_C "\nremove=true\n"), 0);
	ck_assert_uint_eq(set.peers_count, 4);
	ck_assert_hex(set.peers[0].public_key, HEX_A);
	ck_assert_hex(set.peers[1].public_key, HEX_C);
	ck_assert_hex(set.peers[2].public_key, HEX_A);
	ck_assert_hex(set.peers[3].public_key, HEX_C);
	ck_assert_uint_eq(set.peers[0].allowed_ips_count, 1);
	ck_assert(!set.peers[0].has_persistent_keepalive);
	ck_assert_uint_eq(set.peers[2].allowed_ips_count, 1);
	ck_assert(set.peers[2].has_persistent_keepalive);
	assert_ip(&set.peers[2].allowed_ips[0], AF_INET, "10.0.0.2", 32);
	ck_assert(!set.peers[1].remove && set.peers[3].remove);
	nt_uapi_set_free(&set);
}
END_TEST

/* ---- nt_uapi_format_set: the inverse of the parser ---- */

static void assert_sets_equal(const struct nt_uapi_set *a, const struct nt_uapi_set *b)
{
	ck_assert_int_eq(a->has_private_key, b->has_private_key);
	if (a->has_private_key)
		ck_assert_mem_eq(a->private_key, b->private_key, 32);
	ck_assert_int_eq(a->has_listen_port, b->has_listen_port);
	if (a->has_listen_port)
		ck_assert_uint_eq(a->listen_port, b->listen_port);
	ck_assert_int_eq(a->has_fwmark, b->has_fwmark);
	if (a->has_fwmark)
		ck_assert_uint_eq(a->fwmark, b->fwmark);
	ck_assert_int_eq(a->replace_peers, b->replace_peers);
	ck_assert_uint_eq(a->peers_count, b->peers_count);
	for (size_t i = 0; i < a->peers_count; i++) {
		const struct nt_uapi_peer *p = &a->peers[i], *q = &b->peers[i];

		ck_assert_mem_eq(p->public_key, q->public_key, 32);
		ck_assert_int_eq(p->remove, q->remove);
		ck_assert_int_eq(p->update_only, q->update_only);
		ck_assert_int_eq(p->has_preshared_key, q->has_preshared_key);
		if (p->has_preshared_key)
			ck_assert_mem_eq(p->preshared_key, q->preshared_key, 32);
		ck_assert_int_eq(p->has_endpoint, q->has_endpoint);
		if (p->has_endpoint) {
			ck_assert_int_eq(p->endpoint.family, q->endpoint.family);
			ck_assert_uint_eq(p->endpoint.port, q->endpoint.port);
			ck_assert_mem_eq(p->endpoint.addr, q->endpoint.addr, 16);
			ck_assert_uint_eq(p->endpoint.scope_id, q->endpoint.scope_id);
			ck_assert_str_eq(p->endpoint.scope_name, q->endpoint.scope_name);
		}
		ck_assert_int_eq(p->has_persistent_keepalive, q->has_persistent_keepalive);
		if (p->has_persistent_keepalive)
			ck_assert_uint_eq(p->persistent_keepalive, q->persistent_keepalive);
		ck_assert_int_eq(p->replace_allowed_ips, q->replace_allowed_ips);
		ck_assert_int_eq(p->has_name, q->has_name);
		if (p->has_name)
			ck_assert_str_eq(p->name, q->name);
		ck_assert_uint_eq(p->allowed_ips_count, q->allowed_ips_count);
		for (size_t j = 0; j < p->allowed_ips_count; j++) {
			ck_assert_int_eq(p->allowed_ips[j].family, q->allowed_ips[j].family);
			ck_assert_int_eq(p->allowed_ips[j].cidr, q->allowed_ips[j].cidr);
			ck_assert_mem_eq(p->allowed_ips[j].addr, q->allowed_ips[j].addr, 16);
		}
	}
}

/* format, parse, compare; the text once more from the parsed set must be the same. */
static void assert_round_trip(const struct nt_uapi_set *set)
{
	size_t len = nt_uapi_format_set(set, NULL, 0), again;
	char *text = malloc(len + 1), *text2;
	struct nt_uapi_set parsed;

	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(nt_uapi_format_set(set, text, len + 1), len);
	ck_assert_uint_eq(strlen(text), len);
	ck_assert_msg(parse(&parsed, text, len) == 0, "the parser refused:\n%s", text);
	assert_sets_equal(set, &parsed);
	again = nt_uapi_format_set(&parsed, NULL, 0);
	ck_assert_uint_eq(again, len);
	text2 = malloc(again + 1);
	ck_assert_ptr_nonnull(text2);
	nt_uapi_format_set(&parsed, text2, again + 1);
	ck_assert_str_eq(text, text2);
	nt_uapi_set_free(&parsed);
	free(text);
	free(text2);
}

static struct nt_uapi_allowed_ip prefix(const char *s)
{
	struct nt_uapi_allowed_ip ip;

	ck_assert_int_eq(nt_uapi_parse_allowed_ip(&ip, s, strlen(s)), 0);
	return ip;
}

static struct nt_uapi_endpoint endpoint(const char *s)
{
	struct nt_uapi_endpoint ep;

	ck_assert_int_eq(nt_uapi_parse_endpoint(&ep, s, strlen(s)), 0);
	return ep;
}

START_TEST(test_format_known_answer)
{
	struct nt_uapi_allowed_ip ips[] = { prefix("10.0.0.0/24"), prefix("fd00::1/128") };
	struct nt_uapi_peer peer = {
		.has_endpoint = true, .endpoint = endpoint("[2001:db8::1%3]:51820"),
		.has_persistent_keepalive = true, .persistent_keepalive = 25,
		.replace_allowed_ips = true, .allowed_ips = ips, .allowed_ips_count = 2,
		.has_name = true, .name = "my laptop",
	};
	struct nt_uapi_set set = { .has_listen_port = true, .listen_port = 51820, .has_fwmark = true,
				   .replace_peers = true, .peers = &peer, .peers_count = 1 };
	const char *want = "listen_port=51820\nfwmark=0\nreplace_peers=true\n" PEER_A
			   "endpoint=[2001:db8::1%3]:51820\npersistent_keepalive_interval=25\n"
			   "replace_allowed_ips=true\nallowed_ip=10.0.0.0/24\nallowed_ip=fd00::1/128\n"
			   "noisetun_name=my laptop\n";
	char buf[512], small[16];

	unhex(peer.public_key, HEX_A);
	ck_assert_uint_eq(nt_uapi_format_set(&set, buf, sizeof(buf)), strlen(want));
	ck_assert_str_eq(buf, want);
	/* snprintf's contract: the whole length, a NUL-terminated prefix */
	ck_assert_uint_eq(nt_uapi_format_set(&set, small, sizeof(small)), strlen(want));
	ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
	ck_assert_mem_eq(small, want, sizeof(small) - 1);
	/* an empty set is an empty body */
	ck_assert_uint_eq(nt_uapi_format_set(&(struct nt_uapi_set){ 0 }, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "");
}
END_TEST

START_TEST(test_format_round_trips)
{
	struct nt_uapi_allowed_ip v4[] = { prefix("10.1.2.3/32"), prefix("10.1.2.0/24"), prefix("0.0.0.0/0") };
	struct nt_uapi_allowed_ip v6[] = { prefix("::/0"), prefix("fd00:1:2::5/64") }; /* host bits kept */
	struct nt_uapi_peer peers[4] = {
		/* keys, psk, v4 endpoint, keepalive, replace with IPs of both families */
		{ .has_preshared_key = true, .has_endpoint = true, .endpoint = endpoint("192.0.2.1:51820"),
		  .has_persistent_keepalive = true, .persistent_keepalive = 65535, .replace_allowed_ips = true,
		  .allowed_ips = v4, .allowed_ips_count = 3, .has_name = true, .name = "a = b # c" },
		/* a PSK of zeros (remove it), v6 endpoint, keepalive 0, added IPs */
		{ .has_preshared_key = true, .has_endpoint = true, .endpoint = endpoint("[::1]:1"),
		  .has_persistent_keepalive = true, .allowed_ips = v6, .allowed_ips_count = 2,
		  .has_name = true }, /* "": clear the name */
		{ .remove = true },
		{ .update_only = true, .replace_allowed_ips = true }, /* replace with nothing */
	};
	struct nt_uapi_set sets[] = {
		{ 0 },
		{ .has_private_key = true },                           /* zeros: remove the key */
		{ .has_private_key = true, .has_listen_port = true, .listen_port = 0, .has_fwmark = true, .fwmark = 0 },
		{ .has_listen_port = true, .listen_port = 65535, .has_fwmark = true, .fwmark = 4294967295u,
		  .replace_peers = true },
		{ .has_fwmark = true, .fwmark = 51820, .peers = peers, .peers_count = 4 },
		{ .replace_peers = true, .peers = peers + 2, .peers_count = 2 },
	};

	unhex(sets[3].private_key, HEX_B);
	unhex(sets[4].private_key, HEX_C);
	sets[4].has_private_key = true;
	unhex(peers[0].public_key, HEX_A);
	unhex(peers[0].preshared_key, HEX_B);
	unhex(peers[1].public_key, HEX_C);
	unhex(peers[2].public_key, HEX_B);
	unhex(peers[3].public_key, HEX_0);
	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++)
		assert_round_trip(&sets[i]);
}
END_TEST

/* Random sets, against the parser as the reference. */
START_TEST(test_format_random)
{
	struct test_rng rng = { 0x5eedf00d };
	static const char *const eps[] = { "203.0.113.9:0", "[fe80::1%4294967295]:65535", "[2001:db8::]:443" };

	for (int round = 0; round < 300; round++) {
		struct nt_uapi_peer peers[6];
		struct nt_uapi_allowed_ip ips[6][5];
		struct nt_uapi_set set = { 0 };
		uint64_t r = test_rand64(&rng);

		memset(peers, 0, sizeof(peers));
		set.has_private_key = r & 1;
		for (int k = 0; k < 32; k++)
			set.private_key[k] = (uint8_t)test_rand64(&rng);
		set.has_listen_port = r & 2;
		set.listen_port = (uint16_t)(r >> 8);
		set.has_fwmark = r & 4;
		set.fwmark = (r & 8) ? 0 : (uint32_t)(r >> 24);
		set.replace_peers = r & 16;
		set.peers = peers;
		set.peers_count = (size_t)(r >> 56) % 7;
		for (size_t i = 0; i < set.peers_count; i++) {
			struct nt_uapi_peer *p = &peers[i];
			uint64_t f = test_rand64(&rng);

			for (int k = 0; k < 32; k++)
				p->public_key[k] = (uint8_t)test_rand64(&rng);
			p->public_key[0] = (uint8_t)i; /* distinct */
			p->remove = f & 1;
			p->update_only = f & 2;
			p->has_preshared_key = f & 4;
			for (int k = 0; k < 32; k++)
				p->preshared_key[k] = (f & 8) ? 0 : (uint8_t)test_rand64(&rng);
			p->has_endpoint = f & 16;
			if (p->has_endpoint)
				p->endpoint = endpoint(eps[(f >> 8) % 3]);
			p->has_persistent_keepalive = f & 32;
			p->persistent_keepalive = (uint16_t)(f >> 16);
			p->replace_allowed_ips = f & 64;
			p->allowed_ips = ips[i];
			p->allowed_ips_count = (size_t)(f >> 40) % 6;
			for (size_t j = 0; j < p->allowed_ips_count; j++) {
				struct nt_uapi_allowed_ip *a = &ips[i][j];
				uint64_t g = test_rand64(&rng);

				memset(a, 0, sizeof(*a));
				a->family = (g & 1) ? AF_INET6 : AF_INET;
				a->cidr = (uint8_t)((g >> 8) % (a->family == AF_INET ? 33 : 129));
				for (int k = 0; k < (a->family == AF_INET ? 4 : 16); k++)
					a->addr[k] = (uint8_t)(g >> (16 + k * 3));
			}
		}
		assert_round_trip(&set);
	}
}
END_TEST

/* ---- get=1 replies (nt_uapi_parse_get: the CLI's and the daemon's one model) ---- */

static const char get_reply[] =
	"private_key=" HEX_A "\n"
	"listen_port=51820\n"
	"fwmark=4660\n"
	"noisetun_up=1\n"
	"noisetun_handshake_jobs_pending=256\n"
	"noisetun_handshake_jobs_discarded=18446744073709551615\n"
	"noisetun_drops_replay=7\n"
	"public_key=" HEX_B "\n"
	"preshared_key=" HEX_0 "\n"
	"protocol_version=1\n"
	"endpoint=[fe80::1%eth0]:51821\n"
	"last_handshake_time_sec=1700000000\n"
	"last_handshake_time_nsec=5\n"
	"rx_bytes=18446744073709551615\n"
	"tx_bytes=0\n"
	"persistent_keepalive_interval=25\n"
	"allowed_ip=10.0.0.0/8\n"
	"allowed_ip=::/0\n"
	"noisetun_name=laptop\n"
	"noisetun_handshakes=3\n"
	"some_future_key=whatever\n"
	"public_key=" HEX_C "\n"
	"preshared_key=" HEX_B "\n"
	"noisetun_name=bad\x01name\n"
	"noisetun_handshake_jobs_pending=9\n" /* a device key in a peer's block: not the device's */
	"errno=0\n"
	"\n";

START_TEST(test_get_reply)
{
	struct nt_uapi_device dev;
	uint8_t key[32];

	ck_assert_int_eq(nt_uapi_parse_get(&dev, get_reply, strlen(get_reply)), 0);
	ck_assert(dev.has_private_key && dev.has_public_key);
	nt_key_from_hex(key, HEX_A);
	ck_assert_mem_eq(dev.private_key, key, 32);
	ck_assert_uint_eq(dev.listen_port, 51820);
	ck_assert_uint_eq(dev.fwmark, 4660);
	ck_assert(dev.metrics.up);
	ck_assert_uint_eq(dev.metrics.handshake_jobs_pending, 256);
	ck_assert(dev.metrics.handshake_jobs_discarded == UINT64_MAX);
	ck_assert_uint_eq(dev.metrics.drops_count, 1);
	ck_assert_str_eq(dev.metrics.drop_reasons[0], "replay");
	ck_assert_uint_eq(dev.metrics.drops[0], 7);
	ck_assert_uint_eq(dev.peers_count, 2);
	nt_key_from_hex(key, HEX_B);
	ck_assert_mem_eq(dev.peers[0].public_key, key, 32);
	ck_assert(!dev.peers[0].has_preshared_key); /* all zeros: none */
	ck_assert(dev.peers[0].has_endpoint);
	ck_assert_str_eq(dev.peers[0].endpoint.scope_name, "eth0");
	ck_assert_uint_eq(dev.peers[0].endpoint.port, 51821);
	ck_assert_int_eq(dev.peers[0].last_handshake_sec, 1700000000);
	ck_assert_int_eq(dev.peers[0].last_handshake_nsec, 5);
	ck_assert(dev.peers[0].rx_bytes == UINT64_MAX);
	ck_assert_uint_eq(dev.peers[0].persistent_keepalive, 25);
	ck_assert_uint_eq(dev.peers[0].allowed_ips_count, 2);
	ck_assert_uint_eq(dev.peers[0].allowed_ips[0].cidr, 8);
	ck_assert_uint_eq(dev.peers[0].allowed_ips[1].family, AF_INET6);
	ck_assert_str_eq(dev.peers[0].name, "laptop");
	ck_assert_uint_eq(dev.peers[0].metrics.handshakes, 3);
	ck_assert(dev.peers[1].has_preshared_key);
	ck_assert_str_eq(dev.peers[1].name, ""); /* not a valid name: left out */
	nt_uapi_device_free(&dev);
	ck_assert_uint_eq(dev.peers_count, 0);
	ck_assert_ptr_null(dev.peers);
}
END_TEST

/* The daemon's error, and every way a reply may be bad: refused whole, nothing kept. */
static const struct {
	const char *reply;
	int ret;
} get_cases[] = {
	{ "errno=-22\n\n", -22 },
	{ "errno=19\n\n", -19 },
	{ "errno=0\n\n", 0 },
	{ "listen_port=1\nerrno=-95\n\n", -95 },
	{ "", -EPROTO },                                  /* nothing */
	{ "\n", -EPROTO },                                /* no errno line */
	{ "errno=0\n", -EPROTO },                         /* cut short */
	{ "listen_port=1\n", -EPROTO },
	{ "errno=0\nlisten_port=1\n\n", -EPROTO },        /* a line after errno */
	{ "errno=0\n\nlisten_port=1\n", -EPROTO },        /* bytes after the reply */
	{ "errno=x\n\n", -EPROTO },
	{ "errno=\n\n", -EPROTO },
	{ "errno=-\n\n", -EPROTO },
	{ "errno=99999999999\n\n", -EPROTO },
	{ "listen_port\nerrno=0\n\n", -EPROTO },          /* no '=' */
	{ "listen_port=65536\nerrno=0\n\n", -EPROTO },
	{ "listen_port=-1\nerrno=0\n\n", -EPROTO },
	{ "fwmark=4294967296\nerrno=0\n\n", -EPROTO },
	{ "private_key=" HEX_A "0\nerrno=0\n\n", -EPROTO },
	{ "private_key=zz\nerrno=0\n\n", -EPROTO },
	{ "public_key=" HEX_A "\nendpoint=1.2.3.4\nerrno=0\n\n", -EPROTO },
	{ "public_key=" HEX_A "\nallowed_ip=1.2.3.4/33\nerrno=0\n\n", -EPROTO },
	{ "public_key=" HEX_A "\nrx_bytes=18446744073709551616\nerrno=0\n\n", -EPROTO },
	{ "noisetun_drops_=1\nerrno=0\n\n", -EPROTO },
	{ "noisetun_drops_Bad=1\nerrno=0\n\n", -EPROTO },
	{ "noisetun_drops_a_label_longer_than_thirty_one_x=1\nerrno=0\n\n", -EPROTO },
	{ "noisetun_up=yes\nerrno=0\n\n", -EPROTO },
	{ "noisetun_handshake_jobs_pending=-1\nerrno=0\n\n", -EPROTO },
	{ "noisetun_handshake_jobs_discarded=18446744073709551616\nerrno=0\n\n", -EPROTO },
};

START_TEST(test_get_bad_replies)
{
	struct nt_uapi_device dev;
	const char *r = get_cases[_i].reply;

	ck_assert_msg(nt_uapi_parse_get(&dev, r, strlen(r)) == get_cases[_i].ret, "reply %d", _i);
	if (get_cases[_i].ret) {
		ck_assert_uint_eq(dev.peers_count, 0);
		ck_assert(!dev.has_private_key && !dev.listen_port);
	}
	nt_uapi_device_free(&dev);
}
END_TEST

START_TEST(test_get_long_line)
{
	char reply[2 * NT_UAPI_GET_MAX_LINE];
	struct nt_uapi_device dev;
	int n;

	/* an unknown key is skipped, but not past the line bound */
	n = snprintf(reply, sizeof(reply), "x=%0*d\nerrno=0\n\n", NT_UAPI_GET_MAX_LINE - 2, 0);
	ck_assert_int_eq(nt_uapi_parse_get(&dev, reply, (size_t)n), 0);
	nt_uapi_device_free(&dev);
	n = snprintf(reply, sizeof(reply), "x=%0*d\nerrno=0\n\n", NT_UAPI_GET_MAX_LINE - 1, 0);
	ck_assert_int_eq(nt_uapi_parse_get(&dev, reply, (size_t)n), -EPROTO);
	nt_uapi_device_free(&dev);
}
END_TEST

/* Many peers and allowed IPs: the arrays grow as they must (ASan checks the copies). */
START_TEST(test_get_many_peers)
{
	size_t cap = 300 * 200 + 64, len = 0;
	char *reply = malloc(cap);
	struct nt_uapi_device dev;

	ck_assert_ptr_nonnull(reply);
	for (int i = 0; i < 300; i++) {
		len += (size_t)snprintf(reply + len, cap - len, "public_key=%064x\n", i);
		for (int j = 0; j < i % 7; j++)
			len += (size_t)snprintf(reply + len, cap - len, "allowed_ip=10.%d.%d.0/24\n", i % 256, j);
	}
	len += (size_t)snprintf(reply + len, cap - len, "errno=0\n\n");
	ck_assert_int_eq(nt_uapi_parse_get(&dev, reply, len), 0);
	ck_assert_uint_eq(dev.peers_count, 300);
	ck_assert_uint_eq(dev.peers[299].public_key[31], 299 & 0xff);
	ck_assert_uint_eq(dev.peers[299].public_key[30], 299 >> 8);
	ck_assert_uint_eq(dev.peers[299].allowed_ips_count, 299 % 7);
	nt_uapi_device_free(&dev);
	free(reply);
}
END_TEST

START_TEST(test_set_reply)
{
	ck_assert_int_eq(nt_uapi_parse_set_reply("errno=0\n\n", 9), 0);
	ck_assert_int_eq(nt_uapi_parse_set_reply("errno=-22\n\n", 11), -22);
	ck_assert_int_eq(nt_uapi_parse_set_reply("errno=0\n", 8), -EPROTO);
	ck_assert_int_eq(nt_uapi_parse_set_reply("errno=0\n\nx", 10), -EPROTO);
	ck_assert_int_eq(nt_uapi_parse_set_reply("listen_port=1\nerrno=0\n\n", 23), -EPROTO);
	ck_assert_int_eq(nt_uapi_parse_set_reply("errno=0x\n\n", 10), -EPROTO);
	ck_assert_int_eq(nt_uapi_parse_set_reply("", 0), -EPROTO);
}
END_TEST

/* The CLI's request, as wg writes it: a removed peer alone; names left out on demand. */
START_TEST(test_format_flags)
{
	struct nt_uapi_allowed_ip ip = { .family = AF_INET, .cidr = 32, .addr = { 10, 0, 0, 1 } };
	struct nt_uapi_peer peers[2] = { { .remove = true, .has_persistent_keepalive = true, .persistent_keepalive = 5,
					   .has_name = true, .name = "gone" },
					 { .has_name = true, .name = "kept", .allowed_ips = &ip, .allowed_ips_count = 1 } };
	struct nt_uapi_set set = { .peers = peers, .peers_count = 2 }, back;
	char buf[1024], plain[1024];
	size_t n;

	memset(peers[0].public_key, 0xaa, 32);
	memset(peers[1].public_key, 0xc0, 32);
	n = nt_uapi_format_set_flags(&set, NT_UAPI_FORMAT_WG, buf, sizeof(buf));
	ck_assert_str_eq(buf, "public_key=" HEX_A "\nremove=true\n"
			      "public_key=c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0\n"
			      "allowed_ip=10.0.0.1/32\nnoisetun_name=kept\n");
	ck_assert_uint_eq(n, strlen(buf));
	ck_assert_int_eq(nt_uapi_parse_set(&back, buf, n), 0);
	ck_assert(back.peers[0].remove && !back.peers[0].has_persistent_keepalive && !back.peers[0].has_name);
	nt_uapi_set_free(&back);
	nt_uapi_format_set_flags(&set, NT_UAPI_FORMAT_WG | NT_UAPI_FORMAT_NO_NAMES, buf, sizeof(buf));
	ck_assert_ptr_null(strstr(buf, "noisetun_name"));
	/* 0: the same bytes as nt_uapi_format_set */
	nt_uapi_format_set(&set, plain, sizeof(plain));
	nt_uapi_format_set_flags(&set, 0, buf, sizeof(buf));
	ck_assert_str_eq(buf, plain);
	ck_assert_ptr_nonnull(strstr(plain, "persistent_keepalive_interval=5"));
}
END_TEST

/* ---- the one config writer (nt_uapi_format_config) ---- */

static void config_model(struct nt_uapi_device *dev, struct nt_uapi_device_peer peers[2],
			 struct nt_uapi_allowed_ip ips[2])
{
	memset(dev, 0, sizeof(*dev));
	memset(peers, 0, 2 * sizeof(*peers));
	ips[0] = (struct nt_uapi_allowed_ip){ .family = AF_INET, .cidr = 24, .addr = { 10, 1, 2, 0 } };
	ips[1] = (struct nt_uapi_allowed_ip){ .family = AF_INET6, .cidr = 64, .addr = { 0xfd, 0, 0, 0, 0, 0, 0, 1 } };
	dev->listen_port = 51820;
	dev->fwmark = 0x1234;
	dev->has_private_key = true;
	nt_key_from_hex(dev->private_key, HEX_A);
	dev->peers = peers;
	dev->peers_count = 2;
	nt_key_from_hex(peers[0].public_key, HEX_B);
	snprintf(peers[0].name, sizeof(peers[0].name), "laptop one");
	peers[0].has_preshared_key = true;
	nt_key_from_hex(peers[0].preshared_key, HEX_C);
	peers[0].allowed_ips = ips;
	peers[0].allowed_ips_count = 2;
	peers[0].has_endpoint = true;
	ck_assert_int_eq(nt_uapi_parse_endpoint(&peers[0].endpoint, "192.0.2.1:51821", 15), 0);
	peers[0].persistent_keepalive = 25;
	nt_key_from_hex(peers[1].public_key, HEX_C);
	peers[1].has_preshared_key = true; /* all zeros: not written */
}

#define B64_A "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqo="
#define B64_B "ASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4mrze8="
#define B64_C "wP/uAMD/7gDA/+4AwP/uAMD/7gDA/+4AwP/uAMD/7gA="

START_TEST(test_config_known_answer)
{
	static const char device_part[] =
		"ListenPort = 51820\n"
		"FwMark = 0x1234\n"
		"PrivateKey = " B64_A "\n"
		"\n[Peer]\n"
		"# friendly_name = laptop one\n"
		"PublicKey = " B64_B "\n"
		"PresharedKey = " B64_C "\n"
		"AllowedIPs = 10.1.2.0/24, fd00:0:0:1::/64\n"
		"Endpoint = 192.0.2.1:51821\n"
		"PersistentKeepalive = 25\n"
		"\n[Peer]\n"
		"PublicKey = " B64_C "\n";
	struct nt_uapi_device dev;
	struct nt_uapi_device_peer peers[2];
	struct nt_uapi_allowed_ip ips[2];
	char buf[2048];
	size_t n;

	config_model(&dev, peers, ips);
	n = nt_uapi_format_config(&dev, 0, NULL, buf, sizeof(buf));
	ck_assert_str_eq(buf, device_part);
	ck_assert_uint_eq(n, strlen(device_part));
	/* as wg showconf: [Interface] first; snprintf-like when short */
	n = nt_uapi_format_config(&dev, NT_UAPI_CONFIG_SHOWCONF, NULL, buf, sizeof(buf));
	ck_assert_uint_eq(n, strlen("[Interface]\n") + strlen(device_part));
	ck_assert(!strncmp(buf, "[Interface]\n", 12) && !strcmp(buf + 12, device_part));
	ck_assert_uint_eq(nt_uapi_format_config(&dev, NT_UAPI_CONFIG_SHOWCONF, NULL, buf, 10), n);
	ck_assert_str_eq(buf, "[Interfac");
	ck_assert_uint_eq(nt_uapi_format_config(&dev, NT_UAPI_CONFIG_SHOWCONF, NULL, NULL, 0), n);
	/* no peer: wg showconf still ends the [Interface] with a blank line */
	dev.peers_count = 0;
	dev.has_private_key = false;
	dev.fwmark = 0;
	nt_uapi_format_config(&dev, NT_UAPI_CONFIG_SHOWCONF, NULL, buf, sizeof(buf));
	ck_assert_str_eq(buf, "[Interface]\nListenPort = 51820\n\n");
	nt_uapi_format_config(&dev, 0, NULL, buf, sizeof(buf));
	ck_assert_str_eq(buf, "ListenPort = 51820\n");
	/* a name that is not valid (it came from another process) is not written */
	dev.peers_count = 1;
	memset(peers[0].name, 'x', sizeof(peers[0].name)); /* unterminated */
	nt_uapi_format_config(&dev, 0, NULL, buf, sizeof(buf));
	ck_assert_ptr_null(strstr(buf, "friendly_name"));
	snprintf(peers[0].name, sizeof(peers[0].name), "tab\there");
	nt_uapi_format_config(&dev, 0, NULL, buf, sizeof(buf));
	ck_assert_ptr_null(strstr(buf, "friendly_name"));
}
END_TEST

/* parse(format(x)) == x: what the writer writes, wg setconf's parser reads back the same. */
START_TEST(test_config_round_trip)
{
	struct nt_uapi_device dev;
	struct nt_uapi_device_peer peers[2];
	struct nt_uapi_allowed_ip ips[2];
	struct nt_config cfg;
	struct nt_config_error err;
	char buf[2048];
	size_t n;

	config_model(&dev, peers, ips);
	n = nt_uapi_format_config(&dev, NT_UAPI_CONFIG_SHOWCONF, NULL, buf, sizeof(buf));
	ck_assert_int_eq(nt_config_parse(&cfg, buf, n, NT_CONFIG_WG_ONLY, &err), 0);
	ck_assert(cfg.has_listen_port && cfg.listen_port == dev.listen_port);
	ck_assert(cfg.has_fwmark && cfg.fwmark == dev.fwmark);
	ck_assert(cfg.has_private_key && !memcmp(cfg.private_key, dev.private_key, 32));
	ck_assert_uint_eq(cfg.peers_count, 2);
	for (size_t i = 0; i < 2; i++) {
		const struct nt_config_peer *p = &cfg.peers[i];

		ck_assert_mem_eq(p->public_key, peers[i].public_key, 32);
		ck_assert_uint_eq(p->allowed_ips_count, peers[i].allowed_ips_count);
		for (size_t j = 0; j < p->allowed_ips_count; j++)
			ck_assert_mem_eq(&p->allowed_ips[j], &peers[i].allowed_ips[j], sizeof(p->allowed_ips[j]));
		ck_assert(p->has_endpoint == peers[i].has_endpoint);
	}
	ck_assert_str_eq(cfg.peers[0].name, "laptop one");
	ck_assert(cfg.peers[0].has_preshared_key && !memcmp(cfg.peers[0].preshared_key, peers[0].preshared_key, 32));
	ck_assert_str_eq(cfg.peers[0].endpoint_host, "192.0.2.1");
	ck_assert_uint_eq(cfg.peers[0].endpoint_port, 51821);
	ck_assert(cfg.peers[0].has_persistent_keepalive && cfg.peers[0].persistent_keepalive == 25);
	ck_assert(!cfg.peers[1].has_preshared_key && !cfg.peers[1].name);
	nt_config_free(&cfg);
}
END_TEST

/* ---- config to set (nt_config_to_set: the CLI's setconf/addconf/syncconf and config
 * mode's up and reload) ---- */

static const char to_set_file[] =
	"[Interface]\n"
	"PrivateKey = " B64_A "\n"
	"ListenPort = 51820\n"
	"[Peer]\n"
	"# friendly_name = one\n"
	"PublicKey = " B64_B "\n"
	"PresharedKey = " B64_C "\n"
	"AllowedIPs = 10.0.0.1/32, 10.0.1.0/24\n"
	"Endpoint = 192.0.2.1:51821\n"
	"PersistentKeepalive = 25\n"
	"[Peer]\n"
	"PublicKey = " B64_C "\n";

static void to_set_config(struct nt_config *cfg, struct nt_uapi_endpoint eps[2])
{
	struct nt_config_error err;

	ck_assert_int_eq(nt_config_parse(cfg, to_set_file, strlen(to_set_file), NT_CONFIG_WG_ONLY, &err), 0);
	memset(eps, 0, 2 * sizeof(*eps));
	ck_assert_int_eq(nt_uapi_parse_endpoint(&eps[0], "192.0.2.1:51821", 15), 0);
}

START_TEST(test_to_set_setconf)
{
	struct nt_uapi_endpoint eps[2];
	struct nt_uapi_set set, back;
	struct nt_config cfg;
	char buf[2048];
	size_t n;

	to_set_config(&cfg, eps);
	ck_assert_int_eq(nt_config_to_set(&set, &cfg, eps, NULL, NT_CONFIG_SET_WG | NT_CONFIG_SET_REPLACE_PEERS), 0);
	ck_assert(set.replace_peers && set.has_private_key && set.has_listen_port && set.listen_port == 51820);
	ck_assert(set.has_fwmark && set.fwmark == 0); /* absent: none, as wg setconf */
	ck_assert_mem_eq(set.private_key, cfg.private_key, 32);
	ck_assert_uint_eq(set.peers_count, 2);
	ck_assert(set.peers[0].has_name && !strcmp(set.peers[0].name, "one"));
	ck_assert(set.peers[0].has_preshared_key && set.peers[0].has_persistent_keepalive);
	ck_assert_uint_eq(set.peers[0].persistent_keepalive, 25);
	ck_assert(set.peers[0].replace_allowed_ips && set.peers[0].allowed_ips == cfg.peers[0].allowed_ips);
	ck_assert(set.peers[0].has_endpoint && set.peers[0].endpoint.port == 51821);
	ck_assert(!set.peers[1].has_name && !set.peers[1].has_preshared_key && !set.peers[1].has_endpoint);
	ck_assert(!set.peers[1].has_persistent_keepalive && set.peers[1].replace_allowed_ips);
	/* what it stands for goes through the one formatter and back */
	n = nt_uapi_format_set(&set, buf, sizeof(buf));
	ck_assert_int_eq(nt_uapi_parse_set(&back, buf, n), 0);
	ck_assert(back.replace_peers && back.peers_count == 2 && back.peers[0].allowed_ips_count == 2);
	nt_uapi_set_free(&back);
	nt_config_set_free(&set);
	ck_assert(set.peers == NULL && set.peers_count == 0);
	/* addconf, config mode's up: only what the file has */
	ck_assert_int_eq(nt_config_to_set(&set, &cfg, NULL, NULL, 0), 0);
	ck_assert(!set.replace_peers && set.has_private_key && set.has_listen_port && !set.has_fwmark);
	ck_assert(!set.peers[0].has_endpoint); /* no eps: none resolved */
	nt_config_set_free(&set);
	nt_config_free(&cfg);
}
END_TEST

START_TEST(test_to_set_syncconf)
{
	struct nt_uapi_device_peer running[3];
	struct nt_uapi_device cur = { .peers = running, .peers_count = 3, .listen_port = 51820, .fwmark = 7 };
	struct nt_uapi_endpoint eps[2];
	struct nt_uapi_set set;
	struct nt_config cfg;

	to_set_config(&cfg, eps);
	memset(running, 0, sizeof(running));
	/* running: a peer the file lacks, the file's second peer with a name, the first */
	memset(running[0].public_key, 0x55, 32);
	memcpy(running[1].public_key, cfg.peers[1].public_key, 32);
	snprintf(running[1].name, sizeof(running[1].name), "old name");
	memcpy(running[2].public_key, cfg.peers[0].public_key, 32);
	cur.has_private_key = true;
	memcpy(cur.private_key, cfg.private_key, 32);
	nt_key_clamp(cur.private_key); /* the device keeps it clamped: the same key */

	ck_assert_int_eq(nt_config_to_set(&set, &cfg, eps, &cur, NT_CONFIG_SET_WG), 0);
	ck_assert(!set.has_private_key);            /* unchanged: not sent again */
	ck_assert(!set.has_listen_port);            /* unchanged */
	ck_assert(set.has_fwmark && set.fwmark == 0); /* the file has none, the device 7 */
	ck_assert(!set.replace_peers);
	ck_assert_uint_eq(set.peers_count, 3);
	ck_assert(set.peers[0].remove && set.peers[0].public_key[0] == 0x55); /* removals first */
	ck_assert_mem_eq(set.peers[1].public_key, cfg.peers[0].public_key, 32);
	ck_assert_mem_eq(set.peers[2].public_key, cfg.peers[1].public_key, 32);
	/* a key or keepalive the file lacks goes away (zeros) */
	ck_assert(set.peers[2].has_preshared_key && nt_is_zero(set.peers[2].preshared_key, 32));
	ck_assert(set.peers[2].has_persistent_keepalive && set.peers[2].persistent_keepalive == 0);
	/* the running name the file lacks is removed; the named file peer keeps its own */
	ck_assert(set.peers[2].has_name && set.peers[2].name[0] == '\0');
	ck_assert(set.peers[1].has_name && !strcmp(set.peers[1].name, "one"));
	nt_config_set_free(&set);

	/* a device without names is not sent any; a new private key is sent */
	running[1].name[0] = '\0';
	cur.private_key[5] ^= 1;
	ck_assert_int_eq(nt_config_to_set(&set, &cfg, eps, &cur, NT_CONFIG_SET_ABSENT_KEY), 0);
	ck_assert(!set.peers[2].has_name);
	ck_assert(set.has_private_key && !set.has_fwmark); /* config mode: no FwMark, none sent */
	nt_config_set_free(&set);
	nt_config_free(&cfg);
}
END_TEST

static Suite *uapi_suite(void)
{
	Suite *s = suite_create("uapi");
	TCase *good = tcase_create("good requests");
	TCase *bad = tcase_create("bad requests");
	TCase *robust = tcase_create("robustness");
	TCase *addr = tcase_create("addresses");
	TCase *format = tcase_create("format");

	tcase_add_test(good, test_empty_body);
	tcase_add_test(good, test_device_keys);
	tcase_add_test(good, test_peer_keys);
	tcase_add_test(good, test_replace_allowed_ips_midway);
	tcase_add_test(good, test_longest_line);
	tcase_add_test(good, test_peer_name);
	suite_add_tcase(s, good);

	tcase_add_loop_test(bad, test_bad_bodies, 0, (int)(sizeof(bad_bodies) / sizeof(bad_bodies[0])));
	tcase_add_test(bad, test_huge_line);
	suite_add_tcase(s, bad);

	tcase_set_timeout(robust, 300); /* valgrind runs these about 50 times slower */
	tcase_add_test(robust, test_every_truncation);
	tcase_add_test(robust, test_every_byte_mutation);
	tcase_add_test(robust, test_big_request);
	suite_add_tcase(s, robust);

	tcase_add_test(addr, test_parse_allowed_ip);
	tcase_add_test(addr, test_endpoint_round_trip);
	tcase_add_test(addr, test_scope_names);
	tcase_add_test(addr, test_repeated_peers);
	suite_add_tcase(s, addr);

	tcase_add_test(format, test_format_known_answer);
	tcase_add_test(format, test_format_round_trips);
	tcase_add_test(format, test_format_random);
	tcase_add_test(format, test_noisetun_lifecycle_keys);
	tcase_add_test(format, test_noisetun_mss_clamp_key);
	tcase_add_test(format, test_format_flags);
	suite_add_tcase(s, format);

	TCase *get = tcase_create("get");
	tcase_add_test(get, test_get_reply);
	tcase_add_loop_test(get, test_get_bad_replies, 0, (int)(sizeof(get_cases) / sizeof(get_cases[0])));
	tcase_add_test(get, test_get_long_line);
	tcase_add_test(get, test_get_many_peers);
	tcase_add_test(get, test_set_reply);
	suite_add_tcase(s, get);

	TCase *config = tcase_create("config");
	tcase_add_test(config, test_config_known_answer);
	tcase_add_test(config, test_config_round_trip);
	tcase_add_test(config, test_to_set_setconf);
	tcase_add_test(config, test_to_set_syncconf);
	suite_add_tcase(s, config);
	return s;
}

int main(void)
{
	return run_suite(uapi_suite());
}
