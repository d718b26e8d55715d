/* TCP MSS clamping: see noisetun/mss.h. Written from RFC 791 (IPv4 header), RFC 8200
 * (IPv6 header), RFC 9293 section 3.1-3.2 (TCP header and options: EOL = 0, NOP = 1,
 * otherwise kind, length >= 2, data; MSS = kind 2, length 4) and RFC 1624 (incremental
 * checksum update, equation 3: HC' = ~(~HC + ~m + m')). */
#include "noisetun/mss.h"

#define PROTO_TCP   6
#define TCP_SYN     0x02
#define OPT_EOL     0
#define OPT_NOP     1
#define OPT_MSS     2
#define OPT_MSS_LEN 4

static unsigned load16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static void store16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

unsigned nt_mss_limit(unsigned mtu, int ip_version)
{
	unsigned headers = ip_version == 6 ? 60 : 40;

	if (mtu <= headers)
		return 0;
	return mtu - headers > 0xffff ? 0xffff : mtu - headers;
}

/* The 16-bit big-endian field at tcp + off changes from old to new; tcp + 16 holds the
 * checksum. Words are summed at even offsets from the TCP header's start (the pseudo
 * header is a whole number of words), so a field at an odd offset adds its bytes
 * swapped; the one's complement sum of the difference is the same either way. */
static void checksum_update(uint8_t *tcp, size_t off, unsigned old, unsigned new)
{
	uint32_t sum;

	if (off & 1) {
		old = ((old & 0xff) << 8) | (old >> 8);
		new = ((new & 0xff) << 8) | (new >> 8);
	}
	sum = (~load16(tcp + 16) & 0xffff) + (~old & 0xffff) + new;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	store16(tcp + 16, ~sum & 0xffff);
}

/* The options of a SYN's TCP header (tcp[20, hdr_len)); every MSS option above limit is
 * lowered. Parsing stops at EOL or at the first option that does not fit. */
static int clamp_options(uint8_t *tcp, size_t hdr_len, unsigned limit)
{
	size_t i = 20;
	int changed = 0;

	while (i < hdr_len) {
		uint8_t kind = tcp[i];
		size_t opt_len;

		if (kind == OPT_EOL)
			break;
		if (kind == OPT_NOP) {
			i++;
			continue;
		}
		if (hdr_len - i < 2)
			break;
		opt_len = tcp[i + 1];
		if (opt_len < 2 || opt_len > hdr_len - i)
			break;
		if (kind == OPT_MSS && opt_len == OPT_MSS_LEN) {
			unsigned mss = load16(tcp + i + 2);

			if (mss > limit) {
				store16(tcp + i + 2, limit);
				checksum_update(tcp, i + 2, mss, limit);
				changed = 1;
			}
		}
		i += opt_len;
	}
	return changed;
}

int nt_mss_clamp(uint8_t *pkt, size_t len, unsigned mtu)
{
	size_t l3, end, hdr_len;
	unsigned limit;
	uint8_t *tcp;

	if (!mtu || len < 1)
		return 0;
	switch (pkt[0] >> 4) {
	case 4:
		if (len < 20)
			return 0;
		l3 = (size_t)(pkt[0] & 0x0f) * 4;
		end = load16(pkt + 2);
		/* MF set or an offset: a fragment, first or not; a fragmented SYN is left as is */
		if (l3 < 20 || end < l3 || end > len || pkt[9] != PROTO_TCP || (load16(pkt + 6) & 0x3fff))
			return 0;
		limit = nt_mss_limit(mtu, 4);
		break;
	case 6:
		if (len < 40)
			return 0;
		l3 = 40;
		end = 40 + (size_t)load16(pkt + 4);
		/* next header TCP directly; a jumbogram (payload length 0) or any extension
		 * header (a fragment header among them) is left alone */
		if (end == 40 || end > len || pkt[6] != PROTO_TCP)
			return 0;
		limit = nt_mss_limit(mtu, 6);
		break;
	default:
		return 0;
	}
	if (end - l3 < 20 || !limit)
		return 0;
	tcp = pkt + l3;
	if (!(tcp[13] & TCP_SYN))
		return 0;
	hdr_len = (size_t)(tcp[12] >> 4) * 4;
	if (hdr_len <= 20 || hdr_len > end - l3)
		return 0;
	return clamp_options(tcp, hdr_len, limit);
}
