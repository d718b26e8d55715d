#!/bin/bash
# A road-warrior server with two clients, all three from the example configs
# (configs/rw-server.conf, rw-client1.conf, rw-client-full.conf) run by noisetund -c.
#
#                    LAN switch 192.0.2.0/24 ("the internet")
#          +-------------------+-------------------+
#          |                   |                   |
#   ns srv eth0 .1       ns c1 eth0 .2       ns c2 eth0 .3 (+ default via .254, a dead end)
#   ntrw<id>s            ntrw<id>1           ntrw<id>2
#   10.8.0.1 fd08::1     10.8.0.2 (split)    10.8.0.3 (full tunnel: 0.0.0.0/0, ::/0)
#   lan0 198.51.100.1/24, 2001:db8:100::1/64  (forwarding on)
#          |
#   ns lan eth0 198.51.100.2, 2001:db8:100::2; on lo 203.0.113.1 and 2001:db8:ffff::1,
#          reachable only through the server (its default route); routes 10.8.0.0/24
#          and fd08::/64 via srv
set -eu
. "$(dirname "$0")/lib.sh"
nt_init rwarrior
need_impl noisetund
NTD=$BUILD/noisetund
CONFIGS=$(cd "$(dirname "$0")/../../configs" && pwd)
for f in rw-server rw-client1 rw-client-full; do
	[ -r "$CONFIGS/$f.conf" ] || fail "configs/$f.conf is missing"
	(umask 077; cp "$CONFIGS/$f.conf" "$NT_TMP/$f.conf")
done

# rw-client-full.conf has a DNS line: a stand-in resolvconf keeps it off the host.
mkdir "$NT_TMP/bin"
printf '#!/bin/sh\necho "resolvconf $*" >>%s/resolvconf.log\ncat >/dev/null\n' "$NT_TMP" >"$NT_TMP/bin/resolvconf"
chmod 755 "$NT_TMP/bin/resolvconf"
export PATH="$NT_TMP/bin:$PATH"

SRV=$(ns_name srv) C1=$(ns_name c1) C2=$(ns_name c2) LAN=$(ns_name lan)
IFS_=$(if_name s) IF1=$(if_name 1) IF2=$(if_name 2)
for ns in "$SRV" "$C1" "$C2" "$LAN"; do ns_create "$ns"; done
lan_create "$SRV" "$C1" "$C2"
ip link add "ntl$NT_ID" netns "$SRV" type veth peer name "ntm$NT_ID" netns "$LAN"
ip -n "$SRV" link set "ntl$NT_ID" name lan0
ip -n "$LAN" link set "ntm$NT_ID" name eth0
ip -n "$SRV" addr add 198.51.100.1/24 dev lan0
ip -n "$SRV" addr add 2001:db8:100::1/64 dev lan0 nodad
ip -n "$LAN" addr add 198.51.100.2/24 dev eth0
ip -n "$LAN" addr add 2001:db8:100::2/64 dev eth0 nodad
ip -n "$SRV" link set lan0 up
ip -n "$LAN" link set eth0 up
ip -n "$LAN" addr add 203.0.113.1/32 dev lo
ip -n "$LAN" addr add 2001:db8:ffff::1/128 dev lo
ip -n "$LAN" route add 10.8.0.0/24 via 198.51.100.1
ip -n "$LAN" -6 route add fd08::/64 via 2001:db8:100::1
ip netns exec "$SRV" sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward; echo 1 >/proc/sys/net/ipv6/conf/all/forwarding'
# The lan host is also the server's way out ("upstream").
ip -n "$SRV" route add default via 198.51.100.2
ip -n "$SRV" -6 route add default via 2001:db8:100::2
# c2 is a laptop with a default route of its own: the full tunnel must win over it.
ip -n "$C2" route add default via 192.0.2.254
ip -n "$C2" -6 route add default via 2001:db8::fe

# start_conf NS IFACE CONF
start_conf() {
	NT_IFACES+=("$2")
	LOG_LEVEL=verbose ip netns exec "$1" "$NTD" -c "$3" "$2" >>"$NT_TMP/$2.log" 2>&1 </dev/null ||
		fail "noisetund -c $3 $2 failed: $(tail -n 2 "$NT_TMP/$2.log")"
	local pid
	pid=$(_find_daemon "$2" "$NTD") || fail "no daemon for $2"
	NT_PIDS+=("$pid")
	echo "$pid" >"$NT_TMP/$2.pid"
}

# peer_rx NS IFACE PUB: bytes received from PUB.
peer_rx() {
	wgn "$1" show "$2" transfer | awk -v k="$3" '$1 == k { print $2 }'
}

start_conf "$SRV" "$IFS_" "$NT_TMP/rw-server.conf"
start_conf "$C1" "$IF1" "$NT_TMP/rw-client1.conf"
start_conf "$C2" "$IF2" "$NT_TMP/rw-client-full.conf"
PUB2=$(awk '/^PrivateKey/ { print $3 }' "$NT_TMP/rw-client-full.conf" | wg pubkey)

# Test that without the tunnel's help nothing behind the server is reachable from c1
# except what its split tunnel routes (the internet host is not).
! ip netns exec "$C1" ping -n -q -c 1 -W 1 203.0.113.1 >/dev/null 2>&1 || fail "c1 reaches 203.0.113.1 without a route"

# Test that each client reaches the server's tunnel and LAN addresses.
ping_ok "$C1" 10.8.0.1
ping_ok "$C1" 198.51.100.1
ping_ok "$C1" 198.51.100.2
ping_ok "$C1" fd08::1
ping_ok "$C2" 10.8.0.1
ping_ok "$C2" 198.51.100.1
assert_handshake "$SRV" "$IFS_"
log "both clients reach the server's LAN"

# Test that the full-tunnel client's traffic to anywhere leaves through the server, on
# both families, although its own default route points elsewhere.
ip -n "$C2" rule show | grep -q 'not from all fwmark 0xca6c lookup 51820' || fail "no full-tunnel rule on c2"
rx0=$(peer_rx "$SRV" "$IFS_" "$PUB2")
ping_ok "$C2" 203.0.113.1 5
ping_ok "$C2" 2001:db8:ffff::1 5
rx1=$(peer_rx "$SRV" "$IFS_" "$PUB2")
[ $((rx1 - rx0)) -ge $((10 * 84)) ] || fail "the server received only $((rx1 - rx0)) bytes from c2 for 10 pings"
log "c2's pings to the internet host went through the server ($((rx1 - rx0)) bytes)"
grep -q "resolvconf -a $IF2 -m 0 -x" "$NT_TMP/resolvconf.log" || fail "c2's DNS was not handed to resolvconf"

# Test that once c2's tunnel is down, the same destination is unreachable (its own
# default route is a dead end) and its rules are gone.
kill -TERM "$(cat "$NT_TMP/$IF2.pid")"
wait_for 5 "c2's daemon to exit" sh -c "! ip -n $C2 link show $IF2"
wait_for 5 "c2's rules to go" sh -c "! ip -n $C2 rule show | grep -q 51820"
! ip netns exec "$C2" ping -n -q -c 1 -W 1 203.0.113.1 >/dev/null 2>&1 || fail "c2 reaches 203.0.113.1 without its tunnel"
! ip -n "$C2" -6 rule show | grep -q 51820 || fail "c2's IPv6 rules left behind"
ping_ok "$C1" 198.51.100.2
log "pass"
