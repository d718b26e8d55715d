/* SaveConfig's device part, worker to monitor (savecfg.c). */
#ifndef NOISETUN_SAVECFG_H
#define NOISETUN_SAVECFG_H

#include <stddef.h>

#define MAX_SAVED_TEXT   (64u << 20)

/* What the worker left in the memfd save_fd, parsed and formatted anew by the monitor:
 * malloc'd (*size bytes, to wipe), *mtu from its first line; or NULL with why filled
 * ("" when the worker left nothing). */
char *saved_device_text(int save_fd, unsigned *mtu, size_t *size, char *why, size_t why_size);

#endif
