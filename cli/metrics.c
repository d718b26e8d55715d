/* noisetun metrics [INTERFACE]: the Prometheus text exposition of one interface, or of
 * every interface with a control socket, for node_exporter's textfile collector. The same
 * text as the daemon's --metrics-listen (lib/metrics.c formats both), from a get=1
 * noisetun=1 over the control socket; a daemon that does not know noisetun=1 (wireguard-go)
 * is asked a plain get=1, and its noisetun-only figures read 0. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void metrics_usage(FILE *f)
{
	fprintf(f, "Usage: %s metrics [<interface>]\n", prog_name);
}

static int get(const char *iface, struct nt_uapi_device *dev, bool *plain)
{
	int err = ipc_get_noisetun(iface, dev);

	*plain = false;
	if (err == -EINVAL) { /* noisetun=1 unknown there */
		*plain = true;
		err = ipc_get(iface, dev);
	}
	return err;
}

/* The snapshot of a parsed reply; endpoints in eps (64 bytes each). */
static int to_snapshot(const struct nt_uapi_device *dev, bool plain, struct nt_metrics_device *d,
		       struct nt_metrics_peer **peers_out, char **eps_out)
{
	size_t n = dev->peers_count ? dev->peers_count : 1;
	struct nt_metrics_peer *peers = calloc(n, sizeof(*peers));
	char *eps = calloc(n, 64);

	if (!peers || !eps) {
		free(peers);
		free(eps);
		return -ENOMEM;
	}
	memset(d, 0, sizeof(*d));
	d->ifname = dev->name;
	/* A daemon without noisetun=1 answers, so its link is up as far as we can tell. */
	d->up = plain ? true : dev->metrics.up;
	d->under_load = dev->metrics.under_load;
	d->cookie_replies_sent = dev->metrics.cookie_replies_sent;
	d->handshake_jobs_pending = dev->metrics.handshake_jobs_pending;
	d->handshake_jobs_discarded = dev->metrics.handshake_jobs_discarded;
	for (size_t i = 0; i < dev->metrics.drops_count && i < NT_METRICS_MAX_DROPS; i++)
		d->drops[i] = (struct nt_metrics_drop){ dev->metrics.drop_reasons[i], dev->metrics.drops[i] };
	d->drops_count = dev->metrics.drops_count;
	for (size_t i = 0; i < dev->peers_count; i++) {
		const struct nt_uapi_device_peer *p = &dev->peers[i];
		struct nt_metrics_peer *q = &peers[i];

		memcpy(q->public_key, p->public_key, sizeof(q->public_key));
		q->name = p->name;
		if (p->has_endpoint)
			endpoint_display(eps + 64 * i, 64, &p->endpoint);
		q->endpoint = eps + 64 * i;
		q->rx_bytes = p->rx_bytes;
		q->tx_bytes = p->tx_bytes;
		q->last_handshake_ns = (uint64_t)p->last_handshake_sec * 1000000000ULL + (uint64_t)p->last_handshake_nsec;
		q->rx_packets = p->metrics.rx_packets;
		q->tx_packets = p->metrics.tx_packets;
		q->handshakes = p->metrics.handshakes;
		q->handshake_attempts = p->metrics.handshake_attempts;
		q->handshake_failures = p->metrics.handshake_failures;
		q->has_session = p->metrics.has_session;
		q->session_age_ns = p->metrics.session_age_ns;
	}
	d->peers = peers;
	d->peers_count = dev->peers_count;
	*peers_out = peers;
	*eps_out = eps;
	return 0;
}

int cmd_metrics(int argc, char *argv[])
{
	struct nt_uapi_device *devs = NULL;
	struct nt_metrics_device *snaps = NULL;
	struct nt_metrics_peer **peers = NULL;
	char **names = NULL, **eps = NULL, *text = NULL;
	size_t count = 0, got = 0, len;
	int ret = 1, err;

	if (argc > 2 || (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))) {
		metrics_usage(argc > 2 ? stderr : stdout);
		return argc > 2;
	}
	if (argc == 2) {
		static char *one[2];

		one[0] = argv[1];
		names = one;
		count = 1;
	} else if ((err = ipc_list(&names, &count))) {
		fprintf(stderr, "Unable to list interfaces: %s\n", strerror(-err));
		return 1;
	}
	devs = calloc(count ? count : 1, sizeof(*devs));
	snaps = calloc(count ? count : 1, sizeof(*snaps));
	peers = calloc(count ? count : 1, sizeof(*peers));
	eps = calloc(count ? count : 1, sizeof(*eps));
	if (!devs || !snaps || !peers || !eps) {
		fprintf(stderr, "%s: out of memory\n", prog_name);
		goto out;
	}
	ret = 0;
	for (size_t i = 0; i < count; i++) {
		bool plain;

		err = get(names[i], &devs[got], &plain);
		if (!err)
			err = to_snapshot(&devs[got], plain, &snaps[got], &peers[got], &eps[got]);
		if (err) {
			/* one interface gone (or going) does not cost the others their metrics */
			fprintf(stderr, "Unable to access interface %s: %s\n", names[i], strerror(-err));
			ret = 1;
			continue;
		}
		got++;
	}
	len = nt_metrics_format(NULL, 0, snaps, got);
	if (!(text = malloc(len + 1))) {
		fprintf(stderr, "%s: out of memory\n", prog_name);
		ret = 1;
		goto out;
	}
	nt_metrics_format(text, len + 1, snaps, got);
	if (fwrite(text, 1, len, stdout) != len || fflush(stdout)) {
		fprintf(stderr, "%s: cannot write the metrics: %s\n", prog_name, strerror(errno));
		ret = 1;
	}
out:
	for (size_t i = 0; i < got; i++) {
		nt_uapi_device_free(&devs[i]);
		free(peers[i]);
		free(eps[i]);
	}
	free(text);
	free(devs);
	free(snaps);
	free(peers);
	free(eps);
	if (argc != 2 && names)
		ipc_names_free(names);
	return ret;
}
