/* set IFACE [listen-port P] [fwmark M] [private-key FILE] [peer KEY [remove]
 * [preshared-key FILE] [endpoint HOST:PORT] [persistent-keepalive N|off]
 * [allowed-ips CIDR[,CIDR]...] [name NAME]]...: wg's grammar, and a peer's name (noisetun's
 * own; "" removes it). Secret keys come from files ("/dev/stdin"
 * works), never from argv; an empty file (or /dev/null) removes the key, as with wg. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common/file.h"
#include "noisetun/crypto.h"
#include "noisetun/encoding.h"

static void set_usage(void)
{
	fprintf(stderr, "Usage: %s set <interface> [listen-port <port>] [fwmark <mark>] [private-key <file path>] "
			"[peer <base64 public key> [remove] [preshared-key <file path>] [endpoint <ip>:<port>] "
			"[persistent-keepalive <interval seconds>] [allowed-ips <ip1>/<cidr1>[,<ip2>/<cidr2>]...] [name <name>] ]...\n",
		prog_name);
}

static bool is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* wg's key file: 44 characters then only whitespace; an empty file is the zero key. */
#define KEY_FILE_MAX 4096
static bool read_key_file(uint8_t key[static NT_KEY_LEN], const char *path)
{
	bool ok = false;
	size_t len, bad;
	char *text;
	int err;

	err = nt_file_read(path, 0, KEY_FILE_MAX, &text, &len);
	if (err) {
		fprintf(stderr, "%s: %s\n", path, strerror(-err));
		return false;
	}
	switch (nt_key_file_parse(key, text, len, &bad)) {
	case 0:
		ok = true;
		break;
	case -ENODATA: /* as wg: an empty file (or /dev/null) removes the key */
		memset(key, 0, NT_KEY_LEN);
		ok = true;
		break;
	case -EMSGSIZE:
		fprintf(stderr, "Invalid length key in key file\n");
		break;
	case -EINVAL:
		fprintf(stderr, "Found trailing character in key file: `%c'\n", text[bad]);
		break;
	default:
		fprintf(stderr, "Key is not the correct length or format in key file `%s'\n", path);
		break;
	}
	nt_file_free(text, len);
	return ok;
}

static bool parse_number_arg(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return false;
	*out = v;
	return true;
}

static bool parse_fwmark_arg(const char *s, uint32_t *out)
{
	char *end;
	unsigned long long v;

	if (!strcasecmp(s, "off")) {
		*out = 0;
		return true;
	}
	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, strlen(s) > 2 && s[0] == '0' && s[1] == 'x' ? 16 : 10);
	if (errno || *end || v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

/* Whitespace anywhere is ignored, entries are comma-separated, "" means none. */
static bool parse_allowed_ips_arg(struct nt_uapi_peer *peer, const char *arg)
{
	size_t len = strlen(arg), n = 0, start = 0;
	char *s = malloc(len + 1);
	bool ok = true;

	if (!s)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_space(arg[i]))
			s[n++] = arg[i];
	free(peer->allowed_ips);
	peer->allowed_ips = NULL;
	peer->allowed_ips_count = 0;
	while (n && start <= n && ok) {
		char *comma = memchr(s + start, ',', n - start);
		size_t end = comma ? (size_t)(comma - s) : n;
		struct nt_uapi_allowed_ip ip, *bigger;

		if (nt_uapi_parse_allowed_ip(&ip, s + start, end - start)) {
			fprintf(stderr, "AllowedIP is not in the correct format: `%.*s'\n", (int)(end - start), s + start);
			ok = false;
			break;
		}
		bigger = realloc(peer->allowed_ips, (peer->allowed_ips_count + 1) * sizeof(*bigger));
		if (!bigger) {
			ok = false;
			break;
		}
		peer->allowed_ips = bigger;
		peer->allowed_ips[peer->allowed_ips_count++] = ip;
		start = end + 1;
	}
	free(s);
	return ok;
}

static void free_set(struct nt_uapi_set *set)
{
	for (size_t i = 0; i < set->peers_count; i++)
		free(set->peers[i].allowed_ips);
	if (set->peers)
		nt_wipe(set->peers, set->peers_count * sizeof(*set->peers));
	free(set->peers);
	nt_wipe(set, sizeof(*set));
}

int cmd_set(int argc, char *argv[])
{
	struct nt_uapi_set set = { 0 };
	struct nt_uapi_peer *peer = NULL;
	const char *iface;
	uint64_t v;
	int ret = 1, err;

	if (argc < 3) {
		set_usage();
		return 1;
	}
	iface = argv[1];
	argv += 2;
	argc -= 2;
	while (argc > 0) {
		const char *arg = argv[0], *value = argc >= 2 ? argv[1] : NULL;
		int used = 2;

		if (!strcmp(arg, "listen-port") && value && !peer) {
			if (!parse_number_arg(value, UINT16_MAX, &v)) {
				fprintf(stderr, "Unable to parse port: `%s'\n", value);
				goto out;
			}
			set.has_listen_port = true;
			set.listen_port = (uint16_t)v;
		} else if (!strcmp(arg, "fwmark") && value && !peer) {
			if (!parse_fwmark_arg(value, &set.fwmark)) {
				fprintf(stderr, "Fwmark is neither 0/off nor 0-0xffffffff: `%s'\n", value);
				goto out;
			}
			set.has_fwmark = true;
		} else if (!strcmp(arg, "private-key") && value && !peer) {
			if (!read_key_file(set.private_key, value))
				goto out;
			set.has_private_key = true;
		} else if (!strcmp(arg, "peer") && value) {
			struct nt_uapi_peer *bigger = realloc(set.peers, (set.peers_count + 1) * sizeof(*bigger));

			if (!bigger) {
				fprintf(stderr, "%s: out of memory\n", prog_name);
				goto out;
			}
			set.peers = bigger;
			peer = &set.peers[set.peers_count++];
			memset(peer, 0, sizeof(*peer));
			if (strlen(value) != NT_KEY_B64_LEN || nt_key_from_base64(peer->public_key, value)) {
				fprintf(stderr, "Key is not the correct length or format: `%s'\n", value);
				goto out;
			}
		} else if (!strcmp(arg, "remove") && peer) {
			peer->remove = true;
			used = 1;
		} else if (!strcmp(arg, "endpoint") && value && peer) {
			char why[256];

			if (endpoint_parse_resolve(&peer->endpoint, value, why, sizeof(why))) {
				fprintf(stderr, "%s: `%s'\n", why, value);
				goto out;
			}
			peer->has_endpoint = true;
		} else if (!strcmp(arg, "allowed-ips") && value && peer) {
			if (!parse_allowed_ips_arg(peer, value))
				goto out;
			peer->replace_allowed_ips = true;
		} else if (!strcmp(arg, "persistent-keepalive") && value && peer) {
			if (strcasecmp(value, "off") && !parse_number_arg(value, UINT16_MAX, &v)) {
				fprintf(stderr, "Persistent keepalive interval is neither 0/off nor 1-65535: `%s'\n", value);
				goto out;
			}
			peer->has_persistent_keepalive = true;
			peer->persistent_keepalive = strcasecmp(value, "off") ? (uint16_t)v : 0;
		} else if (!strcmp(arg, "name") && value && peer) {
			/* noisetun only; "" removes the name. */
			if (*value && !nt_config_valid_name(value, strlen(value))) {
				fprintf(stderr, "Name is not 1-%d printable ASCII characters without a space at either end: `%s'\n",
					NT_CONFIG_NAME_MAX, value);
				goto out;
			}
			peer->has_name = true;
			snprintf(peer->name, sizeof(peer->name), "%s", value);
		} else if (!strcmp(arg, "preshared-key") && value && peer) {
			if (!read_key_file(peer->preshared_key, value))
				goto out;
			peer->has_preshared_key = true;
		} else {
			fprintf(stderr, "Invalid argument: %s\n", arg);
			goto out;
		}
		argv += used;
		argc -= used;
	}
	err = ipc_set(iface, &set);
	if (err) {
		fprintf(stderr, "Unable to modify interface: %s\n", strerror(-err));
		goto out;
	}
	ret = 0;
out:
	free_set(&set);
	return ret;
}
