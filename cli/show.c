/* show [IFACE|all|interfaces] [FIELD] [--json]: wg's human and tab-separated outputs. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static void show_usage(void)
{
	fprintf(stderr, "Usage: %s show { <interface> | all | interfaces } [public-key | private-key | listen-port | "
			"fwmark | peers | preshared-keys | endpoints | allowed-ips | latest-handshakes | transfer | "
			"persistent-keepalive | dump] [--json]\n", prog_name);
}

static const char *key_b64(const uint8_t key[static 32])
{
	static char buf[45];

	key_to_b64(buf, key);
	return buf;
}

static const char *masked_key(const uint8_t key[static 32])
{
	const char *env = getenv("WG_HIDE_KEYS");

	if (!env || strcmp(env, "never"))
		return "(hidden)";
	return key_b64(key);
}

static const char *ip_text(const struct nt_uapi_allowed_ip *ip)
{
	static char buf[INET6_ADDRSTRLEN];

	if (!inet_ntop(ip->family, ip->addr, buf, sizeof(buf)))
		buf[0] = '\0';
	return buf;
}

static const char *endpoint_text(const struct nt_uapi_device_peer *peer)
{
	static char buf[NI_MAXHOST + NI_MAXSERV + 4];

	endpoint_display(buf, sizeof(buf), &peer->endpoint);
	return buf;
}

/* "1 year, 2 days, 3 hours, 4 minutes, 5 seconds": the units in cyan. */
static size_t pretty_time(char *buf, size_t size, unsigned long long left)
{
	static const struct { unsigned long long seconds; const char *unit; } units[] = {
		{ 365ULL * 24 * 60 * 60, "year" }, { 24 * 60 * 60, "day" }, { 60 * 60, "hour" },
		{ 60, "minute" }, { 1, "second" },
	};
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && off < size; i++) {
		unsigned long long n = left / units[i].seconds;

		left %= units[i].seconds;
		if (!n)
			continue;
		off += (size_t)snprintf(buf + off, size - off, "%s%llu " TERM_CYAN "%s%s" TERM_RESET, off ? ", " : "", n,
					units[i].unit, n == 1 ? "" : "s");
	}
	return off < size ? off : size - 1;
}

static const char *ago(int64_t then)
{
	static char buf[1024];
	time_t now = time(NULL);
	size_t off;

	if (now == then) {
		snprintf(buf, sizeof(buf), "Now");
	} else if (now < then) {
		snprintf(buf, sizeof(buf), "(" TERM_RED "System clock wound backward; connection problems may ensue." TERM_RESET ")");
	} else {
		off = pretty_time(buf, sizeof(buf), (unsigned long long)(now - then));
		snprintf(buf + off, sizeof(buf) - off, " ago");
	}
	return buf;
}

static const char *every(uint16_t seconds)
{
	static char buf[1024];
	size_t off = (size_t)snprintf(buf, sizeof(buf), "every ");

	pretty_time(buf + off, sizeof(buf) - off, seconds);
	return buf;
}

static const char *bytes(uint64_t b)
{
	static char buf[1024];

	if (b < 1024ULL)
		snprintf(buf, sizeof(buf), "%u " TERM_CYAN "B" TERM_RESET, (unsigned)b);
	else if (b < 1024ULL * 1024)
		snprintf(buf, sizeof(buf), "%.2f " TERM_CYAN "KiB" TERM_RESET, (double)b / 1024);
	else if (b < 1024ULL * 1024 * 1024)
		snprintf(buf, sizeof(buf), "%.2f " TERM_CYAN "MiB" TERM_RESET, (double)b / (1024 * 1024));
	else if (b < 1024ULL * 1024 * 1024 * 1024)
		snprintf(buf, sizeof(buf), "%.2f " TERM_CYAN "GiB" TERM_RESET, (double)b / (1024 * 1024 * 1024));
	else
		snprintf(buf, sizeof(buf), "%.2f " TERM_CYAN "TiB" TERM_RESET, (double)b / (1024.0 * 1024 * 1024 * 1024));
	return buf;
}

/* wg's order for humans: latest handshake first, peers that never shook hands last. */
static int peer_cmp(const void *first, const void *second)
{
	const struct nt_uapi_device_peer *a = *(const struct nt_uapi_device_peer *const *)first;
	const struct nt_uapi_device_peer *b = *(const struct nt_uapi_device_peer *const *)second;
	bool a_never = !a->last_handshake_sec && !a->last_handshake_nsec;
	bool b_never = !b->last_handshake_sec && !b->last_handshake_nsec;
	int64_t diff;

	if (a_never && !b_never)
		return 1;
	if (b_never && !a_never)
		return -1;
	diff = a->last_handshake_sec - b->last_handshake_sec;
	if (!diff)
		diff = a->last_handshake_nsec - b->last_handshake_nsec;
	return diff < 0 ? 1 : diff > 0 ? -1 : 0;
}

static void pretty_print(const struct nt_uapi_device *dev)
{
	const struct nt_uapi_device_peer **sorted = NULL;

	term_printf(TERM_RESET);
	term_printf(TERM_GREEN TERM_BOLD "interface" TERM_RESET ": " TERM_GREEN "%s" TERM_RESET "\n", dev->name);
	if (dev->has_public_key)
		term_printf("  " TERM_BOLD "public key" TERM_RESET ": %s\n", key_b64(dev->public_key));
	if (dev->has_private_key)
		term_printf("  " TERM_BOLD "private key" TERM_RESET ": %s\n", masked_key(dev->private_key));
	if (dev->listen_port)
		term_printf("  " TERM_BOLD "listening port" TERM_RESET ": %u\n", dev->listen_port);
	if (dev->fwmark)
		term_printf("  " TERM_BOLD "fwmark" TERM_RESET ": 0x%x\n", dev->fwmark);
	if (!dev->peers_count)
		return;
	term_printf("\n");
	/* Sort pointers with qsort, as wg does, so that ties come out in the same order. */
	sorted = calloc(dev->peers_count, sizeof(*sorted));
	for (size_t i = 0; i < dev->peers_count; i++)
		if (sorted)
			sorted[i] = &dev->peers[i];
	if (sorted)
		qsort(sorted, dev->peers_count, sizeof(*sorted), peer_cmp);
	for (size_t i = 0; i < dev->peers_count; i++) {
		const struct nt_uapi_device_peer *peer = sorted ? sorted[i] : &dev->peers[i];

		if (peer->name[0]) /* valid: printable ASCII only (ipc.c) */
			term_printf(TERM_YELLOW TERM_BOLD "peer" TERM_RESET ": " TERM_YELLOW "%s" TERM_RESET " (%s)\n",
				    key_b64(peer->public_key), peer->name);
		else
			term_printf(TERM_YELLOW TERM_BOLD "peer" TERM_RESET ": " TERM_YELLOW "%s" TERM_RESET "\n",
				    key_b64(peer->public_key));
		if (peer->has_preshared_key)
			term_printf("  " TERM_BOLD "preshared key" TERM_RESET ": %s\n", masked_key(peer->preshared_key));
		if (peer->has_endpoint && peer->endpoint_name[0])
			term_printf("  " TERM_BOLD "endpoint" TERM_RESET ": %s (%s)\n", endpoint_text(peer),
				    peer->endpoint_name);
		else if (peer->has_endpoint)
			term_printf("  " TERM_BOLD "endpoint" TERM_RESET ": %s\n", endpoint_text(peer));
		if (peer->disabled)
			term_printf("  " TERM_BOLD "disabled" TERM_RESET ": no handshake, no session\n");
		if (peer->valid_until) {
			time_t t = (time_t)peer->valid_until;
			struct tm tm;
			char when[64] = "?";

			if (gmtime_r(&t, &tm))
				strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
			term_printf("  " TERM_BOLD "valid until" TERM_RESET ": %s%s\n", when,
				    peer->blocked && !peer->disabled ? " (expired)" : "");
		}
		term_printf("  " TERM_BOLD "allowed ips" TERM_RESET ": ");
		if (peer->allowed_ips_count) {
			for (size_t j = 0; j < peer->allowed_ips_count; j++)
				term_printf("%s" TERM_CYAN "/" TERM_RESET "%u%s", ip_text(&peer->allowed_ips[j]),
					    peer->allowed_ips[j].cidr, j + 1 < peer->allowed_ips_count ? ", " : "\n");
		} else {
			term_printf("(none)\n");
		}
		if (peer->last_handshake_sec)
			term_printf("  " TERM_BOLD "latest handshake" TERM_RESET ": %s\n", ago(peer->last_handshake_sec));
		if (peer->rx_bytes || peer->tx_bytes) {
			term_printf("  " TERM_BOLD "transfer" TERM_RESET ": ");
			term_printf("%s received, ", bytes(peer->rx_bytes));
			term_printf("%s sent\n", bytes(peer->tx_bytes));
		}
		if (peer->persistent_keepalive)
			term_printf("  " TERM_BOLD "persistent keepalive" TERM_RESET ": %s\n", every(peer->persistent_keepalive));
		if (i + 1 < dev->peers_count)
			term_printf("\n");
	}
	free(sorted);
}

static void dump_device(const struct nt_uapi_device *dev, bool with_interface)
{
	if (with_interface)
		printf("%s\t", dev->name);
	printf("%s\t", dev->has_private_key ? key_b64(dev->private_key) : "(none)");
	printf("%s\t", dev->has_public_key ? key_b64(dev->public_key) : "(none)");
	printf("%u\t", dev->listen_port);
	if (dev->fwmark)
		printf("0x%x\n", dev->fwmark);
	else
		printf("off\n");
	for (size_t i = 0; i < dev->peers_count; i++) {
		const struct nt_uapi_device_peer *peer = &dev->peers[i];

		if (with_interface)
			printf("%s\t", dev->name);
		printf("%s\t", key_b64(peer->public_key));
		printf("%s\t", peer->has_preshared_key ? key_b64(peer->preshared_key) : "(none)");
		printf("%s\t", peer->has_endpoint ? endpoint_text(peer) : "(none)");
		if (peer->allowed_ips_count) {
			for (size_t j = 0; j < peer->allowed_ips_count; j++)
				printf("%s/%u%c", ip_text(&peer->allowed_ips[j]), peer->allowed_ips[j].cidr,
				       j + 1 < peer->allowed_ips_count ? ',' : '\t');
		} else {
			printf("(none)\t");
		}
		printf("%" PRId64 "\t", peer->last_handshake_sec);
		printf("%" PRIu64 "\t%" PRIu64 "\t", peer->rx_bytes, peer->tx_bytes);
		if (peer->persistent_keepalive)
			printf("%u\n", peer->persistent_keepalive);
		else
			printf("off\n");
	}
}

/* One FIELD, tab-separated; with_interface prefixes each line with the name (show all). */
static bool ugly_print(const struct nt_uapi_device *dev, const char *param, bool with_interface)
{
	const char *prefix = with_interface ? dev->name : NULL;

#define PREFIX() do { if (prefix) printf("%s\t", prefix); } while (0)
	if (!strcmp(param, "public-key")) {
		PREFIX();
		printf("%s\n", dev->has_public_key ? key_b64(dev->public_key) : "(none)");
	} else if (!strcmp(param, "private-key")) {
		PREFIX();
		printf("%s\n", dev->has_private_key ? key_b64(dev->private_key) : "(none)");
	} else if (!strcmp(param, "listen-port")) {
		PREFIX();
		printf("%u\n", dev->listen_port);
	} else if (!strcmp(param, "fwmark")) {
		PREFIX();
		if (dev->fwmark)
			printf("0x%x\n", dev->fwmark);
		else
			printf("off\n");
	} else if (!strcmp(param, "endpoints")) {
		/* wg 1.0.20210914 prints the name once, before the first peer only (and with no
		 * peers, a name and a tab without a newline). Scripts read that, so we print it. */
		PREFIX();
		for (size_t i = 0; i < dev->peers_count; i++) {
			const struct nt_uapi_device_peer *peer = &dev->peers[i];

			printf("%s\t", key_b64(peer->public_key));
			printf("%s\n", peer->has_endpoint ? endpoint_text(peer) : "(none)");
		}
	} else if (!strcmp(param, "allowed-ips")) {
		for (size_t i = 0; i < dev->peers_count; i++) {
			const struct nt_uapi_device_peer *peer = &dev->peers[i];

			PREFIX();
			printf("%s\t", key_b64(peer->public_key));
			if (peer->allowed_ips_count) {
				for (size_t j = 0; j < peer->allowed_ips_count; j++)
					printf("%s/%u%c", ip_text(&peer->allowed_ips[j]), peer->allowed_ips[j].cidr,
					       j + 1 < peer->allowed_ips_count ? ' ' : '\n');
			} else {
				printf("(none)\n");
			}
		}
	} else if (!strcmp(param, "latest-handshakes")) {
		for (size_t i = 0; i < dev->peers_count; i++) {
			PREFIX();
			printf("%s\t%" PRId64 "\n", key_b64(dev->peers[i].public_key), dev->peers[i].last_handshake_sec);
		}
	} else if (!strcmp(param, "transfer")) {
		for (size_t i = 0; i < dev->peers_count; i++) {
			PREFIX();
			printf("%s\t%" PRIu64 "\t%" PRIu64 "\n", key_b64(dev->peers[i].public_key), dev->peers[i].rx_bytes,
			       dev->peers[i].tx_bytes);
		}
	} else if (!strcmp(param, "persistent-keepalive")) {
		for (size_t i = 0; i < dev->peers_count; i++) {
			PREFIX();
			if (dev->peers[i].persistent_keepalive)
				printf("%s\t%u\n", key_b64(dev->peers[i].public_key), dev->peers[i].persistent_keepalive);
			else
				printf("%s\toff\n", key_b64(dev->peers[i].public_key));
		}
	} else if (!strcmp(param, "preshared-keys")) {
		for (size_t i = 0; i < dev->peers_count; i++) {
			const struct nt_uapi_device_peer *peer = &dev->peers[i];

			PREFIX();
			printf("%s\t", key_b64(peer->public_key));
			printf("%s\n", peer->has_preshared_key ? key_b64(peer->preshared_key) : "(none)");
		}
	} else if (!strcmp(param, "peers")) {
		for (size_t i = 0; i < dev->peers_count; i++) {
			PREFIX();
			printf("%s\n", key_b64(dev->peers[i].public_key));
		}
	} else if (!strcmp(param, "dump")) {
		dump_device(dev, with_interface);
	} else {
		fprintf(stderr, "Invalid parameter: `%s'\n", param);
		show_usage();
		return false;
	}
#undef PREFIX
	return true;
}

static int show_all(const char *field)
{
	char **names;
	size_t count;
	bool any_ok = false;
	int err = ipc_list(&names, &count);

	if (err) {
		fprintf(stderr, "Unable to list interfaces: %s\n", strerror(-err));
		return 1;
	}
	for (size_t i = 0; i < count; i++) {
		struct nt_uapi_device dev;

		err = field ? ipc_get(names[i], &dev) : ipc_get_noisetun(names[i], &dev);
		if (err) {
			fprintf(stderr, "Unable to access interface %s: %s\n", names[i], strerror(-err));
			continue;
		}
		if (field) {
			if (!ugly_print(&dev, field, true)) {
				nt_uapi_device_free(&dev);
				any_ok = false;
				break;
			}
		} else {
			pretty_print(&dev);
			if (i + 1 < count)
				printf("\n");
		}
		nt_uapi_device_free(&dev);
		any_ok = true;
	}
	ipc_names_free(names);
	/* As wg: a failure only when there were interfaces and none could be shown. */
	return count && !any_ok ? 1 : 0;
}

int cmd_show(int argc, char *argv[])
{
	char *args[3] = { NULL };
	bool json = false;
	int n = 0, ret = 0;

	for (int i = 0; i < argc; i++) {
		if (i > 0 && !strcmp(argv[i], "--json")) {
			json = true;
			continue;
		}
		if (n == 3) {
			show_usage();
			return 1;
		}
		args[n++] = argv[i];
	}
	if (json) {
		if (n > 2 || (n == 2 && !strcmp(args[1], "interfaces"))) {
			show_usage();
			return 1;
		}
		return show_json(n == 2 ? args[1] : NULL);
	}
	if (n == 1 || !strcmp(args[1], "all"))
		return show_all(n == 3 ? args[2] : NULL);
	if (!strcmp(args[1], "interfaces")) {
		char **names;
		size_t count;
		int err;

		if (n > 2) {
			show_usage();
			return 1;
		}
		err = ipc_list(&names, &count);
		if (err) {
			fprintf(stderr, "Unable to list interfaces: %s\n", strerror(-err));
			return 1;
		}
		for (size_t i = 0; i < count; i++)
			printf("%s%c", names[i], i + 1 < count ? ' ' : '\n');
		ipc_names_free(names);
		return 0;
	}
	if (n == 2 && (!strcmp(args[1], "-h") || !strcmp(args[1], "--help") || !strcmp(args[1], "help"))) {
		show_usage();
		return 0;
	}

	struct nt_uapi_device dev;
	int err = n == 3 ? ipc_get(args[1], &dev) : ipc_get_noisetun(args[1], &dev);

	if (err) {
		fprintf(stderr, "Unable to access interface: %s\n", strerror(-err));
		return 1;
	}
	if (n == 3)
		ret = ugly_print(&dev, args[2], false) ? 0 : 1;
	else
		pretty_print(&dev);
	nt_uapi_device_free(&dev);
	return ret;
}
