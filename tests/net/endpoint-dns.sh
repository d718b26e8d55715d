#!/bin/bash
# slow: about a minute (WireGuard's own timers, or a full-rate flood); make check-slow
# Peers that move (issue 18 part 2), with a real DNS server (dnsmasq) in a namespace.
#
#                      LAN switch 192.0.2.0/24
#        +-----------------+-----------------+-----------------+
#   ns c .1               ns s .2 (-> .12)   ns d .3            ns f .4
#   client: Endpoint =    server, port       dnsmasq:           client: Endpoint =
#   vpn.nt.test:51820     51820              vpn.nt.test        192.0.2.12:51820, fallback
#   10.20.0.1             10.20.0.2                             192.0.2.22:51820; 10.20.0.4
#
# 1. With pings running, the server's address moves (.2 -> .12) and its record with it:
#    c's handshakes fail, its monitor resolves the name again and moves the endpoint; the
#    figure is the time from c's first failed handshake (its first initiation after the
#    move) to the first ping reply; it must be within 30 s.
# 2. Failover: f's first endpoint goes away (.12 removed): f moves to the fallback (.22),
#    then fails back to the first once it answers again (NOISETUN_FAILBACK_SECONDS=4).
set -eu
. "$(dirname "$0")/lib.sh"
nt_init edns
need_impl noisetund
command -v dnsmasq >/dev/null || skip "dnsmasq is not installed (apt-get install dnsmasq-base)"
NTD=$BUILD/noisetund

mkdir "$NT_TMP/bin"
printf '#!/bin/sh\ncat >/dev/null\n' >"$NT_TMP/bin/resolvconf"
chmod 755 "$NT_TMP/bin/resolvconf"
export PATH="$NT_TMP/bin:$PATH"

declare -A NS IF PID
for r in c s d f; do
	NS[$r]=$(ns_name "$r")
	IF[$r]=$(if_name "$r")
	ns_create "${NS[$r]}"
	key_new "$r"
done
lan_create "${NS[c]}" "${NS[s]}" "${NS[d]}" "${NS[f]}"
# Removing the primary address must not take the secondaries with it.
ip netns exec "${NS[s]}" sysctl -qw net.ipv4.conf.all.promote_secondaries=1 net.ipv4.conf.eth0.promote_secondaries=1
ip -n "${NS[s]}" addr add 192.0.2.22/24 dev eth0

# c and f resolve through d: ip netns exec mounts /etc/netns/NS/resolv.conf.
for r in c f; do
	mkdir -p "/etc/netns/${NS[$r]}"
	printf 'nameserver 192.0.2.3\noptions timeout:1 attempts:2\n' >"/etc/netns/${NS[$r]}/resolv.conf"
done
trap 'rc=$?; rm -rf "/etc/netns/${NS[c]}" "/etc/netns/${NS[f]}"; (exit $rc); nt_cleanup' EXIT

echo "192.0.2.2 vpn.nt.test" >"$NT_TMP/hosts"
ip netns exec "${NS[d]}" dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
	--addn-hosts="$NT_TMP/hosts" --listen-address=192.0.2.3 --bind-interfaces --user=root --group=root \
	--local-ttl=1 --pid-file="$NT_TMP/dnsmasq.pid" --log-queries --log-facility="$NT_TMP/dnsmasq.txt" &
DNSMASQ=$!
NT_PIDS+=("$DNSMASQ")
wait_for 5 "dnsmasq to answer" ip netns exec "${NS[c]}" getent ahostsv4 vpn.nt.test
log "dnsmasq: vpn.nt.test is $(ip netns exec "${NS[c]}" getent ahostsv4 vpn.nt.test | awk 'NR == 1 { print $1 }')"

client_conf() {
	local r=$1 n=$2
	shift 2
	{
		echo "[Interface]"
		echo "PrivateKey = $(cat "$(key_file "$r")")"
		echo "Address = 10.20.0.$n/24"
		echo
		echo "[Peer]"
		echo "PublicKey = $(key_pub s)"
		echo "AllowedIPs = 10.20.0.2/32"
		local l
		for l in "$@"; do echo "$l"; done
	} >"$NT_TMP/$r.conf"
	chmod 600 "$NT_TMP/$r.conf"
}
client_conf c 1 "Endpoint = vpn.nt.test:51820"
client_conf f 4 "Endpoint = 192.0.2.12:51820" "# noisetun-endpoint-fallback = 192.0.2.22:51820"
cat >"$NT_TMP/s.conf" <<EOF
[Interface]
PrivateKey = $(cat "$(key_file s)")
ListenPort = 51820
Address = 10.20.0.2/24

[Peer]
PublicKey = $(key_pub c)
AllowedIPs = 10.20.0.1/32

[Peer]
PublicKey = $(key_pub f)
AllowedIPs = 10.20.0.4/32
EOF
chmod 600 "$NT_TMP/s.conf"
start_conf() {
	local r=$1
	NT_IFACES+=("${IF[$r]}")
	NOISETUN_FAILBACK_SECONDS=4 LOG_LEVEL=verbose ip netns exec "${NS[$r]}" "$NTD" -c "$NT_TMP/$r.conf" "${IF[$r]}" \
		>>"$NT_TMP/${IF[$r]}.log" 2>&1 </dev/null || fail "noisetund -c $r.conf failed"
	PID[$r]=$(_find_daemon "${IF[$r]}" "$NTD") || fail "no daemon for $r"
	NT_PIDS+=("${PID[$r]}")
	echo "${PID[$r]}" >"$NT_TMP/${IF[$r]}.pid"
}
start_conf s
# The server cannot start a handshake to its clients, as when they are behind NAT: its
# initiations (type 1) are dropped on the way out. Otherwise it would reach c from its new
# address and c would roam to it, with no need to resolve anything.
ip netns exec "${NS[s]}" nft -f - <<'NFT'
table inet ntedns {
	chain out {
		type filter hook output priority 0;
		udp sport 51820 @th,64,32 0x01000000 drop
	}
}
NFT
start_conf c
ping_ok "${NS[c]}" 10.20.0.2
endpoint_is "${NS[c]}" "${IF[c]}" 192.0.2.2:51820 || fail "c's endpoint: $(endpoint_of "${NS[c]}" "${IF[c]}")"
# The name is kept, and shown (noisetun show; the stock wg shows the address only).
show_c() { ip netns exec "${NS[c]}" "$BUILD/noisetun" show "${IF[c]}" | sed 's/\x1b\[[0-9;]*m//g'; }
show_c | grep -q "endpoint: 192.0.2.2:51820 (vpn.nt.test:51820)" || { show_c; fail "show lacks the name"; }

log "--- 1. the server moves, and its DNS record with it, with pings running"
ip netns exec "${NS[c]}" ping -D -n -i 0.2 10.20.0.2 >"$NT_TMP/ping-c.out" 2>&1 &
NT_PIDS+=("$!")
sleep 1
inits() { grep -c "sending handshake initiation" "$NT_TMP/${IF[c]}.log" || true; }
n0=$(inits)
ip -n "${NS[s]}" addr del 192.0.2.2/24 dev eth0
ip -n "${NS[s]}" addr add 192.0.2.12/24 dev eth0
echo "192.0.2.12 vpn.nt.test" >"$NT_TMP/hosts"
kill -HUP "$DNSMASQ"
t_move=$(date +%s%N)
t_init=""
t_back=""
end=$((t_move + 60000000000))
while [ "$(date +%s%N)" -lt "$end" ]; do
	if [ -z "$t_init" ] && [ "$(inits)" -gt "$n0" ]; then
		t_init=$(date +%s%N)
	fi
	# a reply stamped after the move
	last=$(grep -o '^\[[0-9.]*\] [0-9]* bytes from' "$NT_TMP/ping-c.out" | tail -1 | tr -d '[]' | cut -d' ' -f1)
	if [ -n "$last" ] && python3 -c "import sys; sys.exit(0 if float('$last') * 1e9 > $t_move + 5e8 else 1)"; then
		t_back=$(python3 -c "print(int(float('$last') * 1e9))")
		break
	fi
	sleep 0.1
done
[ -n "$t_init" ] || fail "c never started a handshake after the move"
[ -n "$t_back" ] || fail "c did not reach the server again within 60 s of the move"
grep "endpoint now" "$NT_TMP/${IF[c]}.log" | tail -1
endpoint_is "${NS[c]}" "${IF[c]}" 192.0.2.12:51820 || fail "c's endpoint: $(endpoint_of "${NS[c]}" "${IF[c]}")"
fig=$(( (t_back - t_init) / 1000000 ))
log "FIGURE: back $fig ms after c's first failed handshake ($(( (t_init - t_move) / 1000000 )) ms after the move, which c only notices by its timers)"
[ "$fig" -le 30000 ] || fail "reconnected $fig ms after the first failed handshake (> 30 s)"
grep -q "query\[A\] vpn.nt.test" "$NT_TMP/dnsmasq.txt" || fail "dnsmasq saw no query"
show_c | grep "endpoint:"
show_c | grep -q "endpoint: 192.0.2.12:51820 (vpn.nt.test:51820)" || fail "show lacks the name after the move"

log "--- 2. failover to the second endpoint, and fail-back"
start_conf f
ping_ok "${NS[f]}" 10.20.0.2
endpoint_is "${NS[f]}" "${IF[f]}" 192.0.2.12:51820 || fail "f's endpoint: $(endpoint_of "${NS[f]}" "${IF[f]}")"
ip netns exec "${NS[f]}" ping -D -n -i 0.2 10.20.0.2 >"$NT_TMP/ping-f.out" 2>&1 &
NT_PIDS+=("$!")
sleep 1
ip -n "${NS[s]}" addr del 192.0.2.12/24 dev eth0
t_down=$(date +%s%N)
wait_for 45 "f to fail over to 192.0.2.22" endpoint_is "${NS[f]}" "${IF[f]}" 192.0.2.22:51820
t_over=$(date +%s%N)
ping_ok "${NS[f]}" 10.20.0.2
log "failed over $(( (t_over - t_down) / 1000000 )) ms after the first endpoint went away"
grep "endpoint now" "$NT_TMP/${IF[f]}.log" | tail -1
ip -n "${NS[s]}" addr add 192.0.2.12/24 dev eth0
wait_for 20 "f to fail back to 192.0.2.12" endpoint_is "${NS[f]}" "${IF[f]}" 192.0.2.12:51820
grep "failing back" "$NT_TMP/${IF[f]}.log" | tail -1
sleep 2
ping_ok "${NS[f]}" 10.20.0.2
endpoint_is "${NS[f]}" "${IF[f]}" 192.0.2.12:51820 || fail "f left the first endpoint again"
log "PASS"
