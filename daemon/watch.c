/* Config mode's peers whose settings change outside the file (issue 18): a PSK that
 * another program (Rosenpass) rewrites in "# noisetun-preshared-key-file = PATH".
 *
 * This runs where the file was read: in the monitor of a split daemon (root, which may
 * open files; the sandboxed worker may not), or in the single process. A change reaches
 * the engine as a set request (preshared_key=...), as a reload does; the PSK takes effect
 * at the next handshake and the current session lives on until then.
 *
 * Files are watched without polling: inotify on each file's directory, for IN_CLOSE_WRITE
 * (a writer that truncates and writes in place, as Rosenpass's key_out does, is done when
 * it closes) and IN_MOVED_TO (an atomic rename). A file is read only then, and taken only
 * when it holds exactly one base64 key (44 characters, then blanks): a half-written key
 * is never used, whatever the timing, and the PSK in force stays. Until a file first holds
 * a key, the peer gets a random PSK, so no handshake succeeds without the file's key. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "noisetun/encoding.h"
#include "noisetun/uapi.h"
#include "noisetund.h"
#include "watch.h"

#define PSK_FILE_MAX 128        /* bytes read: a key and its newline with room to spare */

struct psk_watch {
	uint8_t public_key[NT_KEY_LEN];
	char short_key[12];
	char *path;
	const char *base;       /* the file name within its directory (in path) */
	int wd;
	bool bad_logged;        /* the file's content was refused; said once until it is good */
};

static struct {
	int ino;
	struct psk_watch *psks;
	size_t psks_count;
	bool fd_changed;
} w = { .ino = -1 };

int psk_file_read(const char *path, uint8_t key[NT_KEY_LEN], const char **why)
{
	char buf[PSK_FILE_MAX + 1];
	struct stat st;
	ssize_t n;
	size_t len;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		*why = strerror(errno);
		return -errno;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		close(fd);
		return -EINVAL;
	}
	do
		n = read(fd, buf, PSK_FILE_MAX + 1);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		err = -errno, *why = strerror(errno);
	close(fd);
	if (err)
		return err;
	len = (size_t)n;
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		len--;
	buf[len] = '\0';
	if ((size_t)n > PSK_FILE_MAX || len != NT_KEY_B64_LEN || nt_key_from_base64(key, buf)) {
		*why = !n ? "empty (being written?)" : "not one base64 key";
		err = -EINVAL;
	}
	sodium_memzero(buf, sizeof(buf));
	return err;
}

/* Send the file's PSK for one peer. */
static void psk_apply(struct device *dev, struct psk_watch *pw, bool startup)
{
	struct nt_uapi_set set = { 0 };
	struct nt_uapi_peer peer = { 0 };
	const char *why = "";
	int err;

	err = psk_file_read(pw->path, peer.preshared_key, &why);
	if (err) {
		if (!pw->bad_logged || startup)
			log_msg(LOG_ERROR, pw->short_key, "preshared key file %s: %s; %s", pw->path, why,
				startup ? "a random PSK until it holds a key" : "the PSK in force stays");
		pw->bad_logged = true;
		sodium_memzero(&peer, sizeof(peer));
		return;
	}
	pw->bad_logged = false;
	if (startup)
		return; /* config_up sent it already */
	memcpy(peer.public_key, pw->public_key, NT_KEY_LEN);
	peer.update_only = true;
	peer.has_preshared_key = true;
	set.peers = &peer;
	set.peers_count = 1;
	err = privsep_is_monitor() ? privsep_send_set(&set) : uapi_apply_set(dev, &set);
	sodium_memzero(&peer, sizeof(peer));
	if (err)
		log_msg(LOG_ERROR, pw->short_key, "preshared key from %s: cannot set it: %s", pw->path, strerror(-err));
	else
		log_msg(LOG_VERBOSE, pw->short_key, "preshared key from %s: new key, for the next handshake", pw->path);
}

void watch_stop(void)
{
	for (size_t i = 0; i < w.psks_count; i++)
		free(w.psks[i].path);
	free(w.psks);
	w.psks = NULL;
	w.psks_count = 0;
	if (w.ino >= 0) {
		close(w.ino); /* leaves any epoll set with it */
		w.fd_changed = true;
	}
	w.ino = -1;
}

bool watch_fd_changed(void)
{
	bool changed = w.fd_changed;

	w.fd_changed = false;
	return changed;
}

int watch_start(struct device *dev, const struct nt_config *cfg)
{
	size_t count = 0;

	watch_stop();
	if (!cfg)
		return -1;
	for (size_t i = 0; i < cfg->peers_count; i++)
		count += cfg->peers[i].psk_file != NULL;
	if (!count)
		return -1;
	w.psks = calloc(count, sizeof(*w.psks));
	w.ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	w.fd_changed = true;
	if (!w.psks || w.ino < 0) {
		log_error("preshared key files: cannot watch them: %s", strerror(w.psks ? errno : ENOMEM));
		watch_stop();
		return -1;
	}
	for (size_t i = 0; i < cfg->peers_count; i++) {
		const struct nt_config_peer *cp = &cfg->peers[i];
		struct psk_watch *pw = &w.psks[w.psks_count];
		char b64[NT_KEY_B64_LEN + 1], *slash;

		if (!cp->psk_file)
			continue;
		memcpy(pw->public_key, cp->public_key, NT_KEY_LEN);
		nt_key_to_base64(b64, cp->public_key);
		memcpy(pw->short_key, b64, 8);
		memcpy(pw->short_key + 8, "...", 4);
		if (!(pw->path = strdup(cp->psk_file)))
			continue;
		slash = strrchr(pw->path, '/');
		pw->base = slash + 1;
		*slash = '\0';
		/* The directory: a rename replaces the file's inode, which a watch on the file
		 * would lose. */
		pw->wd = inotify_add_watch(w.ino, *pw->path ? pw->path : "/", IN_CLOSE_WRITE | IN_MOVED_TO | IN_ONLYDIR);
		*slash = '/';
		if (pw->wd < 0) {
			log_msg(LOG_ERROR, pw->short_key, "preshared key file %s: cannot watch its directory: %s", pw->path,
				strerror(errno));
			free(pw->path);
			continue;
		}
		w.psks_count++;
		psk_apply(dev, pw, true);
	}
	log_verbose("watching %zu preshared key file%s", w.psks_count, w.psks_count == 1 ? "" : "s");
	return w.ino;
}

int watch_fd(void)
{
	return w.ino;
}

void watch_event(struct device *dev)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	while ((n = read(w.ino, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;

			if (ev->mask & IN_Q_OVERFLOW) {
				/* Events lost: read every file again. */
				for (size_t i = 0; i < w.psks_count; i++)
					psk_apply(dev, &w.psks[i], false);
			} else if (ev->len) {
				for (size_t i = 0; i < w.psks_count; i++)
					if (w.psks[i].wd == ev->wd && !strcmp(w.psks[i].base, ev->name))
						psk_apply(dev, &w.psks[i], false);
			}
			p += sizeof(*ev) + ev->len;
		}
	}
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		log_error("preshared key files: inotify: %s", strerror(errno));
}
