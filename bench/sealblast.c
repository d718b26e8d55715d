/* sealblast: the free-core load of bench/run's `scale` section (issue 19 part 4): a WireGuard
 * initiator that pre-seals its transport data messages off the clock and then only sends
 * them, so that on a 2-core machine the responder (the implementation measured) decrypting
 * them is the one busy process, and a second data-path worker has a core to use.
 *
 *   sealblast send --key FILE --peer PUB --to IP:PORT --src IP --dst IP:PORT --shm FILE [options]
 *       One handshake with the responder at --to (initiation, retried every 1 s until a
 *       response; a cookie reply is consumed and the initiation resent with mac2), keys
 *       derived with lib/ (nt_noise_consume_response, nt_noise_begin_session). Then, off the
 *       clock, seals --bytes worth of type-4 messages with counters 0..N-1 (nt_keypair_seal,
 *       on every core): each an inner IPv4/UDP packet --src:4242 -> --dst, --size bytes of
 *       UDP payload (default 1392: a 1420-byte IP packet, the tunnel MTU), valid checksums,
 *       its sequence number (= counter) in the payload's first 8 bytes. Counter 0 confirms
 *       the keypair at the responder. Then sends them in order, --gso messages per
 *       UDP_SEGMENT super-datagram (the kernel caps one send at 64 KiB: 45 of 1452 bytes),
 *       up to 16 super-datagrams per sendmmsg, with at most --window bytes of messages sent
 *       but not yet counted by the sink (read from the --shm file the sink publishes), so the
 *       responder's socket never overflows. When the sink's count does not move for --stall
 *       ms while messages are outstanding, those are written off as lost and sending goes
 *       on. Stops when every message is sent (or after --seconds), waits for the tail, marks
 *       the run done in the shm file and prints one JSON object. --cpu N: send from CPU N only
 *       (the sealing before still uses every core).
 *   sealblast sink --bind IP:PORT --shm FILE [--timeout S] [--verify] [--cpu N]
 *       A UDP socket with UDP_GRO and a 32 MiB receive buffer (SO_RCVBUFFORCE), recvmmsg
 *       batches; counts segments (datagram length / the UDP_GRO segment size) and bytes and
 *       publishes the count in FILE (created, 4 KiB, mmap'd; a u64 stored atomically after
 *       each batch). Ends when the sender marks done (or after --timeout s). Its figure: the
 *       delivery rate in the steady state, from the time 10% of the final count had arrived
 *       to the time 90% had, in kpps and Gbit/s of inner UDP payload; prints one JSON object.
 *       --verify checks the sequence numbers (order, gaps) as it counts.
 *   sealblast selftest
 *       A handshake between two lib/ endpoints in memory, then messages sealed exactly as
 *       `send` seals them, opened by the responder's keypair, their inner IPv4 and UDP
 *       checksums and sequence numbers checked. Exit 0 when all is well.
 *
 * Both processes see the same file system (the bench's temporary directory), so the shm
 * file is the only channel: no per-packet syscall on either side beyond the batched I/O. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "noisetun/cookie.h"
#include "noisetun/crypto.h"
#include "noisetun/encoding.h"
#include "noisetun/keypair.h"
#include "noisetun/noise.h"

#define TOOL_NAME "sealblast"
#include "tool.h"

#define SHM_MAGIC 0x5345414c424c5354ULL /* "SEALBLST" */
#define SHM_SIZE 4096
#define SEND_BATCH 16      /* super-datagrams per sendmmsg */
#define RECV_BATCH 16      /* datagrams per recvmmsg */
#define RECV_BUF 65536     /* one GRO datagram at most */
#define PEEK_BYTES 64      /* what the sink copies of a datagram when it only counts */
#ifndef SAMPLES_MAX
#define SAMPLES_MAX (1u << 20) /* the sink's (time, count) samples; decimated when full */
#endif
#define INNER_SPORT 4242
#define WINDOW_MIN 8       /* messages: the adaptive window's floor */
#define WINDOW_STEP 8      /* messages: its growth per window's worth delivered */
#define UDP_SEND_MAX 65507 /* the largest UDP payload one send may carry (IPv4) */

/* The file both processes map. Fields are read and written with __atomic builtins. */
struct shared {
	uint64_t magic;
	uint64_t delivered;       /* sink: segments counted so far */
	uint64_t delivered_bytes; /* sink: UDP payload bytes counted so far */
	uint64_t done;            /* sender: 1 when it sent its last message and waited for the tail */
	uint64_t sent;            /* sender: messages sent */
	uint64_t frontier;        /* sink: 1 + the highest sequence number counted */
};

/* Run the calling thread on CPU cpu only (-1: leave it where the scheduler puts it). */
static void pin_to(long cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	if (cpu >= CPU_SETSIZE)
		die("--cpu %ld: out of range", cpu);
	CPU_ZERO(&set);
	CPU_SET((int)cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		die("sched_setaffinity(CPU %ld): %s", cpu, strerror(errno));
}

static void sleep_us(unsigned us)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)us * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* "IP:PORT" (IPv4) into sa. */
static void parse_ipport(struct sockaddr_in *sa, const char *s)
{
	char host[64];
	const char *colon = strrchr(s, ':');

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		die("bad IPv4:port %s", s);
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
		die("bad IPv4 address %s", host);
	uint64_t port = parse_u64(colon + 1, "port");
	if (!port || port > 65535)
		die("bad port %s", colon + 1);
	sa->sin_port = htons((uint16_t)port);
}

/* A base64 key from a file (first line, as `wg genkey` writes it) into sodium memory. */
static void read_key_file(uint8_t key[NT_KEY_LEN], const char *path)
{
	char *buf = sodium_malloc(256);
	ssize_t n;
	int fd;

	if (!buf)
		die("out of memory");
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		die("%s: %s", path, strerror(errno));
	n = read(fd, buf, 255);
	if (n < 0)
		die("%s: %s", path, strerror(errno));
	close(fd);
	buf[n] = 0;
	buf[strcspn(buf, "\r\n")] = 0;
	if (nt_key_from_base64(key, buf))
		die("%s: not a base64 key", path);
	sodium_free(buf);
}

static struct shared *shm_map(const char *path, bool create)
{
	int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0600);
	struct shared *sh;

	if (fd < 0)
		die("%s: %s", path, strerror(errno));
	if (create && ftruncate(fd, SHM_SIZE) < 0)
		die("%s: ftruncate: %s", path, strerror(errno));
	sh = mmap(NULL, SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (sh == MAP_FAILED)
		die("%s: mmap: %s", path, strerror(errno));
	close(fd);
	if (create)
		__atomic_store_n(&sh->magic, SHM_MAGIC, __ATOMIC_RELEASE);
	else if (__atomic_load_n(&sh->magic, __ATOMIC_ACQUIRE) != SHM_MAGIC)
		die("%s: not a sealblast sink's file (start the sink first)", path);
	return sh;
}

/* ------------------------------------------------------------------ inner packets */

static void be16_store(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t be16_load(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* The Internet checksum's running sum of len bytes (16-bit big-endian words). */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	uint64_t s = sum;

	for (; len >= 2; p += 2, len -= 2)
		s += (uint32_t)p[0] << 8 | p[1];
	if (len)
		s += (uint32_t)p[0] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint32_t)s;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

struct flow {
	uint32_t src, dst; /* network order */
	uint16_t sport, dport; /* host order */
	size_t payload;        /* UDP payload bytes */
};

static size_t inner_len(const struct flow *f)
{
	return 20 + 8 + f->payload;
}

/* An IPv4/UDP packet of the flow with seq in its payload, checksums set. */
static void build_inner(uint8_t *p, const struct flow *f, uint64_t seq)
{
	size_t total = inner_len(f), ulen = 8 + f->payload;
	uint8_t *u = p + 20, *pl = p + 28;
	uint32_t sum;

	p[0] = 0x45;
	p[1] = 0;
	be16_store(p + 2, (uint16_t)total);
	be16_store(p + 4, (uint16_t)seq);
	be16_store(p + 6, 0x4000); /* DF */
	p[8] = 64;
	p[9] = IPPROTO_UDP;
	p[10] = p[11] = 0;
	memcpy(p + 12, &f->src, 4);
	memcpy(p + 16, &f->dst, 4);
	be16_store(p + 10, csum_fold(csum_add(0, p, 20)));

	be16_store(u, f->sport);
	be16_store(u + 2, f->dport);
	be16_store(u + 4, (uint16_t)ulen);
	u[6] = u[7] = 0;
	for (size_t i = 0; i < f->payload; i++)
		pl[i] = (uint8_t)(i * 7 + 1);
	if (f->payload >= 8)
		nt_store_le64(pl, seq);
	/* pseudo-header: src, dst, zero, protocol, UDP length */
	sum = csum_add(0, p + 12, 8);
	sum += IPPROTO_UDP + (uint32_t)ulen;
	sum = csum_add(sum, u, ulen);
	uint16_t c = csum_fold(sum);
	be16_store(u + 6, c ? c : 0xffff);
}

/* 0 when pkt is an IPv4/UDP packet of the flow with both checksums right and seq inside. */
static int check_inner(const uint8_t *p, size_t len, const struct flow *f, uint64_t seq)
{
	uint32_t sum;

	if (len < inner_len(f) || p[0] != 0x45 || p[9] != IPPROTO_UDP || be16_load(p + 2) != inner_len(f))
		return -1;
	if (csum_fold(csum_add(0, p, 20)) != 0)
		return -2;
	if (memcmp(p + 12, &f->src, 4) || memcmp(p + 16, &f->dst, 4) || be16_load(p + 22) != f->dport)
		return -3;
	sum = csum_add(0, p + 12, 8);
	sum += IPPROTO_UDP + (uint32_t)(8 + f->payload);
	if (csum_fold(csum_add(sum, p + 20, 8 + f->payload)) != 0)
		return -4;
	if (f->payload >= 8 && nt_load_le64(p + 28) != seq)
		return -5;
	return 0;
}

/* ------------------------------------------------------------------ sealing */

struct seal_job {
	struct nt_keypair *kp; /* this thread's copy (its own OpenSSL cipher), in sodium memory */
	uint8_t *buf;
	size_t msglen, mtu;
	const struct flow *f;
	uint64_t lo, hi;
	int failed;
};

static void *seal_worker(void *arg)
{
	struct seal_job *j = arg;
	size_t len = inner_len(j->f), out;

	j->kp->send_counter = j->lo;
	for (uint64_t i = j->lo; i < j->hi; i++) {
		uint8_t *m = j->buf + i * j->msglen;

		build_inner(m + NT_DATA_OFF_PACKET, j->f, i);
		if (nt_keypair_seal(j->kp, m, &out, m + NT_DATA_OFF_PACKET, len, j->mtu, j->kp->birth) != NT_OK ||
		    out != j->msglen) {
			j->failed = 1;
			break;
		}
	}
	return NULL;
}

/* Seal n messages (counters 0..n-1) into buf on every core. kp is the session's keypair;
 * each thread seals on a copy with its own cipher, released (and wiped) afterwards. */
static void seal_all(const struct nt_keypair *kp, uint8_t *buf, uint64_t n, size_t msglen, size_t mtu,
		     const struct flow *f)
{
	unsigned nt = nthreads();
	struct nt_keypair *copies = sodium_allocarray(nt, sizeof(*copies));
	struct seal_job jobs[MAX_THREADS];
	pthread_t th[MAX_THREADS];

	if (!copies)
		die("out of memory");
	for (unsigned t = 0; t < nt; t++) {
		copies[t] = *kp;
		copies[t].send_cipher = copies[t].recv_cipher = NULL;
		jobs[t] = (struct seal_job){ .kp = &copies[t], .buf = buf, .msglen = msglen, .mtu = mtu, .f = f,
					     .lo = n * t / nt, .hi = n * (t + 1) / nt };
		if (pthread_create(&th[t], NULL, seal_worker, &jobs[t]))
			die("pthread_create failed");
	}
	for (unsigned t = 0; t < nt; t++) {
		if (pthread_join(th[t], NULL))
			die("pthread_join failed");
		nt_keypair_release(&copies[t]);
		if (jobs[t].failed)
			die("sealing failed");
	}
	sodium_free(copies);
}

/* ------------------------------------------------------------------ send */

struct session {
	struct nt_noise_static st;
	struct nt_handshake hs;
	struct nt_keypairs kps;
	struct nt_cookie_maker maker;
};

/* One handshake on the connected socket sk. Returns the attempts it took. */
static unsigned handshake(int sk, struct session *s, unsigned max_attempts)
{
	uint8_t msg[NT_INIT_LEN], in[256];
	uint32_t index;
	bool resend_now = false;

	randombytes_buf(&index, sizeof(index));
	for (unsigned attempt = 1; attempt <= max_attempts; attempt++) {
		if (!resend_now) {
			if (nt_noise_create_initiation(msg, &s->hs, &s->st, index, wall_now_ns(), &rng) != NT_OK)
				die("cannot create an initiation (bad keys?)");
		}
		resend_now = false;
		if (nt_cookie_add_macs(&s->maker, msg, sizeof(msg), mono_ns()))
			die("add_macs failed");
		if (send(sk, msg, sizeof(msg), 0) < 0)
			die("send initiation: %s", strerror(errno));
		uint64_t deadline = mono_ns() + NT_NSEC_PER_SEC;
		for (uint64_t now = mono_ns(); now < deadline && !resend_now; now = mono_ns()) {
			struct pollfd pfd = { .fd = sk, .events = POLLIN };
			int r = poll(&pfd, 1, (int)((deadline - now) / 1000000) + 1);
			if (r < 0 && errno != EINTR)
				die("poll: %s", strerror(errno));
			if (r <= 0)
				continue;
			ssize_t n = recv(sk, in, sizeof(in), MSG_DONTWAIT);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR || errno == ECONNREFUSED)
					continue;
				die("recv: %s", strerror(errno));
			}
			enum nt_message_type t = nt_message_type(in, (size_t)n);
			if (t == NT_MSG_RESPONSE && n == NT_RESP_LEN && nt_noise_response_receiver(in) == index) {
				struct nt_keypair_drops drops;
				if (nt_noise_consume_response(&s->hs, in, (size_t)n, &s->st) != NT_OK)
					continue;
				if (nt_noise_begin_session(&s->hs, &s->kps, mono_ns(), &drops) != NT_OK)
					die("cannot derive the transport keys");
				return attempt;
			}
			if (t == NT_MSG_COOKIE && n == NT_COOKIE_MSG_LEN &&
			    nt_load_le32(in + NT_COOKIE_OFF_RECEIVER) == index &&
			    nt_cookie_consume_reply(&s->maker, in, (size_t)n, mono_ns()) == 0)
				resend_now = true; /* the same initiation again, now with mac2 */
		}
	}
	die("no handshake response after %u attempts", max_attempts);
}

static int cmd_send(int argc, char **argv)
{
	const char *keyfile = NULL, *peer = NULL, *to = NULL, *src = NULL, *dst = NULL, *shmpath = NULL;
	uint64_t bytes = 1536ULL << 20, window = 4ULL << 20, gso = 0, size = 1392, mtu = 1420;
	double seconds = 0, stall_ms = 25;
	unsigned poll_us = 200;
	long cpu = -1;
	struct sockaddr_in to_sa, dst_sa;
	struct flow f = { 0 };

	for (int i = 0; i < argc; i++) {
		if (i + 1 >= argc)
			die("option %s needs a value", argv[i]);
		const char *o = argv[i], *v = argv[++i];
		if (!strcmp(o, "--key"))
			keyfile = v;
		else if (!strcmp(o, "--peer"))
			peer = v;
		else if (!strcmp(o, "--to"))
			to = v;
		else if (!strcmp(o, "--src"))
			src = v;
		else if (!strcmp(o, "--dst"))
			dst = v;
		else if (!strcmp(o, "--shm"))
			shmpath = v;
		else if (!strcmp(o, "--size"))
			size = parse_u64(v, "size");
		else if (!strcmp(o, "--mtu"))
			mtu = parse_u64(v, "mtu");
		else if (!strcmp(o, "--bytes"))
			bytes = parse_u64(v, "bytes");
		else if (!strcmp(o, "--mib"))
			bytes = parse_u64(v, "MiB") << 20;
		else if (!strcmp(o, "--window"))
			window = parse_u64(v, "window");
		else if (!strcmp(o, "--gso"))
			gso = parse_u64(v, "gso");
		else if (!strcmp(o, "--seconds"))
			seconds = parse_double(v, "seconds");
		else if (!strcmp(o, "--stall"))
			stall_ms = parse_double(v, "stall ms");
		else if (!strcmp(o, "--poll-us"))
			poll_us = (unsigned)parse_u64(v, "poll us");
		else if (!strcmp(o, "--cpu"))
			cpu = (long)parse_u64(v, "cpu");
		else
			die("unknown option %s", o);
	}
	if (!keyfile || !peer || !to || !src || !dst || !shmpath)
		die("usage: sealblast send --key FILE --peer PUB --to IP:PORT --src IP --dst IP:PORT --shm FILE "
		    "[--size 1392] [--mtu 1420] [--bytes N | --mib N] [--window BYTES] [--gso K] [--seconds S] "
		    "[--stall MS] [--poll-us US] [--cpu N]");
	parse_ipport(&to_sa, to);
	parse_ipport(&dst_sa, dst);
	if (inet_pton(AF_INET, src, &f.src) != 1)
		die("bad inner source %s", src);
	f.dst = dst_sa.sin_addr.s_addr;
	f.sport = INNER_SPORT;
	f.dport = ntohs(dst_sa.sin_port);
	f.payload = size;
	if (size < 8 || inner_len(&f) > mtu || mtu > 9000 || poll_us > 100000)
		die("--size must be 8..MTU-28 bytes (MTU at most 9000)");

	/* The session's secrets in sodium memory. */
	struct session *s = sodium_malloc(sizeof(*s));
	uint8_t *priv = sodium_malloc(NT_KEY_LEN), rpub[NT_KEY_LEN];
	if (!s || !priv)
		die("out of memory");
	memset(s, 0, sizeof(*s));
	read_key_file(priv, keyfile);
	if (nt_key_from_base64(rpub, peer))
		die("bad peer public key %s", peer);
	nt_noise_static_init(&s->st, priv);
	sodium_free(priv);
	nt_handshake_init(&s->hs, &s->st, rpub, NULL);
	nt_keypairs_init(&s->kps);
	nt_cookie_maker_init(&s->maker, rpub);

	size_t msglen = nt_keypair_sealed_len(inner_len(&f), mtu);
	if (!gso)
		gso = UDP_SEND_MAX / msglen;
	if (gso < 1 || gso > 64 || gso * msglen > UDP_SEND_MAX)
		die("--gso: 1..64 messages and at most %d bytes per send (%zu-byte messages: at most %zu)",
		    UDP_SEND_MAX, msglen, (size_t)(UDP_SEND_MAX / msglen));
	uint64_t n = bytes / msglen;
	uint64_t window_msgs = window / msglen;
	if (n < 10 || window_msgs < gso)
		die("--bytes too small for 10 messages or --window below one send");

	struct shared *shm = shm_map(shmpath, false);

	int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), sz = 8 << 20;
	if (sk < 0)
		die("socket: %s", strerror(errno));
	if (setsockopt(sk, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) < 0 &&
	    setsockopt(sk, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)) < 0)
		die("SO_SNDBUF: %s", strerror(errno));
	if (connect(sk, (struct sockaddr *)&to_sa, sizeof(to_sa)) < 0)
		die("connect: %s", strerror(errno));

	uint64_t t_hs = mono_ns();
	unsigned attempts = handshake(sk, s, 20);
	double hs_ms = (double)(mono_ns() - t_hs) / 1e6;
	struct nt_keypair *kp = nt_keypairs_current(&s->kps);
	if (!kp)
		die("no current keypair after the handshake");

	/* Off the clock: every message sealed before the first is sent. */
	uint8_t *buf = mmap(NULL, n * msglen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		die("mmap %" PRIu64 " bytes: %s", n * msglen, strerror(errno));
	uint64_t t_seal = mono_ns();
	seal_all(kp, buf, n, msglen, mtu, &f);
	double seal_s = (double)(mono_ns() - t_seal) / 1e9;
	/* The keys are no longer needed: only sealed bytes are sent from here on. */
	nt_keypairs_clear(&s->kps, NULL);
	nt_handshake_destroy(&s->hs);
	nt_noise_static_clear(&s->st);
	nt_cookie_maker_wipe(&s->maker);
	sodium_free(s);

	pin_to(cpu); /* after the sealing, which uses every core */
	int g = (int)msglen; /* the segment size: one message */
	if (setsockopt(sk, IPPROTO_UDP, UDP_SEGMENT, &g, sizeof(g)) < 0)
		die("UDP_SEGMENT: %s", strerror(errno));

	/* The run. */
	struct mmsghdr msgs[SEND_BATCH];
	struct iovec iov[SEND_BATCH];
	uint64_t next = 0, written_off = 0, stalls = 0, sendcalls = 0, enobufs = 0, waits = 0;
	uint64_t last_frontier = 0, resolved = 0, last_progress, t0, now, end_by, base;
	/* The window adapts below --window as TCP's does (AIMD): halved when the sink's count
	 * shows a new gap (at most once per window's worth of messages), grown by WINDOW_STEP
	 * messages per window's worth delivered without one. A receiver with a small socket
	 * buffer (Debian's wireguard-go keeps the 208 KiB default, about 80 messages once the
	 * kernel has split our super-datagrams for it) would otherwise drop most of a fixed
	 * window. Below one full send, sends carry what the window allows. */
	uint64_t cwnd = window_msgs, gaps_seen = 0, recover_until = 0, grow_from = 0, cuts = 0, cwnd_min = window_msgs;
	double cwnd_sum = 0;
	uint64_t cwnd_samples = 0;
	double cpu0 = cpu_seconds();
	bool timed_out = false;

	fprintf(stderr, "sealblast send: %" PRIu64 " messages of %zu bytes sealed in %.2f s; sending\n", n, msglen,
		seal_s);
	fflush(stderr);
	base = __atomic_load_n(&shm->delivered, __ATOMIC_ACQUIRE); /* 0 for a fresh sink */
	t0 = last_progress = mono_ns();
	end_by = seconds > 0 ? t0 + (uint64_t)(seconds * 1e9) : UINT64_MAX;
	while (next < n) {
		now = mono_ns();
		if (now >= end_by) {
			timed_out = true;
			break;
		}
		/* Seen by the sink: everything up to the highest sequence number it counted (what
		 * is missing below it was lost on the way: one flow keeps its order), or up to
		 * where the last stall wrote the rest off. */
		uint64_t frontier = __atomic_load_n(&shm->frontier, __ATOMIC_ACQUIRE);
		/* Read after the frontier (the sink stores it before the count): never newer than
		 * the count, so the gaps below are never overestimated. */
		uint64_t counted = __atomic_load_n(&shm->delivered, __ATOMIC_ACQUIRE) - base;
		uint64_t gaps = frontier > counted ? frontier - counted : 0;
		if (frontier != last_frontier) {
			last_frontier = frontier;
			last_progress = now;
		}
		if (gaps > gaps_seen) {
			gaps_seen = gaps;
			if (frontier >= recover_until) {
				cwnd = cwnd / 2 > WINDOW_MIN ? cwnd / 2 : WINDOW_MIN;
				cuts++;
				recover_until = next;
				grow_from = frontier;
			}
		} else if (frontier >= grow_from + cwnd && cwnd < window_msgs) {
			cwnd = cwnd + WINDOW_STEP < window_msgs ? cwnd + WINDOW_STEP : window_msgs;
			grow_from = frontier;
		}
		if (cwnd < cwnd_min)
			cwnd_min = cwnd;
		uint64_t seen = frontier > resolved ? frontier : resolved;
		uint64_t inflight = next > seen ? next - seen : 0;
		uint64_t want = cwnd < gso ? cwnd : gso; /* the smallest send worth making */
		if (inflight + want > cwnd) {
			if ((double)(now - last_progress) > stall_ms * 1e6) {
				/* Nothing arrived for a while with messages outstanding: lost. */
				written_off += inflight;
				resolved = next;
				stalls++;
				cwnd = cwnd / 2 > WINDOW_MIN ? cwnd / 2 : WINDOW_MIN;
				cuts++;
				recover_until = next;
				grow_from = frontier;
				last_progress = now;
				continue;
			}
			waits++;
			sleep_us(poll_us);
			continue;
		}
		uint64_t room = cwnd - inflight, k = 0;
		cwnd_sum += (double)cwnd;
		cwnd_samples++;
		for (uint64_t first = next; k < SEND_BATCH && first < n && room; k++) {
			uint64_t cnt = n - first < gso ? n - first : gso;
			if (cnt > room)
				cnt = room;
			iov[k] = (struct iovec){ .iov_base = buf + first * msglen, .iov_len = cnt * msglen };
			msgs[k] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[k], .msg_iovlen = 1 } };
			first += cnt;
			room -= cnt;
		}
		int r = sendmmsg(sk, msgs, (unsigned)k, 0);
		sendcalls++;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOBUFS || errno == EAGAIN || errno == ECONNREFUSED) {
				enobufs++;
				sleep_us(poll_us);
				continue;
			}
			die("sendmmsg of %" PRIu64 " (first %zu bytes) at message %" PRIu64 ": %s", k, iov[0].iov_len, next,
			    strerror(errno));
		}
		for (int i = 0; i < r; i++)
			next += iov[i].iov_len / msglen;
		__atomic_store_n(&shm->sent, next, __ATOMIC_RELEASE);
	}
	uint64_t t_last_send = mono_ns();
	double cpu_send = cpu_seconds() - cpu0;
	/* The tail: until the last message sent is counted or nothing moves for 5x the stall time. */
	last_progress = mono_ns();
	for (uint64_t last_delivered = UINT64_MAX;;) {
		uint64_t delivered = __atomic_load_n(&shm->delivered, __ATOMIC_ACQUIRE) - base;
		now = mono_ns();
		if (delivered >= next || __atomic_load_n(&shm->frontier, __ATOMIC_ACQUIRE) >= next)
			break;
		if (delivered != last_delivered) {
			last_delivered = delivered;
			last_progress = now;
		} else if ((double)(now - last_progress) > 5 * stall_ms * 1e6) {
			break;
		}
		sleep_us(poll_us);
	}
	uint64_t t_end = mono_ns();
	double cpu_all = cpu_seconds() - cpu0;
	uint64_t delivered = __atomic_load_n(&shm->delivered, __ATOMIC_ACQUIRE) - base;
	__atomic_store_n(&shm->done, 1, __ATOMIC_RELEASE);
	double send_s = (double)(t_last_send - t0) / 1e9, run_s = (double)(t_end - t0) / 1e9;

	printf("{\"tool\": \"sealblast send\", \"handshake_attempts\": %u, \"handshake_ms\": %.1f, "
	       "\"message_bytes\": %zu, \"inner_packet_bytes\": %zu, \"payload_bytes\": %" PRIu64 ", \"gso\": %" PRIu64
	       ", \"window_bytes\": %" PRIu64 ", \"sealed\": %" PRIu64 ", \"seal_seconds\": %.3f, "
	       "\"sent\": %" PRIu64 ", \"delivered\": %" PRIu64 ", \"lost\": %" PRIu64 ", \"stalls\": %" PRIu64
	       ", \"written_off\": %" PRIu64 ", \"timed_out\": %s, \"sendmmsg_calls\": %" PRIu64
	       ", \"send_errors\": %" PRIu64 ", \"window_waits\": %" PRIu64 ", "
	       "\"send_seconds\": %.3f, \"run_seconds\": %.3f, \"offered_kpps\": %.1f, "
	       "\"cpu_seconds\": %.3f, \"cpu_seconds_sending\": %.3f, \"cpu_pct\": %.1f, "
	       "\"window_cuts\": %" PRIu64 ", \"window_min_msgs\": %" PRIu64 ", \"window_mean_msgs\": %.0f}\n",
	       attempts, hs_ms, msglen, inner_len(&f), size, gso, window, n, seal_s, next, delivered,
	       next > delivered ? next - delivered : 0, stalls, written_off, timed_out ? "true" : "false", sendcalls,
	       enobufs, waits, send_s, run_s, send_s > 0 ? (double)next / send_s / 1e3 : 0.0, cpu_all, cpu_send,
	       run_s > 0 ? 100.0 * cpu_all / run_s : 0.0, cuts, cwnd_min,
	       cwnd_samples ? cwnd_sum / (double)cwnd_samples : 0.0);
	munmap(buf, n * msglen);
	close(sk);
	return 0;
}

/* ------------------------------------------------------------------ sink */

struct sample {
	uint64_t t, count;
};

static int cmd_sink(int argc, char **argv)
{
	const char *bind_to = NULL, *shmpath = NULL;
	double timeout = 120;
	bool verify = false;
	long pin_cpu = -1;
	struct sockaddr_in sa;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--verify")) {
			verify = true;
			continue;
		}
		if (i + 1 >= argc)
			die("option %s needs a value", argv[i]);
		const char *o = argv[i], *v = argv[++i];
		if (!strcmp(o, "--bind"))
			bind_to = v;
		else if (!strcmp(o, "--shm"))
			shmpath = v;
		else if (!strcmp(o, "--timeout"))
			timeout = parse_double(v, "timeout");
		else if (!strcmp(o, "--cpu"))
			pin_cpu = (long)parse_u64(v, "cpu");
		else
			die("unknown option %s", o);
	}
	if (!bind_to || !shmpath)
		die("usage: sealblast sink --bind IP:PORT --shm FILE [--timeout S] [--verify] [--cpu N]");
	pin_to(pin_cpu);
	parse_ipport(&sa, bind_to);

	int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), one = 1, sz = 32 << 20;
	if (sk < 0)
		die("socket: %s", strerror(errno));
	if (setsockopt(sk, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0 &&
	    setsockopt(sk, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)) < 0)
		die("SO_RCVBUF: %s", strerror(errno));
	if (setsockopt(sk, IPPROTO_UDP, UDP_GRO, &one, sizeof(one)) < 0)
		die("UDP_GRO: %s", strerror(errno));
	if (setsockopt(sk, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one)) < 0)
		die("SO_RXQ_OVFL: %s", strerror(errno));
	if (bind(sk, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("bind %s: %s", bind_to, strerror(errno));

	struct shared *shm = shm_map(shmpath, true);
	uint8_t *bufs = malloc((size_t)RECV_BATCH * RECV_BUF);
	struct sample *samples = malloc(SAMPLES_MAX * sizeof(*samples));
	struct mmsghdr msgs[RECV_BATCH];
	struct iovec iov[RECV_BATCH];
	union {
		char buf[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(uint32_t))];
		struct cmsghdr align;
	} cmsg[RECV_BATCH];
	if (!bufs || !samples)
		die("out of memory");

	fprintf(stderr, "sealblast sink: listening on %s\n", bind_to);
	fflush(stderr);

	uint64_t count = 0, bytes = 0, datagrams = 0, calls = 0, stride = 1, nsamples = 0;
	uint64_t frontier = 0, next_seq = 0, out_of_order = 0, gap = 0, bad = 0, first_t = 0, last_t = 0, size = 0;
	uint32_t drops = 0;
	uint64_t start = mono_ns(), deadline = start + (uint64_t)(timeout * 1e9);
	double cpu_first = 0;
	bool done_seen = false;

	for (;;) {
		uint64_t now = mono_ns();
		if (now >= deadline)
			break;
		if (__atomic_load_n(&shm->done, __ATOMIC_ACQUIRE)) {
			if (done_seen)
				break;
			done_seen = true; /* one more pass to take what is queued */
		}
		struct pollfd pfd = { .fd = sk, .events = POLLIN };
		int pr = poll(&pfd, 1, done_seen ? 0 : 20);
		if (pr < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		if (pr <= 0)
			continue;
		for (;;) {
			for (unsigned k = 0; k < RECV_BATCH; k++) {
				/* Counting only, the sink takes the first bytes of each datagram (its first
				 * sequence number) and MSG_TRUNC gives the whole length: no copy of the rest. */
				iov[k] = (struct iovec){ .iov_base = bufs + (size_t)k * RECV_BUF,
							 .iov_len = verify ? RECV_BUF : PEEK_BYTES };
				msgs[k] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[k], .msg_iovlen = 1,
									 .msg_control = cmsg[k].buf,
									 .msg_controllen = sizeof(cmsg[k].buf) } };
			}
			int m = recvmmsg(sk, msgs, RECV_BATCH, MSG_DONTWAIT | (verify ? 0 : MSG_TRUNC), NULL);
			if (m < 0) {
				if (errno == EAGAIN || errno == EINTR)
					break;
				die("recvmmsg: %s", strerror(errno));
			}
			calls++;
			for (int k = 0; k < m; k++) {
				size_t len = msgs[k].msg_len, seg = len;
				for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[k].msg_hdr); c;
				     c = CMSG_NXTHDR(&msgs[k].msg_hdr, c)) {
					if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO &&
					    c->cmsg_len >= CMSG_LEN(sizeof(int))) {
						int gs;
						memcpy(&gs, CMSG_DATA(c), sizeof(gs));
						if (gs > 0)
							seg = (size_t)gs;
					} else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL &&
						   c->cmsg_len >= CMSG_LEN(sizeof(uint32_t))) {
						memcpy(&drops, CMSG_DATA(c), sizeof(drops));
					}
				}
				if (!seg)
					continue;
				uint64_t segs = (len + seg - 1) / seg;
				size_t last = (size_t)(segs - 1) * seg;
				uint64_t q = UINT64_MAX;
				if (verify && len - last >= 8) /* the last segment's sequence number */
					q = nt_load_le64(bufs + (size_t)k * RECV_BUF + last);
				else if (!verify && len >= 8) /* the first one's: GRO merged consecutive ones */
					q = nt_load_le64(bufs + (size_t)k * RECV_BUF) + segs - 1;
				if (q != UINT64_MAX && q + 1 > frontier)
					frontier = q + 1;
				count += segs;
				bytes += len;
				datagrams++;
				if (!size)
					size = seg;
				if (verify) {
					for (size_t off = 0; off < len; off += seg) {
						uint64_t q;
						if (len - off < 8) {
							bad++;
							continue;
						}
						q = nt_load_le64(bufs + (size_t)k * RECV_BUF + off);
						if (q < next_seq)
							out_of_order++;
						else
							gap += q - next_seq, next_seq = q + 1;
					}
				}
			}
			if (m > 0) {
				now = mono_ns();
				if (!first_t) {
					first_t = now;
					cpu_first = cpu_seconds();
				}
				last_t = now;
				__atomic_store_n(&shm->delivered_bytes, bytes, __ATOMIC_RELAXED);
				__atomic_store_n(&shm->frontier, frontier, __ATOMIC_RELEASE);
				__atomic_store_n(&shm->delivered, count, __ATOMIC_RELEASE);
				if (calls % stride == 0) {
					if (nsamples == SAMPLES_MAX) {
						/* Keep every other sample and halve the sampling rate. */
						for (uint64_t i = 0; i < SAMPLES_MAX / 2; i++)
							samples[i] = samples[2 * i];
						nsamples = SAMPLES_MAX / 2;
						stride *= 2;
					}
					samples[nsamples++] = (struct sample){ now, count };
				}
			}
			if (m < RECV_BATCH)
				break;
		}
	}
	double cpu = first_t ? cpu_seconds() - cpu_first : 0;
	if (first_t && (nsamples == 0 || samples[nsamples - 1].count != count)) {
		/* The last batch, when the sampling stride skipped it. */
		if (nsamples == SAMPLES_MAX)
			nsamples--;
		samples[nsamples++] = (struct sample){ last_t, count };
	}

	/* The steady state: from 10% to 90% of the final count. */
	double kpps = 0, all_kpps = 0, span = 0;
	uint64_t c10 = count / 10, c90 = count - count / 10;
	const struct sample *s10 = NULL, *s90 = NULL;
	for (uint64_t i = 0; i < nsamples; i++) {
		if (!s10 && samples[i].count >= c10)
			s10 = &samples[i];
		if (!s90 && samples[i].count >= c90)
			s90 = &samples[i];
	}
	if (s10 && s90 && s90->t > s10->t) {
		span = (double)(s90->t - s10->t) / 1e9;
		kpps = (double)(s90->count - s10->count) / span / 1e3;
	}
	if (last_t > first_t)
		all_kpps = (double)count / ((double)(last_t - first_t) / 1e9) / 1e3;
	double wall = last_t > first_t ? (double)(last_t - first_t) / 1e9 : 0;
	printf("{\"tool\": \"sealblast sink\", \"delivered\": %" PRIu64 ", \"bytes\": %" PRIu64
	       ", \"datagrams\": %" PRIu64 ", \"segment_bytes\": %" PRIu64 ", \"recvmmsg_calls\": %" PRIu64 ", "
	       "\"steady_kpps\": %.1f, \"steady_gbps\": %.3f, \"steady_seconds\": %.3f, \"all_kpps\": %.1f, "
	       "\"seconds\": %.3f, \"sink_drops\": %" PRIu32 ", \"verified\": %s, \"out_of_order\": %" PRIu64
	       ", \"gaps\": %" PRIu64 ", \"short\": %" PRIu64 ", \"cpu_seconds\": %.3f, \"cpu_pct\": %.1f, "
	       "\"done_seen\": %s}\n",
	       count, bytes, datagrams, size, calls, kpps, kpps * 1e3 * (double)size * 8 / 1e9, span, all_kpps, wall,
	       drops, verify ? "true" : "false", out_of_order, gap, bad, cpu, wall > 0 ? 100.0 * cpu / wall : 0.0,
	       done_seen ? "true" : "false");
	free(bufs);
	free(samples);
	munmap(shm, SHM_SIZE);
	close(sk);
	return count ? 0 : 1;
}

/* ------------------------------------------------------------------ selftest */

static struct nt_handshake *selftest_peer;

static struct nt_handshake *selftest_lookup(void *ctx, const uint8_t remote_static[NT_KEY_LEN])
{
	(void)ctx;
	return nt_equal(remote_static, selftest_peer->remote_static, NT_KEY_LEN) ? selftest_peer : NULL;
}

static int cmd_selftest(void)
{
	struct {
		struct nt_noise_static ist, rst;
		struct nt_handshake ihs, rhs, *found;
		struct nt_keypairs ikps, rkps;
		uint8_t ipriv[NT_KEY_LEN], rpriv[NT_KEY_LEN], ipub[NT_KEY_LEN], rpub[NT_KEY_LEN];
	} *s = sodium_malloc(sizeof(*s));
	uint8_t init[NT_INIT_LEN], resp[NT_RESP_LEN];
	struct nt_keypair_drops drops;
	uint64_t now = 1000 * NT_NSEC_PER_SEC;
	struct flow f = { .sport = INNER_SPORT, .dport = 9, .payload = 1392 };
	const size_t mtu = 1420, n = 200;
	unsigned fails = 0;

	if (!s)
		die("out of memory");
	memset(s, 0, sizeof(*s));
	nt_dh_generate(s->ipriv, s->ipub, &rng);
	nt_dh_generate(s->rpriv, s->rpub, &rng);
	nt_noise_static_init(&s->ist, s->ipriv);
	nt_noise_static_init(&s->rst, s->rpriv);
	nt_handshake_init(&s->ihs, &s->ist, s->rpub, NULL);
	nt_handshake_init(&s->rhs, &s->rst, s->ipub, NULL);
	nt_keypairs_init(&s->ikps);
	nt_keypairs_init(&s->rkps);
	selftest_peer = &s->rhs;
	if (nt_noise_create_initiation(init, &s->ihs, &s->ist, 7, wall_now_ns(), &rng) != NT_OK ||
	    nt_noise_consume_initiation(&s->found, init, sizeof(init), &s->rst, selftest_lookup, NULL, now) != NT_OK ||
	    nt_noise_create_response(resp, s->found, &s->rst, 9, &rng) != NT_OK ||
	    nt_noise_consume_response(&s->ihs, resp, sizeof(resp), &s->ist) != NT_OK ||
	    nt_noise_begin_session(&s->ihs, &s->ikps, now, &drops) != NT_OK ||
	    nt_noise_begin_session(&s->rhs, &s->rkps, now, &drops) != NT_OK)
		die("selftest: the in-memory handshake failed");
	inet_pton(AF_INET, "10.205.0.1", &f.src);
	inet_pton(AF_INET, "10.205.0.2", &f.dst);

	/* Seal as `send` does (on every core, counters 0..n-1), open as a responder does. */
	size_t msglen = nt_keypair_sealed_len(inner_len(&f), mtu);
	uint8_t *buf = malloc(n * msglen), plain[2048];
	if (!buf)
		die("out of memory");
	seal_all(nt_keypairs_current(&s->ikps), buf, n, msglen, mtu, &f);
	for (size_t i = 0; i < n; i++) {
		const uint8_t *m = buf + i * msglen;
		struct nt_keypair *kp = nt_keypairs_find(&s->rkps, nt_load_le32(m + NT_DATA_OFF_RECEIVER));
		size_t plen;
		int c;

		if (nt_data_counter(m) != i) {
			fprintf(stderr, "selftest: message %zu has counter %" PRIu64 "\n", i, nt_data_counter(m));
			fails++;
			continue;
		}
		if (!kp || nt_keypair_open(kp, plain, &plen, m, msglen, now + 1) != NT_OK) {
			fprintf(stderr, "selftest: message %zu does not open\n", i);
			fails++;
			continue;
		}
		if (i == 0 && !nt_keypairs_confirm(&s->rkps, kp, &drops)) {
			fprintf(stderr, "selftest: counter 0 did not confirm the responder's keypair\n");
			fails++;
		}
		if ((c = check_inner(plain, plen, &f, i)) != 0) {
			fprintf(stderr, "selftest: message %zu: inner packet wrong (%d)\n", i, c);
			fails++;
		}
	}
	/* And the check can fail: one flipped payload bit breaks the UDP checksum. */
	build_inner(plain, &f, 5);
	plain[100] ^= 1;
	if (check_inner(plain, inner_len(&f), &f, 5) != -4) {
		fprintf(stderr, "selftest: a corrupted payload passed the UDP checksum\n");
		fails++;
	}
	nt_keypairs_clear(&s->ikps, NULL);
	nt_keypairs_clear(&s->rkps, NULL);
	nt_handshake_destroy(&s->ihs);
	nt_handshake_destroy(&s->rhs);
	nt_noise_static_clear(&s->ist);
	nt_noise_static_clear(&s->rst);
	sodium_free(s);
	free(buf);
	printf("sealblast selftest: %zu messages of %zu bytes sealed on %u threads, opened, inner checksums %s\n", n,
	       msglen, nthreads(), fails ? "WRONG" : "ok");
	return fails ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (nt_crypto_init())
		die("crypto init failed");
	if (argc >= 2 && !strcmp(argv[1], "send"))
		return cmd_send(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "sink"))
		return cmd_sink(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "selftest"))
		return cmd_selftest();
	fprintf(stderr, "usage: sealblast send|sink|selftest ... (see the comment at the top of bench/sealblast.c)\n");
	return 2;
}
