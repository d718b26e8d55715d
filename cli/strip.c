/* strip NAME|PATH: the config without its wg-quick keys, for setconf, as `wg-quick strip`
 * prints it (including the empty line its echo adds). Unlike wg-quick, the whole file is
 * checked first: a config error is reported with its line and nothing is printed. The
 * "# noisetun-endpoint = ..." comment that `client add` records and "# noisetun-mss-clamp = ..."
 * are noisetun's alone: dropped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_strip(int argc, char *argv[])
{
	char path[4096], iface[16], *text, *out;
	struct nt_config cfg;
	size_t len, n;
	int err, ret;

	if (quick_usage(argc, argv, &ret))
		return ret;
	if (quick_config_path(argv[1], path, sizeof(path), iface, sizeof(iface)))
		return 1;
	quick_warn_world_accessible(path);
	err = read_file(path, &text, &len);
	if (err) {
		fprintf(stderr, "%s: %s\n", path, strerror(-err));
		return 1;
	}
	if (parse_config_text(path, text, len, NT_CONFIG_WG_QUICK, &cfg)) {
		free_text(text, len);
		return 1;
	}
	nt_config_free(&cfg);
	out = malloc(len + 1);
	if (!out) {
		free_text(text, len);
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
	free_text(out, len + 1);
	free_text(text, len);
	return fflush(stdout) ? 1 : 0;
}
