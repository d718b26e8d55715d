#!/bin/bash
# SIGHUP (systemctl reload) re-reads the config with syncconf semantics: a peer still in
# the file keeps its live session (same keypair: no new handshake on either side), peers
# gone from the file are removed, new ones added; addresses and routes follow the file.
#
#                      LAN switch 192.0.2.0/24
#        +-----------------+----------+-----------+
#        |                 |          |           |
#   ns srv .1         ns b .2     ns c .3     ns d .4
#   ntrl<id>s         ntrl<id>b   ntrl<id>c   ntrl<id>d     (noisetund -c each)
#   10.7.0.1/24       10.7.0.2    10.7.0.3    10.7.0.4
#
#   server file v1: peers b, c; addresses 10.7.0.1/24, fd07::1/64, 10.7.9.1/24
#   server file v2: peers b (unchanged), d; 10.7.9.1/24 replaced by 10.7.8.1/24
set -eu
. "$(dirname "$0")/lib.sh"
nt_init reload
need_impl noisetund
NTD=$BUILD/noisetund

# A stand-in resolvconf, so that no config here can touch the host's DNS.
mkdir "$NT_TMP/bin"
printf '#!/bin/sh\ncat >/dev/null\n' >"$NT_TMP/bin/resolvconf"
chmod 755 "$NT_TMP/bin/resolvconf"
export PATH="$NT_TMP/bin:$PATH"

declare -A NS IF PID
for r in srv b c d; do
	NS[$r]=$(ns_name "$r")
	IF[$r]=$(if_name "${r:0:1}")
	ns_create "${NS[$r]}"
	key_new "$r"
done
lan_create "${NS[srv]}" "${NS[b]}" "${NS[c]}" "${NS[d]}"

# start_conf ROLE: noisetund -c $NT_TMP/ROLE.conf in the role's namespace.
start_conf() {
	local r=$1
	NT_IFACES+=("${IF[$r]}")
	LOG_LEVEL=verbose ip netns exec "${NS[$r]}" "$NTD" -c "$NT_TMP/$r.conf" "${IF[$r]}" \
		>>"$NT_TMP/${IF[$r]}.log" 2>&1 </dev/null || fail "noisetund -c $r.conf failed"
	PID[$r]=$(_find_daemon "${IF[$r]}" "$NTD") || fail "no daemon for $r"
	NT_PIDS+=("${PID[$r]}")
	echo "${PID[$r]}" >"$NT_TMP/${IF[$r]}.pid"
}

client_conf() {
	local r=$1 n=$2
	cat >"$NT_TMP/$r.conf" <<EOF
[Interface]
PrivateKey = $(cat "$(key_file "$r")")
Address = 10.7.0.$n/24

[Peer]
PublicKey = $(key_pub srv)
Endpoint = 192.0.2.1:51820
AllowedIPs = 10.7.0.0/24
EOF
	chmod 600 "$NT_TMP/$r.conf"
}

# server_conf EXTRA_ADDRESS PEER_BLOCK...: a peer block is "role n [extra lines]".
server_conf() {
	local addr=$1
	shift
	{
		echo "[Interface]"
		echo "PrivateKey = $(cat "$(key_file srv)")"
		echo "ListenPort = 51820"
		echo "Address = 10.7.0.1/24, fd07::1/64, $addr"
		local p r n rest
		for p in "$@"; do
			read -r r n rest <<<"$p"
			echo
			echo "[Peer]"
			echo "PublicKey = $(key_pub "$r")"
			echo "AllowedIPs = 10.7.0.$n/32, 10.7$n.0.0/16"
			[ -z "$rest" ] || echo "$rest"
		done
	} >"$NT_TMP/srv.conf.new"
	chmod 600 "$NT_TMP/srv.conf.new"
	mv "$NT_TMP/srv.conf.new" "$NT_TMP/srv.conf"
}

# handshake_lines ROLE PEER_ROLE: "handshake" log lines of ROLE's daemon about PEER_ROLE.
handshake_lines() {
	local pub
	pub=$(key_pub "$2")
	grep -F "peer ${pub:0:8}" "$NT_TMP/${IF[$1]}.log" | grep -c handshake || true
}

peers_are() {
	[ "$(wgn "${NS[srv]}" show "${IF[srv]}" peers | sort)" = "$(for r in "$@"; do key_pub "$r"; done | sort)" ]
}

reload() {
	kill -HUP "${PID[srv]}"
}

server_conf 10.7.9.1/24 "b 2" "c 3"
client_conf b 2
client_conf c 3
client_conf d 4
for r in srv b c d; do start_conf "$r"; done

# Test that before the reload b and c reach the server (sessions exist).
ping_ok "${NS[b]}" 10.7.0.1 2
ping_ok "${NS[c]}" 10.7.0.1 2
hs_b=$(handshake_time "${NS[srv]}" "${IF[srv]}" "$(key_pub b)")
[ "$hs_b" -gt 0 ] || fail "no handshake with b"
lines_srv=$(handshake_lines srv b)
lines_b=$(handshake_lines b srv)
log "b's session: handshake at $hs_b; $lines_srv handshake lines on srv, $lines_b on b"
sleep 1.1 # a new handshake would now show a different second

# Test that a reload with c removed and d added keeps b's session and adjusts the rest.
server_conf 10.7.8.1/24 "b 2" "d 4"
reload
wait_for 5 "the server's peers to become b and d" peers_are b d
ip -n "${NS[srv]}" -o addr show dev "${IF[srv]}" | grep -q ' 10.7.8.1/24 ' || fail "10.7.8.1/24 not added"
! ip -n "${NS[srv]}" -o addr show dev "${IF[srv]}" | grep -q ' 10.7.9.1/24 ' || fail "10.7.9.1/24 not removed"
ip -n "${NS[srv]}" -o addr show dev "${IF[srv]}" | grep -q ' fd07::1/64 ' || fail "fd07::1/64 lost"
ip -n "${NS[srv]}" route show 10.74.0.0/16 | grep -q "dev ${IF[srv]}" || fail "no route for d's 10.74.0.0/16"
ip -n "${NS[srv]}" route show 10.72.0.0/16 | grep -q "dev ${IF[srv]}" || fail "route for b's 10.72.0.0/16 lost"
[ -z "$(ip -n "${NS[srv]}" route show 10.73.0.0/16)" ] || fail "route for c's 10.73.0.0/16 left behind"
[ "$(handshake_time "${NS[srv]}" "${IF[srv]}" "$(key_pub b)")" = "$hs_b" ] || fail "b's handshake time changed"
ping_ok "${NS[b]}" 10.7.0.1 3
ping_ok "${NS[srv]}" 10.7.0.2 3
[ "$(handshake_time "${NS[srv]}" "${IF[srv]}" "$(key_pub b)")" = "$hs_b" ] ||
	fail "b's session was replaced: handshake $(handshake_time "${NS[srv]}" "${IF[srv]}" "$(key_pub b)") != $hs_b"
[ "$(handshake_lines srv b)" = "$lines_srv" ] || fail "new handshake log lines for b on srv: $(grep -F "peer $(key_pub b | cut -c1-8)" "$NT_TMP/${IF[srv]}.log" | tail -n 3)"
[ "$(handshake_lines b srv)" = "$lines_b" ] || fail "new handshake log lines on b"
log "b kept its session across the reload (same handshake, no handshake lines)"

# Test that the added peer works and the removed one is refused.
ping_ok "${NS[d]}" 10.7.0.1 2
! ip netns exec "${NS[c]}" ping -n -q -c 2 -W 1 10.7.0.1 >/dev/null 2>&1 || fail "c still reaches the server after its removal"
log "d added, c removed"

# Test that changing only b's keepalive and allowed IPs keeps its session too.
server_conf 10.7.8.1/24 "b 2 PersistentKeepalive = 17" "d 4"
sed -i 's|^AllowedIPs = 10.7.0.2/32, 10.72.0.0/16$|AllowedIPs = 10.7.0.2/32, 10.72.0.0/16, 10.92.0.0/16|' "$NT_TMP/srv.conf"
reload
wait_for 5 "b's keepalive to become 17" sh -c "ip netns exec ${NS[srv]} wg show ${IF[srv]} persistent-keepalive | grep -q '	17$'"
ip -n "${NS[srv]}" route show 10.92.0.0/16 | grep -q "dev ${IF[srv]}" || fail "no route for b's new 10.92.0.0/16"
ping_ok "${NS[b]}" 10.7.0.1 2
[ "$(handshake_time "${NS[srv]}" "${IF[srv]}" "$(key_pub b)")" = "$hs_b" ] || fail "b's session was replaced by an update"
[ "$(handshake_lines srv b)" = "$lines_srv" ] || fail "new handshake log lines for b after an update"

# Test that a broken file on reload changes nothing and keeps the daemon running.
before=$(wg_state "${NS[srv]}" "${IF[srv]}")
printf '[Interface]\nListenPort = many\n' >"$NT_TMP/srv.conf"
reload
wait_for 5 "the reload error in the log" grep -q "reload: $NT_TMP/srv.conf:2: " "$NT_TMP/${IF[srv]}.log"
pid_alive "${PID[srv]}" || fail "the server died on a broken reload"
[ "$(wg_state "${NS[srv]}" "${IF[srv]}")" = "$before" ] || fail "a broken reload changed the state"
ping_ok "${NS[b]}" 10.7.0.1 2
log "pass"
