/* up, down, save: wg-quick's verbs.
 *   up NAME|PATH    check the config, then exec `noisetund -c PATH IFACE`, which starts the
 *                   tunnel, runs the hooks, sets addresses, routes and rules, and
 *                   daemonizes once up (the daemon next to this binary, else from PATH).
 *   down NAME|IFACE SIGTERM to the daemon serving the socket (SO_PEERCRED), which undoes
 *                   what it set up (PreDown, SaveConfig, routes, rules, PostDown); wait
 *                   until it is gone (10 s at most unless it reports), showing what it
 *                   reports on RUN_DIR/IFACE.down meanwhile: the hooks' "[#]" lines and
 *                   output, and its errors, as wg-quick down shows them.
 *   save NAME|PATH  the running configuration written back to the file, with the file's
 *                   wg-quick keys in front, as wg-quick save does.
 * NAME is looked up as /etc/noisetun/NAME.conf, then /etc/wireguard/NAME.conf; the
 * interface is the file's name without .conf. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "common/file.h"
#include "noisetun/crypto.h"

static const char *const config_dirs[] = { "/etc/noisetun", "/etc/wireguard" };

#define STOP_TIMEOUT_MS 10000

/* An interface name on its own (no '/', no .conf) names a file in the config dirs. */
static bool is_bare_name(const char *arg)
{
	return valid_interface_name(arg);
}

static bool file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* NAME -> the first existing /etc/noisetun/NAME.conf, /etc/wireguard/NAME.conf. */
static bool find_named_config(const char *name, char *path, size_t size)
{
	for (size_t i = 0; i < sizeof(config_dirs) / sizeof(config_dirs[0]); i++) {
		snprintf(path, size, "%s/%s.conf", config_dirs[i], name);
		if (file_exists(path))
			return true;
	}
	return false;
}

bool quick_usage(int argc, char *argv[], int *ret)
{
	bool help = argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help"));

	if (argc == 2 && !help)
		return false;
	fprintf(help ? stdout : stderr,
		"Usage: %s %s { CONFIG_FILE | INTERFACE }\n"
		"  CONFIG_FILE is a wg-quick configuration file, whose name is the interface name\n"
		"  followed by `.conf'. Otherwise INTERFACE names /etc/noisetun/INTERFACE.conf,\n"
		"  else /etc/wireguard/INTERFACE.conf%s.\n",
		prog_name, argv[0], !strcmp(argv[0], "down") ? ", or just a running interface" : "");
	*ret = help ? 0 : 1;
	return true;
}

int quick_config_path(const char *arg, char *path, size_t path_size, char *iface, size_t iface_size)
{
	const char *base, *dot;
	size_t name_len;
	char name[16];

	if (is_bare_name(arg)) {
		if (!find_named_config(arg, path, path_size)) {
			fprintf(stderr, "%s: neither `%s/%s.conf' nor `%s/%s.conf' exists\n", prog_name, config_dirs[0], arg,
				config_dirs[1], arg);
			return -1;
		}
	} else {
		if ((size_t)snprintf(path, path_size, "%s", arg) >= path_size || !file_exists(arg)) {
			fprintf(stderr, "%s: `%s' does not exist\n", prog_name, arg);
			return -1;
		}
	}
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	dot = strrchr(base, '.');
	name_len = dot ? (size_t)(dot - base) : 0;
	if (!dot || strcmp(dot, ".conf") || name_len >= sizeof(name) || name_len + 1 > iface_size) {
		fprintf(stderr, "%s: The config file must be a valid interface name, followed by .conf\n", prog_name);
		return -1;
	}
	memcpy(name, base, name_len);
	name[name_len] = '\0';
	if (!valid_interface_name(name)) {
		fprintf(stderr, "%s: The config file must be a valid interface name, followed by .conf\n", prog_name);
		return -1;
	}
	memcpy(iface, name, name_len + 1);
	return 0;
}

/* As wg-quick: others may read the file when both it and its directory let them. */
void quick_warn_world_accessible(const char *path)
{
	char real[PATH_MAX], dir[PATH_MAX];
	struct stat file_st, dir_st;
	char *slash;

	if (!realpath(path, real))
		return;
	snprintf(dir, sizeof(dir), "%s", real);
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	if (stat(real, &file_st) || stat(dir, &dir_st))
		return;
	if (file_st.st_mode & dir_st.st_mode & 0007)
		fprintf(stderr, "Warning: `%s' is world accessible\n", real);
}

/* ------------------------------------------------------------------ up */

/* noisetund next to this binary (a build tree, or an install), else whatever PATH has. */
static void exec_daemon(char *const argv[])
{
	char self[PATH_MAX], daemon[PATH_MAX + 16];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n > 0) {
		char *slash;

		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(daemon, sizeof(daemon), "%s/noisetund", self);
			if (!access(daemon, X_OK))
				execv(daemon, argv);
		}
	}
	execvp("noisetund", argv);
}

int cmd_up(int argc, char *argv[])
{
	char path[4096], real[PATH_MAX], iface[16];
	struct nt_config cfg;
	int ret;

	if (quick_usage(argc, argv, &ret))
		return ret;
	if (quick_config_path(argv[1], path, sizeof(path), iface, sizeof(iface)))
		return 1;
	quick_warn_world_accessible(path);
	/* A config error is reported here, with its line, before anything changes. */
	if (load_config(path, NT_CONFIG_WG_QUICK, &cfg))
		return 1;
	nt_config_free(&cfg);
	if (ipc_exists(iface) || if_nametoindex(iface)) {
		fprintf(stderr, "%s: `%s' already exists\n", prog_name, iface);
		return 1;
	}
	if (!realpath(path, real)) {
		fprintf(stderr, "%s: %s: %s\n", prog_name, path, strerror(errno));
		return 1;
	}
	fflush(stdout);
	char *daemon_argv[] = { (char *)"noisetund", (char *)"-c", real, iface, NULL };
	exec_daemon(daemon_argv);
	fprintf(stderr, "%s: cannot run noisetund: %s\n", prog_name, strerror(errno));
	return 1;
}

/* ------------------------------------------------------------------ save */

static void put_hooks(FILE *f, const char *key, char *const *hooks, size_t count)
{
	for (size_t i = 0; i < count; i++)
		fprintf(f, "%s = %s\n", key, hooks[i]);
}

/* The link's MTU now (0: not found here, e.g. it lives in another namespace). */
static unsigned link_mtu(const char *iface)
{
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	unsigned mtu = 0;

	if (fd < 0)
		return 0;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", iface);
	if (!ioctl(fd, SIOCGIFMTU, &ifr) && ifr.ifr_mtu > 0)
		mtu = (unsigned)ifr.ifr_mtu;
	close(fd);
	return mtu;
}

/* The file's wg-quick keys, then the running config after its "[Interface]" line; trailing
 * empty lines become one '\n', as wg-quick's $(wg showconf) and echo leave it. As
 * wg-quick save: an MTU the file sets is written as the link has it now; the rest of the
 * wg-quick keys are the file's (addresses too: deliberately not the link's, see README). */
static char *saved_text(const struct nt_config *cfg, const char *iface, const char *running)
{
	char *text = NULL;
	size_t len = 0, rest_len;
	const char *rest = running;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	fprintf(f, "[Interface]\n");
	for (size_t i = 0; i < cfg->addresses_count; i++) {
		char addr[INET6_ADDRSTRLEN];

		inet_ntop(cfg->addresses[i].family, cfg->addresses[i].addr, addr, sizeof(addr));
		fprintf(f, "Address = %s/%u\n", addr, cfg->addresses[i].cidr);
	}
	for (size_t i = 0; i < cfg->dns_count; i++)
		fprintf(f, "DNS = %s\n", cfg->dns[i]);
	if (cfg->has_mtu) {
		unsigned mtu = link_mtu(iface);
		fprintf(f, "MTU = %u\n", mtu ? mtu : cfg->mtu);
	}
	if (cfg->table == NT_TABLE_OFF)
		fprintf(f, "Table = off\n");
	else if (cfg->table_name)
		fprintf(f, "Table = %s\n", cfg->table_name);
	else if (cfg->table == NT_TABLE_ID)
		fprintf(f, "Table = %u\n", cfg->table_id);
	if (cfg->save_config)
		fprintf(f, "SaveConfig = true\n");
	put_hooks(f, "PreUp", cfg->pre_up, cfg->pre_up_count);
	put_hooks(f, "PostUp", cfg->post_up, cfg->post_up_count);
	put_hooks(f, "PreDown", cfg->pre_down, cfg->pre_down_count);
	put_hooks(f, "PostDown", cfg->post_down, cfg->post_down_count);
	for (unsigned i = 0; i < NT_CONFIG_ON_COUNT; i++)
		put_hooks(f, nt_config_on_key(i), cfg->on_event[i], cfg->on_event_count[i]);
	if (!strncmp(rest, "[Interface]\n", 12))
		rest += 12;
	rest_len = strlen(rest);
	while (rest_len && rest[rest_len - 1] == '\n')
		rest_len--;
	fwrite(rest, 1, rest_len, f);
	fputc('\n', f);
	if (fclose(f)) {
		free(text);
		return NULL;
	}
	return text;
}

static int save_config(const char *path, const char *iface, const struct nt_config *cfg)
{
	struct nt_uapi_device dev;
	char *running, *text;
	int err;

	err = ipc_get(iface, &dev);
	if (err) {
		fprintf(stderr, "%s: `%s' is not a WireGuard interface (%s)\n", prog_name, iface, strerror(-err));
		return -1;
	}
	running = showconf_text(&dev);
	nt_uapi_device_free(&dev);
	if (!running) {
		fprintf(stderr, "%s: out of memory\n", prog_name);
		return -1;
	}
	text = saved_text(cfg, iface, running);
	nt_wipe(running, strlen(running));
	free(running);
	if (!text) {
		fprintf(stderr, "%s: out of memory\n", prog_name);
		return -1;
	}
	err = nt_file_replace(path, (uid_t)-1, (gid_t)-1, nt_file_write_text,
			      &(struct nt_file_text){ .text = text, .len = strlen(text) }, NULL);
	nt_wipe(text, strlen(text));
	free(text);
	if (err) {
		fprintf(stderr, "%s: Could not write configuration file %s: %s\n", prog_name, path, strerror(-err));
		return -1;
	}
	return 0;
}

int cmd_save(int argc, char *argv[])
{
	char path[4096], iface[16];
	struct nt_config cfg;
	int ret;

	if (quick_usage(argc, argv, &ret))
		return ret;
	if (quick_config_path(argv[1], path, sizeof(path), iface, sizeof(iface)))
		return 1;
	quick_warn_world_accessible(path);
	if (load_config(path, NT_CONFIG_WG_QUICK, &cfg))
		return 1;
	if (!ipc_exists(iface)) {
		fprintf(stderr, "%s: `%s' is not a WireGuard interface\n", prog_name, iface);
		nt_config_free(&cfg);
		return 1;
	}
	ret = save_config(path, iface, &cfg) ? 1 : 0;
	nt_config_free(&cfg);
	return ret;
}

/* ------------------------------------------------------------------ down */

/* RUN_DIR/IFACE.down, listening, before the SIGTERM: a config-mode daemon connects to it
 * when it begins its down and writes there what wg-quick down would print. -1 when it
 * cannot be made (the down goes on without a report); *made says to remove it. */
static int report_listen(const char *iface, char *path, size_t size)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	mode_t old;
	int fd, err;

	if ((size_t)snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s.down", ipc_run_dir(), iface) >=
	    sizeof(addr.sun_path))
		return -1;
	snprintf(path, size, "%s", addr.sun_path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	old = umask(077);
	err = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	if (err < 0 && errno == EADDRINUSE) {
		/* Left by a down that was killed, unless another down listens there now. */
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct stat st;

		if (probe >= 0 && connect(probe, (struct sockaddr *)&addr, sizeof(addr)) < 0 && errno == ECONNREFUSED &&
		    !lstat(addr.sun_path, &st) && S_ISSOCK(st.st_mode) && !unlink(addr.sun_path))
			err = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
		if (probe >= 0)
			close(probe);
	}
	umask(old);
	if (err < 0 || listen(fd, 1) < 0) {
		if (!err)
			unlink(path);
		close(fd);
		path[0] = 0;
		return -1;
	}
	return fd;
}

/* Copy what the daemon reports to stderr until it closes; false once it has. */
static bool report_copy(int fd)
{
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0)
		return false;
	fflush(stderr);
	for (ssize_t off = 0; off < n;) {
		ssize_t w = write(STDERR_FILENO, buf + off, (size_t)(n - off));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break; /* our stderr is gone: keep draining */
		off += w;
	}
	return true;
}

/* Wait for pid (a pidfd: no mistaking a new process for it) to exit, showing the report.
 * Without a report, 10 s at most; while the daemon reports (its hooks run), as long as it
 * takes, as wg-quick down. 0 when it is gone, -1 on timeout. */
static int wait_down(pid_t pid, int listen_fd, const char *sock)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), conn = -1;
	long waited = 0;
	bool gone = false;

	while (!gone || conn >= 0) {
		struct pollfd pfd[3] = { { .fd = pidfd, .events = POLLIN }, { .fd = conn >= 0 ? -1 : listen_fd, .events = POLLIN },
					 { .fd = conn, .events = POLLIN } };

		if (gone)
			pfd[0].fd = pfd[1].fd = -1;
		if (poll(pfd, 3, 50) < 0 && errno != EINTR)
			break;
		if (pfd[2].revents && !report_copy(conn)) {
			close(conn);
			conn = -1;
			listen_fd = -1; /* one report per down */
		}
		if (pfd[1].revents & POLLIN)
			conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (pfd[0].revents & POLLIN)
			gone = true;
		/* No pidfd (a kernel before 5.3): gone with the socket file, as before. */
		if (pidfd < 0 && (kill(pid, 0) < 0 || !file_exists(sock)))
			gone = true;
		if (conn < 0 && !gone && (waited += 50) >= STOP_TIMEOUT_MS)
			break;
	}
	if (conn >= 0)
		close(conn);
	if (pidfd >= 0)
		close(pidfd);
	return gone ? 0 : -1;
}

int cmd_down(int argc, char *argv[])
{
	char path[4096] = "", iface[16], sock[PATH_MAX], report[PATH_MAX] = "";
	pid_t pid;
	int err, ret, report_fd;

	if (quick_usage(argc, argv, &ret))
		return ret;
	/* A bare name may be an interface without a config file (started by hand). */
	if (is_bare_name(argv[1]) && !find_named_config(argv[1], path, sizeof(path))) {
		snprintf(iface, sizeof(iface), "%s", argv[1]);
	} else {
		if (quick_config_path(argv[1], path, sizeof(path), iface, sizeof(iface)))
			return 1;
		quick_warn_world_accessible(path);
	}
	if (!ipc_exists(iface)) {
		fprintf(stderr, "%s: `%s' is not a WireGuard interface\n", prog_name, iface);
		return 1;
	}
	err = ipc_daemon_pid(iface, &pid);
	if (err) {
		fprintf(stderr, "%s: cannot find the daemon of `%s': %s\n", prog_name, iface, strerror(-err));
		return 1;
	}
	if (pid <= 1 || pid == getpid()) {
		fprintf(stderr, "%s: `%s' is served by pid %d, which will not be signalled\n", prog_name, iface, (int)pid);
		return 1;
	}
	if (ipc_socket_path(sock, sizeof(sock), iface))
		return 1;
	report_fd = report_listen(iface, report, sizeof(report));
	if (kill(pid, SIGTERM) < 0) {
		fprintf(stderr, "%s: cannot stop pid %d: %s\n", prog_name, (int)pid, strerror(errno));
		ret = 1;
	} else if (wait_down(pid, report_fd, sock)) {
		fprintf(stderr, "%s: `%s' (pid %d) did not stop within %d seconds\n", prog_name, iface, (int)pid,
			STOP_TIMEOUT_MS / 1000);
		ret = 1;
	} else {
		ret = 0;
	}
	if (report_fd >= 0) {
		close(report_fd);
		unlink(report);
	}
	return ret;
}
