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

/* ---- replacing a file whole ---- */

#include <stdio.h>
#include <sys/types.h>

/* Writes the new contents to f; 0 or -errno (a write error of f is caught after). */
typedef int nt_file_writer_fn(FILE *f, void *ctx);

/* Replace path atomically with what write writes, for `noisetun save`, `client add|remove`
 * and SaveConfig: a fresh temporary name made by mkostemp in path's directory (O_EXCL:
 * never a file or a symlink someone planted there, the directory may be writable by
 * another user), mode 0600 from the start, owned by uid:gid when they are not -1 and
 * differ from ours; written through a stdio buffer of our own (it holds keys: on the
 * stack, wiped), fsync'd, renamed over path. 0 once path is replaced, else -errno with
 * path unchanged and no temporary left. The directory's fsync after the rename (the
 * rename's durability) is best effort: its -errno in *dir_err (NULL: not wanted), 0 if
 * it went well. */
int nt_file_replace(const char *path, uid_t uid, gid_t gid, nt_file_writer_fn *write, void *ctx, int *dir_err);

/* A writer for nt_file_replace: text (struct nt_file_text) as it is. */
struct nt_file_text {
	const char *text;
	size_t len;
};
nt_file_writer_fn nt_file_write_text;

#endif
