/* SaveConfig (savecfg.h): writing config mode's FILE back at down, as wg-quick save does,
 * and the device part as the monitor takes it from the worker: parsed strictly, written
 * back only as the monitor formats it. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/file.h"
#include "noisetun/config.h"
#include "noisetun/encoding.h"
#include "noisetun/uapi.h"
#include "noisetund.h"
#include "rtnl.h"
#include "routes.h"
#include "savecfg.h"

static int add_allowed_ip(struct nt_uapi_device_peer *mp, int family, const uint8_t *addr, uint8_t cidr)
{
	struct nt_uapi_allowed_ip ip = { .family = (uint8_t)family, .cidr = cidr };

	memcpy(ip.addr, addr, family == AF_INET6 ? 16 : 4);
	return nt_uapi_device_peer_add_allowed_ip(mp, &ip);
}

/* The device part from cfg (the worker's text, parsed), endpoints already checked, as
 * lib's model for the one writer (nt_uapi_format_config). 0 or -ENOMEM. */
static int model_of_config(struct nt_uapi_device *m, const struct nt_config *cfg, const struct nt_uapi_endpoint *eps)
{
	memset(m, 0, sizeof(*m));
	m->listen_port = cfg->has_listen_port ? cfg->listen_port : 0;
	m->fwmark = cfg->has_fwmark ? cfg->fwmark : 0;
	m->has_private_key = cfg->has_private_key;
	memcpy(m->private_key, cfg->private_key, NT_KEY_LEN);
	if (cfg->peers_count && !(m->peers = calloc(cfg->peers_count, sizeof(*m->peers))))
		return -ENOMEM;
	for (size_t i = 0; i < cfg->peers_count; i++) {
		const struct nt_config_peer *p = &cfg->peers[i];
		struct nt_uapi_device_peer *mp = &m->peers[m->peers_count++];

		memcpy(mp->public_key, p->public_key, NT_KEY_LEN);
		/* The parser kept only a valid name; the writer checks again (the worker's text). */
		if (p->name)
			snprintf(mp->name, sizeof(mp->name), "%s", p->name);
		mp->has_preshared_key = p->has_preshared_key;
		memcpy(mp->preshared_key, p->preshared_key, NT_KEY_LEN);
		for (size_t j = 0; j < p->allowed_ips_count; j++)
			if (add_allowed_ip(mp, p->allowed_ips[j].family, p->allowed_ips[j].addr, p->allowed_ips[j].cidr))
				return -ENOMEM;
		mp->has_endpoint = p->has_endpoint;
		if (p->has_endpoint)
			mp->endpoint = eps[i];
		mp->persistent_keepalive = p->has_persistent_keepalive ? p->persistent_keepalive : 0;
	}
	return 0;
}

/* The model as text, malloc'd (*len bytes and a NUL: the caller wipes it), or NULL. */
static char *config_text(const struct nt_uapi_device *m, size_t *len)
{
	char *text;

	*len = nt_uapi_format_config(m, 0, NULL, NULL, 0);
	if ((text = malloc(*len + 1)))
		nt_uapi_format_config(m, 0, NULL, text, *len + 1);
	return text;
}

/* "MTU = N\n" exactly; the length of the line, or 0. */
static size_t parse_mtu_line(const char *text, size_t len, unsigned *mtu)
{
	size_t i = 6;
	unsigned v = 0;

	if (len < 8 || memcmp(text, "MTU = ", 6))
		return 0;
	for (; i < len && i < 12 && text[i] >= '0' && text[i] <= '9'; i++)
		v = v * 10 + (unsigned)(text[i] - '0');
	if (i == 6 || i >= len || text[i] != '\n' || (text[6] == '0') || v < 68 || v > 65535)
		return 0;
	*mtu = v;
	return i + 1;
}

/* The parser ignores a "# friendly_name =" / "# Name =" comment whose name is not valid
 * (nt_config_valid_name), so such a name from the worker is dropped; say so, once. */
static void log_dropped_names(const char *text, size_t len)
{
	static const char *const keys[] = { "friendly_name", "Name" };
	size_t pos = 0, count = 0;
	unsigned line = 1, first = 0;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos), *value;
		size_t line_len = nl ? (size_t)(nl - (text + pos)) : len - pos, value_len;

		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			if (nt_config_comment_value(text + pos, line_len, keys[k], &value, &value_len) &&
			    !nt_config_valid_name(value, value_len) && !count++)
				first = line;
		pos += line_len + 1;
		line++;
	}
	if (count)
		log_error("SaveConfig: dropped %zu peer name%s the worker left that %s not valid (line %u first)", count,
			  count == 1 ? "" : "s", count == 1 ? "is" : "are", first);
}

/* SaveConfig's device part, from a worker that may be compromised (issue 20).
 *
 * Two designs were open: parse what the worker leaves in the memfd, or ask it for a get=1
 * over the control socket; either way the monitor formats the file itself from parsed
 * values and no byte of the worker's text reaches it. The memfd is the one that trusts the
 * worker less: it is read once the worker is dead (waitpid has returned), so the worker
 * chooses neither when nor how slowly the monitor reads, cannot stall the stop (a get
 * would wait on a socket the worker serves, 5 s per read), and there is no window between
 * the last `wg set` and the save; it also serves a worker that stopped on its own (link
 * deleted), when nobody is left to answer a get. The text is copied once and parsed by the
 * fuzzed config parser in its `wg setconf` mode, so the worker can only pick values of the
 * device keys, which it could set at run time anyway; a hook, any other wg-quick key, a
 * second [Interface], a NUL or an endpoint that is not numeric refuses it all.
 *
 * The text: "MTU = N\n" (decimal, 68-65535, nothing else on the line), then "[Interface]"
 * with PrivateKey, ListenPort, FwMark, and [Peer]s with PublicKey, PresharedKey,
 * AllowedIPs, Endpoint, PersistentKeepalive. What comes back: the same keys in the order
 * config_write_device() writes them, malloc'd (*size bytes: the caller wipes them), or
 * NULL with why filled ("" when the worker left nothing at all). */
char *saved_device_text(int save_fd, unsigned *mtu, size_t *size, char *why, size_t why_size)
{
	struct nt_config cfg = { 0 };
	struct nt_config_error perr;
	struct nt_uapi_endpoint *eps = NULL;
	struct nt_uapi_device model = { 0 };
	struct stat st;
	char *text = NULL, *out = NULL;
	size_t n = 0, len = 0, first, out_len;
	int err;

	*size = 0;
	why[0] = 0;
	if (save_fd < 0 || fstat(save_fd, &st) < 0 || st.st_size <= 0)
		return NULL;
	if ((size_t)st.st_size > MAX_SAVED_TEXT) {
		snprintf(why, why_size, "refused what the worker left: %lld bytes, more than %u",
			 (long long)st.st_size, MAX_SAVED_TEXT);
		return NULL;
	}
	/* Our own copy, read once: whatever happens to the memfd after is not parsed. */
	len = (size_t)st.st_size;
	if (!(text = malloc(len))) {
		snprintf(why, why_size, "cannot read what the worker left: %s", strerror(ENOMEM));
		return NULL;
	}
	while (n < len) {
		ssize_t r = pread(save_fd, text + n, len - n, (off_t)n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	if (!(first = parse_mtu_line(text, n, mtu))) {
		snprintf(why, why_size, "refused what the worker left: line 1 is not \"MTU = N\" (68-65535)");
		goto out;
	}
	/* The MTU line blanked (the parser skips it), so that line numbers are the text's. */
	memset(text, ' ', first - 1);
	err = nt_config_parse(&cfg, text, n, NT_CONFIG_WG_ONLY, &perr);
	if (err) {
		/* The parser's advice for a wg-quick key (use `noisetun strip`) is not for this log. */
		const char *quick = strstr(perr.message, ": a wg-quick key, not accepted here");

		if (perr.line && quick)
			snprintf(why, why_size, "refused what the worker left: line %u: %.*s: a key of the file, not of the device",
				 perr.line, (int)(quick - perr.message), perr.message);
		else if (perr.line)
			snprintf(why, why_size, "refused what the worker left: line %u: %s", perr.line, perr.message);
		else
			snprintf(why, why_size, "refused what the worker left: %s", perr.message);
		goto out;
	}
	if (cfg.peers_count && !(eps = calloc(cfg.peers_count, sizeof(*eps)))) {
		snprintf(why, why_size, "cannot check what the worker left: %s", strerror(ENOMEM));
		goto out;
	}
	for (size_t i = 0; i < cfg.peers_count; i++) {
		const struct nt_config_peer *p = &cfg.peers[i];
		char ep[NT_UAPI_ENDPOINT_STRLEN + 8];
		int m;

		if (!p->has_endpoint)
			continue;
		m = snprintf(ep, sizeof(ep), strchr(p->endpoint_host, ':') ? "[%s]:%u" : "%s:%u", p->endpoint_host,
			     (unsigned)p->endpoint_port);
		if (m < 0 || (size_t)m >= sizeof(ep) || nt_uapi_parse_endpoint(&eps[i], ep, (size_t)m)) {
			snprintf(why, why_size, "refused what the worker left: line %u: Endpoint: not a numeric address",
				 p->endpoint_line);
			goto out;
		}
	}
	log_dropped_names(text, n);
	if (model_of_config(&model, &cfg, eps) || !(out = config_text(&model, &out_len))) {
		snprintf(why, why_size, "cannot copy what the worker left: %s", strerror(ENOMEM));
		goto out;
	}
	*size = out_len + 1;
out:
	nt_uapi_device_free(&model);
	nt_config_free(&cfg);
	free(eps);
	explicit_bzero(text, len);
	free(text);
	return out;
}

/* ---- writing FILE ---- */

struct save_ctx {
	FILE *f;
	size_t count;
};

static int save_address(void *ctx, int family, const uint8_t *addr, uint8_t len)
{
	struct save_ctx *s = ctx;
	char buf[64];

	fprintf(s->f, "Address = %s\n", fmt_prefix(buf, sizeof(buf), family, addr, len));
	s->count++;
	return 0;
}

static void save_list(FILE *f, const char *key, char **list, size_t count)
{
	for (size_t i = 0; i < count; i++)
		fprintf(f, "%s = %s\n", key, list[i]);
}

static int model_allowed_ip(void *ctx, int family, const uint8_t *addr, uint8_t cidr)
{
	return add_allowed_ip(ctx, family, addr, cidr);
}

/* dev as lib's model, for the one writer. 0 or -ENOMEM. */
static int model_of_device(struct nt_uapi_device *m, const struct device *dev)
{
	size_t count = 0;

	memset(m, 0, sizeof(*m));
	m->listen_port = dev->listen_port;
	m->fwmark = dev->fwmark;
	m->has_private_key = dev->static_identity->has_key;
	if (m->has_private_key)
		memcpy(m->private_key, dev->static_identity->private_key, NT_KEY_LEN);
	for (const struct peer *p = dev->peers_first; p; p = p->next)
		count++;
	if (count && !(m->peers = calloc(count, sizeof(*m->peers))))
		return -ENOMEM;
	for (const struct peer *p = dev->peers_first; p && m->peers_count < count; p = p->next) {
		struct nt_uapi_device_peer *mp = &m->peers[m->peers_count++];

		memcpy(mp->public_key, p->public_key, NT_KEY_LEN);
		snprintf(mp->name, sizeof(mp->name), "%.*s", NT_CONFIG_NAME_MAX, p->name);
		mp->has_preshared_key = !nt_is_zero(p->hs.preshared_key, NT_KEY_LEN);
		memcpy(mp->preshared_key, p->hs.preshared_key, NT_KEY_LEN);
		if (nt_allowedips_foreach(&p->aips, model_allowed_ip, mp))
			return -ENOMEM;
		mp->has_endpoint = p->endpoint.sa.sa_family != AF_UNSPEC;
		if (mp->has_endpoint)
			endpoint_to_uapi(&mp->endpoint, &p->endpoint);
		mp->persistent_keepalive = p->persistent_keepalive;
	}
	return 0;
}

/* What `wg showconf` prints after [Interface] (and a peer's name as `noisetun showconf`
 * writes it): the part of SaveConfig only the device knows (the worker, when split). */
void config_write_device(FILE *f, const struct device *dev)
{
	struct nt_uapi_device m;
	char *text = NULL;
	size_t len = 0;

	if (model_of_device(&m, dev) || !(text = config_text(&m, &len)))
		log_error("SaveConfig: the device's part: %s", strerror(ENOMEM));
	else
		fputs(text, f);
	nt_uapi_device_free(&m);
	if (text) {
		explicit_bzero(text, len + 1);
		free(text);
	}
}

/* What SaveConfig writes (nt_file_replace's writer). */
struct save_job {
	struct device *dev;
	const struct nt_config *cfg;
	const char *device_text;
};

static int write_saved(FILE *f, void *ctx)
{
	const struct save_job *job = ctx;
	struct device *dev = job->dev;
	const struct nt_config *cfg = job->cfg;
	struct save_ctx s = { .f = f };
	unsigned mtu = dev->mtu;

	fprintf(f, "[Interface]\n");
	/* The link may be gone already (`ip link delete`): then the addresses we know. */
	if (rtnl_addr_list(dev->ifindex, save_address, &s) || !s.count) {
		size_t n;
		const struct nt_config_address *a = routes_addresses(&n);

		for (size_t i = 0; i < n; i++)
			save_address(&s, a[i].family, a[i].addr, a[i].cidr);
	}
	save_list(f, "DNS", cfg->dns, cfg->dns_count);
	if (cfg->has_mtu)
		fprintf(f, "MTU = %u\n", rtnl_link_mtu(dev->ifindex, &mtu) || !mtu ? dev->mtu : mtu);
	if (cfg->table == NT_TABLE_OFF)
		fprintf(f, "Table = off\n");
	else if (cfg->table_name) /* as the user wrote it, as wg-quick and `noisetun save` do */
		fprintf(f, "Table = %s\n", cfg->table_name);
	else if (cfg->table == NT_TABLE_ID)
		fprintf(f, "Table = %u\n", cfg->table_id);
	fprintf(f, "SaveConfig = true\n");
	save_list(f, "PreUp", cfg->pre_up, cfg->pre_up_count);
	save_list(f, "PostUp", cfg->post_up, cfg->post_up_count);
	save_list(f, "PreDown", cfg->pre_down, cfg->pre_down_count);
	save_list(f, "PostDown", cfg->post_down, cfg->post_down_count);
	for (unsigned i = 0; i < NT_CONFIG_ON_COUNT; i++)
		save_list(f, nt_config_on_key(i), cfg->on_event[i], cfg->on_event_count[i]);
	if (job->device_text)
		fputs(job->device_text, f);
	else
		config_write_device(f, dev);
	return 0;
}

/* wg-quick save: the wg-quick keys of the [Interface] (addresses as the link has them now),
 * then what `wg showconf` prints (the monitor's text from the worker, when split), over
 * FILE by nt_file_replace (common/file.c: a fresh mkostemp name, 0600, fsync'd, renamed;
 * the stdio buffer that holds the private key is on its stack, wiped). */
int config_save(struct device *dev, const char *real_path, const struct nt_config *cfg, const char *device_text)
{
	struct save_job job = { .dev = dev, .cfg = cfg, .device_text = device_text };
	int err, dir_err;

	err = nt_file_replace(real_path, (uid_t)-1, (gid_t)-1, write_saved, &job, &dir_err);
	if (!err && dir_err) /* costs durability, not the file */
		log_verbose("SaveConfig: fsync of %s's directory: %s", real_path, strerror(-dir_err));
	return err;
}
