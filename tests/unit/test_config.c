/* Config parser (lib/config.c): every key with its accepted forms, comments, whitespace and
 * case rules, last-wins duplicates, a numbered table of bad lines each with its exact
 * message and line, WG_ONLY mode, the strip filter, every truncation and single-byte
 * mutation of a full config (each on an exactly sized heap copy, for ASan). */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "noisetun/config.h"
#include "noisetun/encoding.h"

#include "util.h"

#define PRIV_A "yFxSy/c3mPGMLtn52cSC8OpfBVeWoJP43oyQyL2OWk0="
#define PUB_A "71ijKzQYRpA6TEOHXexD5mXTm7ddWZKd6yHUM8Q2ino="
#define PUB_B "LtfmRwrCloKVN2DqAwOrOJPvhhi9JwoE75GWjGdM5Fc="
#define PUB_C "LH3eS/tnwxKmpuaLH923baZt5D8ar4Fp94nQfkUTtFg="
#define PUB_D "R78jtzByt7l1X1YmBXEy0368stubWGNMp6Wli0D51hc="
#define PSK "wTGpamKc3+lSkJPGdzVbUL2LhgDOjva4M0sLU95iJXU="

/* Every key at least once, with comments and odd spacing. */
static const char full_config[] =
	"# site A\n"
	"[Interface]\n"
	"PrivateKey = " PRIV_A "\n"
	"ListenPort = 51820\n"
	"FwMark = 0x1234\n"
	"Address = 10.0.0.1/24, fd00::1/64\n"
	"Address = 10.0.1.1\n"
	"DNS = 192.0.2.53, 2001:db8::53 example.com\n"
	"MTU = 1420\n"
	"Table = 1234\n"
	"PreUp = echo pre-up %i\n"
	"PostUp = iptables -A FORWARD -i %i -j ACCEPT; echo '#not a comment' = x\n"
	"PostUp = echo second\n"
	"PreDown = echo pre-down\n"
	"PostDown = echo post-down\n"
	"SaveConfig = true\n"
	"\n"
	"[Peer]  # site B\n"
	"PublicKey = " PUB_B "\n"
	"PresharedKey = " PSK "\n"
	"AllowedIPs = 10.0.0.2/32 , fd00::2/128,10.9.0.0/16\n"
	"AllowedIPs = 192.168.0.0/16\n"
	"Endpoint = 192.0.2.2:51821\n"
	"PersistentKeepalive = 25\n"
	"\n"
	"[Peer]\n"
	"PublicKey = " PUB_C "\n"
	"Endpoint = [2001:db8::2]:51822\n"
	"AllowedIPs = 0.0.0.0/0, ::/0\n";

static int parse(struct nt_config *cfg, const char *text, size_t len, int flags, struct nt_config_error *err)
{
	char *copy = malloc(len ? len : 1);
	int ret;

	ck_assert_ptr_nonnull(copy);
	memcpy(copy, text, len);
	memset(cfg, 0xa5, sizeof(*cfg)); /* out need not be initialised */
	ret = nt_config_parse(cfg, copy, len, flags, err);
	free(copy);
	return ret;
}

static int parse_str(struct nt_config *cfg, const char *text, struct nt_config_error *err)
{
	return parse(cfg, text, strlen(text), NT_CONFIG_WG_QUICK, err);
}

static bool config_is_empty(const struct nt_config *cfg)
{
	static const struct nt_config zero;

	return !memcmp(cfg, &zero, sizeof(zero));
}

static void assert_prefix(const struct nt_uapi_allowed_ip *ip, int family, const char *addr, int cidr)
{
	uint8_t want[16] = { 0 };

	ck_assert_int_eq(ip->family, family);
	ck_assert_int_eq(ip->cidr, cidr);
	ck_assert_int_eq(inet_pton(family, addr, want), 1);
	ck_assert_mem_eq(ip->addr, want, 16);
}

static void assert_address(const struct nt_config_address *a, int family, const char *addr, int cidr)
{
	uint8_t want[16] = { 0 };

	ck_assert_int_eq(a->family, family);
	ck_assert_int_eq(a->cidr, cidr);
	ck_assert_int_eq(inet_pton(family, addr, want), 1);
	ck_assert_mem_eq(a->addr, want, 16);
}

static void assert_key(const uint8_t key[32], const char *b64)
{
	uint8_t want[32];

	ck_assert_int_eq(nt_key_from_base64(want, b64), 0);
	ck_assert_mem_eq(key, want, 32);
}

START_TEST(every_key)
{
	struct nt_config cfg;
	struct nt_config_error err;

	ck_assert_int_eq(parse_str(&cfg, full_config, &err), 0);
	ck_assert(cfg.has_private_key);
	assert_key(cfg.private_key, PRIV_A);
	ck_assert(cfg.has_listen_port);
	ck_assert_uint_eq(cfg.listen_port, 51820);
	ck_assert(cfg.has_fwmark);
	ck_assert_uint_eq(cfg.fwmark, 0x1234);

	ck_assert_uint_eq(cfg.addresses_count, 3);
	assert_address(&cfg.addresses[0], AF_INET, "10.0.0.1", 24);
	assert_address(&cfg.addresses[1], AF_INET6, "fd00::1", 64);
	assert_address(&cfg.addresses[2], AF_INET, "10.0.1.1", 32);
	ck_assert_uint_eq(cfg.dns_count, 3);
	ck_assert_str_eq(cfg.dns[0], "192.0.2.53");
	ck_assert_str_eq(cfg.dns[1], "2001:db8::53");
	ck_assert_str_eq(cfg.dns[2], "example.com");
	ck_assert(cfg.has_mtu);
	ck_assert_uint_eq(cfg.mtu, 1420);
	ck_assert_int_eq(cfg.table, NT_TABLE_ID);
	ck_assert_uint_eq(cfg.table_id, 1234);
	ck_assert_uint_eq(cfg.pre_up_count, 1);
	ck_assert_str_eq(cfg.pre_up[0], "echo pre-up %i");
	ck_assert_uint_eq(cfg.post_up_count, 2);
	ck_assert_str_eq(cfg.post_up[0], "iptables -A FORWARD -i %i -j ACCEPT; echo '#not a comment' = x");
	ck_assert_str_eq(cfg.post_up[1], "echo second");
	ck_assert_uint_eq(cfg.pre_down_count, 1);
	ck_assert_str_eq(cfg.pre_down[0], "echo pre-down");
	ck_assert_uint_eq(cfg.post_down_count, 1);
	ck_assert_str_eq(cfg.post_down[0], "echo post-down");
	ck_assert(cfg.save_config);

	ck_assert_uint_eq(cfg.peers_count, 2);
	struct nt_config_peer *b = &cfg.peers[0], *c = &cfg.peers[1];
	ck_assert_uint_eq(b->line, 18);
	assert_key(b->public_key, PUB_B);
	ck_assert(b->has_preshared_key);
	assert_key(b->preshared_key, PSK);
	ck_assert_uint_eq(b->allowed_ips_count, 4);
	assert_prefix(&b->allowed_ips[0], AF_INET, "10.0.0.2", 32);
	assert_prefix(&b->allowed_ips[1], AF_INET6, "fd00::2", 128);
	assert_prefix(&b->allowed_ips[2], AF_INET, "10.9.0.0", 16);
	assert_prefix(&b->allowed_ips[3], AF_INET, "192.168.0.0", 16);
	ck_assert(b->has_endpoint);
	ck_assert_str_eq(b->endpoint_host, "192.0.2.2");
	ck_assert_uint_eq(b->endpoint_port, 51821);
	ck_assert_uint_eq(b->endpoint_line, 23);
	ck_assert(b->has_persistent_keepalive);
	ck_assert_uint_eq(b->persistent_keepalive, 25);

	ck_assert_uint_eq(c->line, 26);
	assert_key(c->public_key, PUB_C);
	ck_assert(!c->has_preshared_key);
	ck_assert(!c->has_persistent_keepalive);
	ck_assert_str_eq(c->endpoint_host, "2001:db8::2");
	ck_assert_uint_eq(c->endpoint_port, 51822);
	ck_assert_uint_eq(c->allowed_ips_count, 2);
	assert_prefix(&c->allowed_ips[0], AF_INET, "0.0.0.0", 0);
	assert_prefix(&c->allowed_ips[1], AF_INET6, "::", 0);
	nt_config_free(&cfg);
	ck_assert(config_is_empty(&cfg));
	nt_config_free(&cfg); /* safe twice */
}
END_TEST

START_TEST(empty_and_comments)
{
	static const char *const texts[] = {
		"", "\n", "\n\n\n", "# only a comment", "   \t  \r\n", "#[Peer]\n# PublicKey = x\n",
		"[Interface]\n", "[Interface]\n# nothing\n\n",
	};
	struct nt_config cfg;
	struct nt_config_error err;

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		ck_assert_msg(parse_str(&cfg, texts[i], &err) == 0, "text %zu: %s", i, err.message);
		ck_assert(config_is_empty(&cfg));
		nt_config_free(&cfg);
	}
}
END_TEST

/* wg removes every whitespace character from a line: inside keys, values, section names. */
START_TEST(whitespace_as_wg)
{
	struct nt_config cfg;
	struct nt_config_error err;
	const char *text = "\t[ Inter face ]\r\n"
			   "  Listen Port\t=  5 18 20 # the port\r\n"
			   "Private Key=" PRIV_A "\r\n"
			   "[Peer]\r\n"
			   "PublicKey =\t" PUB_B "\t\r\n"
			   "Allowed IPs = 10.0.0.1 / 32 ,\tfd00::1/128\r\n"
			   "Endpoint = host.example : 51820\r\n";

	ck_assert_int_eq(parse_str(&cfg, text, &err), 0);
	ck_assert_uint_eq(cfg.listen_port, 51820);
	assert_key(cfg.private_key, PRIV_A);
	ck_assert_uint_eq(cfg.peers[0].allowed_ips_count, 2);
	assert_prefix(&cfg.peers[0].allowed_ips[0], AF_INET, "10.0.0.1", 32);
	ck_assert_str_eq(cfg.peers[0].endpoint_host, "host.example");
	nt_config_free(&cfg);

	/* Hooks keep inner whitespace and '#'; only the ends are trimmed (CR included). */
	ck_assert_int_eq(parse_str(&cfg, "[Interface]\nPostUp =   a  b\t# c = d  \r\n", &err), 0);
	ck_assert_str_eq(cfg.post_up[0], "a  b\t# c = d");
	nt_config_free(&cfg);

	/* Address and DNS split on commas and whitespace, as wg-quick's word splitting. */
	ck_assert_int_eq(parse_str(&cfg, "[Interface]\nAddress = 10.0.0.1/24 10.0.0.2/24,,fd00::1/64 # x\n"
					 "DNS = 1.1.1.1 ,8.8.8.8 search.example\n", &err), 0);
	ck_assert_uint_eq(cfg.addresses_count, 3);
	ck_assert_uint_eq(cfg.dns_count, 3);
	ck_assert_str_eq(cfg.dns[2], "search.example");
	nt_config_free(&cfg);
}
END_TEST

START_TEST(case_rules)
{
	struct nt_config cfg;
	struct nt_config_error err;
	const char *text = "[INTERFACE]\n"
			   "privatekey = " PRIV_A "\n"
			   "LISTENPORT = 1\n"
			   "fwMark = OFF\n"
			   "address = 10.0.0.1/24\n"
			   "dns = 1.1.1.1\n"
			   "mtu = 1280\n"
			   "TABLE = Off\n"
			   "preup = A\npostup = B\npredown = C\npostdown = D\n"
			   "saveconfig = TRUE\n"
			   "[peer]\n"
			   "PUBLICKEY = " PUB_B "\n"
			   "presharedkey = " PSK "\n"
			   "allowedips = 10.0.0.2/32\n"
			   "ENDPOINT = [::1]:1\n"
			   "persistentkeepalive = oFF\n";

	ck_assert_int_eq(parse_str(&cfg, text, &err), 0);
	ck_assert(cfg.has_private_key && cfg.has_fwmark && cfg.fwmark == 0);
	ck_assert_int_eq(cfg.table, NT_TABLE_OFF);
	ck_assert(cfg.save_config);
	ck_assert_str_eq(cfg.post_down[0], "D");
	ck_assert(cfg.peers[0].has_persistent_keepalive);
	ck_assert_uint_eq(cfg.peers[0].persistent_keepalive, 0);
	nt_config_free(&cfg);

	/* Base64 is case-sensitive: a key with its case changed is another (or no) key. */
	ck_assert_int_eq(parse_str(&cfg, "[Peer]\nPublicKey = ltfmrwrclokvn2dqaworojpvhhi9jwoe75gwjgdm5fc=\n", &err), 0);
	{
		uint8_t b[32];
		ck_assert_int_eq(nt_key_from_base64(b, PUB_B), 0);
		ck_assert(memcmp(cfg.peers[0].public_key, b, 32));
	}
	nt_config_free(&cfg);
}
END_TEST

START_TEST(last_wins)
{
	struct nt_config cfg;
	struct nt_config_error err;
	const char *text = "[Interface]\nListenPort = 1\nListenPort = 2\nFwMark = 5\nFwMark = off\n"
			   "MTU = 1400\nMTU = 1300\nTable = 7\nTable = auto\nSaveConfig = true\nSaveConfig = false\n"
			   "[Peer]\nPublicKey = " PUB_C "\nPublicKey = " PUB_B "\n"
			   "Endpoint = a:1\nEndpoint = b:2\nPersistentKeepalive = 5\nPersistentKeepalive = 6\n";

	/* (A second [Interface] no longer reopens the first: two_interfaces.) */
	ck_assert_int_eq(parse_str(&cfg, text, &err), 0);
	ck_assert_uint_eq(cfg.listen_port, 2);
	ck_assert(cfg.has_fwmark);
	ck_assert_uint_eq(cfg.fwmark, 0);
	ck_assert_uint_eq(cfg.mtu, 1300);
	ck_assert_int_eq(cfg.table, NT_TABLE_AUTO);
	ck_assert(!cfg.save_config);
	ck_assert_uint_eq(cfg.peers_count, 1);
	assert_key(cfg.peers[0].public_key, PUB_B);
	ck_assert_str_eq(cfg.peers[0].endpoint_host, "b");
	ck_assert_uint_eq(cfg.peers[0].endpoint_port, 2);
	ck_assert_uint_eq(cfg.peers[0].endpoint_line, 16);
	ck_assert_uint_eq(cfg.peers[0].persistent_keepalive, 6);
	nt_config_free(&cfg);
}
END_TEST

START_TEST(value_forms)
{
	static const struct {
		const char *line;
		uint32_t fwmark;
	} marks[] = {
		{ "FwMark = 0", 0 }, { "FwMark = off", 0 }, { "FwMark = 4294967295", 0xffffffff },
		{ "FwMark = 0xffffffff", 0xffffffff }, { "FwMark = 0xABcd", 0xabcd }, { "FwMark = 012", 12 },
	};
	static const struct {
		const char *value, *host;
		uint16_t port;
	} endpoints[] = {
		{ "192.0.2.1:51820", "192.0.2.1", 51820 },
		{ "[2001:db8::1]:1", "2001:db8::1", 1 },
		{ "[fe80::1%eth0]:65535", "fe80::1%eth0", 65535 },
		{ "2001:db8::1:51820", "2001:db8::1", 51820 }, /* bare IPv6: the port is after the last ':' */
		{ "vpn.example.com:443", "vpn.example.com", 443 },
		{ "localhost:0051820", "localhost", 51820 },
		{ "192.0.2.1:0", "192.0.2.1", 0 }, /* as wg: what its showconf writes of a device that has it */
	};
	struct nt_config cfg;
	struct nt_config_error err;
	char text[256];

	for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
		snprintf(text, sizeof(text), "[Interface]\n%s\n", marks[i].line);
		ck_assert_msg(parse_str(&cfg, text, &err) == 0, "%s: %s", marks[i].line, err.message);
		ck_assert_uint_eq(cfg.fwmark, marks[i].fwmark);
		nt_config_free(&cfg);
	}
	for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++) {
		snprintf(text, sizeof(text), "[Peer]\nPublicKey=" PUB_B "\nEndpoint = %s\n", endpoints[i].value);
		ck_assert_msg(parse_str(&cfg, text, &err) == 0, "%s: %s", endpoints[i].value, err.message);
		ck_assert_str_eq(cfg.peers[0].endpoint_host, endpoints[i].host);
		ck_assert_uint_eq(cfg.peers[0].endpoint_port, endpoints[i].port);
		nt_config_free(&cfg);
	}
	ck_assert_int_eq(parse_str(&cfg, "[Interface]\nListenPort = 0\nMTU = 68\nTable = 4294967295\n"
					 "MTU =\nDNS = fe80::1%eth0\n", &err), 0);
	ck_assert(cfg.has_listen_port);
	ck_assert(!cfg.has_mtu); /* empty: computed, as wg-quick */
	ck_assert_uint_eq(cfg.table_id, 4294967295u);
	nt_config_free(&cfg);
	ck_assert_int_eq(parse_str(&cfg, "[Peer]\nPublicKey=" PUB_B "\nPersistentKeepalive = 65535\n"
					 "AllowedIPs = 10.0.0.3/032\n", &err), 0);
	ck_assert_uint_eq(cfg.peers[0].persistent_keepalive, 65535);
	ck_assert_uint_eq(cfg.peers[0].allowed_ips[0].cidr, 32);
	nt_config_free(&cfg);
}
END_TEST

/* Each bad config: the line reported and the exact message. */
#define PEER_B "[Peer]\nPublicKey = " PUB_B "\n"
#define EP_BAD " is not host:port or [IPv6 address]:port (port 0-65535)"
#define KA_BAD " is not \"off\" or a number of seconds (0-65535)"
#define FWMARK_BAD " is not \"off\" or a number (0-0xffffffff)"
#define ADDR_BAD " is not an IP address with an optional /prefix"
static const struct {
	const char *text;
	unsigned line;
	const char *message;
} bad[] = {
	/* 1 */ { "ListenPort = 1\n", 1, "ListenPort: key before any [Interface] or [Peer] section" },
	/* 2 */ { "# c\nFoo = 1\n", 2, "\"Foo\": key before any [Interface] or [Peer] section" },
	/* 3 */ { "[Interface]\nFoo = 1\n", 2, "unknown key \"Foo\" in [Interface]" },
	/* 4 */ { "[Peer]\nListenPort = 1\n", 2, "ListenPort: not a key of [Peer] (it belongs in [Interface])" },
	/* 5 */ { "[Interface]\nPublicKey = " PUB_B "\n", 2, "PublicKey: not a key of [Interface] (it belongs in [Peer])" },
	/* 6 */ { "[Interfaces]\n", 1, "\"[Interfaces]\" is not a section ([Interface] or [Peer])" },
	/* 7 */ { "[Peer\n", 1, "\"[Peer\" is not a section ([Interface] or [Peer])" },
	/* 8 */ { "[Interface]\nListenPort\n", 2, "\"ListenPort\" is not \"Key = value\", [Interface] or [Peer]" },
	/* 9 */ { "[Interface]\nListenPort =\n", 2, "ListenPort: missing value" },
	/* 10 */ { "[Interface]\nListenPort = 65536\n", 2, "ListenPort: \"65536\" is not a port number (0-65535)" },
	/* 11 */ { "[Interface]\nListenPort = -1\n", 2, "ListenPort: \"-1\" is not a port number (0-65535)" },
	/* 12 */ { "[Interface]\nListenPort = http\n", 2, "ListenPort: \"http\" is not a port number (0-65535)" },
	/* 13 */ { "[Interface]\nFwMark = 0X10\n", 2, "FwMark: \"0X10\"" FWMARK_BAD },
	/* 14 */ { "[Interface]\nFwMark = 0x\n", 2, "FwMark: \"0x\"" FWMARK_BAD },
	/* 15 */ { "[Interface]\nFwMark = 0x100000000\n", 2, "FwMark: \"0x100000000\"" FWMARK_BAD },
	/* 16 */ { "[Interface]\nFwMark = 4294967296\n", 2, "FwMark: \"4294967296\"" FWMARK_BAD },
	/* 17 */ { "[Interface]\nPrivateKey = abc\n", 2, "PrivateKey: the value is not a key (44 characters of base64)" },
	/* 18 */ { "[Interface]\nPrivateKey = " PRIV_A "A\n", 2, "PrivateKey: the value is not a key (44 characters of base64)" },
	/* 19 */ { "[Interface]\nAddress = 10.0.0.300/24\n", 2, "Address: \"10.0.0.300/24\"" ADDR_BAD },
	/* 20 */ { "[Interface]\nAddress = 10.0.0.1/24, fd00::1/129\n", 2, "Address: \"fd00::1/129\"" ADDR_BAD },
	/* 21 */ { "[Interface]\nDNS = 1.1.1.300\n", 2, "DNS: \"1.1.1.300\" is not an IP address" },
	/* 22 */ { "[Interface]\nDNS = 1.1.1.1, 2001:db8::g\n", 2, "DNS: \"2001:db8::g\" is not an IP address" },
	/* 23 */ { "[Interface]\nMTU = 67\n", 2, "MTU: \"67\" is not an MTU (68-65535)" },
	/* 24 */ { "[Interface]\nMTU = 65536\n", 2, "MTU: \"65536\" is not an MTU (68-65535)" },
	/* 25 */ { "[Interface]\nMTU = 1.5k\n", 2, "MTU: \"1.5k\" is not an MTU (68-65535)" },
	/* 26 */ { "[Interface]\nTable = 1main\n", 2, "Table: \"1main\" is not \"auto\", \"off\", a table number (1-4294967295) or a table name" },
	/* 27 */ { "[Interface]\nTable = 0\n", 2, "Table: \"0\" is not \"auto\", \"off\", a table number (1-4294967295) or a table name" },
	/* 28 */ { "[Interface]\nSaveConfig = yes\n", 2, "SaveConfig: \"yes\" is neither true nor false" },
	/* 29 */ { "[Interface]\nSaveConfig =\n", 2, "SaveConfig: missing value" },
	/* 30 */ { "[Peer]\nPublicKey = abc\n", 2, "PublicKey: \"abc\" is not a key (44 characters of base64)" },
	/* 31 */ { "[Peer]\nPublicKey = AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", 2, "PublicKey: the all-zero key is not a public key" },
	/* 32 */ { PEER_B "PresharedKey = " PUB_B "x\n", 3, "PresharedKey: the value is not a key (44 characters of base64)" },
	/* 33 */ { PEER_B "AllowedIPs = 10.0.0.300/32\n", 3, "AllowedIPs: \"10.0.0.300/32\" is not an IP prefix" },
	/* 34 */ { PEER_B "AllowedIPs = 10.0.0.3/33\n", 3, "AllowedIPs: \"10.0.0.3/33\" is not an IP prefix" },
	/* 35 */ { PEER_B "AllowedIPs = 10.0.0.3/\n", 3, "AllowedIPs: \"10.0.0.3/\" is not an IP prefix" },
	/* 36 */ { PEER_B "AllowedIPs = 10.1\n", 3, "AllowedIPs: \"10.1\" is not an IP prefix" },
	/* 37 */ { PEER_B "AllowedIPs = 10.0.0.1/32,\n", 3, "AllowedIPs: \"10.0.0.1/32,\" has an empty entry" },
	/* 38 */ { PEER_B "AllowedIPs = a,,b\n", 3, "AllowedIPs: \"a\" is not an IP prefix" },
	/* 39 */ { PEER_B "Endpoint = 1.2.3.4\n", 3, "Endpoint: \"1.2.3.4\"" EP_BAD },
	/* 40 */ { PEER_B "Endpoint = [::1]\n", 3, "Endpoint: \"[::1]\"" EP_BAD },
	/* 41 */ { PEER_B "Endpoint = [::1]:\n", 3, "Endpoint: \"[::1]:\"" EP_BAD },
	/* 42 */ { PEER_B "Endpoint = 1.2.3.4:99999\n", 3, "Endpoint: \"1.2.3.4:99999\"" EP_BAD },
	/* 43 */ { PEER_B "Endpoint = 1.2.3.4:65536\n", 3, "Endpoint: \"1.2.3.4:65536\"" EP_BAD },
	/* 44 */ { PEER_B "Endpoint = :51820\n", 3, "Endpoint: \":51820\"" EP_BAD },
	/* 45 */ { PEER_B "Endpoint = []:51820\n", 3, "Endpoint: \"[]:51820\"" EP_BAD },
	/* 46 */ { PEER_B "Endpoint = h:http\n", 3, "Endpoint: \"h:http\"" EP_BAD },
	/* 47 */ { PEER_B "PersistentKeepalive = 65536\n", 3, "PersistentKeepalive: \"65536\"" KA_BAD },
	/* 48 */ { PEER_B "PersistentKeepalive = +5\n", 3, "PersistentKeepalive: \"+5\"" KA_BAD },
	/* 49 */ { "[Interface]\n[Peer]\nAllowedIPs = 10.0.0.1/32\n", 2, "[Peer] without a PublicKey" },
	/* 50 */ { PEER_B "\n[Peer]\nPublicKey = " PUB_C "\n[Peer]\n", 6, "[Peer] without a PublicKey" },
	/* 51 */ { PEER_B "[Peer]\nPublicKey = " PUB_C "\n[Peer]\nPublicKey = " PUB_B "\n", 5,
		   "[Peer]: the same PublicKey as the [Peer] at line 1" },
	/* 52 */ { "[Interface]\nPrivateKey" PRIV_A "\n", 2, "expected \"Key = value\", [Interface] or [Peer]" },
	/* 53 */ { "[Interface]\nListen=Port = 1\n", 2, "unknown key \"Listen\" in [Interface]" },
	/* 54 */ { "[Interface]\n=1\n", 2, "unknown key \"\" in [Interface]" },
	/* 55 */ { "[Interface]\nListenPort = 1 # fine\nListenPort = 1\0002\n", 3, "the line contains a NUL byte" },
	/* 56 */ { PEER_B "AllowedIPs = 10.0.0.1/32 10.0.0.2/32\n", 3,
		   "AllowedIPs: \"10.0.0.1/3210.0.0.2/32\" is not an IP prefix" },
	/* 57 */ { "[Interface]\n  Foo Bar = 1 # x\n", 2, "unknown key \"Foo Bar\" in [Interface]" },
	/* 58 */ { "[Interface]\n last line no newline # x", 2,
		   "\"last line no newline\" is not \"Key = value\", [Interface] or [Peer]" },
	/* 59 */ { "[Interface]\n[ Peer s ] # x\n", 2, "\"[ Peer s ]\" is not a section ([Interface] or [Peer])" },
	/* 60 */ { "[Interface]\nListenPort = 1\n" PEER_B "\n[Interface]\nPostUp = touch /tmp/x\n", 6,
		   "a second [Interface] section (the first is at line 1)" },
	/* 61 */ { "# c\n[interface]\n\n[ INTERFACE ] # again\n", 4,
		   "a second [Interface] section (the first is at line 2)" },
};

/* Table takes names as ip(8) does: main, local and default are known without a file;
 * other names wait for rt_tables (NT_TABLE_NAME), looked up by nt_rt_tables_lookup. */
START_TEST(table_names)
{
	static const struct {
		const char *value;
		enum nt_config_table table;
		uint32_t id;
	} ok[] = {
		{ "main", NT_TABLE_ID, 254 }, { "local", NT_TABLE_ID, 255 }, { "default", NT_TABLE_ID, 253 },
		{ "vpn", NT_TABLE_NAME, 0 },  { "my_table-2.x", NT_TABLE_NAME, 0 }, { "Main", NT_TABLE_NAME, 0 },
		{ "auto", NT_TABLE_AUTO, 0 }, { "OFF", NT_TABLE_OFF, 0 }, { "254", NT_TABLE_ID, 254 },
	};
	static const char *const bad_names[] = { "ma:in", "ma/in", "1vpn", "-", "x\"y", "0x10",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" /* 65 */ };
	static const char rt_tables[] = "#\n# reserved values\n#\n255\tlocal\n254\tmain\n253\tdefault\n0\tunspec\n"
					"  100 vpn # the tunnel\n0x1f4\thex\n# 7 commented\n4294967296 toobig\n12 vpnx\n9";
	struct nt_config cfg;
	struct nt_config_error err;
	char text[200];
	uint32_t id = 0;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(text, sizeof(text), "[Interface]\nTable = %s\n", ok[i].value);
		ck_assert_msg(parse_str(&cfg, text, &err) == 0, "%s: %s", ok[i].value, err.message);
		ck_assert_msg(cfg.table == ok[i].table && cfg.table_id == ok[i].id, "%s: table %d id %u", ok[i].value,
			      cfg.table, cfg.table_id);
		if (ok[i].table == NT_TABLE_NAME || ok[i].id > 255)
			ck_assert_str_eq(cfg.table_name, ok[i].value);
		else if (ok[i].table != NT_TABLE_ID || strcmp(ok[i].value, "254"))
			ck_assert_ptr_null(ok[i].table == NT_TABLE_ID ? NULL : cfg.table_name);
		nt_config_free(&cfg);
	}
	/* The name is kept (for save) and the last Table wins, name or not. */
	ck_assert_int_eq(parse_str(&cfg, "[Interface]\nTable = main\n", &err), 0);
	ck_assert_str_eq(cfg.table_name, "main");
	nt_config_free(&cfg);
	ck_assert_int_eq(parse_str(&cfg, "[Interface]\nTable = vpn\nTable = 7\n", &err), 0);
	ck_assert(cfg.table == NT_TABLE_ID && cfg.table_id == 7 && !cfg.table_name);
	nt_config_free(&cfg);
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		snprintf(text, sizeof(text), "[Interface]\nTable = %s\n", bad_names[i]);
		ck_assert_msg(parse_str(&cfg, text, &err) == -EINVAL, "%s accepted", bad_names[i]);
	}

	ck_assert_int_eq(nt_rt_tables_lookup(rt_tables, strlen(rt_tables), "vpn", &id), 0);
	ck_assert_uint_eq(id, 100);
	ck_assert_int_eq(nt_rt_tables_lookup(rt_tables, strlen(rt_tables), "hex", &id), 0);
	ck_assert_uint_eq(id, 500);
	ck_assert_int_eq(nt_rt_tables_lookup(rt_tables, strlen(rt_tables), "vpnx", &id), 0);
	ck_assert_uint_eq(id, 12);
	ck_assert_int_eq(nt_rt_tables_lookup(rt_tables, strlen(rt_tables), "main", &id), 0);
	ck_assert_uint_eq(id, 254);
	ck_assert_int_eq(nt_rt_tables_lookup(rt_tables, strlen(rt_tables), "commented", &id), -ENOENT);
	ck_assert_int_eq(nt_rt_tables_lookup(rt_tables, strlen(rt_tables), "unspec", &id), -ENOENT); /* 0 */
	ck_assert_int_eq(nt_rt_tables_lookup(rt_tables, strlen(rt_tables), "toobig", &id), -ENOENT);
	ck_assert_int_eq(nt_rt_tables_lookup(rt_tables, strlen(rt_tables), "vp", &id), -ENOENT);
	ck_assert_int_eq(nt_rt_tables_lookup(rt_tables, strlen(rt_tables) - 1, "9", &id), -ENOENT);
	ck_assert_int_eq(nt_rt_tables_lookup("", 0, "vpn", &id), -ENOENT);
}
END_TEST

START_TEST(bad_lines)
{
	struct nt_config cfg;
	struct nt_config_error err;
	size_t len = strlen(bad[_i].text);

	if (_i == 54) /* the one with a NUL inside */
		len = strlen(bad[_i].text) + 1 + strlen(bad[_i].text + strlen(bad[_i].text) + 1);
	ck_assert_int_eq(parse(&cfg, bad[_i].text, len, NT_CONFIG_WG_QUICK, &err), -EINVAL);
	ck_assert(config_is_empty(&cfg));
	ck_assert_msg(!strcmp(err.message, bad[_i].message), "case %d: got `%s'", _i + 1, err.message);
	ck_assert_msg(err.line == bad[_i].line, "case %d: line %u, not %u", _i + 1, err.line, bad[_i].line);
}
END_TEST

/* No message ever quotes a private or preshared key, whatever is wrong around it. */
START_TEST(secrets_not_echoed)
{
	static const char *const texts[] = {
		"[Interface]\nPrivateKey = " PRIV_A "x\n",
		"[Interface]\nPrivateKey " PRIV_A "\n",
		"[Interface]\nPrivateKey" PRIV_A "\n",
		"[Peer]\nPublicKey = " PUB_B "\nPresharedKey = " PSK PSK "\n",
		"[Peer]\nPublicKey = " PUB_B "\nPresharedKey" PSK "\n",
	};
	struct nt_config cfg;
	struct nt_config_error err;

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		ck_assert_int_eq(parse_str(&cfg, texts[i], &err), -EINVAL);
		ck_assert_msg(!strstr(err.message, "yFxSy") && !strstr(err.message, "wTGpa"), "%zu: %s", i, err.message);
	}
}
END_TEST

START_TEST(wg_only)
{
	static const char *const quick[] = {
		"Address = 10.0.0.1/24", "DNS = 1.1.1.1", "MTU = 1420", "Table = off", "PreUp = x",
		"PostUp = x", "PreDown = x", "PostDown = x", "SaveConfig = true", "address=10.0.0.1",
	};
	static const char *const names[] = {
		"Address", "DNS", "MTU", "Table", "PreUp", "PostUp", "PreDown", "PostDown", "SaveConfig", "Address",
	};
	struct nt_config cfg;
	struct nt_config_error err;
	char text[256], want[256];

	for (size_t i = 0; i < sizeof(quick) / sizeof(quick[0]); i++) {
		snprintf(text, sizeof(text), "[Interface]\nListenPort = 1\n%s\n", quick[i]);
		ck_assert_int_eq(parse(&cfg, text, strlen(text), NT_CONFIG_WG_ONLY, &err), -EINVAL);
		snprintf(want, sizeof(want), "%s: a wg-quick key, not accepted here (remove it, or use \"noisetun strip\")",
			 names[i]);
		ck_assert_str_eq(err.message, want);
		ck_assert_uint_eq(err.line, 3);
		ck_assert(config_is_empty(&cfg));
	}
	/* The wg keys of the full config still parse; its stripped form parses whole. */
	char *stripped = malloc(sizeof(full_config) + 1);
	ck_assert_ptr_nonnull(stripped);
	size_t n = nt_config_strip(stripped, full_config, strlen(full_config));
	ck_assert_int_eq(parse(&cfg, stripped, n, NT_CONFIG_WG_ONLY, &err), 0);
	ck_assert_uint_eq(cfg.peers_count, 2);
	ck_assert_uint_eq(cfg.addresses_count, 0);
	nt_config_free(&cfg);
	free(stripped);
}
END_TEST

/* Two [Interface] sections are an error in either mode, wherever the second one is; one
 * [Interface] after the [Peer]s is still fine. */
START_TEST(two_interfaces)
{
	static const char *const texts[] = {
		"[Interface]\n[Interface]\n",
		"[Interface]\nListenPort = 1\n" PEER_B "[Interface]\nListenPort = 2\n",
		PEER_B "[Interface]\nListenPort = 1\n" "[Peer]\nPublicKey = " PUB_C "\n[Interface]\n",
	};
	static const unsigned lines[] = { 2, 5, 7 }, firsts[] = { 1, 1, 3 };
	struct nt_config cfg;
	struct nt_config_error err;
	char want[128];

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		for (int flags = NT_CONFIG_WG_QUICK; flags <= NT_CONFIG_WG_ONLY; flags++) {
			ck_assert_int_eq(parse(&cfg, texts[i], strlen(texts[i]), flags, &err), -EINVAL);
			snprintf(want, sizeof(want), "a second [Interface] section (the first is at line %u)", firsts[i]);
			ck_assert_str_eq(err.message, want);
			ck_assert_uint_eq(err.line, lines[i]);
			ck_assert(config_is_empty(&cfg));
		}
	}
	ck_assert_int_eq(parse_str(&cfg, PEER_B "[Interface]\nListenPort = 7\n", &err), 0);
	ck_assert_uint_eq(cfg.listen_port, 7);
	ck_assert_uint_eq(cfg.peers_count, 1);
	nt_config_free(&cfg);
}
END_TEST

START_TEST(strip)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ full_config,
		  "# site A\n[Interface]\nPrivateKey = " PRIV_A "\nListenPort = 51820\nFwMark = 0x1234\n\n"
		  "[Peer]  # site B\nPublicKey = " PUB_B "\nPresharedKey = " PSK "\n"
		  "AllowedIPs = 10.0.0.2/32 , fd00::2/128,10.9.0.0/16\nAllowedIPs = 192.168.0.0/16\n"
		  "Endpoint = 192.0.2.2:51821\nPersistentKeepalive = 25\n\n[Peer]\nPublicKey = " PUB_C "\n"
		  "Endpoint = [2001:db8::2]:51822\nAllowedIPs = 0.0.0.0/0, ::/0\n" },
		/* blanks trimmed at both ends, a last line without '\n' gets one */
		{ "  [Interface]\t\n\tListenPort = 1  \n  mtu=1\n#Address=x\n[Peer]\nAddress = kept\n  last",
		  "[Interface]\nListenPort = 1\n#Address=x\n[Peer]\nAddress = kept\nlast\n" },
		/* a blank last line without '\n' disappears, as with read -r */
		{ "[Interface]\n \t", "[Interface]\n" },
		{ "", "" },
		{ "\n\n", "\n\n" },
		/* sections and keys recognised as the parser does */
		{ "[ interface ]\nPost Up = x\nDNS=1.1.1.1\r\nListenPort=1\r\n", "[ interface ]\nListenPort=1\r\n" },
	};
	char out[2048];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = nt_config_strip(out, cases[i].in, strlen(cases[i].in));

		ck_assert_uint_le(n, strlen(cases[i].in) + 1);
		out[n] = '\0';
		ck_assert_msg(!strcmp(out, cases[i].out), "case %zu: got\n%s", i, out);
	}
}
END_TEST

/* Every prefix of the full config, each on an exact heap copy: 0 or -EINVAL, never a read
 * past the end; the result is zeroed on error. */
START_TEST(truncations)
{
	size_t len = strlen(full_config);
	struct nt_config cfg;
	struct nt_config_error err;
	char *out = malloc(len + 1);

	ck_assert_ptr_nonnull(out);
	for (size_t n = 0; n <= len; n++) {
		int ret = parse(&cfg, full_config, n, NT_CONFIG_WG_QUICK, &err);

		ck_assert_msg(ret == 0 || ret == -EINVAL, "length %zu: %d", n, ret);
		if (ret) {
			ck_assert(config_is_empty(&cfg));
			ck_assert(err.line >= 1 && err.message[0]);
		}
		nt_config_free(&cfg);
		ret = parse(&cfg, full_config, n, NT_CONFIG_WG_ONLY, &err);
		nt_config_free(&cfg);

		char *copy = malloc(n ? n : 1);
		ck_assert_ptr_nonnull(copy);
		memcpy(copy, full_config, n);
		ck_assert_uint_le(nt_config_strip(out, copy, n), n + 1);
		free(copy);
	}
	free(out);
}
END_TEST

/* Every byte of the full config replaced by each of a few troublemakers. */
START_TEST(mutations)
{
	static const char subst[] = { '\0', '\n', '#', '=', '[', ']', ',', ':', '/', ' ', 'x', '\xff' };
	size_t len = strlen(full_config);
	struct nt_config cfg;
	struct nt_config_error err;
	char *text = malloc(len);

	ck_assert_ptr_nonnull(text);
	for (size_t i = 0; i < len; i++) {
		for (size_t s = 0; s < sizeof(subst); s++) {
			int ret;

			memcpy(text, full_config, len);
			text[i] = subst[s];
			ret = nt_config_parse(&cfg, text, len, NT_CONFIG_WG_QUICK, &err);
			ck_assert(ret == 0 || ret == -EINVAL);
			if (ret)
				ck_assert(config_is_empty(&cfg));
			nt_config_free(&cfg);
		}
	}
	free(text);
}
END_TEST

/* Many peers and prefixes: growth paths, and time. */
START_TEST(large)
{
	size_t cap = 4u << 20, n = 0;
	char *text = malloc(cap);
	struct nt_config cfg;
	struct nt_config_error err;

	ck_assert_ptr_nonnull(text);
	n += (size_t)snprintf(text + n, cap - n, "[Interface]\nPrivateKey = " PRIV_A "\n");
	for (unsigned p = 0; p < 1000; p++) {
		uint8_t key[32] = { 1 };
		char b64[NT_KEY_B64_LEN + 1];

		key[1] = (uint8_t)p;
		key[2] = (uint8_t)(p >> 8);
		nt_key_to_base64(b64, key);
		n += (size_t)snprintf(text + n, cap - n, "[Peer]\nPublicKey = %s\nAllowedIPs = ", b64);
		for (unsigned a = 0; a < 100; a++)
			n += (size_t)snprintf(text + n, cap - n, "%s10.%u.%u.%u/32", a ? ", " : "", p >> 8, p & 255, a);
		n += (size_t)snprintf(text + n, cap - n, "\n");
	}
	ck_assert_int_eq(nt_config_parse(&cfg, text, n, NT_CONFIG_WG_ONLY, &err), 0);
	ck_assert_uint_eq(cfg.peers_count, 1000);
	ck_assert_uint_eq(cfg.peers[999].allowed_ips_count, 100);
	assert_prefix(&cfg.peers[999].allowed_ips[99], AF_INET, "10.3.231.99", 32);
	nt_config_free(&cfg);
	free(text);
}
END_TEST

/* Peer names from "# friendly_name = NAME" / "# Name = NAME" whole-line comments in a [Peer]:
 * either key in any case, blanks around the parts, the last valid one wins; comments in
 * [Interface], trailing comments, other comment keys and invalid names are ignored; a name
 * never makes a file fail. */
START_TEST(peer_names)
{
	static const char text[] =
		"[Interface]\n"
		"# friendly_name = not-a-peer\n"
		"PrivateKey = " PRIV_A "\n"
		"[Peer]\n"
		"# friendly_name = alice laptop\n"
		"PublicKey = " PUB_A "\n"
		"[Peer]\n"
		"PublicKey = " PUB_B "\n"
		"\t#NAME=bob   \n"
		"# Name = \x01" "bad\n"
		"# name = " "01234567890123456789012345678901234567890123456789012345678901234" "\n"
		"[Peer]\n"
		"PublicKey = " PUB_C " # friendly_name = trailing\n"
		"# friendly_names = c\n"
		"# Name c\n"
		"# friendly_name =   \n"
		"[Peer]\n"
		"# Name = first\n"
		"# FRIENDLY_NAME = second\n"
		"PublicKey = " PUB_D "\n";
	struct nt_config cfg;
	struct nt_config_error err;

	ck_assert_msg(parse_str(&cfg, text, &err) == 0, "%u: %s", err.line, err.message);
	ck_assert_uint_eq(cfg.peers_count, 4);
	ck_assert_str_eq(cfg.peers[0].name, "alice laptop");
	ck_assert_uint_eq(cfg.peers[0].name_line, 5);
	ck_assert_str_eq(cfg.peers[1].name, "bob");
	ck_assert_uint_eq(cfg.peers[1].name_line, 9);
	ck_assert_ptr_null(cfg.peers[2].name);
	ck_assert_uint_eq(cfg.peers[2].name_line, 0);
	ck_assert_str_eq(cfg.peers[3].name, "second");
	ck_assert_uint_eq(cfg.peers[3].name_line, 19);
	nt_config_free(&cfg);

	ck_assert(nt_config_valid_name("a", 1));
	ck_assert(nt_config_valid_name("phone of bob #2", 15));
	ck_assert(!nt_config_valid_name("", 0));
	ck_assert(!nt_config_valid_name(" a", 2));
	ck_assert(!nt_config_valid_name("a ", 2));
	ck_assert(!nt_config_valid_name("a\nb", 3));
	ck_assert(!nt_config_valid_name("a\tb", 3));
	ck_assert(!nt_config_valid_name("caf\xc3\xa9", 5));
	ck_assert(!nt_config_valid_name("a\x7f", 2));
	ck_assert(nt_config_valid_name("0123456789012345678901234567890123456789012345678901234567890123", 64));
	ck_assert(!nt_config_valid_name("01234567890123456789012345678901234567890123456789012345678901234", 65));
}
END_TEST

/* The event hooks: noisetun's keys, several of each in file order, %i and $VARS kept raw;
 * wg-quick keys for `wg setconf` (refused) and for strip (dropped). */
START_TEST(event_hooks)
{
	static const char text[] = "[Interface]\nListenPort = 1\nOnPeerUp = echo up %i $NOISETUN_PEER\n"
				   "onpeerup=second\nOnPeerDown = d\nOnHandshakeFailed = f\nOnEndpointChange = e\n" PEER_B;
	struct nt_config cfg;
	struct nt_config_error err;
	char out[512];
	size_t n;

	ck_assert_int_eq(parse_str(&cfg, text, &err), 0);
	ck_assert_uint_eq(cfg.on_event_count[NT_CONFIG_ON_PEER_UP], 2);
	ck_assert_str_eq(cfg.on_event[NT_CONFIG_ON_PEER_UP][0], "echo up %i $NOISETUN_PEER");
	ck_assert_str_eq(cfg.on_event[NT_CONFIG_ON_PEER_UP][1], "second");
	ck_assert_uint_eq(cfg.on_event_count[NT_CONFIG_ON_PEER_DOWN], 1);
	ck_assert_str_eq(cfg.on_event[NT_CONFIG_ON_PEER_DOWN][0], "d");
	ck_assert_str_eq(cfg.on_event[NT_CONFIG_ON_HANDSHAKE_FAILED][0], "f");
	ck_assert_str_eq(cfg.on_event[NT_CONFIG_ON_ENDPOINT_CHANGE][0], "e");
	nt_config_free(&cfg);
	ck_assert_int_eq(parse(&cfg, text, strlen(text), NT_CONFIG_WG_ONLY, &err), -EINVAL);
	ck_assert_uint_eq(err.line, 3);
	n = nt_config_strip(out, text, strlen(text));
	out[n] = 0;
	ck_assert_ptr_null(strstr(out, "On"));
	ck_assert_ptr_null(strstr(out, "second"));
	ck_assert_ptr_nonnull(strstr(out, "ListenPort = 1\n"));
	ck_assert_int_eq(parse(&cfg, out, n, NT_CONFIG_WG_ONLY, &err), 0);
	nt_config_free(&cfg);
	/* a hook of [Peer] is misplaced, as PostUp there is */
	ck_assert_int_eq(parse_str(&cfg, PEER_B "OnPeerUp = x\n", &err), -EINVAL);
}
END_TEST

/* Issue 18: the [Peer]'s noisetun comments (PSK file, lifecycle), RFC 3339, dropping peers. */
START_TEST(peer_lifecycle_comments)
{
	static const char text[] =
		"[Interface]\n"
		"PrivateKey = " PRIV_A "\n"
		"[Peer]\n"
		"PublicKey = " PUB_A "\n"
		"# noisetun-preshared-key-file = /run/rosenpass/psk\n"
		"# noisetun-disabled = true\n"
		"[Peer]\n"
		"PublicKey = " PUB_B "\n"
		"#noisetun-valid-until=2026-12-31T23:59:59Z\n"
		"[Peer]\n"
		"PublicKey = " PUB_C "\n";
	struct nt_config cfg;
	struct nt_config_error err;
	bool drop[3] = { true, false, true };
	char out[sizeof(text)];
	int64_t t;

	ck_assert_msg(parse_str(&cfg, text, &err) == 0, "%u: %s", err.line, err.message);
	ck_assert_str_eq(cfg.peers[0].psk_file, "/run/rosenpass/psk");
	ck_assert(cfg.peers[0].disabled && !cfg.peers[1].disabled);
	ck_assert_uint_eq(cfg.peers[1].valid_until, 1798761599);
	ck_assert(nt_config_peer_inactive(&cfg.peers[0], 0));
	ck_assert(!nt_config_peer_inactive(&cfg.peers[1], 1798761598));
	ck_assert(nt_config_peer_inactive(&cfg.peers[1], 1798761599));
	ck_assert(!nt_config_peer_inactive(&cfg.peers[2], INT64_MAX));
	nt_config_free(&cfg);
	nt_config_drop_peers(out, text, strlen(text), drop, 3);
	ck_assert_ptr_null(strstr(out, PUB_A));
	ck_assert_ptr_null(strstr(out, PUB_C));
	ck_assert_ptr_nonnull(strstr(out, PUB_B));
	ck_assert_ptr_nonnull(strstr(out, PRIV_A));

	ck_assert_int_eq(nt_config_parse_rfc3339("1970-01-01T00:00:00Z", 20, &t), 0);
	ck_assert_int_eq(t, 0);
	ck_assert_int_eq(nt_config_parse_rfc3339("2000-02-29t12:00:00.25+02:00", 28, &t), 0);
	ck_assert_int_eq(t, 951818400);
	ck_assert_int_eq(nt_config_parse_rfc3339("2024-01-01 00:00:00-01:30", 25, &t), 0);
	ck_assert_int_eq(t, 1704072600);
	ck_assert_int_ne(nt_config_parse_rfc3339("2023-02-29T00:00:00Z", 20, &t), 0);
	ck_assert_int_ne(nt_config_parse_rfc3339("2023-01-01T00:00:00", 19, &t), 0);
	ck_assert_int_ne(nt_config_parse_rfc3339("2023-01-01T24:00:00Z", 20, &t), 0);
	ck_assert_int_ne(nt_config_parse_rfc3339("2023-01-01T00:00:00+0200", 24, &t), 0);

	/* Meant for us, so a bad value is an error, not a silent no-op. */
	ck_assert_int_ne(parse_str(&cfg, "[Peer]\nPublicKey = " PUB_A "\n# noisetun-disabled = maybe\n", &err), 0);
	ck_assert_int_ne(parse_str(&cfg, "[Peer]\nPublicKey = " PUB_A "\n# noisetun-valid-until = tomorrow\n", &err), 0);
	ck_assert_int_ne(parse_str(&cfg, "[Peer]\nPublicKey = " PUB_A "\n# noisetun-preshared-key-file = rel/psk\n", &err), 0);
	ck_assert_int_ne(parse_str(&cfg, "[Interface]\n# noisetun-disabled = true\n", &err), 0);
	ck_assert_int_ne(parse_str(&cfg, "[Peer]\nPublicKey = " PUB_A "\nPresharedKey = " PUB_B "\n"
				   "# noisetun-preshared-key-file = /p\n", &err), 0);
	ck_assert(nt_config_is_noisetun_comment("# noisetun-valid-until = x", 26));

	/* Fallback endpoints, in order, as Endpoint takes them; at most 8. */
	ck_assert_msg(parse_str(&cfg, "[Peer]\nPublicKey = " PUB_A "\nEndpoint = vpn.example:51820\n"
				       "# noisetun-endpoint-fallback = 192.0.2.9:1\n"
				       "# noisetun-endpoint-fallback = [2001:db8::1]:51821\n", &err) == 0,
		      "%u: %s", err.line, err.message);
	ck_assert_uint_eq(cfg.peers[0].fallbacks_count, 2);
	ck_assert_str_eq(cfg.peers[0].fallbacks[0].host, "192.0.2.9");
	ck_assert_uint_eq(cfg.peers[0].fallbacks[0].port, 1);
	ck_assert_str_eq(cfg.peers[0].fallbacks[1].host, "2001:db8::1");
	ck_assert_uint_eq(cfg.peers[0].fallbacks[1].port, 51821);
	nt_config_free(&cfg);
	ck_assert_int_ne(parse_str(&cfg, "[Peer]\nPublicKey = " PUB_A "\n# noisetun-endpoint-fallback = nope\n", &err), 0);
	{
		char many[2048];
		size_t n = (size_t)snprintf(many, sizeof(many), "[Peer]\nPublicKey = %s\n", PUB_A);
		for (int i = 0; i < 9; i++)
			n += (size_t)snprintf(many + n, sizeof(many) - n, "# noisetun-endpoint-fallback = h%d:1\n", i);
		ck_assert_int_ne(parse_str(&cfg, many, &err), 0);
	}
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("parse");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, every_key);
	tcase_add_test(tc, empty_and_comments);
	tcase_add_test(tc, whitespace_as_wg);
	tcase_add_test(tc, case_rules);
	tcase_add_test(tc, last_wins);
	tcase_add_test(tc, value_forms);
	tcase_add_loop_test(tc, bad_lines, 0, sizeof(bad) / sizeof(bad[0]));
	tcase_add_test(tc, table_names);
	tcase_add_test(tc, secrets_not_echoed);
	tcase_add_test(tc, wg_only);
	tcase_add_test(tc, two_interfaces);
	tcase_add_test(tc, strip);
	tcase_add_test(tc, truncations);
	tcase_add_test(tc, mutations);
	tcase_add_test(tc, large);
	tcase_add_test(tc, peer_names);
	tcase_add_test(tc, event_hooks);
	tcase_add_test(tc, peer_lifecycle_comments);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(config_suite());
}
