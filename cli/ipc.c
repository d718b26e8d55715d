/* The CLI's side of the control socket (control-protocol.md): where the sockets are, get=1
 * into lib's device model (struct nt_uapi_device), set=1 from struct nt_uapi_set in the
 * order of lines wg uses; the client itself is common/ctl.c. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "noisetun/crypto.h"
#include "common/ctl.h"

#define EXTENDED_GET_TIMEOUT 3 /* s */

const char *ipc_run_dir(void)
{
	const char *dir = getenv("NOISETUN_RUN_DIR");

	return dir && *dir ? dir : DEFAULT_RUN_DIR;
}

int ipc_socket_path(char *buf, size_t size, const char *iface)
{
	if (!*iface || strlen(iface) >= 16 || strchr(iface, '/') || !strcmp(iface, ".") || !strcmp(iface, ".."))
		return -EINVAL;
	if ((size_t)snprintf(buf, size, "%s/%s.sock", ipc_run_dir(), iface) >= size)
		return -ENAMETOOLONG;
	return 0;
}

/* A connected socket, or a negative errno; a missing socket is -ENODEV, as for a missing
 * kernel interface. timeout_sec: common/ctl.h. */
static int ipc_connect(const char *iface, unsigned timeout_sec)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int err, fd;

	err = ipc_socket_path(path, sizeof(path), iface);
	if (err)
		return err == -EINVAL ? -ENODEV : err;
	fd = nt_ctl_connect(path, timeout_sec);
	return fd == -ENOENT ? -ENODEV : fd;
}

int ipc_open(const char *iface)
{
	return ipc_connect(iface, 0);
}

bool ipc_exists(const char *iface)
{
	int fd = ipc_connect(iface, 0);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

int ipc_daemon_pid(const char *iface, pid_t *pid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd = ipc_connect(iface, 0), err = 0;

	if (fd < 0)
		return fd;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		err = -errno;
	else if (cred.pid <= 0)
		err = -ESRCH;
	else
		*pid = cred.pid;
	close(fd);
	return err;
}

/* One get: the reply read whole (bounded) and parsed by lib (nt_uapi_parse_get). */
static int get_once(const char *iface, struct nt_uapi_device *dev, bool noisetun)
{
	const char *request = noisetun ? "get=1\nnoisetun=1\n\n" : "get=1\n\n";
	char *reply;
	size_t len;
	int fd, ret;

	memset(dev, 0, sizeof(*dev));
	/* A daemon that neither answers nor refuses a get with a line after it must not hang
	 * us: the plain get follows after a while. */
	fd = ipc_connect(iface, noisetun ? EXTENDED_GET_TIMEOUT : 0);
	if (fd < 0)
		return fd;
	ret = nt_ctl_call(fd, request, strlen(request), NT_CTL_REPLY_MAX, NULL, NULL, &reply, &len);
	close(fd);
	if (ret)
		return ret;
	ret = nt_uapi_parse_get(dev, reply, len);
	nt_ctl_free(reply, len);
	if (!ret)
		snprintf(dev->name, sizeof(dev->name), "%s", iface);
	return ret;
}

/* get=1 + noisetun=1 answers with the peers' names too (noisetund). Another daemon
 * refuses it (wireguard-go, an older noisetund: errno=-22), may close the connection
 * (-EPROTO) or may not answer (-EAGAIN once the timeout is over): then a plain get. */
int ipc_get(const char *iface, struct nt_uapi_device *dev)
{
	int ret = get_once(iface, dev, true);

	if (ret == -EINVAL || ret == -EPROTO || ret == -EAGAIN || ret == -EWOULDBLOCK)
		ret = get_once(iface, dev, false);
	return ret;
}

/* With noisetun=1 only: a daemon that does not take it answers -EINVAL (also when it
 * closes or does not answer), and the caller decides what a plain get is worth. */
int ipc_get_noisetun(const char *iface, struct nt_uapi_device *dev)
{
	int ret = get_once(iface, dev, true);

	if (ret == -EPROTO || ret == -EAGAIN || ret == -EWOULDBLOCK)
		ret = -EINVAL;
	return ret;
}

/* ------------------------------------------------------------------ set */

/* One set: the body by lib's one formatter, as wg writes it (a removed peer is its key and
 * remove=true alone), names only when asked for. */
static int set_once(const char *iface, const struct nt_uapi_set *set, bool names)
{
	int flags = NT_UAPI_FORMAT_WG | (names ? 0 : NT_UAPI_FORMAT_NO_NAMES), fd, ret;
	size_t body = nt_uapi_format_set_flags(set, flags, NULL, 0), len = body + 7, reply_len;
	char *request = malloc(len + 1), *reply;

	if (!request)
		return -ENOMEM;
	memcpy(request, "set=1\n", 6);
	nt_uapi_format_set_flags(set, flags, request + 6, body + 1);
	request[6 + body] = '\n';
	fd = ipc_connect(iface, 0);
	ret = fd;
	if (fd >= 0) {
		ret = nt_ctl_call(fd, request, len, NT_CTL_REPLY_MAX, NULL, NULL, &reply, &reply_len);
		close(fd);
		if (!ret) {
			ret = nt_uapi_parse_set_reply(reply, reply_len);
			nt_ctl_free(reply, reply_len);
		}
	}
	nt_wipe(request, len + 1);
	free(request);
	return ret;
}

int ipc_set(const char *iface, const struct nt_uapi_set *set)
{
	bool sent_names = false;
	int ret = set_once(iface, set, true);

	for (size_t i = 0; i < set->peers_count && !sent_names; i++)
		sent_names = set->peers[i].has_name && !set->peers[i].remove;
	if (ret != -EINVAL || !sent_names)
		return ret;
	/* noisetund accepts every name the CLI sends (checked before): this daemon keeps none. */
	ret = set_once(iface, set, false);
	if (!ret)
		fprintf(stderr, "Warning: the daemon of `%s' does not keep peer names; applied without them\n", iface);
	return ret;
}

/* ------------------------------------------------------------------ list */

void ipc_names_free(char **names)
{
	if (!names)
		return;
	for (char **n = names; *n; n++)
		free(*n);
	free(names);
}

/* A socket file that refuses connections belongs to a daemon that died: remove it, as wg
 * does when it lists interfaces. */
static bool socket_live(const char *dir, const char *file)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct stat st;
	bool live = false;
	int fd;

	if ((size_t)snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s", dir, file) >= sizeof(addr.sun_path))
		return false;
	if (stat(addr.sun_path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return false;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
		live = true;
	else if (errno == ECONNREFUSED)
		unlink(addr.sun_path);
	close(fd);
	return live;
}

int ipc_list(char ***names_out, size_t *count_out)
{
	const char *dir = ipc_run_dir();
	char **names = calloc(1, sizeof(*names)), **bigger;
	size_t count = 0;
	struct dirent *ent;
	DIR *d;

	if (!names)
		return -ENOMEM;
	d = opendir(dir);
	if (!d) {
		int err = errno;

		if (err == ENOENT) {
			*names_out = names;
			*count_out = 0;
			return 0;
		}
		free(names);
		return -err;
	}
	while ((ent = readdir(d))) {
		size_t len = strlen(ent->d_name);

		if (len <= 5 || strcmp(ent->d_name + len - 5, ".sock") || !socket_live(dir, ent->d_name))
			continue;
		bigger = realloc(names, (count + 2) * sizeof(*names));
		if (!bigger)
			goto oom;
		names = bigger;
		names[count] = strndup(ent->d_name, len - 5);
		if (!names[count])
			goto oom;
		names[++count] = NULL;
	}
	closedir(d);
	*names_out = names;
	*count_out = count;
	return 0;
oom:
	closedir(d);
	ipc_names_free(names);
	return -ENOMEM;
}
