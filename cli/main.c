/* noisetun: one tool with the verbs of wg(8) and wg-quick(8). Where the verbs overlap,
 * output and exit codes are wg's, so scripts written for wg keep working. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "noisetun/crypto.h"
#include "noisetun/encoding.h"

#define NOISETUN_VERSION "0.1.0"

const char *prog_name = "noisetun";

static const struct verb {
	const char *name;
	int (*run)(int argc, char *argv[]);
	const char *what;
} verbs[] = {
	{ "show", cmd_show, "Shows the current configuration and device information" },
	{ "showconf", cmd_showconf, "Shows the current configuration of a given WireGuard interface, for use with `setconf'" },
	{ "set", cmd_set, "Change the current configuration, add peers, remove peers, or change peers" },
	{ "setconf", cmd_setconf, "Applies a configuration file to a WireGuard interface" },
	{ "addconf", cmd_setconf, "Appends a configuration file to a WireGuard interface" },
	{ "syncconf", cmd_setconf, "Synchronizes a configuration file to a WireGuard interface" },
	{ "genkey", cmd_genkey, "Generates a new private key and writes it to stdout" },
	{ "genpsk", cmd_genkey, "Generates a new preshared key and writes it to stdout" },
	{ "pubkey", cmd_pubkey, "Reads a private key from stdin and writes a public key to stdout" },
	{ "up", cmd_up, "Starts the daemon for a wg-quick config: NAME (/etc/noisetun/NAME.conf, /etc/wireguard/NAME.conf) or PATH" },
	{ "down", cmd_down, "Stops the daemon of NAME|PATH|INTERFACE, which undoes what up set up" },
	{ "save", cmd_save, "Writes the running configuration back to the config file of NAME|PATH" },
	{ "events", cmd_events, "Streams the events of INTERFACE (all when omitted) as JSON lines, until interrupted" },
	{ "strip", cmd_strip, "Prints a wg-quick config without its wg-quick keys, for setconf" },
	{ "client", cmd_client, "Adds, lists or removes the road-warrior clients of a server's wg-quick config" },
	{ "metrics", cmd_metrics, "Prints the Prometheus metrics of one or all interfaces (for node_exporter's textfile collector)" },
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: %s <cmd> [<args>]\n\nAvailable subcommands:\n", prog_name);
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		fprintf(f, "  %s: %s\n", verbs[i].name, verbs[i].what);
	fprintf(f, "You may pass `--help' to any of these subcommands to view usage.\n"
		   "\n"
		   "`%s show [INTERFACE|all] --json' prints machine-readable state. Its field names are\n"
		   "stable: for one interface an object, for all an array of them:\n"
		   "  {\"interface\": NAME, \"public_key\": B64|null, \"listen_port\": N, \"fwmark\": N (0: off),\n"
		   "   \"peers\": [{\"public_key\": B64, \"name\": NAME|null, \"endpoint\": \"HOST:PORT\"|null,\n"
		   "               \"allowed_ips\": [\"CIDR\", ...], \"latest_handshake\": UNIX_SECONDS (0: never),\n"
		   "               \"rx_bytes\": N, \"tx_bytes\": N, \"persistent_keepalive\": SECONDS (0: off)}]}\n"
		   "Private and preshared keys are never included.\n"
		   "\n"
		   "Environment: NOISETUN_RUN_DIR moves the control sockets from " DEFAULT_RUN_DIR ";\n"
		   "WG_COLOR_MODE=always|never, WG_HIDE_KEYS=never and WG_ENDPOINT_RESOLUTION_RETRIES as for wg.\n",
		prog_name);
}

void key_to_b64(char out[static 45], const uint8_t key[static 32])
{
	nt_key_to_base64(out, key);
}

bool valid_interface_name(const char *name)
{
	size_t len = strlen(name);

	if (!len || len > 15)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '=' || c == '+' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

int main(int argc, char *argv[])
{
	const char *slash = strrchr(argv[0], '/');

	prog_name = slash ? slash + 1 : argv[0];
	if (nt_crypto_init()) {
		fprintf(stderr, "%s: cannot initialise libsodium\n", prog_name);
		return 1;
	}
	if (argc == 2 && (!strcmp(argv[1], "-v") || !strcmp(argv[1], "--version") || !strcmp(argv[1], "version"))) {
		printf("noisetun v%s - a WireGuard-compatible userspace VPN\n", NOISETUN_VERSION);
		return 0;
	}
	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))) {
		usage(stdout);
		return 0;
	}
	if (argc == 1) {
		static char show[] = "show";
		char *show_argv[] = { show, NULL };

		return cmd_show(1, show_argv);
	}
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(argv[1], verbs[i].name))
			return verbs[i].run(argc - 1, argv + 1);
	fprintf(stderr, "Invalid subcommand: `%s'\n", argv[1]);
	usage(stderr);
	return 1;
}
