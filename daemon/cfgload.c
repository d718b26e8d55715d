/* Loading config mode's FILE: read it (bounded, common/file.c), parse it, look up a named
 * Table in iproute2's tables, resolve each Endpoint as wg does (common/resolve.c). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/file.h"
#include "common/resolve.h"
#include "noisetun/config.h"
#include "noisetun/uapi.h"
#include "noisetund.h"
#include "cfgload.h"

/* Table = NAME: where ip(8) looks, /etc before /usr/share (iproute2 6.x keeps its defaults
 * there), each file then its .d/NAME.conf files. 0 with *id, or -ENOENT. */
static int table_lookup(const char *name, uint32_t *id)
{
	static const char *const dirs[] = { "/etc/iproute2", "/usr/share/iproute2" };

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char path[PATH_MAX], *text;
		size_t len;
		DIR *d;
		struct dirent *e;
		int found = -ENOENT;

		snprintf(path, sizeof(path), "%s/rt_tables", dirs[i]);
		if (!nt_file_read(path, 0, NT_FILE_CONFIG_MAX, &text, &len)) {
			found = nt_rt_tables_lookup(text, len, name, id);
			nt_file_free(text, len);
			if (!found)
				return 0;
		}
		snprintf(path, sizeof(path), "%s/rt_tables.d", dirs[i]);
		if (!(d = opendir(path)))
			continue;
		while (found && (e = readdir(d))) {
			size_t n = strlen(e->d_name);
			if (n <= 5 || strcmp(e->d_name + n - 5, ".conf") ||
			    (size_t)snprintf(path, sizeof(path), "%s/rt_tables.d/%s", dirs[i], e->d_name) >= sizeof(path) ||
			    nt_file_read(path, 0, NT_FILE_CONFIG_MAX, &text, &len))
				continue;
			found = nt_rt_tables_lookup(text, len, name, id);
			nt_file_free(text, len);
		}
		closedir(d);
		if (!found)
			return 0;
	}
	return -ENOENT;
}

/* Parse and resolve path into *cfg and *eps; on error a `FILE:LINE: message` in msg. */
int config_load(const char *path, struct nt_config *cfg, struct nt_uapi_endpoint **eps, int retries, char *msg, size_t size)
{
	struct nt_config_error perr = { 0 };
	char *text = NULL;
	size_t len = 0;
	int err;

	memset(cfg, 0, sizeof(*cfg));
	*eps = NULL;
	if ((err = nt_file_read(path, 0, NT_FILE_CONFIG_MAX, &text, &len))) {
		snprintf(msg, size, "%s: %s", path, strerror(-err));
		return err;
	}
	err = nt_config_parse(cfg, text, len, NT_CONFIG_WG_QUICK, &perr);
	nt_file_free(text, len);
	if (err) {
		if (err == -EINVAL && perr.line)
			snprintf(msg, size, "%s:%u: %s", path, perr.line, perr.message);
		else if (err == -EINVAL)
			snprintf(msg, size, "%s: %s", path, perr.message);
		else
			snprintf(msg, size, "%s: %s", path, strerror(-err));
		return err;
	}
	if (cfg->table == NT_TABLE_NAME) {
		if (table_lookup(cfg->table_name, &cfg->table_id)) {
			snprintf(msg, size, "%s: Table: no table \"%s\" in /etc/iproute2/rt_tables or /usr/share/iproute2/rt_tables",
				 path, cfg->table_name);
			nt_config_free(cfg);
			return -EINVAL;
		}
		cfg->table = NT_TABLE_ID;
	}
	*eps = calloc(cfg->peers_count ? cfg->peers_count : 1, sizeof(**eps));
	if (!*eps) {
		nt_config_free(cfg);
		snprintf(msg, size, "%s: %s", path, strerror(ENOMEM));
		return -ENOMEM;
	}
	for (size_t i = 0; i < cfg->peers_count; i++) {
		const struct nt_config_peer *p = &cfg->peers[i];
		char why[160];

		if (!p->has_endpoint)
			continue;
		/* silent: the daemon's stderr is not a terminal to tell */
		if ((err = nt_resolve_endpoint(&(*eps)[i], p->endpoint_host, p->endpoint_port, retries, NULL, why,
					       sizeof(why)))) {
			snprintf(msg, size, "%s:%u: Endpoint: cannot resolve \"%s\": %s", path,
				 p->endpoint_line ? p->endpoint_line : p->line, p->endpoint_host, why);
			nt_config_free(cfg);
			free(*eps);
			*eps = NULL;
			/* Not the file's fault (DNS may come later): unlike a parse error. */
			return -EHOSTUNREACH;
		}
	}
	return 0;
}
