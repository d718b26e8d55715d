/* client add|list|remove: road-warrior peers in a server's wg-quick config (issue 18).
 *
 *   client add CONFIG NAME [--endpoint HOST:PORT] [--full-tunnel] [--dns ADDR,...] [--qr FILE.png]
 *       The next free address in each subnet of the server's Address (free: not the
 *       server's own, not inside any peer's AllowedIPs), a fresh key pair and preshared
 *       key; a [Peer] appended to CONFIG with "# friendly_name = NAME"; the client's
 *       config on stdout (drawn as a QR code too on a terminal; --qr writes a PNG). The
 *       client's private key is printed once and stored nowhere.
 *   client list CONFIG
 *       NAME<TAB>ADDRESSES<TAB>PUBLIC_KEY<TAB>HANDSHAKE per peer, HANDSHAKE "-" without a
 *       running daemon, "absent" for a peer it does not have, "never", or the UTC time of
 *       the latest one.
 *   client remove CONFIG NAME
 *       The peer's lines taken out of CONFIG, and the peer out of the running daemon.
 *
 * CONFIG is a path or NAME as `up` resolves it. When the interface's daemon answers on its
 * control socket, add and remove change only that one peer there (a set=1 without
 * replace_peers), so no other session is touched.
 *
 * The server's public endpoint is --endpoint or the one recorded in CONFIG by the first
 * --endpoint: a whole-line comment "# noisetun-endpoint = HOST:PORT" under [Interface],
 * which wg and wg-quick ignore and `noisetun strip` drops.
 *
 * CONFIG is changed under an exclusive flock on it (re-taken if the file was replaced while
 * waiting), and rewritten atomically: a temporary file beside it (0600, the same owner),
 * written, fsynced, renamed over, and the directory fsynced. Every line not added or
 * removed is kept byte for byte. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <png.h>
#include <qrencode.h>
#include <sodium.h>

#include "cli.h"
#include "common/file.h"
#include "noisetun/text.h"
#include "noisetun/crypto.h"
#include "noisetun/encoding.h"

#define ENDPOINT_KEY "noisetun-endpoint"
#define MAX_HOSTPORT 300   /* a DNS name (253), brackets, ':' and a port */
#define MAX_DNS_TEXT 1024
#define KEEPALIVE 25
#define MAX_TRIES (1u << 20) /* candidate addresses looked at per subnet */
#define QR_MARGIN_TERM 2
#define QR_MARGIN_PNG 4
#define QR_PNG_SCALE 8

/* ------------------------------------------------------------------ growing text, wiped */

static void text_key(struct nt_text *b, const char *name, const uint8_t key[static NT_KEY_LEN])
{
	char b64[NT_KEY_B64_LEN + 1];

	nt_key_to_base64(b64, key);
	nt_text_printf(b, "%s = %s\n", name, b64);
	nt_wipe(b64, sizeof(b64));
}

/* ------------------------------------------------------------------ lines of the file */

enum line_kind { LINE_BLANK, LINE_COMMENT, LINE_SECTION, LINE_KEY };

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' || c == '\n';
}

static enum line_kind line_kind(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len && is_blank(s[i]))
		i++;
	if (i == len)
		return LINE_BLANK;
	if (s[i] == '#')
		return LINE_COMMENT;
	return s[i] == '[' ? LINE_SECTION : LINE_KEY;
}

/* The start of every line of text, and one past the end: lines[k] for line k + 1. */
static size_t *line_starts(const char *text, size_t len, size_t *count)
{
	size_t n = 1, k = 0, *starts;

	for (size_t i = 0; i < len; i++)
		if (text[i] == '\n' && i + 1 < len)
			n++;
	starts = calloc(n + 1, sizeof(*starts));
	if (!starts)
		return NULL;
	starts[k++] = 0;
	for (size_t i = 0; i < len; i++)
		if (text[i] == '\n' && i + 1 < len)
			starts[k++] = i + 1;
	starts[k] = len;
	*count = len ? n : 0;
	return starts;
}

bool client_is_endpoint_comment(const char *line, size_t len)
{
	const char *v;
	size_t n;

	return nt_config_comment_value(line, len, ENDPOINT_KEY, &v, &n);
}

/* What may stand in a host:port or a DNS entry written into a config: no blanks, no '#',
 * no '=' or ',' that would change how the line reads. */
static bool safe_word(const char *s, size_t len, size_t max)
{
	if (!len || len > max)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '-' || c == '_' || c == ':' || c == '[' || c == ']' || c == '%'))
			return false;
	}
	return true;
}

/* ------------------------------------------------------------------ the server's file */

struct server {
	char path[PATH_MAX];  /* the real path (a symlink is followed: the file is replaced) */
	char iface[16];
	int lock_fd;
	struct stat st;
	char *text;
	size_t len;
	struct nt_config cfg;
	size_t *starts;       /* line_starts of text */
	size_t lines;
};

static void server_close(struct server *srv)
{
	if (srv->lock_fd >= 0)
		close(srv->lock_fd); /* releases the flock */
	srv->lock_fd = -1;
	nt_file_free(srv->text, srv->len);
	srv->text = NULL;
	nt_config_free(&srv->cfg);
	free(srv->starts);
	srv->starts = NULL;
}

/* An exclusive flock on path's file. The file is replaced by rename, so a lock taken on an
 * inode that is no longer the path's is dropped and taken again on the new one. */
static int lock_path(const char *path, struct stat *st)
{
	for (unsigned tries = 0; tries < 1000; tries++) {
		struct stat now;
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

		if (fd < 0)
			return -errno;
		while (flock(fd, LOCK_EX) < 0) {
			if (errno != EINTR) {
				int err = -errno;

				close(fd);
				return err;
			}
		}
		if (fstat(fd, st) < 0 || stat(path, &now) < 0) {
			int err = -errno;

			close(fd);
			return err;
		}
		if (st->st_dev == now.st_dev && st->st_ino == now.st_ino)
			return fd;
		close(fd);
	}
	return -EAGAIN;
}

static int server_open(struct server *srv, const char *arg)
{
	char given[PATH_MAX];
	int err;

	memset(srv, 0, sizeof(*srv));
	srv->lock_fd = -1;
	if (quick_config_path(arg, given, sizeof(given), srv->iface, sizeof(srv->iface)))
		return -1;
	if (!realpath(given, srv->path)) {
		fprintf(stderr, "%s: %s\n", given, strerror(errno));
		return -1;
	}
	srv->lock_fd = lock_path(srv->path, &srv->st);
	if (srv->lock_fd < 0) {
		fprintf(stderr, "%s: cannot lock: %s\n", srv->path, strerror(-srv->lock_fd));
		return -1;
	}
	if (!S_ISREG(srv->st.st_mode)) {
		fprintf(stderr, "%s: not a regular file\n", srv->path);
		goto fail;
	}
	err = nt_file_read(srv->path, 0, NT_FILE_CONFIG_MAX, &srv->text, &srv->len);
	if (err) {
		fprintf(stderr, "%s: %s\n", srv->path, strerror(-err));
		goto fail;
	}
	if (parse_config_text(srv->path, srv->text, srv->len, NT_CONFIG_WG_QUICK, &srv->cfg))
		goto fail;
	srv->starts = line_starts(srv->text, srv->len, &srv->lines);
	if (!srv->starts) {
		fprintf(stderr, "%s: out of memory\n", prog_name);
		goto fail;
	}
	return 0;
fail:
	server_close(srv);
	return -1;
}

static const char *line_at(const struct server *srv, size_t line, size_t *len)
{
	*len = srv->starts[line] - srv->starts[line - 1];
	return srv->text + srv->starts[line - 1];
}

/* Write text over srv->path atomically (nt_file_replace); the file keeps its owner, mode
 * 0600, and the rename is made durable. */
static int server_write(const struct server *srv, const char *text, size_t len)
{
	struct nt_file_text t = { .text = text, .len = len };
	int err, dir_err;

	err = nt_file_replace(srv->path, srv->st.st_uid, srv->st.st_gid, nt_file_write_text, &t, &dir_err);
	return err ? err : dir_err;
}

/* Re-read what is about to be written: it must still parse (never leave a broken file). */
static int check_new_text(const char *what, const char *text, size_t len, struct nt_config *cfg)
{
	struct nt_config_error err;

	if (!nt_config_parse(cfg, text, len, NT_CONFIG_WG_QUICK, &err))
		return 0;
	fprintf(stderr, "%s would not parse (line %u: %s); nothing written\n", what, err.line, err.message);
	return -1;
}

static const struct nt_config_peer *peer_by_name(const struct nt_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->peers_count; i++)
		if (cfg->peers[i].name && !strcmp(cfg->peers[i].name, name))
			return &cfg->peers[i];
	return NULL;
}

/* The recorded endpoint: "# noisetun-endpoint = ..." in the [Interface] section. */
static bool recorded_endpoint(const struct server *srv, char *out, size_t size)
{
	bool in_interface = false;

	for (size_t k = 1; k <= srv->lines; k++) {
		size_t len, vlen;
		const char *line = line_at(srv, k, &len), *v;

		if (line_kind(line, len) == LINE_SECTION) {
			struct nt_config_error err;
			struct nt_config tmp;

			/* A header line as the parser reads it: only [Interface] parses alone. */
			in_interface = !nt_config_parse(&tmp, line, len, NT_CONFIG_WG_QUICK, &err);
			nt_config_free(&tmp);
		} else if (in_interface && nt_config_comment_value(line, len, ENDPOINT_KEY, &v, &vlen) && vlen < size) {
			memcpy(out, v, vlen);
			out[vlen] = '\0';
			return true;
		}
	}
	return false;
}

/* ------------------------------------------------------------------ addresses */

static size_t family_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

static bool in_prefix(const uint8_t *prefix, unsigned cidr, const uint8_t *addr)
{
	unsigned full = cidr / 8, rest = cidr % 8;

	if (memcmp(prefix, addr, full))
		return false;
	return !rest || !((prefix[full] ^ addr[full]) & (uint8_t)(0xff << (8 - rest)));
}

static bool address_taken(const struct nt_config *cfg, int family, const uint8_t *addr)
{
	size_t alen = family_len(family);

	for (size_t i = 0; i < cfg->addresses_count; i++)
		if (cfg->addresses[i].family == family && !memcmp(cfg->addresses[i].addr, addr, alen))
			return true;
	for (size_t i = 0; i < cfg->peers_count; i++)
		for (size_t j = 0; j < cfg->peers[i].allowed_ips_count; j++) {
			const struct nt_uapi_allowed_ip *ip = &cfg->peers[i].allowed_ips[j];

			if (ip->family == family && in_prefix(ip->addr, ip->cidr, addr))
				return true;
		}
	return false;
}

static void mask(uint8_t *addr, size_t alen, unsigned cidr)
{
	for (size_t i = 0; i < alen; i++) {
		unsigned bits = cidr >= 8 * (i + 1) ? 8 : cidr > 8 * i ? cidr - 8 * i : 0;

		addr[i] &= (uint8_t)(0xff00 >> bits);
	}
}

/* addr += n, big-endian, carrying into the higher bytes. */
static void add_to(uint8_t *addr, size_t alen, uint64_t n)
{
	for (size_t i = alen; i-- > 0 && n;) {
		uint64_t sum = addr[i] + (n & 0xff);

		addr[i] = (uint8_t)sum;
		n = (n >> 8) + (sum >> 8);
	}
}

/* The next free host of the subnet of a: from network + 1 up, the IPv4 broadcast excluded.
 * 0, or -ENOSPC. */
static int next_free(const struct nt_config *cfg, const struct nt_config_address *a, uint8_t out[16])
{
	size_t alen = family_len(a->family);
	unsigned host_bits = (unsigned)alen * 8 - a->cidr;
	uint64_t hosts = host_bits >= 63 ? UINT64_MAX : (1ull << host_bits) - 1; /* the last offset */

	if (a->family == AF_INET)
		hosts--; /* broadcast */
	for (uint64_t i = 1; i <= hosts && i <= MAX_TRIES; i++) {
		memset(out, 0, 16);
		memcpy(out, a->addr, alen);
		mask(out, alen, a->cidr);
		add_to(out, alen, i);
		if (!address_taken(cfg, a->family, out))
			return 0;
	}
	return -ENOSPC;
}

static void prefix_text(char *buf, size_t size, int family, const uint8_t *addr, unsigned cidr)
{
	char a[INET6_ADDRSTRLEN];

	inet_ntop(family, addr, a, sizeof(a));
	snprintf(buf, size, "%s/%u", a, cidr);
}

/* ------------------------------------------------------------------ QR codes */

static bool qr_dark(const QRcode *qr, int x, int y)
{
	return x >= 0 && y >= 0 && x < qr->width && y < qr->width && (qr->data[y * qr->width + x] & 1);
}

static QRcode *qr_encode(const char *text, size_t len)
{
	QRcode *qr = QRcode_encodeData((int)len, (const unsigned char *)text, 0, QR_ECLEVEL_L);

	if (!qr)
		fprintf(stderr, "%s: cannot encode the config as a QR code: %s\n", prog_name, strerror(errno));
	return qr;
}

static void qr_free(QRcode *qr)
{
	if (qr) {
		nt_wipe(qr->data, (size_t)qr->width * (size_t)qr->width);
		QRcode_free(qr);
	}
}

/* Two modules per character cell with the UTF-8 half blocks; light modules are drawn in
 * the foreground colour (bright white) on black, whatever the terminal's own colours. */
static void qr_print_terminal(const QRcode *qr, FILE *f)
{
	static const char *const cell[4] = { " ", "\u2584", "\u2580", "\u2588" }; /* top light: 2, bottom: 1 */
	int m = QR_MARGIN_TERM;

	for (int y = -m; y < qr->width + m; y += 2) {
		fputs("\x1b[40;97m", f);
		for (int x = -m; x < qr->width + m; x++) {
			bool top = !qr_dark(qr, x, y), bottom = y + 1 < qr->width + m && !qr_dark(qr, x, y + 1);

			fputs(cell[(top ? 2 : 0) | (bottom ? 1 : 0)], f);
		}
		fputs("\x1b[0m\n", f);
	}
}

struct png_out {
	FILE *f;
	png_structp png;
	png_infop info;
	uint8_t *row;
	size_t row_len;
};

/* Grayscale, 8 bits, QR_PNG_SCALE pixels per module and a quiet zone of QR_MARGIN_PNG. */
static int qr_write_png(const QRcode *qr, const char *path)
{
	struct png_out o = { 0 };
	volatile int ret = -1;
	int fd, m = QR_MARGIN_PNG, side = (qr->width + 2 * m) * QR_PNG_SCALE;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || fchmod(fd, 0600) < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	o.f = fdopen(fd, "wb");
	o.row_len = (size_t)side;
	o.row = malloc(o.row_len);
	if (!o.f || !o.row) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		if (o.f)
			fclose(o.f);
		else
			close(fd);
		free(o.row);
		return -1;
	}
	o.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	if (o.png)
		o.info = png_create_info_struct(o.png);
	if (!o.png || !o.info) {
		fprintf(stderr, "%s: libpng: out of memory\n", path);
		goto out;
	}
	if (setjmp(png_jmpbuf(o.png))) {
		fprintf(stderr, "%s: libpng failed to write the image\n", path);
		goto out;
	}
	png_init_io(o.png, o.f);
	png_set_IHDR(o.png, o.info, (png_uint_32)side, (png_uint_32)side, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
		     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(o.png, o.info);
	for (int y = 0; y < side; y++) {
		int my = y / QR_PNG_SCALE - m;

		for (int x = 0; x < side; x++)
			o.row[x] = qr_dark(qr, x / QR_PNG_SCALE - m, my) ? 0 : 255;
		png_write_row(o.png, o.row);
	}
	png_write_end(o.png, o.info);
	ret = 0;
out:
	png_destroy_write_struct(o.png ? &o.png : NULL, o.info ? &o.info : NULL);
	nt_wipe(o.row, o.row_len);
	free(o.row);
	if (fflush(o.f) || fsync(fileno(o.f)) < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		ret = -1;
	}
	if (fclose(o.f) && !ret) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		ret = -1;
	}
	if (ret)
		unlink(path);
	return ret;
}

/* ------------------------------------------------------------------ add */

struct add_args {
	const char *config, *name, *endpoint, *dns, *qr_path;
	bool full_tunnel;
};

static void client_usage(FILE *f)
{
	fprintf(f,
		"Usage: %s client add CONFIG NAME [--endpoint HOST:PORT] [--full-tunnel] [--dns ADDR,...] [--qr FILE.png]\n"
		"       %s client list CONFIG\n"
		"       %s client remove CONFIG NAME\n"
		"  CONFIG is a server's wg-quick config file, or INTERFACE for /etc/noisetun/INTERFACE.conf,\n"
		"  else /etc/wireguard/INTERFACE.conf. add prints the new client's config on stdout (and a\n"
		"  QR code on a terminal); its private key is not kept anywhere. The first --endpoint is\n"
		"  recorded in CONFIG (\"# " ENDPOINT_KEY " = HOST:PORT\") for later clients. A running\n"
		"  daemon of the interface gets the change at once, without touching other peers.\n",
		prog_name, prog_name, prog_name);
}

static int parse_add_args(int argc, char *argv[], struct add_args *a)
{
	const char *pos[2];
	int npos = 0;

	memset(a, 0, sizeof(*a));
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i], **dst = NULL, *eq;
		static const struct {
			const char *name;
			size_t off;
		} opts[] = {
			{ "--endpoint", offsetof(struct add_args, endpoint) },
			{ "--dns", offsetof(struct add_args, dns) },
			{ "--qr", offsetof(struct add_args, qr_path) },
		};

		if (!strcmp(arg, "--full-tunnel")) {
			a->full_tunnel = true;
			continue;
		}
		for (size_t o = 0; o < sizeof(opts) / sizeof(opts[0]); o++) {
			size_t n = strlen(opts[o].name);

			if (!strncmp(arg, opts[o].name, n) && (arg[n] == '\0' || arg[n] == '=')) {
				dst = (const char **)((char *)a + opts[o].off);
				eq = arg[n] == '=' ? arg + n + 1 : NULL;
				if (!eq && i + 1 >= argc) {
					fprintf(stderr, "%s: %s needs a value\n", prog_name, opts[o].name);
					return -1;
				}
				*dst = eq ? eq : argv[++i];
				break;
			}
		}
		if (dst)
			continue;
		if (arg[0] == '-' && arg[1] == '-') {
			fprintf(stderr, "%s: unknown option `%s'\n", prog_name, arg);
			return -1;
		}
		if (npos == 2) {
			fprintf(stderr, "%s: too many arguments\n", prog_name);
			return -1;
		}
		pos[npos++] = arg;
	}
	if (npos != 2)
		return -1;
	a->config = pos[0];
	a->name = pos[1];
	return 0;
}

static bool check_name(const char *name)
{
	if (nt_config_valid_name(name, strlen(name)))
		return true;
	fprintf(stderr, "%s: a client name is 1 to %d printable ASCII characters, not starting or ending with a space\n",
		prog_name, NT_CONFIG_NAME_MAX);
	return false;
}

struct client {
	uint8_t private_key[NT_KEY_LEN], public_key[NT_KEY_LEN], psk[NT_KEY_LEN];
	struct nt_uapi_allowed_ip ips[8]; /* its /32s and /128s */
	size_t ips_count;
};

/* The client's config, as printed. */
static void client_config(struct nt_text *b, const struct server *srv, const struct client *c, const uint8_t server_pub[32],
			  const char *endpoint, const struct add_args *a)
{
	char text[INET6_ADDRSTRLEN + 8];
	bool first = true;

	nt_text_printf(b, "[Interface]\n");
	text_key(b, "PrivateKey", c->private_key);
	nt_text_printf(b, "Address = ");
	for (size_t i = 0; i < c->ips_count; i++) {
		prefix_text(text, sizeof(text), c->ips[i].family, c->ips[i].addr, c->ips[i].cidr);
		nt_text_printf(b, "%s%s", i ? ", " : "", text);
	}
	nt_text_printf(b, "\n");
	if (a->dns) {
		nt_text_printf(b, "DNS = ");
		for (const char *s = a->dns; *s;) {
			size_t n = strcspn(s, ",");

			nt_text_printf(b, "%s%.*s", first ? "" : ", ", (int)n, s);
			first = false;
			s += n + (s[n] == ',');
		}
		nt_text_printf(b, "\n");
	}
	nt_text_printf(b, "\n[Peer]\n");
	text_key(b, "PublicKey", server_pub);
	text_key(b, "PresharedKey", c->psk);
	nt_text_printf(b, "Endpoint = %s\n", endpoint);
	nt_text_printf(b, "AllowedIPs = ");
	if (a->full_tunnel) {
		nt_text_printf(b, "0.0.0.0/0, ::/0");
	} else {
		first = true;
		for (size_t i = 0; i < srv->cfg.addresses_count; i++) {
			struct nt_config_address net = srv->cfg.addresses[i];
			size_t alen = family_len(net.family);

			if (net.cidr >= alen * 8 - 1)
				continue;
			mask(net.addr, alen, net.cidr);
			prefix_text(text, sizeof(text), net.family, net.addr, net.cidr);
			nt_text_printf(b, "%s%s", first ? "" : ", ", text);
			first = false;
		}
	}
	nt_text_printf(b, "\nPersistentKeepalive = %u\n", KEEPALIVE);
}

static bool check_dns(const char *dns)
{
	size_t total = strlen(dns);

	if (!total || total > MAX_DNS_TEXT)
		goto bad;
	for (const char *s = dns; *s;) {
		size_t n = strcspn(s, ",");

		if (!safe_word(s, n, 253))
			goto bad;
		s += n + (s[n] == ',');
		if (s[-1] == ',' && !*s)
			goto bad;
	}
	return true;
bad:
	fprintf(stderr, "%s: --dns takes addresses (or search domains) separated by commas\n", prog_name);
	return false;
}

static int cmd_client_add(int argc, char *argv[])
{
	struct add_args a;
	struct server srv;
	struct client *c = NULL;
	struct nt_text conf = { 0 }, file = { 0 };
	struct nt_config check;
	uint8_t server_pub[NT_KEY_LEN];
	char endpoint[MAX_HOSTPORT + 1], text[INET6_ADDRSTRLEN + 8];
	bool record_endpoint = false, live = false;
	QRcode *qr = NULL;
	int ret = 1, err;

	if (parse_add_args(argc, argv, &a)) {
		client_usage(stderr);
		return 1;
	}
	if (!check_name(a.name) || (a.dns && !check_dns(a.dns)))
		return 1;
	if (a.endpoint && !safe_word(a.endpoint, strlen(a.endpoint), MAX_HOSTPORT)) {
		fprintf(stderr, "%s: --endpoint `%s' is not HOST:PORT\n", prog_name, a.endpoint);
		return 1;
	}
	if (server_open(&srv, a.config))
		return 1;
	quick_warn_world_accessible(srv.path);
	if (!srv.cfg.has_private_key || nt_dh_public(server_pub, srv.cfg.private_key)) {
		fprintf(stderr, "%s: no usable PrivateKey in [Interface]: not a server config\n", srv.path);
		goto out;
	}
	if (peer_by_name(&srv.cfg, a.name)) {
		fprintf(stderr, "%s: a peer named \"%s\" exists already\n", srv.path, a.name);
		goto out;
	}
	/* Recorded only the first time: a later --endpoint is for this client alone. */
	if (a.endpoint) {
		char old[MAX_HOSTPORT + 1];

		snprintf(endpoint, sizeof(endpoint), "%s", a.endpoint);
		record_endpoint = !recorded_endpoint(&srv, old, sizeof(old));
	} else if (!recorded_endpoint(&srv, endpoint, sizeof(endpoint))) {
		fprintf(stderr,
			"%s: no endpoint for clients: give --endpoint HOST:PORT (the server's public address; "
			"recorded in the file for the next clients)\n",
			srv.path);
		goto out;
	} else if (!safe_word(endpoint, strlen(endpoint), MAX_HOSTPORT)) {
		fprintf(stderr, "%s: the recorded " ENDPOINT_KEY " is not HOST:PORT\n", srv.path);
		goto out;
	}

	c = sodium_malloc(sizeof(*c));
	if (!c) {
		fprintf(stderr, "%s: out of memory\n", prog_name);
		goto out;
	}
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < srv.cfg.addresses_count; i++) {
		const struct nt_config_address *addr = &srv.cfg.addresses[i];
		struct nt_uapi_allowed_ip *ip;

		if (addr->cidr >= family_len(addr->family) * 8 - 1)
			continue; /* a host address, no subnet to take from */
		if (c->ips_count == sizeof(c->ips) / sizeof(c->ips[0])) {
			fprintf(stderr, "%s: too many Address subnets\n", srv.path);
			goto out;
		}
		ip = &c->ips[c->ips_count];
		ip->family = addr->family;
		ip->cidr = (uint8_t)(family_len(addr->family) * 8);
		if (next_free(&srv.cfg, addr, ip->addr)) {
			prefix_text(text, sizeof(text), addr->family, addr->addr, addr->cidr);
			fprintf(stderr, "%s: no free address left in the subnet of Address %s\n", srv.path, text);
			goto out;
		}
		c->ips_count++;
	}
	if (!c->ips_count) {
		fprintf(stderr, "%s: the [Interface] has no Address with a subnet (e.g. 10.0.0.1/24) to take client addresses from\n",
			srv.path);
		goto out;
	}
	randombytes_buf(c->private_key, sizeof(c->private_key));
	nt_key_clamp(c->private_key);
	randombytes_buf(c->psk, sizeof(c->psk));
	if (nt_dh_public(c->public_key, c->private_key)) {
		fprintf(stderr, "%s: key generation failed\n", prog_name);
		goto out;
	}

	/* The client's config, checked as any config is read. */
	client_config(&conf, &srv, c, server_pub, endpoint, &a);
	if (conf.failed) {
		fprintf(stderr, "%s: out of memory\n", prog_name);
		goto out;
	}
	if (check_new_text("the client's config (check --endpoint and --dns)", conf.buf, conf.len, &check))
		goto out;
	nt_config_free(&check);

	/* The server's file: the endpoint comment after the [Interface] line the first time,
	 * the new [Peer] at the end; everything else as it was. */
	if (record_endpoint) {
		size_t at = 0;

		for (size_t k = 1; k <= srv.lines; k++) {
			size_t len;
			const char *line = line_at(&srv, k, &len);
			struct nt_config_error perr;
			struct nt_config tmp;

			if (line_kind(line, len) != LINE_SECTION)
				continue;
			if (!nt_config_parse(&tmp, line, len, NT_CONFIG_WG_QUICK, &perr)) {
				nt_config_free(&tmp);
				at = srv.starts[k];
				break;
			}
		}
		if (!at || srv.text[at - 1] != '\n') {
			fprintf(stderr, "%s: cannot find the end of the [Interface] line to record the endpoint\n", srv.path);
			goto out;
		}
		nt_text_add(&file, srv.text, at);
		nt_text_printf(&file, "# " ENDPOINT_KEY " = %s\n", endpoint);
		nt_text_add(&file, srv.text + at, srv.len - at);
	} else {
		nt_text_add(&file, srv.text, srv.len);
	}
	if (file.len && file.buf[file.len - 1] != '\n')
		nt_text_add(&file, "\n", 1);
	nt_text_printf(&file, "\n[Peer]\n# friendly_name = %s\n", a.name);
	text_key(&file, "PublicKey", c->public_key);
	text_key(&file, "PresharedKey", c->psk);
	nt_text_printf(&file, "AllowedIPs = ");
	for (size_t i = 0; i < c->ips_count; i++) {
		prefix_text(text, sizeof(text), c->ips[i].family, c->ips[i].addr, c->ips[i].cidr);
		nt_text_printf(&file, "%s%s", i ? ", " : "", text);
	}
	nt_text_printf(&file, "\n");
	if (file.failed) {
		fprintf(stderr, "%s: out of memory\n", prog_name);
		goto out;
	}
	if (check_new_text(srv.path, file.buf, file.len, &check))
		goto out;
	if (!peer_by_name(&check, a.name)) {
		nt_config_free(&check);
		fprintf(stderr, "%s: the new peer's name does not read back; nothing written\n", srv.path);
		goto out;
	}
	nt_config_free(&check);

	if (a.qr_path) {
		qr = qr_encode(conf.buf, conf.len);
		if (!qr || qr_write_png(qr, a.qr_path))
			goto out;
	}
	err = server_write(&srv, file.buf, file.len);
	if (err) {
		fprintf(stderr, "%s: cannot write: %s\n", srv.path, strerror(-err));
		if (a.qr_path && unlink(a.qr_path) < 0)
			fprintf(stderr, "%s: %s (it holds a private key)\n", a.qr_path, strerror(errno));
		goto out;
	}

	/* From here the peer is in the file: the config must reach the user whatever else. */
	ret = 0;
	if (ipc_exists(srv.iface)) {
		struct nt_uapi_peer peer = { 0 };
		struct nt_uapi_set set = { .peers = &peer, .peers_count = 1 };

		memcpy(peer.public_key, c->public_key, NT_KEY_LEN);
		peer.has_preshared_key = true;
		memcpy(peer.preshared_key, c->psk, NT_KEY_LEN);
		peer.allowed_ips = c->ips;
		peer.allowed_ips_count = c->ips_count;
		peer.has_name = true; /* as in the file: the running daemon shows it at once */
		snprintf(peer.name, sizeof(peer.name), "%s", a.name);
		err = ipc_set(srv.iface, &set);
		nt_wipe(&peer, sizeof(peer));
		if (err) {
			fprintf(stderr,
				"%s: the peer is in %s, but the running %s refused it: %s (it takes effect at the next start)\n",
				prog_name, srv.path, srv.iface, strerror(-err));
			ret = 1;
		} else {
			live = true;
		}
	}
	fwrite(conf.buf, 1, conf.len, stdout);
	if (isatty(STDOUT_FILENO)) {
		if (!qr)
			qr = qr_encode(conf.buf, conf.len);
		if (qr) {
			putchar('\n');
			qr_print_terminal(qr, stdout);
		}
	}
	if (fflush(stdout)) {
		fprintf(stderr, "%s: cannot write the client's config: %s\n", prog_name, strerror(errno));
		ret = 1;
	}
	fprintf(stderr, "%s: client \"%s\" added to %s", prog_name, a.name, srv.path);
	for (size_t i = 0; i < c->ips_count; i++) {
		prefix_text(text, sizeof(text), c->ips[i].family, c->ips[i].addr, c->ips[i].cidr);
		fprintf(stderr, "%s%s", i ? ", " : " as ", text);
	}
	fprintf(stderr, "%s\n", live ? " (and to the running interface)" : "");
out:
	qr_free(qr);
	nt_text_free(&conf);
	nt_text_free(&file);
	if (c)
		sodium_free(c);
	nt_wipe(endpoint, sizeof(endpoint));
	server_close(&srv);
	return ret;
}

/* ------------------------------------------------------------------ list */

static int cmd_client_list(int argc, char *argv[])
{
	struct server srv;
	struct nt_uapi_device dev = { 0 };
	bool running = false;

	if (argc != 1) {
		client_usage(stderr);
		return 1;
	}
	if (server_open(&srv, argv[0]))
		return 1;
	/* Only reading: let a concurrent add go on. */
	close(srv.lock_fd);
	srv.lock_fd = -1;
	if (ipc_exists(srv.iface))
		running = !ipc_get(srv.iface, &dev);
	for (size_t i = 0; i < srv.cfg.peers_count; i++) {
		const struct nt_config_peer *p = &srv.cfg.peers[i];
		char b64[NT_KEY_B64_LEN + 1], text[INET6_ADDRSTRLEN + 8], when[64] = "-";

		printf("%s\t", p->name ? p->name : "(unnamed)");
		for (size_t j = 0; j < p->allowed_ips_count; j++) {
			prefix_text(text, sizeof(text), p->allowed_ips[j].family, p->allowed_ips[j].addr,
				    p->allowed_ips[j].cidr);
			printf("%s%s", j ? "," : "", text);
		}
		nt_key_to_base64(b64, p->public_key);
		if (running) {
			snprintf(when, sizeof(when), "absent");
			for (size_t j = 0; j < dev.peers_count; j++) {
				time_t t;
				struct tm tm;

				if (memcmp(dev.peers[j].public_key, p->public_key, NT_KEY_LEN))
					continue;
				t = (time_t)dev.peers[j].last_handshake_sec;
				if (!t)
					snprintf(when, sizeof(when), "never");
				else if (gmtime_r(&t, &tm))
					strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
				break;
			}
		}
		printf("\t%s\t%s\n", b64, when);
	}
	nt_uapi_device_free(&dev);
	server_close(&srv);
	return fflush(stdout) ? 1 : 0;
}

/* ------------------------------------------------------------------ remove */

static int cmd_client_remove(int argc, char *argv[])
{
	struct server srv;
	const struct nt_config_peer *peer;
	struct nt_text file = { 0 };
	struct nt_config check;
	size_t first, last, next_section, len;
	const char *line;
	uint8_t public_key[NT_KEY_LEN];
	int ret = 1, err;

	if (argc != 2) {
		client_usage(stderr);
		return 1;
	}
	if (!check_name(argv[1]) || server_open(&srv, argv[0]))
		return 1;
	peer = peer_by_name(&srv.cfg, argv[1]);
	if (!peer) {
		fprintf(stderr, "%s: no peer named \"%s\"\n", srv.path, argv[1]);
		goto out;
	}
	memcpy(public_key, peer->public_key, NT_KEY_LEN);
	/* Its lines: from its [Peer] to the next section. Blank and comment lines just before
	 * the next section belong to that one (a "# bob" above "[Peer]"), unless it is its own
	 * name; at the end of the file everything after it goes. */
	first = peer->line;
	next_section = srv.lines + 1;
	for (size_t k = first + 1; k <= srv.lines; k++) {
		line = line_at(&srv, k, &len);
		if (line_kind(line, len) == LINE_SECTION) {
			next_section = k;
			break;
		}
	}
	last = next_section - 1;
	if (next_section <= srv.lines) {
		while (last > first && last != peer->name_line) {
			line = line_at(&srv, last, &len);
			if (line_kind(line, len) != LINE_BLANK && line_kind(line, len) != LINE_COMMENT)
				break;
			last--;
		}
	}
	/* One blank line before it goes too when one follows it (or nothing does), so that
	 * what add appended comes out exactly. */
	if (first > 1) {
		size_t after_len = 0;
		const char *after = last < srv.lines ? line_at(&srv, last + 1, &after_len) : NULL;

		line = line_at(&srv, first - 1, &len);
		if (line_kind(line, len) == LINE_BLANK && (!after || line_kind(after, after_len) == LINE_BLANK))
			first--;
	}
	nt_text_add(&file, srv.text, srv.starts[first - 1]);
	nt_text_add(&file, srv.text + srv.starts[last], srv.len - srv.starts[last]);
	if (file.failed) {
		fprintf(stderr, "%s: out of memory\n", prog_name);
		goto out;
	}
	if (check_new_text(srv.path, file.buf ? file.buf : "", file.len, &check))
		goto out;
	if (check.peers_count + 1 != srv.cfg.peers_count || peer_by_name(&check, argv[1])) {
		nt_config_free(&check);
		fprintf(stderr, "%s: removing the lines of \"%s\" would not remove exactly that peer; nothing written\n",
			srv.path, argv[1]);
		goto out;
	}
	nt_config_free(&check);
	err = server_write(&srv, file.buf ? file.buf : "", file.len);
	if (err) {
		fprintf(stderr, "%s: cannot write: %s\n", srv.path, strerror(-err));
		goto out;
	}
	ret = 0;
	if (ipc_exists(srv.iface)) {
		struct nt_uapi_peer p = { .remove = true };
		struct nt_uapi_set set = { .peers = &p, .peers_count = 1 };

		memcpy(p.public_key, public_key, NT_KEY_LEN);
		err = ipc_set(srv.iface, &set);
		if (err) {
			fprintf(stderr, "%s: the peer left %s, but the running %s refused to remove it: %s\n", prog_name,
				srv.path, srv.iface, strerror(-err));
			ret = 1;
		}
	}
	if (!ret)
		fprintf(stderr, "%s: client \"%s\" removed from %s\n", prog_name, argv[1], srv.path);
out:
	nt_text_free(&file);
	server_close(&srv);
	return ret;
}

int cmd_client(int argc, char *argv[])
{
	if (argc >= 2 && !strcmp(argv[1], "add"))
		return cmd_client_add(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "list"))
		return cmd_client_list(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "remove"))
		return cmd_client_remove(argc - 2, argv + 2);
	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))) {
		client_usage(stdout);
		return 0;
	}
	client_usage(stderr);
	return 1;
}
