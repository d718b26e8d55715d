/* udpseg: UDP through a tunnel with checked payloads, plain datagrams or UDP_SEGMENT sends
 * as QUIC stacks make them; for tests/net/udp-offload.sh and bench/udpseg.
 *
 *   udpseg send --to ADDR --port N [--size S] [--count C | --seconds T] [--gso K | --mmsg K]
 *               [--flow F] [--pps R] [--sniff IF]
 *       Datagrams of S bytes (default 1392, at least 16) to ADDR:N, numbered 0, 1, ...;
 *       each carries its number, the flow number F (default 0) and bytes derived from
 *       both. --gso K: K datagrams per sendmsg with UDP_SEGMENT (at most 64 and 65,000
 *       bytes); --mmsg K: K separate datagrams per sendmmsg (at most 256), each its own
 *       UDP packet on the wire as from a busy server's batch (one syscall, K ordinary
 *       sends in the kernel: no super-datagram anywhere); a call the kernel refuses loses
 *       the datagram it stopped at (counted in errors), one that stops short is resumed.
 *       Otherwise one per send, as iperf3 does. --pps R paces to R datagrams a
 *       second. --sniff IF: the longest packet seen leaving on IF (an AF_PACKET tap: a
 *       USO super-datagram shows whole). --no-verify: only number and flow are written
 *       (for a receiver with --no-verify: a benchmark's sender, cheaper).
 *       Prints: send datagrams=N sends=N errors=N seconds=S kpps=X gbps=Y maxlen=M
 *       (datagrams: numbers used, those lost to errors included; sends: syscalls)
 *
 *   udpseg recv --port N [--size S] [--expect C] [--timeout SECS] [--idle MS] [--gro]
 *               [--sniff IF] [--drops]
 *       Receives on [::]:N (v4 and v6) until C datagrams came, or MS (default 1000) ms
 *       without one after the first, or SECS (default 30) in all. Every datagram is
 *       checked: length S, its bytes those its number and flow give (else corrupt), not
 *       seen before (else dup), not older than one already seen of its flow (else
 *       reordered). --gro: UDP_GRO on the socket, super-datagrams cut by their segment
 *       size. --sniff IF: the longest packet seen arriving on IF. --no-verify: number
 *       and flow only, not the bytes (a benchmark's receiver, cheaper). A sink that is
 *       not the bottleneck: recvmmsg batches of 64, a 32 MiB receive buffer
 *       (SO_RCVBUFFORCE as root), and with --no-verify only counting. --drops: also
 *       prints drops=N, the datagrams the kernel dropped at this socket for a full
 *       receive buffer (SO_RXQ_OVFL): loss there is the sink's, not the path's.
 *       Prints: recv datagrams=N corrupt=N dup=N reordered=N lost=N flows=N seconds=S
 *               kpps=X gbps=Y maxlen=M [drops=N]
 *
 * Exit 0 (the counts tell the result), 2 on bad usage or setup failure. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FLOWS 16
#define SEEN_BITS (1u << 22) /* numbers tracked per flow for duplicates */
#define RX_BATCH 64
#define RX_BUF 65536
#define MMSG_MAX 256
#define TX_BUF (1 << 20)

static void die(const char *what)
{
	fprintf(stderr, "udpseg: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void usage(void)
{
	fprintf(stderr, "usage: udpseg send --to ADDR --port N [--size S] [--count C | --seconds T]"
			" [--gso K | --mmsg K] [--flow F] [--pps R] [--sniff IF] [--no-verify]\n"
			"       udpseg recv --port N [--size S] [--expect C] [--timeout SECS] [--idle MS] [--gro]"
			" [--sniff IF] [--no-verify] [--drops]\n");
	exit(2);
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* The bytes of datagram seq of flow: its number, its flow, then a stream only they give. */
static void fill(uint8_t *p, size_t size, uint64_t seq, uint32_t flow)
{
	uint64_t x = mix(seq ^ ((uint64_t)flow << 48));

	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(seq >> (56 - 8 * i));
	for (int i = 0; i < 4; i++)
		p[8 + i] = (uint8_t)(flow >> (24 - 8 * i));
	for (size_t i = 12; i < size; i += 8) {
		x = mix(x);
		for (size_t k = 0; k < 8 && i + k < size; k++)
			p[i + k] = (uint8_t)(x >> (8 * k));
	}
}

/* An AF_PACKET tap on ifname: the longest packet seen, read as it comes. */
static int sniff_open(const char *ifname)
{
	struct sockaddr_ll a = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
	int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));

	if (fd < 0)
		die("AF_PACKET socket");
	if (!(a.sll_ifindex = (int)if_nametoindex(ifname)))
		die(ifname);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("bind AF_PACKET");
	return fd;
}

static void sniff_drain(int fd, size_t *maxlen)
{
	uint8_t b[64];
	ssize_t r;

	while (fd >= 0 && (r = recv(fd, b, sizeof(b), MSG_TRUNC | MSG_DONTWAIT)) >= 0)
		if ((size_t)r > *maxlen)
			*maxlen = (size_t)r;
}

static int parse_addr(const char *s, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		*len = sizeof(*a4);
		return AF_INET;
	}
	if (inet_pton(AF_INET6, s, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		*len = sizeof(*a6);
		return AF_INET6;
	}
	return -1;
}

static bool no_verify; /* --no-verify: number and flow only (send: the rest left as is) */

struct opts {
	const char *to, *sniff;
	unsigned port, gso, mmsg, flow;
	size_t size;
	uint64_t count, expect;
	double seconds, pps, timeout;
	unsigned idle_ms;
	bool gro, drops;
};

static void pace(const struct opts *o, double start, uint64_t seq)
{
	double due = start + (double)seq / o->pps, t = now_s();

	if (due > t) {
		struct timespec ts = { (time_t)(due - t), (long)((due - t - (double)(time_t)(due - t)) * 1e9) };
		nanosleep(&ts, NULL);
	}
}

/* --mmsg K: K datagrams a sendmmsg, each its own message (and packet). */
static int do_send_mmsg(const struct opts *o, int fd, const struct sockaddr_storage *to, socklen_t tolen,
			int sniff)
{
	static uint8_t buf[TX_BUF];
	static struct mmsghdr msgs[MMSG_MAX];
	static struct iovec iov[MMSG_MAX];
	unsigned k = o->mmsg;
	uint64_t seq = 0, sends = 0, errors = 0, limit = o->count ? o->count : UINT64_MAX;
	size_t maxlen = 0;
	double start, end;

	if (k > MMSG_MAX)
		k = MMSG_MAX;
	if (k * o->size > TX_BUF)
		k = (unsigned)(TX_BUF / o->size);
	/* Connected, as iperf3's: the route is looked up once, not once a datagram. */
	if (connect(fd, (const struct sockaddr *)to, tolen) < 0)
		die("connect");
	for (unsigned i = 0; i < k; i++) {
		iov[i] = (struct iovec){ .iov_base = buf + i * o->size, .iov_len = o->size };
		msgs[i].msg_hdr = (struct msghdr){ .msg_iov = &iov[i], .msg_iovlen = 1 };
	}
	/* Without --no-verify every byte is written each time; with it, only number and
	 * flow: the rest of the buffer is written once here. */
	for (unsigned i = 0; i < k; i++)
		fill(buf + i * o->size, o->size, i, o->flow);
	start = now_s();
	end = o->seconds > 0 ? start + o->seconds : 0;
	while (seq < limit && (!end || now_s() < end)) {
		unsigned n = k;
		int r;

		if (limit - seq < n)
			n = (unsigned)(limit - seq);
		for (unsigned i = 0; i < n; i++)
			fill(buf + i * o->size, no_verify ? 12 : o->size, seq + i, o->flow);
		r = sendmmsg(fd, msgs, n, 0);
		sends++;
		if (r < 0) {
			if (errno != ECONNREFUSED && errno != ENOBUFS && errno != EAGAIN && errno != EINTR)
				die("sendmmsg");
			errors++; /* the datagram it stopped at is lost, as on a link */
			r = 1;
		}
		seq += (unsigned)r; /* a short count: the rest go in the next call */
		sniff_drain(sniff, &maxlen);
		if (o->pps > 0)
			pace(o, start, seq);
	}
	double secs = now_s() - start;
	usleep(100 * 1000);
	sniff_drain(sniff, &maxlen);
	printf("send datagrams=%llu sends=%llu errors=%llu seconds=%.3f kpps=%.1f gbps=%.3f maxlen=%zu\n",
	       (unsigned long long)seq, (unsigned long long)sends, (unsigned long long)errors, secs,
	       (double)seq / secs / 1e3, (double)seq * (double)o->size * 8 / secs / 1e9, maxlen);
	return 0;
}

static int do_send(const struct opts *o)
{
	static uint8_t buf[65536];
	struct sockaddr_storage to;
	socklen_t tolen;
	int family = parse_addr(o->to, (uint16_t)o->port, &to, &tolen), fd, sniff = -1;
	unsigned k = o->gso ? o->gso : 1;
	uint64_t seq = 0, sends = 0, errors = 0, limit = o->count ? o->count : UINT64_MAX;
	size_t maxlen = 0;
	double start, end;
	int sz = 8 << 20;

	if (family < 0)
		usage();
	if (k > 64)
		k = 64;
	if (k * o->size > 65000)
		k = (unsigned)(65000 / o->size);
	if ((fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		die("socket");
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	if (o->sniff)
		sniff = sniff_open(o->sniff);
	if (o->mmsg)
		return do_send_mmsg(o, fd, &to, tolen, sniff);
	start = now_s();
	end = o->seconds > 0 ? start + o->seconds : 0;
	while (seq < limit && (!end || now_s() < end)) {
		union {
			char b[CMSG_SPACE(sizeof(uint16_t))];
			struct cmsghdr align;
		} ctrl;
		unsigned n = k;
		struct iovec iov = { .iov_base = buf };
		struct msghdr m = { .msg_name = &to, .msg_namelen = tolen, .msg_iov = &iov, .msg_iovlen = 1 };

		if (limit - seq < n)
			n = (unsigned)(limit - seq);
		for (unsigned i = 0; i < n; i++)
			fill(buf + i * o->size, no_verify ? 12 : o->size, seq + i, o->flow);
		iov.iov_len = n * o->size;
		if (o->gso && n > 1) {
			struct cmsghdr *c = (struct cmsghdr *)ctrl.b;
			uint16_t seg = (uint16_t)o->size;

			m.msg_control = ctrl.b;
			m.msg_controllen = sizeof(ctrl.b);
			c->cmsg_level = IPPROTO_UDP;
			c->cmsg_type = UDP_SEGMENT;
			c->cmsg_len = CMSG_LEN(sizeof(seg));
			memcpy(CMSG_DATA(c), &seg, sizeof(seg));
		} else if (!o->gso) {
			n = 1;
			iov.iov_len = o->size;
		}
		if (sendmsg(fd, &m, 0) < 0) {
			if (errno != ECONNREFUSED && errno != ENOBUFS && errno != EAGAIN && errno != EINTR)
				die("sendmsg");
			errors++; /* the datagrams of a failed send are lost, as on a link */
		}
		sends++;
		seq += n;
		sniff_drain(sniff, &maxlen);
		if (o->pps > 0)
			pace(o, start, seq);
	}
	double secs = now_s() - start;
	usleep(100 * 1000);
	sniff_drain(sniff, &maxlen);
	printf("send datagrams=%llu sends=%llu errors=%llu seconds=%.3f kpps=%.1f gbps=%.3f maxlen=%zu\n",
	       (unsigned long long)seq, (unsigned long long)sends, (unsigned long long)errors, secs,
	       (double)seq / secs / 1e3, (double)seq * (double)o->size * 8 / secs / 1e9, maxlen);
	return 0;
}

struct flowstate {
	uint32_t id;
	bool used;
	uint64_t max_seen, count;
	uint8_t *seen;
};

static struct flowstate flows[MAX_FLOWS];
static uint64_t n_ok, n_corrupt, n_dup, n_reord;

static void check_datagram(const uint8_t *p, size_t len, size_t size)
{
	static uint8_t want[65536];
	struct flowstate *f = NULL;
	uint64_t seq = 0;
	uint32_t flow = 0;

	if (len != size || len < 16) {
		n_corrupt++;
		return;
	}
	for (int i = 0; i < 8; i++)
		seq = seq << 8 | p[i];
	for (int i = 0; i < 4; i++)
		flow = flow << 8 | p[8 + i];
	if (!no_verify)
		fill(want, size, seq, flow);
	if (!no_verify && memcmp(want, p, size)) {
		n_corrupt++;
		return;
	}
	for (int i = 0; i < MAX_FLOWS && !f; i++)
		if (flows[i].used && flows[i].id == flow)
			f = &flows[i];
	for (int i = 0; i < MAX_FLOWS && !f; i++)
		if (!flows[i].used) {
			f = &flows[i];
			*f = (struct flowstate){ .id = flow, .used = true, .seen = calloc(SEEN_BITS / 8, 1) };
			if (!f->seen)
				die("calloc");
		}
	if (!f) {
		n_corrupt++; /* more flows than anyone sent */
		return;
	}
	if (seq < SEEN_BITS) {
		if (f->seen[seq / 8] & (1u << (seq % 8))) {
			n_dup++;
			return;
		}
		f->seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
	}
	if (f->count && seq < f->max_seen)
		n_reord++;
	if (!f->count || seq > f->max_seen)
		f->max_seen = seq;
	f->count++;
	n_ok++;
}

static int do_recv(const struct opts *o)
{
	static uint8_t bufs[RX_BATCH][RX_BUF];
	static struct mmsghdr msgs[RX_BATCH];
	static struct iovec iov[RX_BATCH];
	static union {
		char b[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(uint32_t))]; /* UDP_GRO, SO_RXQ_OVFL */
		struct cmsghdr align;
	} ctrl[RX_BATCH];
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)o->port), .sin6_addr = in6addr_any };
	int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), off = 0, on = 1, sz = 32 << 20, sniff = -1;
	double start = now_s(), first = 0, last = 0;
	uint64_t total = 0;
	uint32_t drops = 0;
	size_t maxlen = 0;

	if (fd < 0)
		die("socket");
	if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) < 0)
		die("IPV6_V6ONLY");
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	if (o->gro && setsockopt(fd, IPPROTO_UDP, UDP_GRO, &on, sizeof(on)) < 0)
		die("UDP_GRO");
	if (o->drops && setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof(on)) < 0)
		die("SO_RXQ_OVFL");
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("bind");
	if (o->sniff)
		sniff = sniff_open(o->sniff);
	/* ready: a line on stderr the scenario may wait for */
	fprintf(stderr, "udpseg: listening on %u\n", o->port);
	for (;;) {
		struct pollfd pf[2] = { { .fd = fd, .events = POLLIN }, { .fd = sniff, .events = POLLIN } };
		double t = now_s();
		int wait_ms = 100, n;

		if ((o->expect && total >= o->expect) || t - start > o->timeout || (first && (t - last) * 1000 > o->idle_ms))
			break;
		if (poll(pf, sniff >= 0 ? 2 : 1, wait_ms) < 0 && errno != EINTR)
			die("poll");
		sniff_drain(sniff, &maxlen);
		for (int i = 0; i < RX_BATCH; i++) {
			iov[i] = (struct iovec){ .iov_base = bufs[i], .iov_len = RX_BUF };
			msgs[i].msg_hdr = (struct msghdr){ .msg_iov = &iov[i], .msg_iovlen = 1, .msg_control = ctrl[i].b,
							   .msg_controllen = sizeof(ctrl[i].b) };
		}
		while ((n = recvmmsg(fd, msgs, RX_BATCH, MSG_DONTWAIT, NULL)) > 0) {
			last = now_s();
			if (!first)
				first = last;
			for (int i = 0; i < n; i++) {
				size_t len = msgs[i].msg_len, seg = len;
				struct msghdr *m = &msgs[i].msg_hdr;

				for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c))
					if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO) {
						int s;
						memcpy(&s, CMSG_DATA(c), sizeof(s));
						if (s > 0)
							seg = (size_t)s;
					} else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
						memcpy(&drops, CMSG_DATA(c), sizeof(drops)); /* cumulative */
					}
				for (size_t at = 0; at < len; at += seg, total++)
					check_datagram(bufs[i] + at, len - at < seg ? len - at : seg, o->size);
				msgs[i].msg_hdr.msg_controllen = sizeof(ctrl[i].b);
			}
			sniff_drain(sniff, &maxlen);
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			die("recvmmsg");
	}
	sniff_drain(sniff, &maxlen);
	double secs = last > first ? last - first : 1e-9;
	uint64_t lost = 0, nflows = 0;
	for (int i = 0; i < MAX_FLOWS; i++)
		if (flows[i].used) {
			nflows++;
			lost += flows[i].max_seen + 1 - flows[i].count;
		}
	printf("recv datagrams=%llu corrupt=%llu dup=%llu reordered=%llu lost=%llu flows=%llu seconds=%.3f kpps=%.1f "
	       "gbps=%.3f maxlen=%zu",
	       (unsigned long long)n_ok, (unsigned long long)n_corrupt, (unsigned long long)n_dup,
	       (unsigned long long)n_reord, (unsigned long long)lost, (unsigned long long)nflows, secs,
	       (double)n_ok / secs / 1e3, (double)n_ok * (double)o->size * 8 / secs / 1e9, maxlen);
	if (o->drops)
		printf(" drops=%lu", (unsigned long)drops);
	printf("\n");
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "to", required_argument, NULL, 't' },      { "port", required_argument, NULL, 'p' },
		{ "size", required_argument, NULL, 's' },    { "count", required_argument, NULL, 'c' },
		{ "seconds", required_argument, NULL, 'T' }, { "gso", required_argument, NULL, 'g' },
		{ "flow", required_argument, NULL, 'f' },    { "pps", required_argument, NULL, 'r' },
		{ "sniff", required_argument, NULL, 'S' },   { "expect", required_argument, NULL, 'e' },
		{ "timeout", required_argument, NULL, 'o' }, { "idle", required_argument, NULL, 'i' },
		{ "gro", no_argument, NULL, 'G' },           { "no-verify", no_argument, NULL, 'N' },
		{ "mmsg", required_argument, NULL, 'm' },    { "drops", no_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .size = 1392, .timeout = 30, .idle_ms = 1000 };
	int c;

	if (argc < 2 || (strcmp(argv[1], "send") && strcmp(argv[1], "recv")))
		usage();
	optind = 2;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 't': o.to = optarg; break;
		case 'p': o.port = (unsigned)strtoul(optarg, NULL, 10); break;
		case 's': o.size = strtoul(optarg, NULL, 10); break;
		case 'c': o.count = strtoull(optarg, NULL, 10); break;
		case 'T': o.seconds = strtod(optarg, NULL); break;
		case 'g': o.gso = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'f': o.flow = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'r': o.pps = strtod(optarg, NULL); break;
		case 'S': o.sniff = optarg; break;
		case 'e': o.expect = strtoull(optarg, NULL, 10); break;
		case 'o': o.timeout = strtod(optarg, NULL); break;
		case 'i': o.idle_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'G': o.gro = true; break;
		case 'm': o.mmsg = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'D': o.drops = true; break;
		case 'N': no_verify = true; break;
		default: usage();
		}
	}
	if (!o.port || o.port > 65535 || o.size < 16 || o.size > 65000)
		usage();
	if (!strcmp(argv[1], "send")) {
		if (!o.to || (!o.count && o.seconds <= 0) || (o.gso && o.mmsg))
			usage();
		return do_send(&o);
	}
	return do_recv(&o);
}
