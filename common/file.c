/* Reading a whole file, bounded and wiped (file.h). */
#include <errno.h>
#include <fcntl.h>
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
