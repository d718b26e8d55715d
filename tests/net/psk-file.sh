#!/bin/bash
# PSK rotation the Rosenpass way (issue 18 part 5). Each side's PSK comes from a file that
# another program rewrites ("# noisetun-preshared-key-file = PATH", watched with inotify):
# rotation by atomic rename and by truncate-and-write in place (Rosenpass's key_out); the
# current session lives on until the next handshake, which uses the new PSK; a handshake
# that fails because the PSKs differ is logged as a likely PSK mismatch, without any key; a
# half-written key is never taken. Then the command Rosenpass's stock broker runs,
# `wg set IFACE peer KEY preshared-key /dev/stdin`, with the stock wg against noisetund.
#
#   ns a  192.0.2.1  ntps<id>a  10.18.0.1   noisetund -c, Endpoint = 192.0.2.2:51820
#   ns b  192.0.2.2  ntps<id>b  10.18.0.2   noisetund -c, ListenPort 51820
#
# A new handshake is forced on a by setting another private key and back: a's sessions
# end, b's live on, and a's next packet starts a handshake with a's PSK in force.
set -eu
. "$(dirname "$0")/lib.sh"
nt_init psk
need_impl noisetund
NTD=$BUILD/noisetund

mkdir "$NT_TMP/bin"
printf '#!/bin/sh\ncat >/dev/null\n' >"$NT_TMP/bin/resolvconf"
chmod 755 "$NT_TMP/bin/resolvconf"
export PATH="$NT_TMP/bin:$PATH"

declare -A NS IF
for r in a b; do
	NS[$r]=$(ns_name "$r")
	IF[$r]=$(if_name "$r")
	ns_create "${NS[$r]}"
	key_new "$r"
	mkdir -m 700 "$NT_TMP/rp-$r"
done
link_pair "${NS[a]}" 1 "${NS[b]}" 2
for k in 1 2 3 4 5 x; do psk_new "k$k"; done
kb() { cat "$NT_TMP/k$1.psk"; }
pskfile() { echo "$NT_TMP/rp-$1/psk"; }

# rotate_rename ROLE KEY: write a temp file, rename it over (atomic).
rotate_rename() {
	kb "$2" >"$NT_TMP/rp-$1/.psk.tmp"
	mv "$NT_TMP/rp-$1/.psk.tmp" "$(pskfile "$1")"
}
# rotate_inplace ROLE KEY: truncate and write the same inode, as Rosenpass's key_out does.
rotate_inplace() {
	kb "$2" >"$(pskfile "$1")"
}
psk_is() { [ "$(wgn "${NS[$1]}" show "${IF[$1]}" preshared-keys | awk '{ print $2 }')" = "$(kb "$2")" ]; }
psk_in_force() { wait_for 5 "$1's PSK to become k$2" psk_is "$1" "$2"; log "$1: PSK k$2 in force"; }
new_handshake_on_a() {
	wgn "${NS[a]}" set "${IF[a]}" private-key "$(key_file x)" 2>/dev/null || {
		key_new x
		wgn "${NS[a]}" set "${IF[a]}" private-key "$(key_file x)"
	}
	wgn "${NS[a]}" set "${IF[a]}" private-key "$(key_file a)"
}
key_new x

rotate_rename a 1
rotate_inplace b 1
cat >"$NT_TMP/a.conf" <<EOF
[Interface]
PrivateKey = $(cat "$(key_file a)")
Address = 10.18.0.1/24

[Peer]
PublicKey = $(key_pub b)
# noisetun-preshared-key-file = $(pskfile a)
Endpoint = 192.0.2.2:51820
AllowedIPs = 10.18.0.2/32
EOF
cat >"$NT_TMP/b.conf" <<EOF
[Interface]
PrivateKey = $(cat "$(key_file b)")
ListenPort = 51820
Address = 10.18.0.2/24

[Peer]
PublicKey = $(key_pub a)
# noisetun-preshared-key-file = $(pskfile b)
AllowedIPs = 10.18.0.1/32
EOF
chmod 600 "$NT_TMP/a.conf" "$NT_TMP/b.conf"
for r in a b; do
	NT_IFACES+=("${IF[$r]}")
	LOG_LEVEL=verbose ip netns exec "${NS[$r]}" "$NTD" -c "$NT_TMP/$r.conf" "${IF[$r]}" \
		>>"$NT_TMP/${IF[$r]}.log" 2>&1 </dev/null || fail "noisetund -c $r.conf failed"
	pid=$(_find_daemon "${IF[$r]}" "$NTD") || fail "no daemon for $r"
	NT_PIDS+=("$pid")
	echo "$pid" >"$NT_TMP/${IF[$r]}.pid"
done
psk_in_force a 1
psk_in_force b 1
ping_ok "${NS[a]}" 10.18.0.2
hs1=$(handshake_time "${NS[b]}" "${IF[b]}")

log "--- 1. b rotates by rename: its session lives on until the next handshake"
rotate_rename b 2
psk_in_force b 2
ping_ok "${NS[a]}" 10.18.0.2
[ "$(handshake_time "${NS[b]}" "${IF[b]}")" = "$hs1" ] || fail "b's rotation started a handshake"

log "--- 2. the next handshake: a still has k1, b k2: it fails, logged as a PSK mismatch"
new_handshake_on_a
if ip netns exec "${NS[a]}" ping -n -q -c 2 -w 3 10.18.0.2 >/dev/null 2>&1; then
	fail "ping worked with different PSKs"
fi
wait_for 10 "a's log to report a likely PSK mismatch" grep -q "likely preshared key mismatch" "$NT_TMP/${IF[a]}.log"
grep "likely preshared key mismatch" "$NT_TMP/${IF[a]}.log" | head -1
grep -q "${IF[a]}.*likely preshared key mismatch\|likely preshared key mismatch" "$NT_TMP/${IF[a]}.log"

log "--- 3. a rotates in place (truncate and write): a's retries use k2, the tunnel is back"
t0=$(date +%s%N)
rotate_inplace a 2
psk_in_force a 2
ping_ok "${NS[a]}" 10.18.0.2
log "tunnel back $(( ($(date +%s%N) - t0) / 1000000 )) ms after the rotation"
[ "$(handshake_time "${NS[b]}" "${IF[b]}")" -ge "$hs1" ] || fail "no new handshake on b"

log "--- 4. both rotate (a in place, b by rename): pings continue, next handshake uses k3"
hs2=$(handshake_time "${NS[a]}" "${IF[a]}")
rotate_inplace a 3
rotate_rename b 3
psk_in_force a 3
psk_in_force b 3
ping_ok "${NS[a]}" 10.18.0.2
[ "$(handshake_time "${NS[a]}" "${IF[a]}")" = "$hs2" ] || fail "the rotation ended a's session"
sleep 1 # handshake times are in seconds: a new one must read later
new_handshake_on_a
ping_ok "${NS[a]}" 10.18.0.2
[ "$(handshake_time "${NS[a]}" "${IF[a]}")" -gt "$hs2" ] || fail "no new handshake with k3"

log "--- 5. a half-written key (truncate, half a key, close) is never taken"
head -c 22 "$NT_TMP/k4.psk" >"$(pskfile a)"
: >"$(pskfile b)"
wait_for 5 "a to refuse the half key" grep -q "not one base64 key" "$NT_TMP/${IF[a]}.log"
wait_for 5 "b to refuse the empty file" grep -q "empty (being written?)" "$NT_TMP/${IF[b]}.log"
psk_is a 3 || fail "a took a half-written key"
psk_is b 3 || fail "b took an empty file"
ping_ok "${NS[a]}" 10.18.0.2

log "--- 6. Rosenpass's broker: wg set IFACE peer KEY preshared-key /dev/stdin (stock wg)"
broker() { kb "$2" | wgn "${NS[$1]}" set "${IF[$1]}" peer "$(key_pub "$3")" preshared-key /dev/stdin; }
broker b 5 a
psk_is b 5 || fail "the broker's PSK did not reach b"
ping_ok "${NS[a]}" 10.18.0.2 # b's session lives on
n_mismatch=$(grep -c "likely preshared key mismatch" "$NT_TMP/${IF[a]}.log")
new_handshake_on_a
if ip netns exec "${NS[a]}" ping -n -q -c 2 -w 3 10.18.0.2 >/dev/null 2>&1; then
	fail "ping worked with different PSKs (k3 against the broker's k5)"
fi
wait_for 10 "another mismatch report" \
	bash -c "[ \$(grep -c 'likely preshared key mismatch' '$NT_TMP/${IF[a]}.log') -gt $n_mismatch ]"
broker a 5 b
psk_is a 5 || fail "the broker's PSK did not reach a"
ping_ok "${NS[a]}" 10.18.0.2

log "--- no key material in any log"
for k in 1 2 3 4 5; do
	b64=$(kb "$k")
	hex=$(echo "$b64" | base64 -d | od -An -tx1 | tr -d ' \n')
	for r in a b; do
		if grep -qF -e "$b64" -e "$hex" -e "${b64:0:20}" "$NT_TMP/${IF[$r]}.log"; then
			fail "key k$k appears in ${IF[$r]}'s log"
		fi
	done
done
grep -h "preshared key" "$NT_TMP/${IF[a]}.log" "$NT_TMP/${IF[b]}.log" | sort | uniq -c | head -20
log "PASS"
