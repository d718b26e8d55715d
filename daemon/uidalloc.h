/* A worker uid of its own (uidalloc.c). */
#ifndef NOISETUN_UIDALLOC_H
#define NOISETUN_UIDALLOC_H

/* Without -u, each worker gets a uid (and the same gid) of its own from this range, with
 * no passwd or group entry: no other process can signal, trace or stop it. The range sits
 * in what systemd's UIDS-GIDS.md leaves unused (1879048192..2147352575: above container
 * ranges, below its foreign range). A slot is taken by holding an flock on
 * WORKER_LOCK_DIR/uid-N.lock for the monitor's lifetime; one some process already runs
 * as, or that NSS names, is skipped. */
#define WORKER_UID_FIRST 2119041024u /* 0x7E4E0000 */
#define WORKER_UID_COUNT 1024u
#define WORKER_LOCK_DIR  "/run/noisetun"

int worker_uid_claim(unsigned *claimed, int *lock_fd);

#endif
