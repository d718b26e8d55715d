/* The worker's uid when no user is named: one of a range, claimed by an flock (uidalloc.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "uidalloc.h"

/* Whether a process of this pid namespace has id as a uid or gid (real, effective, saved
 * or filesystem). 1, 0, or -errno. */
static int id_in_use(unsigned id)
{
	DIR *proc = opendir("/proc");
	struct dirent *e;
	int found = 0;

	if (!proc)
		return -errno;
	while (!found && (e = readdir(proc))) {
		char path[300], line[256];
		FILE *f;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/status", e->d_name);
		if (!(f = fopen(path, "re")))
			continue; /* gone meanwhile */
		while (!found && fgets(line, sizeof(line), f)) {
			unsigned v[4];

			if ((!strncmp(line, "Uid:", 4) || !strncmp(line, "Gid:", 4)) &&
			    sscanf(line + 4, "%u %u %u %u", &v[0], &v[1], &v[2], &v[3]) == 4)
				found = v[0] == id || v[1] == id || v[2] == id || v[3] == id;
		}
		fclose(f);
	}
	closedir(proc);
	return found;
}

/* A uid/gid of the range for this instance's worker, claimed until the monitor exits
 * (closes *lock_fd). 0, or -errno (-EAGAIN: every one is taken). */
int worker_uid_claim(unsigned *claimed, int *lock_fd)
{
	struct stat st;
	int dir, err = -EAGAIN;

	if (mkdir(WORKER_LOCK_DIR, 0700) < 0 && errno != EEXIST)
		return -errno;
	/* Root's own directory, or another user could hold or fake the claims. */
	if ((dir = open(WORKER_LOCK_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -errno;
	if (fstat(dir, &st) < 0 || st.st_uid != 0 || (st.st_mode & 022)) {
		close(dir);
		return -EPERM;
	}
	for (unsigned i = 0; i < WORKER_UID_COUNT; i++) {
		unsigned id = WORKER_UID_FIRST + i;
		char name[32];
		int fd, used;

		errno = 0;
		if (getpwuid(id) || getgrgid(id))
			continue; /* someone gave it a name: it is not ours to take */
		snprintf(name, sizeof(name), "uid-%u.lock", id);
		if ((fd = openat(dir, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
			err = -errno;
			break;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			err = errno == EWOULDBLOCK ? -EAGAIN : -errno;
			close(fd);
			if (err == -EAGAIN)
				continue; /* another instance's */
			break;
		}
		/* Claimed; a process left from elsewhere (a worker outliving a killed monitor
		 * for a moment, a stray setpriv) still makes it unfit. */
		if ((used = id_in_use(id)) != 0) {
			close(fd);
			if (used < 0) {
				err = used;
				break;
			}
			continue;
		}
		*lock_fd = fd;
		*claimed = id;
		err = 0;
		break;
	}
	close(dir);
	return err;
}
