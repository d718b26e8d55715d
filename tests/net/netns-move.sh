#!/bin/bash
# The interface moved into another network namespace, as operators do with kernel
# WireGuard and wireguard-go: created in A (where its UDP socket stays), moved into a
# container's namespace B with `ip link set IFACE netns B`, configured and used there.
#
#   ns B (container)          ns A (UDP side)                   ns P (peer)
#   +----------------+        +---------------------------+     +--------------------+
#   | IFA 10.9.0.1   |<-TUN-->| noisetund IFA             |     | noisetund IFP      |
#   +----------------+        | eth0 192.0.2.1            |-----| eth0 192.0.2.2     |
#                             +---------------------------+     | IFP 10.9.0.2       |
#                                                               +--------------------+
# The move is no deletion: the daemon keeps running and serving, follows the link's
# up/down state in B, and traffic flows from B. Deleting the link in B still stops it,
# with the reason logged.
set -eu
. "$(dirname "$0")/lib.sh"
nt_init netnsmv
need_impl noisetund

NSA=$(ns_name a) NSB=$(ns_name b) NSP=$(ns_name p)
IFA=$(if_name a) IFP=$(if_name p)
ns_create "$NSA"
ns_create "$NSB"
ns_create "$NSP"
link_pair "$NSA" 1 "$NSP" 2
key_new a
key_new p

start_wg noisetund "$NSA" "$IFA"
start_wg noisetund "$NSP" "$IFP"
wgn "$NSA" set "$IFA" private-key "$(key_file a)" listen-port 51820 \
	peer "$(key_pub p)" allowed-ips 10.9.0.2/32,fd09::2/128 endpoint 192.0.2.2:51821
wgn "$NSP" set "$IFP" private-key "$(key_file p)" listen-port 51821 \
	peer "$(key_pub a)" allowed-ips 10.9.0.1/32,fd09::1/128 endpoint 192.0.2.1:51820
tun_up "$NSP" "$IFP" 10.9.0.2/24 fd09::2/64
DPID=$(daemon_pid "$IFA")

# Test that the move keeps the daemon: alive, serving, its peers intact.
ip -n "$NSA" link set "$IFA" netns "$NSB"
ip -n "$NSB" link show "$IFA" >/dev/null || fail "$IFA did not arrive in $NSB"
sleep 0.5
daemon_alive "$IFA" || fail "the daemon of $IFA died when its link moved to $NSB: $(tail -n 3 "$NT_TMP/$IFA.log")"
[ "$(wgn "$NSB" show "$IFA" peers)" = "$(key_pub p)" ] || fail "peers lost in the move"
grep -q "interface moved" "$NT_TMP/$IFA.log" || fail "the move was not logged"
log "moved $IFA from $NSA to $NSB: daemon pid $DPID alive; '$(grep -m1 'interface moved' "$NT_TMP/$IFA.log")'"

# Test that the tunnel works from B: addresses and link up there, ping the peer.
tun_up "$NSB" "$IFA" 10.9.0.1/24 fd09::1/64
ping_ok "$NSB" 10.9.0.2 3
ping_ok "$NSB" fd09::2 3
ping_ok "$NSP" 10.9.0.1 3
assert_handshake "$NSB" "$IFA"

# Test that the link's state in B is followed: down stops the peers (the kernel's
# semantics: sessions cleared), up brings the tunnel back.
ip -n "$NSB" link set "$IFA" down
wait_for 5 "the daemon to see $IFA down in $NSB" grep -q "interface is down" "$NT_TMP/$IFA.log"
ip -n "$NSB" link set "$IFA" up
wait_for 5 "the daemon to see $IFA up again" sh -c "grep -c 'interface is up' '$NT_TMP/$IFA.log' | grep -qv '^[01]$'"
ping_ok "$NSB" 10.9.0.2 3
daemon_alive "$IFA" || fail "the daemon died"
log "down/up in $NSB followed; traffic again"

# Test that deleting the link in B stops the daemon, saying why.
ip -n "$NSB" link del "$IFA"
wait_for 5 "the daemon to exit after ip link del in $NSB" sh -c "! kill -0 $DPID 2>/dev/null || grep -q '^State:.*Z' /proc/$DPID/status"
grep -q "$IFA: interface deleted.*exiting" "$NT_TMP/$IFA.log" || fail "no exit reason logged: $(tail -n 3 "$NT_TMP/$IFA.log")"
wait_for 5 "the socket of $IFA to go" test ! -e "$NT_SOCK_DIR/$IFA.sock"
log "ip link del in $NSB: the daemon exited, '$(grep -m1 'interface deleted' "$NT_TMP/$IFA.log")'"

log "pass"
