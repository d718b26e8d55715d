/* The monitor's client of the worker's control socket (ctlclient.c). */
#ifndef NOISETUN_CTLCLIENT_H
#define NOISETUN_CTLCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "noisetun/messages.h"

struct nt_uapi_set;

#define UAPI_TIMEOUT_SEC 5 /* each read or write of the control socket, and a worker's call */

/* What a syncconf needs of the running device: config_reload builds its set from it. */
struct device_state {
	bool has_private_key;
	uint8_t private_key[NT_KEY_LEN];
	uint16_t listen_port;
	uint32_t fwmark;
	uint8_t (*peers)[NT_KEY_LEN];
	size_t peers_count;
};
void device_state_free(struct device_state *st);
/* Monitor: the worker's state (get=1) and a set=1 over the control socket, as root. */
int privsep_get_state(struct device_state *st);
int privsep_send_set(const struct nt_uapi_set *set);

#endif
