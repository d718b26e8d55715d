/* The body of a control-socket set=1 request (control-protocol.md "Requests"), parsed whole
 * before anything is applied, so that a bad request changes nothing and gets errno=-22.
 * Pure: no I/O, no locale; the daemon owns the socket and applies the result in order. */
#ifndef NOISETUN_UAPI_H
#define NOISETUN_UAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest accepted line, without its '\n'. The longest valid one (an IPv6 endpoint with a
 * scope) is under 80 bytes; anything longer is refused after reading this many bytes. */
#define NT_UAPI_MAX_LINE 200

/* Room for any nt_uapi_format_endpoint() output and its NUL ("[" 39 "%" 15 "]:" 5). */
#define NT_UAPI_ENDPOINT_STRLEN 64

/* noisetun_endpoint_name: host:port, [A-Za-z0-9.-_:[]%] only. */
#define NT_UAPI_ENDPOINT_NAME_MAX 160

/* An interface name as a scope: at most 15 bytes, as IF_NAMESIZE - 1 on Linux. */
#define NT_UAPI_IFNAME_MAX 15

/* A peer's name (noisetun only, "noisetun_name=NAME" in a peer block): as a config file's
 * "# friendly_name =", at most NT_CONFIG_NAME_MAX (config.h) bytes. */
#define NT_UAPI_NAME_MAX 64

struct nt_uapi_allowed_ip {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t cidr;
	uint8_t addr[16]; /* network byte order; host bits are kept as given */
};

/* An IPv6 scope is an interface index or, as stock `wg` sends it, an interface name. lib
 * stays pure: it keeps the name as text (scope_id 0), and the daemon resolves it to an
 * index before using the endpoint. */
struct nt_uapi_endpoint {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint16_t port;
	uint8_t addr[16];
	uint32_t scope_id; /* IPv6 only; 0: none (or scope_name) */
	char scope_name[NT_UAPI_IFNAME_MAX + 1]; /* IPv6 only; "": none; NUL-terminated */
};

struct nt_uapi_peer {
	uint8_t public_key[32];
	bool remove, update_only;
	bool has_preshared_key;
	uint8_t preshared_key[32]; /* all zeros: remove the PSK */
	bool has_endpoint;
	struct nt_uapi_endpoint endpoint;
	bool has_persistent_keepalive;
	uint16_t persistent_keepalive;
	bool replace_allowed_ips;
	/* Those listed after the last replace_allowed_ips=true, in request order. */
	struct nt_uapi_allowed_ip *allowed_ips;
	size_t allowed_ips_count;
	/* noisetun only: "noisetun_name=NAME" (nt_config_valid_name), "noisetun_name=" clears
	 * the name. Stock wg never sends it; a set without it leaves the name as it is. */
	bool has_name;
	char name[NT_UAPI_NAME_MAX + 1]; /* NUL-terminated; "" with has_name: remove the name */
	/* noisetun's own keys (noisetun_disabled=true|false, noisetun_valid_until=SECONDS
	 * since the epoch, 0: no limit): the peer's lifecycle. */
	bool has_lifecycle_disabled, lifecycle_disabled;
	bool has_valid_until;
	uint64_t valid_until;
	/* noisetun_endpoint_name=HOST:PORT (noisetun's own): the name the endpoint was
	 * resolved from, for show; "" (the value "-") clears it. */
	bool has_endpoint_name;
	char endpoint_name[NT_UAPI_ENDPOINT_NAME_MAX + 1];
};

struct nt_uapi_set {
	bool has_private_key;
	uint8_t private_key[32]; /* all zeros: remove the key; not clamped here */
	bool has_listen_port;
	uint16_t listen_port;
	bool has_fwmark;
	uint32_t fwmark; /* 0: none */
	/* noisetun_mss_clamp=true|false (noisetun's own): TCP MSS clamping on the TUN */
	bool has_mss_clamp, mss_clamp;
	bool replace_peers;
	/* In request order. A public key may repeat: as in the kernel, a later section selects
	 * the same peer again and is applied after the earlier ones. */
	struct nt_uapi_peer *peers;
	size_t peers_count;
};

/* Parse a set=1 body: the lines after "set=1\n", without the final empty line (len bytes, no
 * NUL, each line ending in '\n'; allowed_ip needs its "/n", as in wireguard-go). *out need
 * not be initialised. 0, -EINVAL (any bad line) or -ENOMEM; on error *out is left zeroed.
 * The one line that may hold a space or be empty after its '=' is noisetun_name's. */
int nt_uapi_parse_set(struct nt_uapi_set *out, const char *body, size_t len);

/* Wipe (keys!) and free everything nt_uapi_parse_set() allocated, leaving *set zeroed.
 * Safe on a zeroed struct and twice in a row. */
void nt_uapi_set_free(struct nt_uapi_set *set);

/* The body of a set=1 request for set, the inverse of nt_uapi_parse_set(): device keys,
 * then each peer (public_key, remove, update_only, preshared_key, endpoint, keepalive,
 * replace_allowed_ips, its allowed_ip lines, noisetun_name), each line ending in '\n'; the caller frames
 * it with "set=1\n" and the empty line. snprintf-like: writes at most size bytes with a
 * NUL (buf may be NULL when size is 0), returns the length of the whole body. */
size_t nt_uapi_format_set(const struct nt_uapi_set *set, char *buf, size_t size);

/* The same, written as flags say (0: as nt_uapi_format_set). */
enum nt_uapi_format_flags {
	/* As wg writes a request: a removed peer is its public_key and remove=true alone. */
	NT_UAPI_FORMAT_WG = 1 << 0,
	/* Without noisetun_name (for a daemon that refused names). */
	NT_UAPI_FORMAT_NO_NAMES = 1 << 1,
};
size_t nt_uapi_format_set_flags(const struct nt_uapi_set *set, int flags, char *buf, size_t size);

/* The get=1 form of an endpoint, NUL-terminated: "192.0.2.1:51820", "[2001:db8::1]:51820",
 * "[fe80::1%3]:51820" or "[fe80::1%eth0]:51820" with a scope (the name when it has one). The length written without the NUL, or 0 (buf emptied
 * when size > 0) for an unknown family or a buf too small; NT_UAPI_ENDPOINT_STRLEN fits all. */
size_t nt_uapi_format_endpoint(char *buf, size_t size, const struct nt_uapi_endpoint *ep);

/* Parse an IP prefix "a.b.c.d/n" or "v6addr/n" (len bytes, no NUL needed); without "/n" the
 * full length. Host bits are kept (the allowed-IPs trie masks them). 0 or -EINVAL. */
int nt_uapi_parse_allowed_ip(struct nt_uapi_allowed_ip *out, const char *s, size_t len);

/* Parse a numeric endpoint "a.b.c.d:port" or "[v6addr]:port" / "[v6addr%scope]:port", the
 * scope a decimal index or an interface name (1 to 15 bytes, not all digits, no '/', ':',
 * '%' or whitespace, not "." or ".."), kept in scope_name (len bytes, no NUL needed).
 * 0 or -EINVAL. */
int nt_uapi_parse_endpoint(struct nt_uapi_endpoint *out, const char *s, size_t len);

/* ---- get=1: the one model of a running device ----
 *
 * What a get=1 reply says (control-protocol.md "get"), for every reader of one: the CLI's
 * show, showconf, save, setconf's syncconf and the daemon's reload. Parsed strictly from
 * text (the reply is another process's word: a bad value is -EPROTO, not a guess); keys
 * it does not know are skipped, as wg does. With "noisetun=1" noisetund adds its own
 * noisetun_ lines (names, lifecycle, metrics), also parsed here. */

/* Longest line of a get reply accepted, without its '\n'. */
#define NT_UAPI_GET_MAX_LINE 511

struct nt_uapi_device_peer {
	uint8_t public_key[32];
	bool has_preshared_key;           /* and not all zeros */
	uint8_t preshared_key[32];
	bool has_endpoint;
	struct nt_uapi_endpoint endpoint;
	int64_t last_handshake_sec, last_handshake_nsec;
	uint64_t rx_bytes, tx_bytes;
	uint16_t persistent_keepalive;    /* 0: off */
	struct nt_uapi_allowed_ip *allowed_ips;
	size_t allowed_ips_count;
	char name[NT_UAPI_NAME_MAX + 1];  /* noisetun_name= ("": none); only a valid name */
	struct nt_uapi_peer_metrics {     /* noisetun_ counters */
		uint64_t rx_packets, tx_packets, handshakes, handshake_attempts, handshake_failures;
		bool has_session;
		uint64_t session_age_ns;
	} metrics;
	/* The name the endpoint came from ("": none), the lifecycle (valid_until: seconds
	 * since the epoch, 0: none). */
	char endpoint_name[NT_UAPI_ENDPOINT_NAME_MAX + 1];
	bool disabled, blocked;
	uint64_t valid_until;
};

/* Room for a drop reason's label (noisetun_drops_REASON), and how many are kept (as
 * many as the daemon has: NT_METRICS_MAX_DROPS). */
#define NT_UAPI_DROP_REASON_MAX 31
#define NT_UAPI_MAX_DROPS 48

struct nt_uapi_device {
	char name[64]; /* the interface, as the caller names it (not from the reply) */
	bool has_private_key, has_public_key;
	uint8_t private_key[32], public_key[32]; /* public derived from private, as wg does */
	uint16_t listen_port;
	uint32_t fwmark;
	struct nt_uapi_device_peer *peers; /* in the daemon's order */
	size_t peers_count;
	struct nt_uapi_device_metrics {    /* noisetun_ device lines */
		bool up, under_load;
		uint64_t cookie_replies_sent;
		uint64_t handshake_jobs_pending, handshake_jobs_discarded;
		char drop_reasons[NT_UAPI_MAX_DROPS][NT_UAPI_DROP_REASON_MAX + 1];
		uint64_t drops[NT_UAPI_MAX_DROPS];
		size_t drops_count;
	} metrics;
};

/* One line of a get reply, without its '\n' (len bytes, no NUL needed, not empty), added
 * to *dev (zeroed before the first line). 1 once it was the errno= line (its value, made
 * positive, in *daemon_errno), 0 to go on, -EPROTO or -ENOMEM. */
int nt_uapi_get_line(struct nt_uapi_device *dev, const char *line, size_t len, int *daemon_errno);

/* A whole get reply: key=value lines, the errno= line, the empty line (len bytes, nothing
 * after the empty line). *dev is zeroed first. 0, -EPROTO (bad, cut short, a line after
 * errno=), -ENOMEM, or the daemon's own error as a negative errno; on error *dev is freed. */
int nt_uapi_parse_get(struct nt_uapi_device *dev, const char *reply, size_t len);

/* The reply to a set=1 request: exactly "errno=N\n\n". 0, the daemon's error (-N made
 * negative), or -EPROTO for anything else. */
int nt_uapi_parse_set_reply(const char *reply, size_t len);

/* The device in the config file format, as `wg showconf` prints it: ListenPort, FwMark,
 * PrivateKey, then each peer after a blank line: "[Peer]", its "# friendly_name = NAME"
 * (a valid name only), PublicKey, PresharedKey (not all zeros), AllowedIPs (one line,
 * ", " between), Endpoint (nt_uapi_format_endpoint), PersistentKeepalive (not 0). The one
 * writer of that text: `noisetun showconf`/`save`, SaveConfig (from the worker's device
 * or the monitor's copy of it). NT_UAPI_CONFIG_SHOWCONF: "[Interface]" first, and the
 * blank line after the device keys even without a peer, as wg showconf; without it the
 * text follows a caller's own [Interface] keys. endpoint: how an Endpoint is written (the
 * CLI shows a scope as getnameinfo does), NULL for nt_uapi_format_endpoint. snprintf-like:
 * the whole length. */
enum nt_uapi_config_flags {
	NT_UAPI_CONFIG_SHOWCONF = 1 << 0,
};
typedef void nt_uapi_endpoint_text_fn(char *buf, size_t size, const struct nt_uapi_endpoint *ep);
size_t nt_uapi_format_config(const struct nt_uapi_device *dev, int flags, nt_uapi_endpoint_text_fn *endpoint,
			     char *buf, size_t size);

/* ---- config to set: what a config file asks of a device ---- */

struct nt_config;

enum nt_config_set_flags {
	/* A file without the key sets it to none (zeros), as wg setconf and syncconf do;
	 * without the flag only the keys the file has are sent (addconf, config mode's up). */
	NT_CONFIG_SET_ABSENT_KEY = 1 << 0,    /* PrivateKey: no key */
	NT_CONFIG_SET_ABSENT_PORT = 1 << 1,   /* ListenPort: 0, a new random port */
	NT_CONFIG_SET_ABSENT_FWMARK = 1 << 2, /* FwMark: none */
	NT_CONFIG_SET_WG = NT_CONFIG_SET_ABSENT_KEY | NT_CONFIG_SET_ABSENT_PORT | NT_CONFIG_SET_ABSENT_FWMARK,
	NT_CONFIG_SET_REPLACE_PEERS = 1 << 3, /* replace_peers: the file is the whole config */
};

/* The set request cfg stands for; eps[i] is peer i's Endpoint resolved (family 0: none;
 * eps may be NULL when no peer has one). Every [Peer] replaces the allowed IPs it had (as
 * wg) and sends its key, preshared key and keepalive when the file has them, its name
 * ("# friendly_name =") when it has one. cur non-NULL: syncconf against that running
 * device: a device key goes only when it differs (a private key set again would drop
 * every session; compared clamped, as the device keeps it), each file peer's preshared
 * key and keepalive always (zero when absent: removes it), "" for a name the running
 * peer has and the file lacks, and the running peers the file lacks are removed. The
 * removals come first in peers[]; the file's peers are the last cfg->peers_count, in
 * file order. The set borrows cfg's allowed IPs: free it with nt_config_set_free before
 * nt_config_free(cfg). 0 or -ENOMEM. */
int nt_config_to_set(struct nt_uapi_set *set, const struct nt_config *cfg, const struct nt_uapi_endpoint *eps,
		     const struct nt_uapi_device *cur, int flags);
/* Wipe (keys!) and free what nt_config_to_set allocated (not cfg's allowed IPs). */
void nt_config_set_free(struct nt_uapi_set *set);

/* Wipe (keys!) and free a parsed device, leaving *dev zeroed. Safe on a zeroed struct. */
/* Append ip to peer's allowed IPs (the model's one way to grow them). 0 or -ENOMEM. */
int nt_uapi_device_peer_add_allowed_ip(struct nt_uapi_device_peer *peer, const struct nt_uapi_allowed_ip *ip);
void nt_uapi_device_free(struct nt_uapi_device *dev);

#endif
