#!/bin/bash
# slow: about a minute (WireGuard's own timers, or a full-rate flood); make check-slow
# Peer lifecycle (issue 18 part 4): "# noisetun-disabled = true" and "# noisetun-valid-until
# = RFC 3339" in a [Peer]. A disabled or expired peer keeps its config, but its sessions
# end at once, pings fail and no handshake with it succeeds (either side starting it); the
# log says so. Also over the control socket (noisetun_disabled / noisetun_valid_until,
# shown by get=1 with noisetun=1), and `noisetun strip` leaves such peers out.
#
#   ns a  192.0.2.1  ntli<id>a  10.19.0.1   noisetund -c, Endpoint = b, keepalive 1 s
#   ns b  192.0.2.2  ntli<id>b  10.19.0.2   noisetund -c (reloaded with SIGHUP)
set -eu
. "$(dirname "$0")/lib.sh"
nt_init life
need_impl noisetund
NTD=$BUILD/noisetund
NTC=$BUILD/noisetun

mkdir "$NT_TMP/bin"
printf '#!/bin/sh\ncat >/dev/null\n' >"$NT_TMP/bin/resolvconf"
chmod 755 "$NT_TMP/bin/resolvconf"
export PATH="$NT_TMP/bin:$PATH"

declare -A NS IF PID
for r in a b; do
	NS[$r]=$(ns_name "$r")
	IF[$r]=$(if_name "$r")
	ns_create "${NS[$r]}"
	key_new "$r"
done
link_pair "${NS[a]}" 1 "${NS[b]}" 2

cat >"$NT_TMP/a.conf" <<EOF
[Interface]
PrivateKey = $(cat "$(key_file a)")
Address = 10.19.0.1/24

[Peer]
PublicKey = $(key_pub b)
Endpoint = 192.0.2.2:51820
AllowedIPs = 10.19.0.2/32
PersistentKeepalive = 1
EOF
# b_conf [LIFECYCLE LINES...]
b_conf() {
	{
		echo "[Interface]"
		echo "PrivateKey = $(cat "$(key_file b)")"
		echo "ListenPort = 51820"
		echo "Address = 10.19.0.2/24"
		echo
		echo "[Peer]"
		echo "PublicKey = $(key_pub a)"
		echo "AllowedIPs = 10.19.0.1/32"
		local l
		for l in "$@"; do echo "$l"; done
	} >"$NT_TMP/b.conf.new"
	chmod 600 "$NT_TMP/b.conf.new"
	mv "$NT_TMP/b.conf.new" "$NT_TMP/b.conf"
}
b_conf
chmod 600 "$NT_TMP/a.conf"
for r in a b; do
	NT_IFACES+=("${IF[$r]}")
	LOG_LEVEL=verbose ip netns exec "${NS[$r]}" "$NTD" -c "$NT_TMP/$r.conf" "${IF[$r]}" \
		>>"$NT_TMP/${IF[$r]}.log" 2>&1 </dev/null || fail "noisetund -c $r.conf failed"
	PID[$r]=$(_find_daemon "${IF[$r]}" "$NTD") || fail "no daemon for $r"
	NT_PIDS+=("${PID[$r]}")
	echo "${PID[$r]}" >"$NT_TMP/${IF[$r]}.pid"
done

# The control socket, raw: stock wg neither sends nor shows noisetun_ keys.
ctl() { rawget "${IF[b]}" "$1"; }
apub_hex=$(key_pub a | base64 -d | od -An -tx1 | tr -d ' \n')
reload_b() {
	local n
	n=$(grep -c "reloaded" "$NT_TMP/${IF[b]}.log" || true)
	kill -HUP "${PID[b]}"
	wait_for 5 "b's reload" bash -c "[ \$(grep -c reloaded '$NT_TMP/${IF[b]}.log') -gt $n ]"
}
pings_fail() {
	if ip netns exec "${NS[a]}" ping -n -q -c 3 -i 0.3 -w 2 10.19.0.2 >/dev/null 2>&1; then
		fail "ping worked: $1"
	fi
	log "pings fail: $1"
}
hs_b() { handshake_time "${NS[b]}" "${IF[b]}"; }
# a's own session would only time out after 15 s of unanswered data: end it (another
# private key and back), so that a's next packet starts a handshake at once.
key_new x
a_new_session() {
	wgn "${NS[a]}" set "${IF[a]}" private-key "$(key_file x)"
	wgn "${NS[a]}" set "${IF[a]}" private-key "$(key_file a)"
}
no_new_handshake() {
	local before=$1 n
	n=$(grep -c "refusing handshake initiation: the peer is $2" "$NT_TMP/${IF[b]}.log" || true)
	a_new_session
	ip netns exec "${NS[a]}" ping -n -q -c 1 -w 1 10.19.0.2 >/dev/null 2>&1 || true
	wait_for 8 "b to refuse a's initiation" \
		bash -c "[ \$(grep -c 'refusing handshake initiation: the peer is $2' '$NT_TMP/${IF[b]}.log') -gt $n ]"
	sleep 1
	[ "$(hs_b)" = "$before" ] || fail "a handshake succeeded with a $2 peer ($before -> $(hs_b))"
	has_handshake "${NS[a]}" "${IF[a]}" && [ "$(handshake_time "${NS[a]}" "${IF[a]}")" -gt "$before" ] &&
		fail "a completed a handshake with b"
	log "b refused a's initiation: $2"
}

ping_ok "${NS[a]}" 10.19.0.2

log "--- 1. disabled in the file (reload): sessions end at once, no handshake"
b_conf "# noisetun-disabled = true"
reload_b
grep -q "peer disabled: sessions ended" "$NT_TMP/${IF[b]}.log" || fail "no event for the disabled peer"
grep "peer disabled" "$NT_TMP/${IF[b]}.log" | tail -1
ctl 'get=1\nnoisetun=1\n\n' | grep -qx "noisetun_disabled=true" || fail "get does not show it disabled"
ctl 'get=1\n\n' | grep -q noisetun_ && fail "a plain get shows noisetun_ keys"
ip netns exec "${NS[b]}" "$NTC" show "${IF[b]}" | grep -q "disabled" || fail "noisetun show does not say disabled"
wgn "${NS[b]}" show "${IF[b]}" peers | grep -q . || fail "the disabled peer's config is gone"
pings_fail "a disabled on b"
hs=$(hs_b)
no_new_handshake "$hs" disabled

log "--- 2. enabled again: the tunnel is back"
b_conf
reload_b
grep -q "peer enabled again" "$NT_TMP/${IF[b]}.log" || fail "no event for enabling"
a_new_session # else a notices its dead session only after 15 s of unanswered data
ping_ok "${NS[a]}" 10.19.0.2

log "--- 3. ValidUntil in the past"
b_conf "# noisetun-valid-until = 2020-01-01T00:00:00Z"
reload_b
grep -q "peer expired (ValidUntil passed): sessions ended" "$NT_TMP/${IF[b]}.log" || fail "no expiry event"
pings_fail "a expired on b"
no_new_handshake "$(hs_b)" expired

log "--- 4. ValidUntil passing during the test, with traffic running"
until_s=$(( $(date +%s) + 7 ))
b_conf "# noisetun-valid-until = $(date -u -d "@$until_s" +%Y-%m-%dT%H:%M:%S+00:00)"
reload_b
ping_ok "${NS[a]}" 10.19.0.2
n=$(grep -c "sessions ended" "$NT_TMP/${IF[b]}.log")
t_start=$(date +%s%N)
[ "$t_start" -lt "$(( (until_s - 1) * 1000000000 ))" ] || fail "too slow to start before the expiry"
ip netns exec "${NS[a]}" ping -n -i 0.1 -w $(( until_s - t_start / 1000000000 + 3 )) 10.19.0.2 >"$NT_TMP/ping4.out" 2>&1 || true
[ "$(grep -c "sessions ended" "$NT_TMP/${IF[b]}.log")" -gt "$n" ] || fail "the expiry passed unnoticed"
ended=$(date +%s)
# The last reply came before the expiry (+ the 1 s resolution of the date), none after.
last=$(grep -o 'icmp_seq=[0-9]*' "$NT_TMP/ping4.out" | tail -1 | cut -d= -f2)
want=$(( (until_s * 1000000000 - t_start) / 100000000 )) # the seq sent at the expiry
log "replies until icmp_seq=$last; the expiry passed at about icmp_seq=$want (0.1 s apart)"
[ "${last:-0}" -ge $((want - 12)) ] && [ "${last:-0}" -le $((want + 12)) ] ||
	fail "replies did not stop at the expiry (last $last, expiry at $want)"
pings_fail "a expired during the test"
[ "$ended" -ge "$until_s" ] || fail "clock"

log "--- 5. over the control socket: noisetun_disabled / noisetun_valid_until"
b_conf
reload_b
a_new_session
ping_ok "${NS[a]}" 10.19.0.2
ctl "set=1\npublic_key=$apub_hex\nnoisetun_disabled=true\n\n" | grep -qx "errno=0" || fail "set refused"
pings_fail "disabled over the control socket"
ctl "set=1\npublic_key=$apub_hex\nnoisetun_disabled=false\n\n" | grep -qx "errno=0" || fail "set refused"
a_new_session
ping_ok "${NS[a]}" 10.19.0.2
ctl "set=1\npublic_key=$apub_hex\nnoisetun_valid_until=1577836800\n\n" | grep -qx "errno=0" || fail "set refused"
ctl 'get=1\nnoisetun=1\n\n' | grep -qx "noisetun_valid_until=1577836800" || fail "get does not show it"
pings_fail "expired over the control socket"
ctl "set=1\npublic_key=$apub_hex\nnoisetun_valid_until=0\n\n" | grep -qx "errno=0" || fail "set refused"
a_new_session
ping_ok "${NS[a]}" 10.19.0.2
ctl "set=1\npublic_key=$apub_hex\nnoisetun_disabled=maybe\n\n" | grep -qx "errno=-22" || fail "a bad value accepted"

log "--- 6. noisetun strip leaves disabled and expired peers out (stock tools ignore comments)"
cat >"$NT_TMP/s.conf" <<EOF
[Interface]
PrivateKey = $(cat "$(key_file b)")
ListenPort = 51820
Address = 10.19.0.2/24

[Peer]
# disabled
PublicKey = $(key_pub a)
AllowedIPs = 10.19.1.1/32
# noisetun-disabled = true

[Peer]
# expired
PublicKey = $(key_pub b)
AllowedIPs = 10.19.1.2/32
# noisetun-valid-until = 2020-01-01T00:00:00Z

[Peer]
# kept
PublicKey = $(wg genkey | wg pubkey)
AllowedIPs = 10.19.1.3/32
# noisetun-valid-until = 2999-01-01T00:00:00Z
# noisetun-disabled = false
EOF
chmod 600 "$NT_TMP/s.conf"
"$NTC" strip "$NT_TMP/s.conf" >"$NT_TMP/s.stripped" 2>"$NT_TMP/s.err" || fail "strip failed: $(cat "$NT_TMP/s.err")"
cat "$NT_TMP/s.err"
grep -q "10.19.1.3" "$NT_TMP/s.stripped" || fail "strip dropped the valid peer"
grep -q -e "10.19.1.1" -e "10.19.1.2" -e noisetun- "$NT_TMP/s.stripped" && fail "strip kept a disabled or expired peer"
[ "$(grep -c '^\[Peer\]' "$NT_TMP/s.stripped")" = 1 ] || fail "strip: not exactly one peer left"
log "PASS"
