/* DNS for config mode, as wg-quick sets it: per link in systemd-resolved when it runs in
 * our network namespace (the routing domain `~.` for a full tunnel), else a resolvconf
 * record. What up set is remembered here, so down undoes exactly that. */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "noisetun/config.h"
#include "noisetund.h"
#include "dns.h"
#include "spawn.h"

static struct {
	bool set;
	bool resolved;                  /* set per link in systemd-resolved, not resolvconf */
} dns;

/* ---- DNS through resolvconf, as wg-quick: the record is IFACE with the prefix that
 * /etc/resolvconf/interface-order gives tunnels (Debian's resolvconf: "tun.") ---- */

static void resolvconf_name(const char *ifname, char *buf, size_t size)
{
	FILE *f = fopen("/etc/resolvconf/interface-order", "re");
	char line[256], prefix[64] = "";

	while (f && fgets(line, sizeof(line), f)) {
		size_t n = strspn(line, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-");
		if (n && n < sizeof(prefix) && line[n] == '*' && (line[n + 1] == '\n' || !line[n + 1])) {
			snprintf(prefix, sizeof(prefix), "%.*s.", (int)n, line);
			break;
		}
	}
	if (f)
		fclose(f);
	snprintf(buf, size, "%s%s", prefix, ifname);
}

static bool dns_is_address(const char *s)
{
	return strchr(s, ':') || (*s && strspn(s, "0123456789.") == strlen(s));
}

/* systemd-resolved runs (its Varlink socket exists), resolvectl is there, and we are in
 * init's network namespace, where resolved knows our link. (Not in a test's namespace:
 * there the host's resolved must not be touched; resolvconf, maybe a stand-in, is.) */
static bool resolved_running(void)
{
	struct stat self, init;

	return access("/run/systemd/resolve/io.systemd.Resolve", F_OK) == 0 && in_path("resolvectl") &&
	       stat("/proc/self/ns/net", &self) == 0 && stat("/proc/1/ns/net", &init) == 0 &&
	       self.st_dev == init.st_dev && self.st_ino == init.st_ino;
}

/* resolvectl VERB IFACE, then the DNS entries that are (addresses) or are not (search
 * domains) addresses, after `extra` if any; its exit status, or -1. */
static int resolvectl(const char *ifname, const char *verb, const struct nt_config *cfg, bool addresses, const char *extra)
{
	char **argv = calloc(cfg->dns_count + 5, sizeof(*argv));
	size_t n = 0;
	int status;

	if (!argv)
		return -1;
	argv[n++] = (char *)"resolvectl";
	argv[n++] = (char *)verb;
	argv[n++] = (char *)ifname;
	if (extra)
		argv[n++] = (char *)extra;
	for (size_t i = 0; i < cfg->dns_count; i++)
		if (dns_is_address(cfg->dns[i]) == addresses)
			argv[n++] = cfg->dns[i];
	argv[n] = NULL;
	status = run_program(argv, NULL);
	free(argv);
	return status;
}

/* Per link, as systemd-networkd would: the servers on IFACE, the search domains as its
 * domains, and for a full tunnel the routing domain `~.`, so every query goes through
 * the tunnel. The link's settings vanish with the link. */
static int dns_up_resolved(const char *ifname, const struct nt_config *cfg, bool full, char *what, size_t what_size)
{
	bool servers = false, domains = false;

	for (size_t i = 0; i < cfg->dns_count; i++)
		*(dns_is_address(cfg->dns[i]) ? &servers : &domains) = true;
	log_verbose("DNS: systemd-resolved on %s%s", ifname, full ? ", routing domain ~." : "");
	dns.set = dns.resolved = true;
	if (servers && resolvectl(ifname, "dns", cfg, true, NULL)) {
		snprintf(what, what_size, "resolvectl dns %s failed", ifname);
		return -EIO;
	}
	if ((domains || full) && resolvectl(ifname, "domain", cfg, false, full ? "~." : NULL)) {
		snprintf(what, what_size, "resolvectl domain %s failed", ifname);
		return -EIO;
	}
	return 0;
}

int dns_up(const char *ifname, const struct nt_config *cfg, bool full, char *what, size_t what_size)
{
	char name[96], *data;
	size_t size = 64;
	int status;

	if (!cfg->dns_count)
		return 0;
	if (resolved_running())
		return dns_up_resolved(ifname, cfg, full, what, what_size);
	if (!in_path("resolvconf")) {
		log_error("DNS: resolvconf is not installed: the DNS servers of the config are not set");
		return 0;
	}
	for (size_t i = 0; i < cfg->dns_count; i++)
		size += strlen(cfg->dns[i]) + 16;
	if (!(data = malloc(size)))
		return -ENOMEM;
	data[0] = 0;
	for (size_t i = 0; i < cfg->dns_count; i++)
		if (dns_is_address(cfg->dns[i]))
			strcat(strcat(strcat(data, "nameserver "), cfg->dns[i]), "\n");
	for (size_t i = 0, first = 1; i < cfg->dns_count; i++) {
		if (dns_is_address(cfg->dns[i]))
			continue;
		strcat(strcat(data, first ? "search " : " "), cfg->dns[i]);
		first = 0;
	}
	if (data[strlen(data) - 1] != '\n')
		strcat(data, "\n");
	resolvconf_name(ifname, name, sizeof(name));
	log_verbose("resolvconf -a %s -m 0 -x", name);
	status = run_program((char *const[]){ "resolvconf", "-a", name, "-m", "0", "-x", NULL }, data);
	free(data);
	if (status) {
		snprintf(what, what_size, "resolvconf -a %s failed (status %d)", name, status);
		return -EIO;
	}
	dns.set = true;
	return 0;
}

void dns_down(const char *ifname)
{
	char name[96];

	if (!dns.set)
		return;
	if (dns.resolved) {
		/* Once the link is gone (the worker took the TUN with it), so is its DNS. */
		if (if_nametoindex(ifname) &&
		    run_program((char *const[]){ "resolvectl", "revert", (char *)ifname, NULL }, NULL))
			log_error("DNS: resolvectl revert %s failed", ifname);
		dns.set = dns.resolved = false;
		return;
	}
	resolvconf_name(ifname, name, sizeof(name));
	log_verbose("resolvconf -d %s -f", name);
	if (run_program((char *const[]){ "resolvconf", "-d", name, "-f", NULL }, NULL))
		log_error("resolvconf -d %s failed", name);
	dns.set = false;
}

bool dns_equal(const struct nt_config *a, const struct nt_config *b)
{
	if (a->dns_count != b->dns_count)
		return false;
	for (size_t i = 0; i < a->dns_count; i++)
		if (strcmp(a->dns[i], b->dns[i]))
			return false;
	return true;
}
