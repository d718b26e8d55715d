/* The TUN device: IFF_TUN | IFF_NO_PI, so every read and write is one bare IP packet. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "noisetund.h"

/* Linux 6.2's UDP segmentation offload flags (uapi values), for older headers */
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#define TUN_F_USO6 0x40
#endif

/* With IFF_VNET_HDR and TSO offloads, one read may carry a 64 KiB TCP super-packet and
 * one write may hand up a coalesced one (speed.md 3 and 6); with USO (Linux >= 6.2) the
 * same for UDP: a local UDP_SEGMENT sender's super-datagram comes in whole, and received
 * datagrams of one flow go up as one. Without them (NOISETUN_OFFLOAD=0 or an old kernel)
 * every packet is a plain IP packet; NOISETUN_OFFLOAD=tcp keeps TSO without USO. Which
 * offloads are on is logged once. */
int tun_open(const char *ifname, char out_name[IFNAMSIZ], bool *vnet, bool *uso)
{
	struct ifreq ifr = { .ifr_flags = IFF_TUN | IFF_NO_PI };
	const char *env = getenv("NOISETUN_OFFLOAD");
	const char *what = "none";
	int fd, err;

	if (strlen(ifname) >= IFNAMSIZ)
		return -ENAMETOOLONG;
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	memcpy(ifr.ifr_name, ifname, strlen(ifname) + 1);
	*vnet = !(env && !strcmp(env, "0"));
	*uso = false;
	if (*vnet) {
		ifr.ifr_flags |= IFF_VNET_HDR;
		if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
			ifr.ifr_flags &= (short)~IFF_VNET_HDR;
			*vnet = false;
		} else {
			const unsigned tso = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
			/* an older kernel refuses the unknown flags (EINVAL): then TSO alone */
			*uso = !(env && !strcmp(env, "tcp")) && ioctl(fd, TUNSETOFFLOAD, tso | TUN_F_USO4 | TUN_F_USO6) == 0;
			if (*uso)
				what = "csum tso4 tso6 uso4 uso6";
			else if (ioctl(fd, TUNSETOFFLOAD, tso) == 0)
				what = "csum tso4 tso6";
			else /* IFF_VNET_HDR is set for good; without offloads its header is all zeros */
				log_verbose("TUN offloads unavailable: %s", strerror(errno));
		}
	}
	if (!(ifr.ifr_flags & IFF_VNET_HDR) && ioctl(fd, TUNSETIFF, &ifr) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	memcpy(out_name, ifr.ifr_name, IFNAMSIZ);
	out_name[IFNAMSIZ - 1] = 0;
	log_verbose("TUN offloads: %s", what);
	return fd;
}

int tun_set_mtu(const char *ifname, unsigned mtu)
{
	struct ifreq ifr = { .ifr_mtu = (int)mtu };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), err = 0;

	if (fd < 0)
		return -errno;
	strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
	if (ioctl(fd, SIOCSIFMTU, &ifr) < 0)
		err = -errno;
	close(fd);
	return err;
}
