/* common/: the I/O both binaries share (file.c: the bounded reader; ctl.c: the control
 * socket's client). Files in a fresh temporary directory; sockets are socketpairs or a
 * listener in that directory, nothing leaves the process. */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/ctl.h"
#include "common/file.h"

#include "util.h"

static char dir[] = "/tmp/nt-test-common-XXXXXX";

static void setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
	memcpy(dir + strlen(dir) - 6, "XXXXXX", 6);
}

static const char *write_file(const char *name, size_t len)
{
	static char path[128];
	char *buf = malloc(len ? len : 1);
	int fd;

	for (size_t i = 0; i < len; i++)
		buf[i] = (char)('a' + i % 26);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
	free(buf);
	return path;
}

/* The bound is exact, at any size, and the text is whole and NUL-terminated. */
START_TEST(test_file_bounds)
{
	static const size_t sizes[] = { 0, 1, 63, 64, 65, 4094, 4095, 4096, 4097, 100000 };
	char *text;
	size_t len;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		const char *path = write_file("f", sizes[i]);

		ck_assert_int_eq(nt_file_read(path, 0, sizes[i], &text, &len), 0);
		ck_assert_uint_eq(len, sizes[i]);
		ck_assert_uint_eq(strlen(text), sizes[i]);
		if (len)
			ck_assert(text[0] == 'a' && text[len - 1] == (char)('a' + (len - 1) % 26));
		nt_file_free(text, len);
		if (sizes[i]) {
			text = (char *)1;
			ck_assert_int_eq(nt_file_read(path, 0, sizes[i] - 1, &text, &len), -EFBIG);
			ck_assert_ptr_eq(text, (char *)1); /* nothing handed out */
		}
		ck_assert_int_eq(nt_file_read(path, 0, NT_FILE_CONFIG_MAX, &text, &len), 0);
		ck_assert_uint_eq(len, sizes[i]);
		nt_file_free(text, len);
	}
	nt_file_free(NULL, 0);
}
END_TEST

START_TEST(test_file_kinds)
{
	char link[160], fifo[160], *text;
	const char *path = write_file("target", 10);
	size_t len;

	snprintf(link, sizeof(link), "%s/link", dir);
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	ck_assert_int_eq(symlink(path, link), 0);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	/* a symlink: followed unless NOFOLLOW */
	ck_assert_int_eq(nt_file_read(link, 0, 64, &text, &len), 0);
	nt_file_free(text, len);
	ck_assert_int_eq(nt_file_read(link, NT_FILE_NOFOLLOW, 64, &text, &len), -ELOOP);
	/* REGULAR: a FIFO nobody writes is refused at once, not waited on; a directory too */
	ck_assert_int_eq(nt_file_read(fifo, NT_FILE_REGULAR, 64, &text, &len), -EINVAL);
	ck_assert_int_eq(nt_file_read(dir, NT_FILE_REGULAR, 64, &text, &len), -EINVAL);
	ck_assert_int_eq(nt_file_read(path, NT_FILE_REGULAR | NT_FILE_NOFOLLOW, 64, &text, &len), 0);
	nt_file_free(text, len);
	snprintf(link, sizeof(link), "%s/missing", dir);
	ck_assert_int_eq(nt_file_read(link, 0, 64, &text, &len), -ENOENT);
}
END_TEST

static int write_fails(FILE *f, void *ctx)
{
	(void)ctx;
	fputs("half of a file", f);
	return -ENOSPC;
}

static size_t entries(void)
{
	char cmd[96];
	FILE *p;
	size_t n = 0;
	int c;

	snprintf(cmd, sizeof(cmd), "ls -A %s", dir);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	while ((c = fgetc(p)) != EOF)
		n += c == '\n';
	pclose(p);
	return n;
}

/* The whole file or the old one, 0600, the owner asked for, no temporary left behind. */
START_TEST(test_file_replace)
{
	const char *path = write_file("conf", 100);
	struct nt_file_text t = { .text = "new\n", .len = 4 };
	struct stat st;
	char *text;
	size_t len;
	int dir_err = -1;

	ck_assert_int_eq(chmod(path, 0644), 0);
	ck_assert_int_eq(nt_file_replace(path, (uid_t)-1, (gid_t)-1, nt_file_write_text, &t, &dir_err), 0);
	ck_assert_int_eq(dir_err, 0);
	ck_assert_int_eq(nt_file_read(path, 0, 64, &text, &len), 0);
	ck_assert_str_eq(text, "new\n");
	nt_file_free(text, len);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_uint_eq(entries(), 1);
	/* a writer that fails: the old file stays, nothing else */
	ck_assert_int_eq(nt_file_replace(path, (uid_t)-1, (gid_t)-1, write_fails, NULL, NULL), -ENOSPC);
	ck_assert_int_eq(nt_file_read(path, 0, 64, &text, &len), 0);
	ck_assert_str_eq(text, "new\n");
	nt_file_free(text, len);
	ck_assert_uint_eq(entries(), 1);
	/* the owner kept (client add on a file another user owns), when we may */
	if (geteuid() == 0) {
		ck_assert_int_eq(nt_file_replace(path, 65534, 65534, nt_file_write_text, &t, NULL), 0);
		ck_assert_int_eq(stat(path, &st), 0);
		ck_assert(st.st_uid == 65534 && st.st_gid == 65534);
	}
	/* a directory that is not there: an error, not a file elsewhere */
	ck_assert_int_eq(nt_file_replace("/nonexistent-nt-dir/conf", (uid_t)-1, (gid_t)-1, nt_file_write_text, &t, NULL),
			 -ENOENT);
}
END_TEST

/* A reply queued on the other end of a socketpair (then that end closed when asked). */
static int call_with(const char *reply, size_t reply_len, bool close_after, size_t max, char **out, size_t *out_len)
{
	int sv[2], ret;
	char req[16];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(write(sv[1], reply, reply_len), (ssize_t)reply_len);
	if (close_after)
		shutdown(sv[1], SHUT_WR);
	ret = nt_ctl_call(sv[0], "get=1\n\n", 7, max, NULL, NULL, out, out_len);
	ck_assert_int_eq(read(sv[1], req, sizeof(req)), 7); /* the request, whole */
	close(sv[0]);
	close(sv[1]);
	return ret;
}

START_TEST(test_ctl_reply)
{
	char *reply, big[3 * 4096];
	size_t len;

	ck_assert_int_eq(call_with("errno=0\n\n", 9, false, 64, &reply, &len), 0);
	ck_assert_uint_eq(len, 9);
	ck_assert_str_eq(reply, "errno=0\n\n");
	nt_ctl_free(reply, len);
	/* what follows the empty line is not this reply's */
	ck_assert_int_eq(call_with("a=1\nerrno=0\n\nmore\n\n", 19, false, 64, &reply, &len), 0);
	ck_assert_str_eq(reply, "a=1\nerrno=0\n\n");
	nt_ctl_free(reply, len);
	/* a reply may be its empty line alone (the parser then refuses it) */
	ck_assert_int_eq(call_with("\n", 1, false, 64, &reply, &len), 0);
	ck_assert_uint_eq(len, 1);
	nt_ctl_free(reply, len);
	/* closed before the empty line */
	ck_assert_int_eq(call_with("errno=0\n", 8, true, 64, &reply, &len), -EPROTO);
	ck_assert_ptr_null(reply);
	/* the bound: exactly max bytes are fine, one more is not, at any size */
	memset(big, 'x', sizeof(big));
	big[sizeof(big) - 2] = big[sizeof(big) - 1] = '\n';
	ck_assert_int_eq(call_with(big, sizeof(big), true, sizeof(big), &reply, &len), 0);
	ck_assert_uint_eq(len, sizeof(big));
	nt_ctl_free(reply, len);
	ck_assert_int_eq(call_with(big, sizeof(big), true, sizeof(big) - 2, &reply, &len), -EFBIG);
	ck_assert_int_eq(call_with("xxxxxxxxxxxxxxxxxxxx", 20, false, 16, &reply, &len), -EFBIG);
}
END_TEST

static int waits;

static int wait_ready(int fd, void *ctx)
{
	(void)fd;
	(void)ctx;
	return waits++ % 2; /* the first call, and every other: "ask again" */
}

static int wait_fails(int fd, void *ctx)
{
	(void)fd;
	(void)ctx;
	return -ETIMEDOUT;
}

START_TEST(test_ctl_wait_and_timeout)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int sv[2], lfd, fd;
	char *reply;
	size_t len;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(write(sv[1], "errno=0\n\n", 9), 9);
	waits = 0;
	ck_assert_int_eq(nt_ctl_call(sv[0], "x\n\n", 3, 64, wait_ready, NULL, &reply, &len), 0);
	ck_assert_int_ge(waits, 2);
	nt_ctl_free(reply, len);
	ck_assert_int_eq(nt_ctl_call(sv[0], "x\n\n", 3, 64, wait_fails, NULL, &reply, &len), -ETIMEDOUT);
	close(sv[0]);
	close(sv[1]);

	/* a daemon that accepts and never answers: the timeout ends the read */
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/s.sock", dir);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	ck_assert_int_eq(listen(lfd, 1), 0);
	fd = nt_ctl_connect(addr.sun_path, 1);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(nt_ctl_call(fd, "get=1\n\n", 7, 64, NULL, NULL, &reply, &len), -EAGAIN);
	close(fd);
	close(lfd);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/none.sock", dir);
	ck_assert_int_eq(nt_ctl_connect(addr.sun_path, 0), -ENOENT);
	memset(addr.sun_path, 'x', sizeof(addr.sun_path));
	{
		char longer[sizeof(addr.sun_path) + 1];

		memset(longer, 'x', sizeof(longer) - 1);
		longer[sizeof(longer) - 1] = '\0';
		ck_assert_int_eq(nt_ctl_connect(longer, 0), -ENAMETOOLONG);
	}
}
END_TEST

static Suite *common_suite(void)
{
	Suite *s = suite_create("common");
	TCase *file = tcase_create("file"), *ctl = tcase_create("ctl");

	tcase_add_checked_fixture(file, setup, teardown);
	tcase_add_test(file, test_file_bounds);
	tcase_add_test(file, test_file_kinds);
	tcase_add_test(file, test_file_replace);
	suite_add_tcase(s, file);
	tcase_add_checked_fixture(ctl, setup, teardown);
	tcase_add_test(ctl, test_ctl_reply);
	tcase_add_test(ctl, test_ctl_wait_and_timeout);
	suite_add_tcase(s, ctl);
	return s;
}

int main(void)
{
	return run_suite(common_suite());
}
