/* noisetun, the operator CLI: the verbs of wg(8) and wg-quick(8) over the control socket.
 * One file per verb; ipc.c is the socket client, conffile.c reads config files. */
#ifndef NOISETUN_CLI_H
#define NOISETUN_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "noisetun/config.h"
#include "noisetun/metrics.h"
#include "noisetun/uapi.h"

#define DEFAULT_RUN_DIR "/var/run/wireguard"

/* argv[0] of the process, for messages that wg prefixes with its own name. */
extern const char *prog_name;

/* ------------------------------------------------------------------ ipc.c */

/* NOISETUN_RUN_DIR, else /var/run/wireguard (where wg looks). */
const char *ipc_run_dir(void);
/* The socket path of iface into buf; -EINVAL for a name that cannot be an interface. */
int ipc_socket_path(char *buf, size_t size, const char *iface);
/* get=1 into *dev (lib's model, zeroed first; free with nt_uapi_device_free). 0 or a negative errno (-ENODEV: no such interface).
 * Asks for noisetun's own lines (peer names) with "noisetun=1"; a daemon that refuses it
 * (wireguard-go, an older noisetund: errno=-22), or does not answer it within 3 s, is
 * asked again with a plain get. */
int ipc_get(const char *iface, struct nt_uapi_device *dev);
/* The same with noisetun=1: the noisetun_ keys too (names, metrics). */
int ipc_get_noisetun(const char *iface, struct nt_uapi_device *dev);
/* A set=1 request in the wg order of lines (a peer's noisetun_name last); the daemon's
 * answer: 0 or a negative errno. A daemon that refuses names (-EINVAL: not noisetund) is
 * sent the request again without them, with a warning. */
int ipc_set(const char *iface, const struct nt_uapi_set *set);
/* The interfaces with a live socket, in directory order, as wg lists them (stale sockets,
 * which refuse connections, are removed as wg does). *names NULL-terminated; free with
 * ipc_names_free. 0 or a negative errno. */
int ipc_list(char ***names, size_t *count);
void ipc_names_free(char **names);
/* Whether iface has a socket that accepts a connection. */
bool ipc_exists(const char *iface);
/* A connected control socket, or a negative errno (-ENODEV: no such interface). */
int ipc_open(const char *iface);
/* The pid of the process serving iface's socket (SO_PEERCRED). 0 or a negative errno. */
int ipc_daemon_pid(const char *iface, pid_t *pid);

/* ------------------------------------------------------------------ endpoint.c */

/* nt_resolve_endpoint (common/resolve.h) with WG_ENDPOINT_RESOLUTION_RETRIES, each retry
 * announced on stderr as wg does. On failure a reason is left in why. 0 or -1. */
int endpoint_resolve(struct nt_uapi_endpoint *out, const char *host, uint16_t port, char *why, size_t why_size);
/* Parse "host:port" / "[v6]:port" as the config parser does, then resolve. */
int endpoint_parse_resolve(struct nt_uapi_endpoint *out, const char *text, char *why, size_t why_size);
/* As wg prints an endpoint: getnameinfo numeric host and service, IPv6 in brackets. */
void endpoint_display(char *buf, size_t size, const struct nt_uapi_endpoint *ep);

/* ------------------------------------------------------------------ conffile.c */

/* Parse config text read from path; on an error print "PATH:LINE: reason", return -1. */
int parse_config_text(const char *path, const char *text, size_t len, int flags, struct nt_config *cfg);
/* Read and parse a config file; on any error print "PATH:LINE: reason" and return -1. */
int load_config(const char *path, int flags, struct nt_config *cfg);
/* Resolve each peer's Endpoint (endpoint_resolve) into *eps, one per peer (family 0:
 * none), for nt_config_to_set; free(*eps) after. Prints "PATH:LINE: Endpoint: cannot
 * resolve ..." and returns -1 when one does not resolve. */
int config_resolve(const struct nt_config *cfg, const char *path, struct nt_uapi_endpoint **eps);

/* ------------------------------------------------------------------ term.c */

/* printf to stdout; the "\x1b[...m" sequences are dropped unless colour is on
 * (WG_COLOR_MODE=always|never, else whether stdout is a terminal), as wg does. */
void term_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define TERM_RESET "\x1b[0m"
#define TERM_BOLD "\x1b[1m"
#define TERM_RED "\x1b[31m"
#define TERM_GREEN "\x1b[32m"
#define TERM_YELLOW "\x1b[33m"
#define TERM_CYAN "\x1b[36m"

/* ------------------------------------------------------------------ helpers (main.c) */

/* wg's key encodings. */
void key_to_b64(char out[static 45], const uint8_t key[static 32]);
/* wg's rules for an interface name: 1-15 of [a-zA-Z0-9_=+.-]. */
bool valid_interface_name(const char *name);

/* ------------------------------------------------------------------ the verbs */

int cmd_show(int argc, char *argv[]);
int cmd_showconf(int argc, char *argv[]);
int cmd_set(int argc, char *argv[]);
int cmd_setconf(int argc, char *argv[]); /* setconf, addconf, syncconf: by argv[0] */
int cmd_genkey(int argc, char *argv[]);  /* genkey, genpsk */
int cmd_pubkey(int argc, char *argv[]);
int cmd_strip(int argc, char *argv[]);
int cmd_events(int argc, char *argv[]);
int cmd_up(int argc, char *argv[]);
int cmd_down(int argc, char *argv[]);
int cmd_save(int argc, char *argv[]);
int cmd_client(int argc, char *argv[]); /* client add|list|remove */
int cmd_metrics(int argc, char *argv[]);

/* client.c: whether a line is the "# noisetun-endpoint = HOST:PORT" comment that client add
 * records in a server's [Interface] (strip drops it). */
bool client_is_endpoint_comment(const char *line, size_t len);

/* json.c: show --json. */
int show_json(const char *which);
/* showconf.c: the running config as text (for save). NULL on error (errno set). */
char *showconf_text(const struct nt_uapi_device *dev);

/* updown.c helpers shared with strip: resolve NAME|PATH to a config path and interface
 * name as wg-quick does (after /etc/noisetun/, /etc/wireguard/). Prints why and returns -1. */
int quick_config_path(const char *arg, char *path, size_t path_size, char *iface, size_t iface_size);
/* Usage of up/down/save/strip when argv is not one argument (or asks for help): true with
 * *ret the exit code. */
bool quick_usage(int argc, char *argv[], int *ret);
/* wg-quick's warning for a config file that others could read. */
void quick_warn_world_accessible(const char *path);

#endif
