/* Reading a whole file, bounded and wiped (file.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "noisetun/crypto.h"
#include "common/file.h"

/* Read fd to its end into a buffer grown by nt_wiped_realloc (no stray copy of a key is
 * left in freed memory). */
static int read_all(int fd, size_t max, char **text_out, size_t *len_out)
{
	size_t len = 0, cap = max + 2 < 4096 ? max + 2 : 4096;
	char *text = malloc(cap), *bigger;
	int err = 0;

	if (!text)
		return -ENOMEM;
	for (;;) {
		size_t want;
		ssize_t n;

		if (len > max) {
			err = -EFBIG;
			break;
		}
		if (len + 1 == cap) {
			size_t grown = cap * 2 > max + 2 ? max + 2 : cap * 2;

			if (!(bigger = nt_wiped_realloc(text, cap, grown))) {
				err = -ENOMEM;
				break;
			}
			text = bigger;
			cap = grown;
		}
		/* Never more than max + 1 bytes: one past the bound says it is too big. */
		want = cap - len - 1;
		if (want > max + 1 - len)
			want = max + 1 - len;
		n = read(fd, text + len, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (err) {
		nt_wipe(text, cap);
		free(text);
		return err;
	}
	text[len] = '\0';
	*text_out = text;
	*len_out = len;
	return 0;
}

int nt_file_read(const char *path, int flags, size_t max, char **text, size_t *len)
{
	int oflags = O_RDONLY | O_CLOEXEC, fd, err;
	struct stat st;

	if (flags & NT_FILE_NOFOLLOW)
		oflags |= O_NOFOLLOW;
	if (flags & NT_FILE_REGULAR)
		oflags |= O_NONBLOCK | O_NOCTTY;
	if ((fd = open(path, oflags)) < 0)
		return -errno;
	if ((flags & NT_FILE_REGULAR) && fstat(fd, &st) < 0)
		err = -errno;
	else if ((flags & NT_FILE_REGULAR) && !S_ISREG(st.st_mode))
		err = -EINVAL;
	else
		err = read_all(fd, max, text, len);
	close(fd);
	return err;
}

void nt_file_free(char *text, size_t len)
{
	if (text) {
		nt_wipe(text, len + 1);
		free(text);
	}
}

/* The rename made durable: fsync of path's directory. */
static int sync_dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	int fd, err = 0;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if ((size_t)snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path) >= sizeof(dir))
		return -ENAMETOOLONG;
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	if (fsync(fd) < 0)
		err = -errno;
	close(fd);
	return err;
}

int nt_file_replace(const char *path, uid_t uid, gid_t gid, nt_file_writer_fn *write, void *ctx, int *dir_err)
{
	char tmp[PATH_MAX], buf[4096];
	const char *slash = strrchr(path, '/');
	mode_t old_umask;
	FILE *f;
	int fd, err;

	if (dir_err)
		*dir_err = 0;
	/* ".NAME.XXXXXX" beside it: hidden, and never taken for a config by a glob */
	if ((size_t)snprintf(tmp, sizeof(tmp), "%.*s.%s.XXXXXX", slash ? (int)(slash - path + 1) : 0, path,
			     slash ? slash + 1 : path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	old_umask = umask(077);
	fd = mkostemp(tmp, O_CLOEXEC);
	umask(old_umask);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0600) < 0 ||
	    (((uid != (uid_t)-1 && uid != geteuid()) || (gid != (gid_t)-1 && gid != getegid())) && fchown(fd, uid, gid) < 0) ||
	    !(f = fdopen(fd, "w"))) {
		err = -errno;
		close(fd);
		unlink(tmp);
		return err;
	}
	setvbuf(f, buf, _IOFBF, sizeof(buf));
	err = write(f, ctx);
	if (fflush(f) && !err)
		err = -errno;
	if (!err && fsync(fd) < 0)
		err = -errno;
	if (fclose(f) && !err)
		err = -errno;
	nt_wipe(buf, sizeof(buf));
	if (!err && rename(tmp, path) < 0)
		err = -errno;
	if (err) {
		unlink(tmp);
		return err;
	}
	err = sync_dir_of(path);
	if (dir_err)
		*dir_err = err;
	return 0;
}

int nt_file_write_text(FILE *f, void *ctx)
{
	const struct nt_file_text *t = ctx;

	return t->len && fwrite(t->text, 1, t->len, f) != t->len ? -EIO : 0;
}
