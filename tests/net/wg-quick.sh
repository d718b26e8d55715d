#!/bin/bash
# The stock wg-quick drives IMPL_A as its userspace implementation: up, traffic, down.
#
#   ns A (wg-quick)                              ns B (started by the harness)
#   +-----------------------------+   veth   +-----------------------------+
#   | IMPL_A ntwq<id>a  (wg-quick)|          | IMPL_B ntwq<id>b            |
#   |   10.0.0.1/24 fd00::1/64    |          |   10.0.0.2/24 fd00::2/64    |
#   |                             |          |   lo 198.51.100.1 (phase 2) |
#   | eth0 192.0.2.1       :51820 |----------| eth0 192.0.2.2       :51821 |
#   +-----------------------------+          +-----------------------------+
#
# Phase 1: AllowedIPs of the peer only. Phase 2: AllowedIPs 0.0.0.0/0, ::/0, which makes
# wg-quick set fwmark 51820 and policy routing: the daemon's own UDP must carry the mark
# or it would loop into its own tunnel.
#
# How wg-quick picks the userspace daemon: it first runs `ip link add IFACE type
# wireguard`; only when that fails and /sys/module/wireguard does not exist does it run
# "$WG_QUICK_USERSPACE_IMPLEMENTATION IFACE". With the kernel module present it would use
# the kernel, silently. So when `ip link add type wireguard` works here (or
# NT_WGQUICK_SHIM=1), the test runs a copy of wg-quick from a temp dir, patched to skip
# the /sys/module test, next to an `ip` wrapper that fails exactly that command (wg-quick
# puts its own directory first in PATH). Otherwise it runs /usr/bin/wg-quick untouched.
# The config has no DNS line (no resolvconf).
set -eu
# shellcheck source=tests/net/lib.sh
. "$(dirname "$0")/lib.sh"
nt_init wgquick
command -v wg-quick >/dev/null || skip "wg-quick is not installed"
need_impl "$NT_IMPL_A"
need_impl "$NT_IMPL_B"

NSA=$(ns_name a) NSB=$(ns_name b)
IFA=$(if_name a) IFB=$(if_name b)
ns_create "$NSA"
ns_create "$NSB"
link_pair "$NSA" 1 "$NSB" 2
IMPL_BIN=$(impl_bin "$NT_IMPL_A")

WG_QUICK=$(command -v wg-quick)
if ip -n "$NSA" link add "$IFA" type wireguard 2>/dev/null || [ "${NT_WGQUICK_SHIM:-0}" = 1 ]; then
	ip -n "$NSA" link del "$IFA" 2>/dev/null || true
	mkdir "$NT_TMP/bin"
	sed 's|\[\[ -e /sys/module/wireguard \]\] \|\| ||' "$WG_QUICK" >"$NT_TMP/bin/wg-quick"
	grep -q '/sys/module/wireguard' "$NT_TMP/bin/wg-quick" && fail "could not patch wg-quick"
	chmod 755 "$NT_TMP/bin/wg-quick"
	real_ip=$(command -v ip)
	cat >"$NT_TMP/bin/ip" <<EOF
#!/bin/sh
# Fail only "ip link add IFACE type wireguard", so wg-quick falls back to userspace.
[ "\$1 \$2 \$4 \$5" = "link add type wireguard" ] && { echo "test shim: no kernel wireguard" >&2; exit 2; }
exec $real_ip "\$@"
EOF
	chmod 755 "$NT_TMP/bin/ip"
	WG_QUICK=$NT_TMP/bin/wg-quick
	log "kernel wireguard is usable here (or NT_WGQUICK_SHIM=1): using the patched $WG_QUICK"
else
	log "no kernel wireguard here: wg-quick falls back to userspace by itself"
fi

key_new a
key_new b
start_wg "$NT_IMPL_B" "$NSB" "$IFB"
wgn "$NSB" set "$IFB" private-key "$(key_file b)" listen-port 51821 \
	peer "$(key_pub a)" allowed-ips 10.0.0.1/32,fd00::1/128
tun_up "$NSB" "$IFB" 10.0.0.2/24 fd00::2/64
ip -n "$NSB" addr add 198.51.100.1/32 dev lo

CONF=$NT_TMP/$IFA.conf
# write_conf ALLOWED_IPS
write_conf() {
	(umask 077; cat >"$CONF" <<EOF
[Interface]
PrivateKey = $(cat "$(key_file a)")
ListenPort = 51820
Address = 10.0.0.1/24, fd00::1/64

[Peer]
PublicKey = $(key_pub b)
Endpoint = 192.0.2.2:51821
AllowedIPs = $1
EOF
	)
}

# A /0 allowed IP makes wg-quick load anti-spoofing rules with nft or iptables-restore.
# Those guard the host, not the tunnel: when neither tool is installed, stand-ins that
# accept and log the rules let the full-tunnel phase run (the log says so).
WQ_PATH=$PATH
if ! command -v nft >/dev/null && ! command -v iptables-restore >/dev/null; then
	mkdir "$NT_TMP/stub"
	for t in iptables-restore ip6tables-restore; do
		printf '#!/bin/sh\necho "(stand-in %s: rules not loaded)" >&2\ncat >/dev/null\n' "$t" >"$NT_TMP/stub/$t"
		chmod 755 "$NT_TMP/stub/$t"
	done
	WQ_PATH=$NT_TMP/stub:$PATH
	log "neither nft nor iptables-restore installed: full-tunnel phase uses stand-ins for the firewall rules"
fi

wq() {
	timeout 30 ip netns exec "$NSA" env WG_QUICK_USERSPACE_IMPLEMENTATION="$IMPL_BIN" LOG_LEVEL=verbose PATH="$WQ_PATH" \
		"$WG_QUICK" "$@" >>"$NT_TMP/$IFA.log" 2>&1 </dev/null
}

# quick_up: wg-quick up, register the daemon for cleanup, check the interface it made.
quick_up() {
	[[ " ${NT_IFACES[*]} " == *" $IFA "* ]] || NT_IFACES+=("$IFA")
	echo "---- wg-quick up" >>"$NT_TMP/$IFA.log"
	wq up "$CONF" || fail "wg-quick up failed"
	grep -q "Falling back to slow userspace" "$NT_TMP/$IFA.log" ||
		fail "wg-quick did not take the userspace path"
	# The contract: when the launcher returned (wg-quick went on to wg setconf), the
	# daemon had forked away and its socket existed. wg-quick's own setconf proves it.
	[ -S "$NT_SOCK_DIR/$IFA.sock" ] || fail "no socket after wg-quick up"
	DPID=$(_find_daemon "$IFA" "$IMPL_BIN") || fail "no $NT_IMPL_A process for $IFA after wg-quick up"
	NT_PIDS+=("$DPID")
	echo "$DPID" >"$NT_TMP/$IFA.pid"
	log "wg-quick up: daemon pid $DPID"
	grep '^\[#\]' "$NT_TMP/$IFA.log" | tail -n 12 | sed 's/^/    /'
	ip -n "$NSA" -o addr show dev "$IFA" | grep -q ' 10.0.0.1/24 ' || fail "no 10.0.0.1/24 on $IFA"
	ip -n "$NSA" -o addr show dev "$IFA" | grep -q ' fd00::1/64 ' || fail "no fd00::1/64 on $IFA"
	ip -n "$NSA" link show "$IFA" | grep -q 'mtu 1420' ||
		fail "MTU is not 1500 - 80: $(ip -n "$NSA" link show "$IFA" | head -n 1)"
	[ "$(wgn "$NSA" show "$IFA" listen-port)" = 51820 ] || fail "listen port not applied"
}

# quick_down: wg-quick down, then the daemon must exit and take its socket with it.
quick_down() {
	echo "---- wg-quick down" >>"$NT_TMP/$IFA.log"
	wq down "$CONF" || fail "wg-quick down failed"
	wait_for 5 "the $NT_IMPL_A daemon (pid $DPID) to exit after wg-quick down" \
		sh -c "! { [ -r /proc/$DPID/stat ] && ! sed 's/.*) //' /proc/$DPID/stat | grep -q '^Z'; }"
	wait_for 2 "$NT_SOCK_DIR/$IFA.sock to be removed" test ! -e "$NT_SOCK_DIR/$IFA.sock"
	! ip -n "$NSA" link show "$IFA" >/dev/null 2>&1 || fail "$IFA still exists after wg-quick down"
	log "wg-quick down: daemon gone, socket removed, link gone"
}

# Test that wg-quick up brings up a working tunnel with the peer's allowed IPs only.
write_conf "10.0.0.2/32, fd00::2/128"
quick_up
ping_ok "$NSA" 10.0.0.2
ping_ok "$NSA" fd00::2
ping_ok "$NSB" 10.0.0.1
assert_handshake "$NSA" "$IFA" "$(key_pub b)"

# Test that wg-quick down makes the daemon exit and removes its socket.
quick_down

# Test that a full-tunnel config (AllowedIPs 0.0.0.0/0, ::/0) works: wg-quick sets
# fwmark 51820 and policy routes; the daemon's marked UDP must bypass its own tunnel.
write_conf "0.0.0.0/0, ::/0"
quick_up
[ "$(wgn "$NSA" show "$IFA" fwmark)" = 0xca6c ] || fail "fwmark is '$(wgn "$NSA" show "$IFA" fwmark)', expected 0xca6c"
ip -n "$NSA" rule show | grep -q 'not from all fwmark 0xca6c lookup 51820' || fail "no policy rule"
wgn "$NSB" set "$IFB" peer "$(key_pub a)" allowed-ips 10.0.0.1/32,fd00::1/128
ping_ok "$NSA" 10.0.0.2
ping_ok "$NSA" 198.51.100.1    # reachable only through the tunnel's default route
ping_ok "$NSA" fd00::2
[ "$(endpoint_of "$NSA" "$IFA")" = 192.0.2.2:51821 ] || fail "endpoint changed: $(endpoint_of "$NSA" "$IFA")"

# Test that wg-quick down removes the rules and again stops the daemon.
quick_down
! ip -n "$NSA" rule show | grep -q 51820 || fail "policy rules left after wg-quick down"
daemon_alive "$IFB" || fail "peer $IFB died"
log "pass"
