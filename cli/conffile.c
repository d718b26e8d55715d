/* Config files from disk: read whole (common/file.c), parse with lib/config.c, report
 * "FILE:LINE: reason", resolve their endpoints (common/resolve.c); lib's nt_config_to_set
 * turns the result into a set request. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "common/file.h"

int parse_config_text(const char *path, const char *text, size_t len, int flags, struct nt_config *cfg)
{
	struct nt_config_error err;

	if (!nt_config_parse(cfg, text, len, flags, &err))
		return 0;
	if (err.line)
		fprintf(stderr, "%s:%u: %s\n", path, err.line, err.message);
	else
		fprintf(stderr, "%s: %s\n", path, err.message);
	return -1;
}

int load_config(const char *path, int flags, struct nt_config *cfg)
{
	char *text;
	size_t len;
	int ret;

	ret = nt_file_read(path, 0, NT_FILE_CONFIG_MAX, &text, &len);
	if (ret) {
		fprintf(stderr, "%s: %s\n", path, strerror(-ret));
		return -1;
	}
	ret = parse_config_text(path, text, len, flags, cfg);
	nt_file_free(text, len);
	return ret;
}

int config_resolve(const struct nt_config *cfg, const char *path, struct nt_uapi_endpoint **eps)
{
	*eps = calloc(cfg->peers_count ? cfg->peers_count : 1, sizeof(**eps));
	if (!*eps) {
		fprintf(stderr, "%s: out of memory\n", path);
		return -1;
	}
	for (size_t i = 0; i < cfg->peers_count; i++) {
		const struct nt_config_peer *p = &cfg->peers[i];
		char why[256];

		if (p->has_endpoint && endpoint_resolve(&(*eps)[i], p->endpoint_host, p->endpoint_port, why, sizeof(why))) {
			fprintf(stderr, "%s:%u: Endpoint: cannot resolve \"%s\": %s\n", path, p->endpoint_line,
				p->endpoint_host, why);
			free(*eps);
			*eps = NULL;
			return -1;
		}
	}
	return 0;
}
