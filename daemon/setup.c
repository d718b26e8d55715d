/* Config mode, `noisetund -c FILE IFACE`: the daemon does itself what wg-quick does around
 * a userspace WireGuard (control-protocol.md, "wg-quick with a userspace daemon"), over
 * rtnetlink instead of `ip`:
 *
 *   up      parse FILE (nothing exists yet, so an error changes nothing), PreUp, [the
 *           device is created by main.c], the wg settings through uapi_apply_set, each
 *           Address, MTU (configured, or the best route MTU - 80) and link up, DNS (per
 *           link in systemd-resolved when it runs, `~.` for a full tunnel; else
 *           resolvconf), a route per allowed IP (longest prefix first, skipped when a
 *           route on the interface in table main already covers it); then, once the control
 *           socket is served (a hook may run `wg set %i`), PostUp: the monitor runs it
 *           (config_post_up) or an unsplit daemon from its loop (config_hooks_start).
 *           Hooks are bash, as wg-quick's (see "hooks" below).
 *   /0      with Table=auto: fwmark (FwMark, else the first free table from 51820), the
 *           default route in that table, `not fwmark M table M`, `table main
 *           suppress_prefixlength 0` (per family, at the priorities the kernel would pick,
 *           named so that down deletes these very rules), the nftables table
 *           noisetun-IFACE (nft.c: wg-quick's firewall), net.ipv4.conf.all.src_valid_mark=1.
 *           Routes and rules carry protocol RTPROT_NOISETUN (78): a start first removes
 *           what a killed instance left for the same table, and its noisetun-IFACE tables.
 *   down    PreDown (the socket still served), SaveConfig, the rules and routes we added,
 *           DNS, [the link goes with the TUN fd], PostDown; their output and our errors
 *           go to `noisetun down` when it listens (report_open).
 *   reload  (SIGHUP) syncconf semantics: peers missing from FILE are removed, the others
 *           updated in place (psk, endpoint, keepalive, allowed IPs; never the private
 *           key unless it changed, since that would drop every session), addresses and
 *           routes brought in line with FILE.
 *
 * Everything up adds is recorded, and down removes exactly that. This file holds the
 * sequence and the loaded config; each step is a file of its own: cfgload.c (FILE),
 * cfgset.c (the wg settings), routes.c (addresses, routes, rules, the firewall), dns.c,
 * cfghooks.c (PreUp ... PostDown), report.c (the report of a down), savecfg.c. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/rtnetlink.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "noisetun/config.h"
#include "noisetun/encoding.h"
#include "noisetun/uapi.h"
#include "common/resolve.h"
#include "noisetund.h"
#include "privsep.h"
#include "rtnl.h"
#include "setup.h"
#include "watch.h"
#include "handover.h"
#include "spawn.h"
#include "dns.h"
#include "report.h"
#include "cfghooks.h"
#include "routes.h"
#include "cfgload.h"
#include "savecfg.h"
#include "ctlclient.h"
#include "cfgset.h"

#define MTU_OVERHEAD       80      /* IPv6 40 + UDP 8 + WireGuard 32, as wg-quick takes */

static struct {
	bool active;
	bool orderly;                   /* down ran PreDown: run PostDown too */
	char *path;                     /* as given, for messages */
	char *real_path;                /* where SaveConfig writes */
	char ifname[IFNAMSIZ];
	struct nt_config cfg;
	struct nt_uapi_endpoint *endpoints; /* resolved, one per cfg peer; family 0: none */

	char uapi_path[108];            /* the control socket: the report of a down goes next to it */

	/* privilege separation (privsep.c): the monitor's side of down */
	bool pre_down_done;
	const char *device_text;        /* the worker's part of SaveConfig, as the monitor formatted it */
	const char *device_why;         /* without one: why not ("": the worker left nothing) */
} q;

static char what_buf[512];

bool config_active(void)
{
	return q.active;
}

/* hooks.c's view of the config (the monitor's own copy, never the worker's word). */
char **config_event_hooks(unsigned kind, size_t *count)
{
	*count = 0;
	if (!q.active || kind >= NT_CONFIG_ON_COUNT)
		return NULL;
	*count = q.cfg.on_event_count[kind];
	return q.cfg.on_event[kind];
}

bool config_peer_name(const uint8_t key[NT_KEY_LEN], const char **name)
{
	for (size_t i = 0; q.active && i < q.cfg.peers_count; i++)
		if (!memcmp(q.cfg.peers[i].public_key, key, NT_KEY_LEN)) {
			*name = q.cfg.peers[i].name;
			return true;
		}
	return false;
}

/* The interface config mode is for; "" outside it. */
const char *config_ifname(void)
{
	return q.ifname;
}

/* PreDown runs once, whoever asks first (the monitor's stop or the daemon's loop); its
 * output goes to `noisetun down` if it listens. false: it ran already. */
bool config_pre_down_begin(void)
{
	if (q.pre_down_done)
		return false;
	q.pre_down_done = true;
	report_open(q.uapi_path, q.ifname);
	return true;
}

/* ---- prepare: FILE loaded, then PreUp ---- */

int config_prepare(const char *path, const char *ifname)
{
	struct nt_uapi_endpoint *eps;
	char msg[600], *dir;
	struct stat st, dst;

	int err;

	q.path = strdup(path);
	q.real_path = realpath(path, NULL);
	if (!q.path || !q.real_path) {
		err = errno;
		fprintf(stderr, "noisetund: %s: %s\n", path, strerror(err));
		return err == ENOMEM ? -1 : 1;
	}
	snprintf(q.ifname, sizeof(q.ifname), "%s", ifname);
	if ((err = config_load(q.path, &q.cfg, &eps, nt_resolve_retries(), msg, sizeof(msg)))) {
		fprintf(stderr, "%s\n", msg);
		/* The file itself is bad (syntax, unreadable, too big): retrying cannot help. */
		return err == -EINVAL || err == -EACCES || err == -ENOENT || err == -EISDIR || err == -EFBIG ? 1 : -1;
	}
	q.endpoints = eps;
	/* The file holds a private key: say so when others may read it, as wg-quick does. */
	if ((dir = strdup(q.real_path))) {
		*strrchr(dir, '/') = 0;
		if (!stat(q.real_path, &st) && !stat(*dir ? dir : "/", &dst) && (st.st_mode & dst.st_mode & 0007))
			fprintf(stderr, "Warning: `%s' is world accessible\n", q.real_path);
		free(dir);
	}
	q.active = true;
	if (config_hooks_run(HOOK_PRE_UP, true)) {
		fprintf(stderr, "noisetund: %s: %s\n", q.ifname, config_hooks_error());
		return -1;
	}
	return 0;
}

/* ---- the wg settings ---- */

/* A /0 of either family: resolved gets the routing domain `~.` (dns.c). */
static bool full_tunnel(const struct nt_config *cfg)
{
	return wants_default(cfg, AF_INET) || wants_default(cfg, AF_INET6);
}

/* ---- MTU: configured, or wg-quick's guess ---- */

static unsigned auto_mtu(const struct nt_config *cfg, const struct nt_uapi_endpoint *eps)
{
	unsigned best = 0, mtu;

	/* The largest MTU of the routes to the endpoints, else of the default route. */
	for (size_t i = 0; i < cfg->peers_count; i++)
		if (eps[i].family && !rtnl_route_get_mtu(eps[i].family, eps[i].addr, &mtu) && mtu > best)
			best = mtu;
	if (!best && !rtnl_default_route_mtu(&mtu))
		best = mtu;
	if (!best)
		best = 1500;
	return best - MTU_OVERHEAD;
}

/* ---- up ---- */

int config_up(struct device *dev, const char **what)
{
	struct nt_uapi_set set;
	uint32_t table;
	unsigned mtu;
	int err;

	*what = what_buf;
	snprintf(q.ifname, sizeof(q.ifname), "%s", dev->ifname);
	snprintf(q.uapi_path, sizeof(q.uapi_path), "%s", dev->uapi_path);
	table = policy_table_for(&q.cfg);

	snprintf(what_buf, sizeof(what_buf), "cannot apply the configuration of %s", q.path);
	if ((err = config_build_set(&set, &q.cfg, q.endpoints, NULL, config_fwmark_for(&q.cfg, table))))
		return err;
	err = uapi_apply_set(dev, &set);
	nt_config_set_free(&set);
	if (err)
		return err;
	dev->no_mss_clamp = q.cfg.no_mss_clamp;
	log_verbose("TCP MSS clamping %s", dev->no_mss_clamp ? "off" : "on");

	if ((err = addresses_sync(dev, &q.cfg, true, what_buf, sizeof(what_buf))))
		return err;

	mtu = q.cfg.has_mtu ? q.cfg.mtu : auto_mtu(&q.cfg, q.endpoints);
	snprintf(what_buf, sizeof(what_buf), "cannot set MTU %u and bring the link up", mtu);
	if ((err = rtnl_link_set(dev->ifindex, mtu, true)))
		return err;
	log_verbose("MTU %u, link up", mtu);

	if ((err = dns_up(q.ifname, &q.cfg, full_tunnel(&q.cfg), what_buf, sizeof(what_buf))))
		return err;
	policy_cleanup(dev, table);
	if ((err = routes_sync(dev, q.ifname, &q.cfg, table, true, what_buf, sizeof(what_buf))))
		return err;
	/* PostUp is not run here: whoever runs it (config_post_up(), config_hooks_start())
	 * must serve the control socket meanwhile, since a hook may run `wg set %i ...`. */
	return 0;
}

/* The handover to a worker unit (handover.c): the key and the peers as a set=1 body. The
 * port and fwmark are not in it: the worker is handed sockets bound and marked. */
int config_handover_set(char **text, size_t *len)
{
	struct nt_uapi_set set;
	size_t n;
	int err;

	*text = NULL;
	*len = 0;
	if ((err = config_build_set(&set, &q.cfg, q.endpoints, NULL, 0)))
		return err;
	set.has_listen_port = set.has_fwmark = false;
	n = nt_uapi_format_set(&set, NULL, 0);
	if (!(*text = malloc(n + 1))) {
		nt_config_set_free(&set);
		return -ENOMEM;
	}
	nt_uapi_format_set(&set, *text, n + 1);
	*len = n;
	nt_config_set_free(&set);
	return 0;
}

/* ---- reload ---- */

/* The running device as a syncconf sees it: from dev itself, or (the monitor of a split
 * daemon, which holds no key) from the worker over the control socket. */
static int device_state(struct device *dev, struct nt_uapi_device *st, bool monitor)
{
	size_t n = 0;

	if (monitor)
		return privsep_get_state(st);
	memset(st, 0, sizeof(*st));
	if (dev->peer_count && !(st->peers = calloc(dev->peer_count, sizeof(*st->peers))))
		return -ENOMEM;
	for (struct peer *p = dev->peers_first; p && n < dev->peer_count; p = p->next) {
		memcpy(st->peers[n].public_key, p->public_key, NT_KEY_LEN);
		/* a name the file no longer has is removed: nt_config_to_set looks here */
		snprintf(st->peers[n++].name, sizeof(st->peers[0].name), "%.*s", NT_UAPI_NAME_MAX, p->name);
	}
	st->peers_count = n;
	st->has_private_key = dev->static_identity->has_key;
	if (st->has_private_key)
		memcpy(st->private_key, dev->static_identity->private_key, NT_KEY_LEN);
	st->listen_port = dev->listen_port;
	st->fwmark = dev->fwmark;
	return 0;
}

static int apply_set(struct device *dev, const struct nt_uapi_set *set, bool monitor)
{
	return monitor ? privsep_send_set(set) : uapi_apply_set(dev, set);
}

void config_reload(struct device *dev, bool monitor)
{
	struct nt_config cfg, old;
	struct nt_uapi_endpoint *eps;
	struct nt_uapi_device cur;
	struct nt_uapi_set set;
	char msg[600];
	uint32_t table;
	unsigned mtu;
	int err;

	if (!q.active)
		return;
	notify_reloading();
	log_verbose("reloading %s", q.path);
	if (config_load(q.path, &cfg, &eps, 0, msg, sizeof(msg))) {
		log_error("reload: %s; the running configuration stays", msg);
		goto out_status;
	}
	table = policy_table_for(&cfg);
	if (!(err = device_state(dev, &cur, monitor))) {
		if (!(err = config_build_set(&set, &cfg, eps, &cur, config_fwmark_for(&cfg, table)))) {
			err = apply_set(dev, &set, monitor);
			nt_config_set_free(&set);
		}
		if (!err && monitor) {
			/* For STATUS=: syncconf leaves the device with the file's peers. */
			dev->peer_count = cfg.peers_count;
			dev->listen_port = cfg.has_listen_port && cfg.listen_port ? cfg.listen_port : cur.listen_port;
		}
		nt_uapi_device_free(&cur);
	}
	if (!monitor) /* split: the worker tells it, seeing the monitor's set */
		events_reload(dev, err, dev->peer_count);
	if (err) {
		snprintf(msg, sizeof(msg), "reload: cannot apply %s: %s; the running configuration stays", q.path,
			 strerror(-err));
		log_error("%s", msg);
		nt_config_free(&cfg);
		free(eps);
		goto out_status;
	}

	old = q.cfg;
	q.cfg = cfg;
	free(q.endpoints);
	q.endpoints = eps;

	addresses_sync(dev, &q.cfg, false, what_buf, sizeof(what_buf));
	if (q.cfg.has_mtu && !rtnl_link_mtu(dev->ifindex, &mtu) && mtu != q.cfg.mtu &&
	    (err = rtnl_link_set(dev->ifindex, q.cfg.mtu, true)))
		log_error("reload: cannot set MTU %u: %s", q.cfg.mtu, strerror(-err));
	routes_sync(dev, q.ifname, &q.cfg, table, false, what_buf, sizeof(what_buf));
	if (!dns_equal(&old, &q.cfg)) {
		dns_down(q.ifname);
		if (dns_up(q.ifname, &q.cfg, full_tunnel(&q.cfg), what_buf, sizeof(what_buf)))
			log_error("reload: %s", what_buf);
	}
	nt_config_free(&old);
	if (monitor)
		config_wipe_secrets();
	watch_start(dev, &q.cfg);
	log_verbose("reloaded %s: %zu peers", q.path, dev->peer_count);
	notify_ready(dev);
	return;
out_status:
	notify_ready(dev);
	notify_status_text(msg);
}

/* ---- down ---- */

/* Undo what up added. orderly (a stop, not a failed start): PreDown and SaveConfig first,
 * and config_post_down() will run PostDown once the link is gone. */
void config_down(struct device *dev, bool orderly, bool monitor)
{
	int err;

	if (!q.active)
		return;
	q.orderly = orderly;
	if (orderly) {
		config_pre_down();
		if (q.cfg.save_config && monitor && !q.device_text) {
			log_error("SaveConfig: %s; %s is unchanged",
				  q.device_why && *q.device_why ? q.device_why : "the worker left no configuration",
				  q.real_path);
		} else if (q.cfg.save_config) {
			if ((err = config_save(dev, q.real_path, &q.cfg, q.device_text)))
				log_error("SaveConfig: cannot write %s: %s", q.real_path, strerror(-err));
			else
				log_verbose("saved the configuration to %s", q.real_path);
		}
	}
	/* Our routes and addresses also vanish with the link; removing the routes here keeps
	 * a Table=N route from outliving us should the link stay (it never should). */
	routes_down(dev, q.ifname);
	dns_down(q.ifname);
}

/* PreDown, once: the monitor runs it before it stops the worker, while the link exists. */
void config_pre_down(void)
{
	if (!q.active || !config_pre_down_begin())
		return;
	config_hooks_run(HOOK_PRE_DOWN, false);
}

void config_set_device_text(const char *text, const char *why)
{
	q.device_text = text;
	q.device_why = why;
}

/* The file as loaded and its endpoints as resolved (one per peer, family 0: none), for
 * watch.c. */
const struct nt_config *config_current(void)
{
	return q.active ? &q.cfg : NULL;
}

const struct nt_uapi_endpoint *config_endpoints(void)
{
	return q.active ? q.endpoints : NULL;
}

/* The monitor needs FILE's addresses, routes, DNS and hooks, never its keys. */
void config_wipe_secrets(void)
{
	explicit_bzero(q.cfg.private_key, sizeof(q.cfg.private_key));
	for (size_t i = 0; i < q.cfg.peers_count; i++)
		explicit_bzero(q.cfg.peers[i].preshared_key, sizeof(q.cfg.peers[i].preshared_key));
}

/* The worker: config mode is the monitor's from the fork on. */
void config_forget(void)
{
	q.active = false;
	config_post_down();
}

void config_post_down(void)
{
	if (q.active && q.orderly)
		config_hooks_run(HOOK_POST_DOWN, false);
	config_hooks_abort();
	report_close();
	nt_config_free(&q.cfg);
	free(q.endpoints);
	routes_forget();
	free(q.path);
	free(q.real_path);
	memset(&q, 0, sizeof(q));
}
