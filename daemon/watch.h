/* watch.c: config mode's peers whose settings change outside the file (issue 18). */
#ifndef NOISETUN_WATCH_H
#define NOISETUN_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "noisetun/config.h"
#include "noisetun/crypto.h"

struct device;
/* A PSK file: exactly one base64 key, then blanks. 0, or -errno with *why. */
int psk_file_read(const char *path, uint8_t key[NT_KEY_LEN], const char **why);
/* Watch cfg's PSK files (after config_up); the fd to poll, or -1 when there is nothing to
 * watch. Again after a reload: the old watches go. */
int watch_start(struct device *dev, const struct nt_config *cfg);
int watch_fd(void);
/* The fd is another since the last call (a loop that epoll_ctl's it adds it again). */
bool watch_fd_changed(void);
/* The fd is readable: apply what changed. */
void watch_event(struct device *dev);
void watch_stop(void);
/* A handshake with the peer failed (its retry is due): the next tick may move its
 * endpoint (a name resolved again, the next address, the next endpoint). */
void watch_handshake_failed(const uint8_t key[NT_KEY_LEN]);

#endif
