/* SaveConfig's device part, worker to monitor (savecfg.c). */
#ifndef NOISETUN_SAVECFG_H
#define NOISETUN_SAVECFG_H

#include <stddef.h>
#include <stdio.h>

struct device;
struct nt_config;

#define MAX_SAVED_TEXT   (64u << 20)

/* What the worker left in the memfd save_fd, parsed and formatted anew by the monitor:
 * malloc'd (*size bytes, to wipe), *mtu from its first line; or NULL with why filled
 * ("" when the worker left nothing). */
char *saved_device_text(int save_fd, unsigned *mtu, size_t *size, char *why, size_t why_size);

/* The device part of a saved config (ListenPort, FwMark, PrivateKey, peers). */
void config_write_device(FILE *f, const struct device *dev);
/* wg-quick save: FILE (real_path) written anew from cfg's wg-quick keys, the addresses the
 * link has, and the device part (device_text when the monitor has the worker's; else
 * dev's own). 0, or -errno with FILE unchanged. */
int config_save(struct device *dev, const char *real_path, const struct nt_config *cfg, const char *device_text);

#endif
