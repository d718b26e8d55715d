#!/bin/bash
# noisetund -c FILE (config mode) does wg-quick's up and down itself: what up adds
# (addresses, MTU, routes, policy rules, DNS, hooks) is there, and down removes exactly it.
#
#   ns A                                              ns B (only a route target)
#   +------------------------------------------+     +------------------------+
#   | noisetund -c FILE ntud<id>a              |     |                        |
#   |   10.0.0.1/24 fd00::1/64, MTU 1400 - 80  |     |                        |
#   | eth0 192.0.2.1 2001:db8::1   (MTU 1400)  |-----| eth0 192.0.2.2         |
#   +------------------------------------------+     +------------------------+
#
# No peer answers: these tests look at the host state with `ip`, before and after. The
# snapshot of A's rules, routes (all tables) and addresses after down must equal the one
# taken before up. A stand-in resolvconf in PATH records DNS calls (never the host's).
set -eu
. "$(dirname "$0")/lib.sh"
nt_init updown
need_impl noisetund
NTD=$BUILD/noisetund

NSA=$(ns_name a) NSB=$(ns_name b)
IFA=$(if_name a)
ns_create "$NSA"
ns_create "$NSB"
link_pair "$NSA" 1 "$NSB" 2
ip -n "$NSA" link set eth0 mtu 1400
key_new a
key_new b
key_new c

mkdir "$NT_TMP/bin"
cat >"$NT_TMP/bin/resolvconf" <<EOF
#!/bin/sh
{ echo "resolvconf \$*"; [ "\$1" = -a ] && sed 's/^/  /'; } >>"$NT_TMP/resolvconf.log"
EOF
chmod 755 "$NT_TMP/bin/resolvconf"
export PATH="$NT_TMP/bin:$PATH"

# start_conf CONF: noisetund -c CONF IFA in A, daemonizing as usual; sets DPID.
start_conf() {
	[[ " ${NT_IFACES[*]} " == *" $IFA "* ]] || NT_IFACES+=("$IFA")
	echo "---- noisetund -c $1" >>"$NT_TMP/$IFA.log"
	LOG_LEVEL=verbose ip netns exec "$NSA" "$NTD" -c "$1" "$IFA" >>"$NT_TMP/$IFA.log" 2>&1 </dev/null ||
		fail "noisetund -c $1 $IFA failed"
	DPID=$(_find_daemon "$IFA" "$NTD") || fail "no daemon for $IFA"
	NT_PIDS+=("$DPID")
	echo "$DPID" >"$NT_TMP/$IFA.pid"
}

# stop_conf [how]: SIGTERM (default) or `ip link delete`; wait for the daemon to exit.
stop_conf() {
	if [ "${1:-term}" = linkdel ]; then
		ip -n "$NSA" link delete dev "$IFA"
	else
		kill -TERM "$DPID"
	fi
	wait_for 5 "the daemon (pid $DPID) to exit" sh -c "! { [ -r /proc/$DPID/stat ] && ! sed 's/.*) //' /proc/$DPID/stat | grep -q '^Z'; }"
	wait_for 2 "$NT_SOCK_DIR/$IFA.sock to go" test ! -e "$NT_SOCK_DIR/$IFA.sock"
}

snapshot() {
	{
		ip -n "$NSA" -4 rule show
		ip -n "$NSA" -6 rule show
		ip -n "$NSA" -4 route show table all
		ip -n "$NSA" -6 route show table all
		ip -n "$NSA" -o address show | awk '{ print $2, $3, $4 }'
		ip netns exec "$NSA" cat /proc/sys/net/ipv4/conf/all/src_valid_mark
	} 2>&1
}

# write_conf FILE ALLOWED_IPS [EXTRA INTERFACE LINES...]
write_conf() {
	local file=$1 aips=$2
	shift 2
	{
		echo "[Interface]"
		echo "PrivateKey = $(cat "$(key_file a)")"
		echo "ListenPort = 51820"
		echo "Address = 10.0.0.1/24, fd00::1/64"
		local l
		for l in "$@"; do echo "$l"; done
		echo
		echo "[Peer]"
		echo "PublicKey = $(key_pub b)"
		echo "Endpoint = 192.0.2.2:51820"
		echo "AllowedIPs = $aips"
		echo
		echo "[Peer]"
		echo "PublicKey = $(key_pub c)"
		echo "AllowedIPs = 10.77.0.0/16"
	} >"$file"
	chmod 600 "$file"
}

route_has() { ip -n "$NSA" "$@" 2>/dev/null | grep -q .; }

# Link-local addresses finish DAD first, so that the snapshots compare like with like.
wait_for 5 "DAD to finish in $NSA" sh -c "! ip -n $NSA -6 addr show | grep -q tentative"
BEFORE=$(snapshot)
# The src_valid_mark line will read 1 after the first full tunnel (wg-quick never resets
# it either), so the comparisons after that one use a snapshot taken after it.

# Test that a bad config is refused with FILE:LINE: reason, exit 78 (EX_CONFIG: final, the
# unit's RestartPreventExitStatus=), and nothing created (not even PreUp ran).
CONF=$NT_TMP/bad.conf
write_conf "$CONF" "10.0.0.2/32, 10.0.0.300/32" "PreUp = touch $NT_TMP/preup-ran"
line=$(grep -n '10.0.0.300' "$CONF" | cut -d: -f1)
rc=0
out=$(ip netns exec "$NSA" "$NTD" -c "$CONF" "$IFA" 2>&1 </dev/null) || rc=$?
log "bad config: rc=$rc: $out"
[ "$rc" -eq 78 ] || fail "bad config: exit $rc, expected 78"
[[ $out == "$CONF:$line: "* ]] || fail "bad config: message does not start with $CONF:$line: ($out)"
[ ! -e "$NT_TMP/preup-ran" ] || fail "bad config: PreUp ran"
! ip -n "$NSA" link show "$IFA" >/dev/null 2>&1 || fail "bad config: $IFA was created"
[ ! -e "$NT_SOCK_DIR/$IFA.sock" ] || fail "bad config: a control socket was created"
[ "$(snapshot)" = "$BEFORE" ] || fail "bad config changed the namespace"

# Test that split-tunnel up applies the wg settings, addresses, MTU (route MTU 1400 - 80),
# link up, a route per allowed IP not already covered, and runs the hooks with %i.
CONF=$NT_TMP/split.conf
write_conf "$CONF" "10.0.0.2/32, 10.50.0.0/16, fd50::/48" \
	"PreUp = echo pre-up %i >>$NT_TMP/hooks" "PostUp = echo post-up %i >>$NT_TMP/hooks" \
	"PreDown = echo pre-down %i >>$NT_TMP/hooks" "PostDown = echo post-down %i >>$NT_TMP/hooks"
start_conf "$CONF"
# The launcher returned: everything must be in place already.
ip -n "$NSA" -o addr show dev "$IFA" | grep -q ' 10.0.0.1/24 ' || fail "no 10.0.0.1/24"
ip -n "$NSA" -o addr show dev "$IFA" | grep -q ' fd00::1/64 ' || fail "no fd00::1/64"
ip -n "$NSA" link show "$IFA" | grep -q 'mtu 1320 ' || fail "MTU is not 1400 - 80: $(ip -n "$NSA" link show "$IFA" | head -n 1)"
ip -n "$NSA" link show "$IFA" | grep -q '[<,]UP[,>]' || fail "$IFA is not up"
route_has -4 route show 10.50.0.0/16 dev "$IFA" || fail "no route 10.50.0.0/16"
route_has -4 route show 10.77.0.0/16 dev "$IFA" || fail "no route 10.77.0.0/16 (second peer)"
route_has -6 route show fd50::/48 dev "$IFA" || fail "no route fd50::/48"
! route_has -4 route show 10.0.0.2/32 || fail "10.0.0.2/32 got a route although 10.0.0.0/24 covers it"
[ "$(wgn "$NSA" show "$IFA" listen-port)" = 51820 ] || fail "listen port not applied"
[ "$(wgn "$NSA" show "$IFA" fwmark)" = off ] || fail "fwmark set without a /0"
[ "$(wgn "$NSA" show "$IFA" peers | wc -l)" = 2 ] || fail "peers: $(wgn "$NSA" show "$IFA" peers)"
[ "$(endpoint_of "$NSA" "$IFA" "$(key_pub b)")" = 192.0.2.2:51820 ] || fail "endpoint not applied"
[ "$(ip -n "$NSA" -4 rule show | wc -l)" = 3 ] || fail "rules added without a /0: $(ip -n "$NSA" -4 rule show)"
[ "$(cat "$NT_TMP/hooks")" = "$(printf 'pre-up %s\npost-up %s' "$IFA" "$IFA")" ] || fail "hooks: $(cat "$NT_TMP/hooks")"
log "split tunnel up: addresses, MTU 1320, routes, hooks as expected"

# Test that down (SIGTERM) runs PreDown/PostDown and leaves the namespace as it was.
stop_conf
[ "$(cat "$NT_TMP/hooks")" = "$(printf 'pre-up %s\npost-up %s\npre-down %s\npost-down %s' "$IFA" "$IFA" "$IFA" "$IFA")" ] ||
	fail "hooks after down: $(cat "$NT_TMP/hooks")"
diff <(echo "$BEFORE") <(snapshot) || fail "the namespace differs after down"
log "split tunnel down: hooks ran in order, nothing left"

# Test that a full tunnel on both families sets fwmark 51820, a default route in table
# 51820 and the two rules per family, and src_valid_mark.
CONF=$NT_TMP/full.conf
write_conf "$CONF" "0.0.0.0/0, ::/0"
start_conf "$CONF"
[ "$(wgn "$NSA" show "$IFA" fwmark)" = 0xca6c ] || fail "fwmark is $(wgn "$NSA" show "$IFA" fwmark), expected 0xca6c"
for v in -4 -6; do
	ip -n "$NSA" $v rule show | grep -q 'not from all fwmark 0xca6c lookup 51820' || fail "no $v fwmark rule"
	ip -n "$NSA" $v rule show | grep -q 'from all lookup main suppress_prefixlength 0' || fail "no $v suppress rule"
	ip -n "$NSA" $v route show table 51820 | grep -q "^default dev $IFA" || fail "no $v default route in table 51820"
done
[ "$(ip netns exec "$NSA" cat /proc/sys/net/ipv4/conf/all/src_valid_mark)" = 1 ] || fail "src_valid_mark not set"
route_has -4 route show 10.77.0.0/16 dev "$IFA" || fail "no route for the second peer next to the full tunnel"
ip -n "$NSA" -4 route show table main | grep -q '^default' && fail "a default route went into table main"
log "full tunnel up: fwmark, rules and table 51820 on both families"
BEFORE=$(echo "$BEFORE" | sed '$ s/^0$/1/')

# Test that down removes the rules and routes again (by SIGTERM).
stop_conf
diff <(echo "$BEFORE") <(snapshot) || fail "the namespace differs after full-tunnel down"

# Test that deleting the link (how wg-quick down stops a daemon) also removes the rules.
start_conf "$CONF"
ip -n "$NSA" -6 rule show | grep -q 'lookup 51820' || fail "no rule after the second up"
stop_conf linkdel
diff <(echo "$BEFORE") <(snapshot) || fail "the namespace differs after ip link delete"
log "full tunnel down (SIGTERM and link delete): nothing left"

# Test that a full tunnel picks the next free table when 51820 is taken, as wg-quick does.
ip -n "$NSA" route add 203.0.113.0/24 dev eth0 table 51820
TAKEN=$(snapshot)
start_conf "$CONF"
[ "$(wgn "$NSA" show "$IFA" fwmark)" = 0xca6d ] || fail "fwmark is $(wgn "$NSA" show "$IFA" fwmark), expected 0xca6d (51821)"
ip -n "$NSA" -4 rule show | grep -q 'not from all fwmark 0xca6d lookup 51821' || fail "no rule for table 51821"
stop_conf
diff <(echo "$TAKEN") <(snapshot) || fail "the namespace differs after down with table 51821"
ip -n "$NSA" route del 203.0.113.0/24 dev eth0 table 51820

# Test that Table=1234 puts every route (the /0 too) in table 1234 with no rules, and
# Table=off adds none; a configured MTU wins over the guess.
CONF=$NT_TMP/table.conf
write_conf "$CONF" "0.0.0.0/0, 10.50.0.0/16" "Table = 1234" "MTU = 1280"
start_conf "$CONF"
ip -n "$NSA" route show table 1234 | grep -q "^default dev $IFA" || fail "no default route in table 1234"
ip -n "$NSA" route show table 1234 | grep -q "^10.50.0.0/16 dev $IFA" || fail "no 10.50.0.0/16 in table 1234"
! route_has -4 route show 10.50.0.0/16 table main || fail "a route went to table main with Table = 1234"
[ "$(ip -n "$NSA" -4 rule show | wc -l)" = 3 ] || fail "rules with Table = 1234"
[ "$(wgn "$NSA" show "$IFA" fwmark)" = off ] || fail "fwmark set with Table = 1234"
ip -n "$NSA" link show "$IFA" | grep -q 'mtu 1280 ' || fail "configured MTU not applied"
stop_conf
diff <(echo "$BEFORE") <(snapshot) || fail "the namespace differs after Table = 1234 down"
write_conf "$CONF" "0.0.0.0/0, 10.50.0.0/16" "Table = off"
start_conf "$CONF"
! route_has -4 route show dev "$IFA" proto 78 || fail "routes added with Table = off"
! route_has -4 route show table all 10.50.0.0/16 || fail "routes added with Table = off"
stop_conf
log "Table = 1234 and Table = off as wg-quick"

# Test that DNS goes through resolvconf -a IFACE -m 0 -x (nameservers and search domains)
# and is removed with resolvconf -d IFACE -f.
CONF=$NT_TMP/dns.conf
write_conf "$CONF" "10.50.0.0/16" "DNS = 10.0.0.53, fd00::53, example.com, corp.example"
start_conf "$CONF"
expected="resolvconf -a $IFA -m 0 -x
  nameserver 10.0.0.53
  nameserver fd00::53
  search example.com corp.example"
[ "$(cat "$NT_TMP/resolvconf.log")" = "$expected" ] || fail "resolvconf up: $(cat "$NT_TMP/resolvconf.log")"
stop_conf
[ "$(tail -n 1 "$NT_TMP/resolvconf.log")" = "resolvconf -d $IFA -f" ] || fail "resolvconf down: $(cat "$NT_TMP/resolvconf.log")"
log "DNS set and removed through resolvconf"

# Test that SaveConfig writes the running config back on down (a peer added at run time
# is kept, as are the wg-quick keys), and that the file brings the same state up again.
CONF=$NT_TMP/save.conf
write_conf "$CONF" "10.50.0.0/16" "SaveConfig = true" "PostUp = true %i"
start_conf "$CONF"
key_new d
wgn "$NSA" set "$IFA" peer "$(key_pub d)" allowed-ips 10.66.0.0/24 persistent-keepalive 7
wanted=$(wgn "$NSA" showconf "$IFA")
stop_conf
for want in "Address = 10.0.0.1/24" "Address = fd00::1/64" "SaveConfig = true" "PostUp = true %i" \
	"PublicKey = $(key_pub d)" "AllowedIPs = 10.66.0.0/24" "PersistentKeepalive = 7" "ListenPort = 51820"; do
	grep -qxF "$want" "$CONF" || { cat "$CONF"; fail "saved config lacks '$want'"; }
done
[ "$(stat -c %a "$CONF")" = 600 ] || fail "saved config mode $(stat -c %a "$CONF")"
[ ! -e "$CONF.tmp" ] || fail "$CONF.tmp left behind"
start_conf "$CONF"
[ "$(wgn "$NSA" showconf "$IFA")" = "$wanted" ] || fail "the saved config does not bring the same state back"
route_has -4 route show 10.66.0.0/24 dev "$IFA" || fail "no route for the saved peer"
stop_conf
log "SaveConfig round trip"

# Test that a failing PostUp stops the start and undoes it all, as wg-quick's `set -e`.
CONF=$NT_TMP/postup.conf
write_conf "$CONF" "0.0.0.0/0, ::/0" "PostUp = exit 3"
rc=0
out=$(ip netns exec "$NSA" "$NTD" -c "$CONF" "$IFA" 2>&1 </dev/null) || rc=$?
log "failing PostUp: rc=$rc: $out"
[ "$rc" -eq 1 ] || fail "a failing PostUp exited $rc"
wait_for 5 "$IFA to be gone after a failing PostUp" sh -c "! ip -n $NSA link show $IFA"
diff <(echo "$BEFORE") <(snapshot) || fail "a failing PostUp left state behind"
log "pass"
