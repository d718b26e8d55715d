/* The monitor's client of the worker's control socket (ctlclient.c). */
#ifndef NOISETUN_CTLCLIENT_H
#define NOISETUN_CTLCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "noisetun/messages.h"

struct nt_uapi_device;
struct nt_uapi_set;

#define UAPI_TIMEOUT_SEC 5 /* each read or write of the control socket, and a worker's call */

/* Monitor: the worker's state (get=1) and a set=1 over the control socket, as root. */
int privsep_get_state(struct nt_uapi_device *st); /* lib's model; nt_uapi_device_free */
int privsep_send_set(const struct nt_uapi_set *set);

#endif
