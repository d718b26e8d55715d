#!/bin/bash
# Full tunnels in config mode (noisetund -c FILE IFACE, AllowedIPs 0.0.0.0/0, ::/0): the
# policy rules of two tunnels in one namespace, what a crash leaves, and wg-quick's
# nftables guard.
#
#   ns L (a LAN host)     ns A                                  ns B (the peer of IF1)
#   192.0.2.3             IF1 10.0.0.1/24 fd00::1/64  (51820)   IFB 10.0.0.2 fd00::2
#        |                IF2 10.1.0.1/24 fd01::1/64  (51821)   lo 198.51.100.1
#        |                eth0 192.0.2.1                        eth0 192.0.2.2
#   -----+--------------------------+---------------- bridge ----------+------------
#
#   ns W: the stock wg-quick with wireguard-go on the same config as IF1, to compare the
#   nftables tables (wg-quick-IFW there, noisetun-IF1 here).
#
# (a) issue 21 #5: each rule is deleted by what it is (priority, table, fwmark, suppress,
#     protocol), so taking one tunnel down leaves the other's rules exactly.
# (b) issue 15 #5: kill -9 of monitor and worker leaves rules and the nft table behind; the
#     next start of the same interface removes them before it adds its own.
# (c) issue 21 #2: a LAN host that routes the tunnel's address to A is dropped (wg-quick's
#     preraw rule), while the tunnel itself carries traffic.
set -eu
. "$(dirname "$0")/lib.sh"
nt_init fulltun
need_impl noisetund
command -v nft >/dev/null || skip "nft is not installed"
NTD=$BUILD/noisetund

NSA=$(ns_name a) NSB=$(ns_name b) NSL=$(ns_name l) NSW=$(ns_name w)
IF1=$(if_name 1) IF2=$(if_name 2) IFB=$(if_name b) IFW=$(if_name w)
ns_create "$NSA"
ns_create "$NSB"
ns_create "$NSL"
ns_create "$NSW"
lan_create "$NSA" "$NSB" "$NSL"
ip netns exec "$NSA" nft list tables >/dev/null 2>&1 || skip "nftables is not usable here"
for k in a b c d; do key_new $k; done

start_wg noisetund "$NSB" "$IFB"
wgn "$NSB" set "$IFB" private-key "$(key_file b)" listen-port 51821 \
	peer "$(key_pub a)" allowed-ips 10.0.0.1/32,fd00::1/128
tun_up "$NSB" "$IFB" 10.0.0.2/24 fd00::2/64
ip -n "$NSB" addr add 198.51.100.1/32 dev lo

# write_conf FILE KEY ADDRESSES PEER_PUB ENDPOINT
write_conf() {
	(umask 077; cat >"$1" <<EOF
[Interface]
PrivateKey = $(cat "$(key_file "$2")")
Address = $3

[Peer]
PublicKey = $4
Endpoint = $5
AllowedIPs = 0.0.0.0/0, ::/0
EOF
	)
}
CONF1=$NT_TMP/$IF1.conf CONF2=$NT_TMP/$IF2.conf
write_conf "$CONF1" a "10.0.0.1/24, fd00::1/64" "$(key_pub b)" 192.0.2.2:51821
write_conf "$CONF2" c "10.1.0.1/24, fd01::1/64" "$(key_pub d)" 192.0.2.2:51999

# up IFACE CONF: noisetund -c CONF IFACE in A; its pid in $NT_TMP/IFACE.pid.
up() {
	local ifc=$1 pid
	[[ " ${NT_IFACES[*]} " == *" $ifc "* ]] || NT_IFACES+=("$ifc")
	echo "---- noisetund -c $2" >>"$NT_TMP/$ifc.log"
	LOG_LEVEL=verbose ip netns exec "$NSA" "$NTD" -c "$2" "$ifc" >>"$NT_TMP/$ifc.log" 2>&1 </dev/null ||
		fail "noisetund -c $2 $ifc failed"
	pid=$(_find_daemon "$ifc" "$NTD") || fail "no daemon for $ifc"
	NT_PIDS+=("$pid")
	echo "$pid" >"$NT_TMP/$ifc.pid"
}

gone() { ! { [ -r "/proc/$1/stat" ] && ! sed 's/.*) //' "/proc/$1/stat" | grep -q '^Z'; }; }

# down IFACE: SIGTERM, wait for the daemon and its socket to go.
down() {
	local pid
	pid=$(daemon_pid "$1")
	kill -TERM "$pid"
	wait_for 5 "the daemon of $1 (pid $pid) to exit" gone "$pid"
	wait_for 2 "$NT_SOCK_DIR/$1.sock to go" test ! -e "$NT_SOCK_DIR/$1.sock"
}

# rules FAMILY: `ip rule show`, one space between fields.
rules() { ip -n "$NSA" "$1" rule show | tr -s '\t' ' '; }
BASE4=$(rules -4) BASE6=$(rules -6)

# expect_rules WHEN FAMILY RULE...: the rules are exactly the baseline plus RULE...
# ("PRIO: SELECTORS proto 78"). With NT_MARKER=0 the protocol is not compared (the figure
# for code from before the marker: which rules are left, not how they are marked).
NT_MARKER=${NT_MARKER:-1}
strip() { if [ "$NT_MARKER" = 1 ]; then cat; else sed 's/ proto 78$//'; fi; }
expect_rules() {
	local when=$1 fam=$2 base want have
	shift 2
	[ "$fam" = -4 ] && base=$BASE4 || base=$BASE6
	want=$({ echo "$base"; for r in "$@"; do echo "$r"; done; } | sort -t: -k1,1n | strip)
	have=$(rules "$fam" | strip)
	[ "$have" = "$want" ] && return 0
	diff <(echo "$want") <(echo "$have") | sed 's/^/    /'
	fail "$when: the $fam rules are not the expected ones (< expected, > found)"
}
mark() { echo "$1: not from all fwmark $(printf '0x%x' "$2") lookup $2 proto 78"; }
supp() { echo "$1: from all lookup main suppress_prefixlength 0 proto 78"; }

# The whole policy-routing state of A: rules, routes of all tables, nftables (a new TUN
# device has a new random link-local address, which the guard lists).
snapshot() {
	{
		rules -4
		rules -6
		ip -n "$NSA" -4 route show table all
		ip -n "$NSA" -6 route show table all | grep -v '^ff00::/8\|^fe80::/64\|^local fe80::' || true
		ip netns exec "$NSA" nft list ruleset | sed 's/fe80::[0-9a-f:]*/fe80::IID/'
	} 2>&1
}
wait_for 5 "DAD to finish in $NSA" sh -c "! ip -n $NSA -6 addr show | grep -q tentative"
BEFORE=$(snapshot)

# NT_FULLTUN_PARTS picks parts (each starts and ends with the namespace as it was).
PARTS=${NT_FULLTUN_PARTS:-a c b}
part() { [[ " $PARTS " == *" $1 "* ]]; }

# ---- (a) two full tunnels: each down removes exactly its own rules
if part a; then

# Test that the first full tunnel takes table 51820 and the rules go where wg-quick's go.
up "$IF1" "$CONF1"
expect_rules "$IF1 up" -4 "$(mark 32765 51820)" "$(supp 32764)"
expect_rules "$IF1 up" -6 "$(mark 32765 51820)" "$(supp 32764)"
# Test that the second takes table 51821 and its rules go in front.
up "$IF2" "$CONF2"
[ "$(wgn "$NSA" show "$IF2" fwmark)" = 0xca6d ] || fail "$IF2: fwmark $(wgn "$NSA" show "$IF2" fwmark), expected 0xca6d"
for f in -4 -6; do
	expect_rules "$IF2 up" $f "$(mark 32765 51820)" "$(supp 32764)" "$(mark 32763 51821)" "$(supp 32762)"
done
TWO=$(snapshot)
# Test that taking the first down leaves the second's two rules, at their priorities.
down "$IF1"
for f in -4 -6; do
	expect_rules "$IF1 down ($IF2 still up)" $f "$(mark 32763 51821)" "$(supp 32762)"
done
ip -n "$NSA" route show table 51821 | grep -q "^default dev $IF2" || fail "$IF2 lost its default route"
down "$IF2"
diff <(echo "$BEFORE") <(snapshot) || fail "the namespace differs after both tunnels went down"
# The other order: the second down first.
up "$IF1" "$CONF1"
up "$IF2" "$CONF2"
down "$IF2"
for f in -4 -6; do expect_rules "$IF2 down ($IF1 still up)" $f "$(mark 32765 51820)" "$(supp 32764)"; done
down "$IF1"
diff <(echo "$BEFORE") <(snapshot) || fail "the namespace differs after both tunnels went down"
log "two full tunnels: each down removed exactly its own rules"
fi

# ---- (c) the nftables guard: a LAN host cannot reach the tunnel's address
if part c; then
up "$IF1" "$CONF1"

# Test that the tunnel works with the guard in place: to the peer, through it to what only
# the default route reaches, and from the peer in.
ping_ok "$NSA" 10.0.0.2
ping_ok "$NSA" 198.51.100.1
ping_ok "$NSA" fd00::2
ping_ok "$NSB" 10.0.0.1
ping_ok "$NSB" fd00::1
# Test that L, routing the tunnel's addresses to A's outer address, gets no answer, while
# A's outer address answers it.
ip -n "$NSL" route add 10.0.0.0/24 via 192.0.2.1
ip -n "$NSL" -6 route add fd00::/64 via 2001:db8::1
ping_ok "$NSL" 192.0.2.1
for dst in 10.0.0.1 fd00::1; do
	out=$(ip netns exec "$NSL" ping -n -q -c 5 -i 0.2 -W 1 "$dst" 2>&1 || true)
	recv=$(echo "$out" | sed -n 's/.* \([0-9]*\) received.*/\1/p')
	log "LAN host -> $dst: $(echo "$out" | grep -E 'packets transmitted')"
	[ "${recv:-x}" = 0 ] || fail "a LAN host reached the tunnel address $dst of $IF1: ${recv:-?} of 5 answered"
done
for t in "ip noisetun-$IF1" "ip6 noisetun-$IF1"; do
	ip netns exec "$NSA" nft list table $t >/dev/null 2>&1 || fail "no nftables table $t"
done
log "guard: the tunnel works, a LAN host is dropped"

# Test that the tables have the shape of stock wg-quick's for the same config (wireguard-go
# in W): the same chains, hooks, priorities and rules, the names aside.
if command -v wg-quick >/dev/null && command -v wireguard-go >/dev/null; then
	CONFW=$NT_TMP/$IFW.conf
	write_conf "$CONFW" a "10.0.0.1/24, fd00::1/64" "$(key_pub b)" 192.0.2.2:51821
	NT_IFACES+=("$IFW")
	WQ=$(command -v wg-quick)
	if ip -n "$NSW" link add "$IFW" type wireguard 2>/dev/null; then
		# Kernel WireGuard would win; make wg-quick take the userspace path as wg-quick.sh does.
		ip -n "$NSW" link del "$IFW"
		mkdir "$NT_TMP/bin"
		sed 's|\[\[ -e /sys/module/wireguard \]\] \|\| ||' "$WQ" >"$NT_TMP/bin/wg-quick"
		printf '#!/bin/sh\n[ "$1 $2 $4 $5" = "link add type wireguard" ] && exit 2\nexec %s "$@"\n' \
			"$(command -v ip)" >"$NT_TMP/bin/ip"
		chmod 755 "$NT_TMP/bin/wg-quick" "$NT_TMP/bin/ip"
		WQ=$NT_TMP/bin/wg-quick
	fi
	timeout 30 ip netns exec "$NSW" env WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go "$WQ" up "$CONFW" \
		>>"$NT_TMP/$IFW.log" 2>&1 </dev/null || fail "wg-quick up (wireguard-go) failed"
	# Both TUN devices have a link-local address (a random one) and both get a rule for it.
	for fam in ip ip6; do
		ours=$(ip netns exec "$NSA" nft list table $fam "noisetun-$IF1" | sed 's/fe80::[0-9a-f:]*/fe80::IID/')
		theirs=$(ip netns exec "$NSW" nft list table $fam "wg-quick-$IFW" |
			sed "s/wg-quick-$IFW/noisetun-$IF1/; s/\"$IFW\"/\"$IF1\"/; s/fe80::[0-9a-f:]*/fe80::IID/")
		diff <(echo "$theirs") <(echo "$ours") || fail "table $fam: not the shape wg-quick gives (< wg-quick, > ours)"
	done
	timeout 30 ip netns exec "$NSW" "$WQ" down "$CONFW" >>"$NT_TMP/$IFW.log" 2>&1 </dev/null || fail "wg-quick down failed"
	log "nftables tables: the same as wg-quick's (wireguard-go) for the same config"
else
	log "wg-quick or wireguard-go missing: the comparison with wg-quick's tables is skipped"
fi
# Test that a reload (SIGHUP) with one more address puts it under the guard too.
sed -i 's|^Address = .*|Address = 10.0.0.1/24, 10.0.0.9/24, fd00::1/64|' "$CONF1"
kill -HUP "$(daemon_pid "$IF1")"
wait_for 5 "10.0.0.9 under the guard after the reload" \
	sh -c "ip netns exec $NSA nft list table ip noisetun-$IF1 | grep -q 'ip daddr 10.0.0.9 '"
[ "$(ip netns exec "$NSA" nft list table ip "noisetun-$IF1" | grep -c 'fib saddr type != local drop')" = 2 ] ||
	fail "after the reload the guard lacks an address: $(ip netns exec "$NSA" nft list table ip "noisetun-$IF1")"
log "reload: the guard follows the addresses"
down "$IF1"
write_conf "$CONF1" a "10.0.0.1/24, fd00::1/64" "$(key_pub b)" 192.0.2.2:51821
diff <(echo "$BEFORE") <(snapshot) || fail "the namespace differs after $IF1 went down"
fi

# ---- (b) kill -9: the next start of the same interface cleans up after the dead one
if part b; then

# Test with IF2 live (table 51820 now) and IF1 (51821) killed with SIGKILL, monitor and
# worker at once.
up "$IF2" "$CONF2"
ONE=$(snapshot)
up "$IF1" "$CONF1"
for f in -4 -6; do
	expect_rules "$IF2 then $IF1 up" $f "$(mark 32765 51820)" "$(supp 32764)" "$(mark 32763 51821)" "$(supp 32762)"
done
CRASH_BEFORE=$(snapshot)
mon=$(daemon_pid "$IF1") wrk=$(daemon_worker_pid "$IF1")
[ "$mon" != "$wrk" ] || warn "$IF1 did not split into monitor and worker"
kill -KILL "$wrk" "$mon"
wait_for 5 "the killed daemon of $IF1 to be gone" sh -c "! ip -n $NSA link show $IF1 >/dev/null 2>&1"
wait_for 5 "pids $mon $wrk to go" sh -c "! [ -d /proc/$mon ] || grep -q '^State:.*Z' /proc/$mon/status"
log "after kill -9: $(rules -4 | grep -c 'lookup 51821' || true) IPv4 and $(rules -6 | grep -c 'lookup 51821' || true)" \
	"IPv6 fwmark rules of $IF1 and $(ip netns exec "$NSA" nft list tables | grep -c "noisetun-$IF1" || true)" \
	"nftables tables left (the kernel keeps them)"
rules -4 | grep -q 'lookup 51821' || fail "no rule left after kill -9: this part would prove nothing"
# Test that the restart removes what the dead instance left before adding its own.
up "$IF1" "$CONF1"
n4=$(rules -4 | grep -c 'lookup 51821' || true)
n6=$(rules -6 | grep -c 'lookup 51821' || true)
log "after the restart: $n4 IPv4 and $n6 IPv6 fwmark rules for table 51821 (want 1 each)"
for f in -4 -6; do
	expect_rules "restart of $IF1 after kill -9" $f "$(mark 32765 51820)" "$(supp 32764)" "$(mark 32763 51821)" "$(supp 32762)"
done
diff <(echo "$CRASH_BEFORE") <(snapshot) || fail "the state after kill -9 and restart differs from the one before"
ping_ok "$NSA" 10.0.0.2
# Test that a stop then leaves IF2's state exactly.
down "$IF1"
diff <(echo "$ONE") <(snapshot) || fail "after the stop of the restarted $IF1, the state differs from $IF2's alone"
down "$IF2"
diff <(echo "$BEFORE") <(snapshot) || fail "the namespace differs after all went down"
log "kill -9, restart, stop: rules, routes and nftables as before"
fi
log "pass"
