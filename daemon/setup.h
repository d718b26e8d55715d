#ifndef NOISETUN_SETUP_H
#define NOISETUN_SETUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "noisetun/messages.h"

struct device;
struct nt_config;
struct nt_uapi_endpoint;

/* setup.c: wg-quick's up/down/syncconf done by the daemon itself (see the top of setup.c).
 * config_prepare runs before anything is created: parse FILE and resolve its endpoints
 * (errors print `FILE:LINE: message`), then PreUp; 0, or having printed why: 1 when the
 * file itself is bad (missing, unreadable, does not parse: final, exit EX_CONFIG), -1 for
 * what a retry may fix (an endpoint that does not resolve yet, PreUp). */
int config_prepare(const char *path, const char *ifname);
bool config_active(void);
/* After the device exists: wg settings, addresses, MTU and link up, DNS, routes, policy
 * rules. On failure *what says which step; config_down(dev, false) undoes it. */
int config_up(struct device *dev, const char **what);
/* SIGHUP; monitor: the monitor of a split daemon, which holds no key and reaches the
 * device over the control socket. */
void config_reload(struct device *dev, bool monitor);
const struct nt_config *config_current(void);           /* the file as loaded; NULL outside config mode */
const struct nt_uapi_endpoint *config_endpoints(void);  /* its endpoints, resolved: one per peer */
/* Before teardown(); monitor: as for config_reload (SaveConfig then needs the text the
 * worker left, config_set_device_text). */
void config_down(struct device *dev, bool orderly, bool monitor);
void config_post_down(void);                            /* after it: PostDown */
/* The event hooks of the config (OnPeerUp, ...: by enum hook_event), and whether key is
 * one of its peers (*name: its name or NULL); for hooks.c, in the monitor. */
char **config_event_hooks(unsigned kind, size_t *count);
bool config_peer_name(const uint8_t key[NT_KEY_LEN], const char **name);
const char *config_ifname(void);                        /* "" outside config mode */
bool config_pre_down_begin(void);                       /* cfghooks.c: false once PreDown ran */

/* setup.c, for the split: the worker forgets config mode; the monitor wipes the keys of
 * the parsed file, runs PreDown before it stops the worker, and hands SaveConfig the
 * device text it formatted from what the worker left ("ListenPort = ..." onwards), or
 * NULL and why not (logged once, if SaveConfig wanted it; "" or NULL: nothing left). */
void config_forget(void);
void config_wipe_secrets(void);
void config_pre_down(void);
void config_set_device_text(const char *text, const char *why);

#endif
