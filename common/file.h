/* Reading a whole file, bounded, for both binaries (file.c): config files, wg-quick files,
 * key and PSK files, iproute2's table names. A config file holds keys, so the buffer is
 * never left to realloc and is wiped when freed. */
#ifndef NOISETUN_COMMON_FILE_H
#define NOISETUN_COMMON_FILE_H

#include <stddef.h>

/* The bound of a config file (wg-quick's and wg's): far above any real one. */
#define NT_FILE_CONFIG_MAX (64u << 20)

enum nt_file_flags {
	NT_FILE_NOFOLLOW = 1 << 0, /* the last component may not be a symlink (-ELOOP) */
	/* A regular file only (-EINVAL otherwise), opened O_NONBLOCK | O_NOCTTY: a FIFO or a
	 * device put where a key file is expected never blocks the reader. */
	NT_FILE_REGULAR = 1 << 1,
};

/* Read path whole into *text (malloc'd, NUL-terminated, *len bytes before the NUL). 0, or
 * -EFBIG when it holds more than max bytes, or another -errno; nothing is left allocated
 * on error. Free with nt_file_free. */
int nt_file_read(const char *path, int flags, size_t max, char **text, size_t *len);
/* Wipe (len bytes and the NUL) and free; NULL is fine. */
void nt_file_free(char *text, size_t len);

#endif
