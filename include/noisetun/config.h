/* Config files in the wg-quick format ([Interface] and [Peer] sections), parsed into a
 * plain struct. Pure: no I/O; host names in Endpoint stay unresolved (the caller
 * resolves them). Errors name the line and what was expected. */
#ifndef NOISETUN_CONFIG_H
#define NOISETUN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "noisetun/uapi.h"

struct nt_config_address {          /* Address = 10.0.0.1/24 (cidr: full length if absent) */
	uint8_t family;
	uint8_t cidr;
	uint8_t addr[16];
};

struct nt_config_endpoint {
	char *host;                     /* as in Endpoint: an address (no brackets) or a name */
	uint16_t port;
};
#define NT_CONFIG_MAX_FALLBACKS 8

struct nt_config_peer {
	unsigned line;                  /* where [Peer] began, for messages */
	uint8_t public_key[32];
	bool has_preshared_key;
	uint8_t preshared_key[32];
	struct nt_uapi_allowed_ip *allowed_ips;
	size_t allowed_ips_count;
	bool has_endpoint;
	char *endpoint_host;            /* "192.0.2.1", "2001:db8::1" (no brackets) or a name */
	uint16_t endpoint_port;
	unsigned endpoint_line;         /* of the Endpoint that counted, for resolver errors */
	bool has_persistent_keepalive;
	uint16_t persistent_keepalive;  /* "off" parses as 0 */
	/* A whole-line comment "# friendly_name = NAME" or "# Name = NAME" inside the [Peer]
	 * (the convention of prometheus_wireguard_exporter and wg-gen-web): NULL without one;
	 * the last valid one wins; an invalid name (see nt_config_valid_name) is ignored, as
	 * any comment. */
	char *name;
	unsigned name_line;             /* of that comment, 0 without a name */
	/* noisetun's own, whole-line comments in the [Peer] (issue 18; a wrong value is an
	 * error, as for noisetun-mss-clamp):
	 * "# noisetun-preshared-key-file = /ABSOLUTE/PATH": the PSK comes from that file, which
	 * another program (Rosenpass) rewrites; a PresharedKey line is then an error. */
	char *psk_file;
	/* "# noisetun-disabled = true|false" and "# noisetun-valid-until = RFC 3339 time": the
	 * peer keeps its config but no handshake with it succeeds (valid_until: seconds since
	 * the epoch, 0: no limit). `noisetun strip` drops such a peer whole: a stock tool that
	 * ignored the comment would otherwise enable it (fail closed). */
	bool disabled;
	uint64_t valid_until;
	/* "# noisetun-endpoint-fallback = host:port", repeatable: endpoints tried in order after
	 * Endpoint when handshakes fail (config mode re-resolves names; see daemon/watch.c). */
	struct nt_config_endpoint *fallbacks;
	size_t fallbacks_count;
};

/* Table: auto, off, a number, or a name as ip(8) takes it. The names main, local and
 * default are NT_TABLE_ID (254, 255, 253); any other name is NT_TABLE_NAME, for the
 * caller to look up in rt_tables (nt_rt_tables_lookup) since the core reads no file. */
enum nt_config_table { NT_TABLE_AUTO = 0, NT_TABLE_OFF, NT_TABLE_ID, NT_TABLE_NAME };
#define NT_TABLE_NAME_MAX 64

struct nt_config {
	bool has_private_key;
	uint8_t private_key[32];
	bool has_listen_port;
	uint16_t listen_port;
	bool has_fwmark;
	uint32_t fwmark;                /* "off" parses as 0 */
	/* wg-quick keys (rejected when parsing with NT_CONFIG_WG_ONLY): */
	struct nt_config_address *addresses;
	size_t addresses_count;
	char **dns;                     /* addresses and search domains, as written */
	size_t dns_count;
	bool has_mtu;
	uint32_t mtu;
	enum nt_config_table table;
	uint32_t table_id;              /* with NT_TABLE_ID */
	char *table_name;               /* Table as written when it was a name (main, ...), else NULL */
	char **pre_up, **post_up, **pre_down, **post_down; /* in file order */
	size_t pre_up_count, post_up_count, pre_down_count, post_down_count;
	bool save_config;
	/* noisetun's event hooks, OnPeerUp = CMD etc. in [Interface] (docs/events.md): keys of
	 * noisetun's alone, which `noisetun strip` removes like the wg-quick keys. */
	char **on_event[4];             /* by enum nt_config_on */
	size_t on_event_count[4];
	/* noisetun's own, a whole-line comment in [Interface] ("# noisetun-mss-clamp = off"):
	 * TCP MSS clamping to the tunnel MTU is on unless this is set. */
	bool no_mss_clamp;
	struct nt_config_peer *peers;
	size_t peers_count;
};

enum nt_config_on {
	NT_CONFIG_ON_PEER_UP, NT_CONFIG_ON_PEER_DOWN, NT_CONFIG_ON_HANDSHAKE_FAILED, NT_CONFIG_ON_ENDPOINT_CHANGE,
	NT_CONFIG_ON_COUNT
};

/* "OnPeerUp", "OnPeerDown", "OnHandshakeFailed", "OnEndpointChange"; NULL out of range. */
const char *nt_config_on_key(unsigned which);

struct nt_config_error {
	unsigned line;                  /* 0: not tied to a line */
	char message[256];              /* e.g. `AllowedIPs: "10.0.0.300/32" is not an IP prefix` */
};

enum {
	NT_CONFIG_WG_QUICK = 0,         /* all keys above */
	NT_CONFIG_WG_ONLY = 1,          /* what `wg setconf` accepts: wg-quick keys are errors */
};

/* A peer name: 1 to NT_CONFIG_NAME_MAX bytes of printable ASCII (0x20-0x7e), neither
 * starting nor ending with a space. */
#define NT_CONFIG_NAME_MAX 64
bool nt_config_valid_name(const char *s, size_t len);

/* Parse text (len bytes); a second [Interface] section is an error. 0, or -EINVAL with *err filled and *out empty, or -ENOMEM. */
int nt_config_parse(struct nt_config *out, const char *text, size_t len, int flags, struct nt_config_error *err);
/* Free and wipe (keys!) everything nt_config_parse allocated. Safe on a zeroed struct. */
void nt_config_free(struct nt_config *cfg);
/* The id of table name in text (len bytes) in the format of iproute2's rt_tables: lines
 * "ID NAME", ID decimal or 0x hex, '#' comments. 0 with *id, or -ENOENT. */
int nt_rt_tables_lookup(const char *text, size_t len, const char *name, uint32_t *id);

#define NT_CONFIG_MSS_CLAMP_KEY "noisetun-mss-clamp"
#define NT_CONFIG_PSK_FILE_KEY "noisetun-preshared-key-file"
#define NT_CONFIG_DISABLED_KEY "noisetun-disabled"
#define NT_CONFIG_VALID_UNTIL_KEY "noisetun-valid-until"
#define NT_CONFIG_FALLBACK_KEY "noisetun-endpoint-fallback"
/* An RFC 3339 date-time ("2026-12-31T23:59:59Z", "...T12:00:00.5+02:00"; 'T', 't' or a
 * space between date and time) as seconds since the epoch (fractions dropped). 0 or -EINVAL. */
int nt_config_parse_rfc3339(const char *s, size_t len, int64_t *secs);
/* Whether the peer is out of use at now (seconds since the epoch): disabled or expired. */
bool nt_config_peer_inactive(const struct nt_config_peer *p, int64_t now);
/* Copy text (len bytes) into out (len + 1 bytes) without the sections of the peers that
 * drop[i] marks (the i-th [Peer] of the file, as nt_config_parse counts them). Returns the
 * length written. */
size_t nt_config_drop_peers(char *out, const char *text, size_t len, const bool *drop, size_t drop_count);
/* Whether line (len bytes, a '\n' at its end or not) is a whole-line comment holding a
 * noisetun-only setting ("# noisetun-mss-clamp = ..."), which `noisetun strip` drops. */
bool nt_config_is_noisetun_comment(const char *line, size_t len);
/* "# KEY = VALUE" as a whole line, blanks around each part: true with the value, trimmed,
 * when the comment's key is key (any case). noisetun's own settings and records are such
 * comments, so that wg-quick and wg read the file as before. */
bool nt_config_comment_value(const char *line, size_t len, const char *key, const char **value, size_t *value_len);

/* `wg-quick strip`: copy text (len bytes) into out without the lines of the wg-quick keys
 * (Address, DNS, MTU, Table, the hooks, SaveConfig) in [Interface] sections, sections and
 * keys recognised as nt_config_parse() does. Kept lines are trimmed of blanks and end in
 * '\n', as wg-quick's `read -r` loop leaves them. out needs len + 1 bytes; returns the
 * length written. */
size_t nt_config_strip(char *out, const char *text, size_t len);

#endif
