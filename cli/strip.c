/* strip NAME|PATH: the config without its wg-quick keys, for setconf, as `wg-quick strip`
 * prints it (including the empty line its echo adds). Unlike wg-quick, the whole file is
 * checked first: a config error is reported with its line and nothing is printed. The
 * "# noisetun-endpoint = ..." comment that `client add` records and "# noisetun-mss-clamp = ..."
 * are noisetun's alone: dropped. So are the other noisetun-... comments, and a [Peer] that
 * "# noisetun-disabled = true" disables or whose "# noisetun-valid-until" has passed is
 * dropped whole: wg and wg-quick ignore comments, so keeping the peer would enable what
 * the operator disabled (fail closed). A peer with "# noisetun-preshared-key-file" loses
 * the comment, so stock wg runs it without that PSK: its handshakes fail, closed too. */
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common/file.h"

int cmd_strip(int argc, char *argv[])
{
	char path[4096], iface[16], *text, *out, *kept;
	struct nt_config cfg;
	size_t len, n, klen;
	bool *drop;
	int err, ret;

	if (quick_usage(argc, argv, &ret))
		return ret;
	if (quick_config_path(argv[1], path, sizeof(path), iface, sizeof(iface)))
		return 1;
	quick_warn_world_accessible(path);
	err = nt_file_read(path, 0, NT_FILE_CONFIG_MAX, &text, &len);
	if (err) {
		fprintf(stderr, "%s: %s\n", path, strerror(-err));
		return 1;
	}
	if (parse_config_text(path, text, len, NT_CONFIG_WG_QUICK, &cfg)) {
		nt_file_free(text, len);
		return 1;
	}
	drop = calloc(cfg.peers_count ? cfg.peers_count : 1, sizeof(*drop));
	kept = malloc(len + 1);
	if (!drop || !kept) {
		nt_config_free(&cfg);
		free(drop);
		free(kept);
		nt_file_free(text, len);
		fprintf(stderr, "%s: out of memory\n", prog_name);
		return 1;
	}
	for (size_t i = 0; i < cfg.peers_count; i++) {
		drop[i] = nt_config_peer_inactive(&cfg.peers[i], (int64_t)time(NULL));
		if (drop[i])
			fprintf(stderr, "%s:%u: [Peer] left out: %s\n", path, cfg.peers[i].line,
				cfg.peers[i].disabled ? "disabled" : "expired (noisetun-valid-until)");
	}
	klen = nt_config_drop_peers(kept, text, len, drop, cfg.peers_count);
	free(drop);
	nt_config_free(&cfg);
	nt_file_free(text, len);
	text = kept;
	len = klen;
	out = malloc(len + 1);
	if (!out) {
		nt_file_free(text, len);
		fprintf(stderr, "%s: out of memory\n", prog_name);
		return 1;
	}
	n = nt_config_strip(out, text, len);
	for (size_t start = 0; start < n;) {
		const char *nl = memchr(out + start, '\n', n - start);
		size_t end = nl ? (size_t)(nl - out) + 1 : n;

		if (!client_is_endpoint_comment(out + start, end - start) &&
		    !nt_config_is_noisetun_comment(out + start, end - start))
			fwrite(out + start, 1, end - start, stdout);
		start = end;
	}
	putchar('\n');
	nt_file_free(out, len); /* len + 1 bytes: the NUL too */
	nt_file_free(text, len);
	return fflush(stdout) ? 1 : 0;
}
