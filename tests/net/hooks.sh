#!/bin/bash
# Hooks and the launcher's terminal as wg-quick has them (issue 21):
#   - a PostUp (and a PreDown) that runs `wg set %i ...` / `wg show %i` completes: the
#     control socket is served while hooks run, split (monitor + worker) or not
#     (NOISETUN_USER=root);
#   - hooks are evaluated by bash (<(...), [[ ]], arrays);
#   - `noisetun up FILE 2>&1 | cat` returns: the daemon lets go of the launcher's
#     stdout/stderr once it is up;
#   - a failing PreDown's "[#]" line, output and error show on `noisetun down`'s terminal;
#   - Table = main (a name, as ip route takes it) puts the routes in table main;
#   - save writes the link's MTU when the file sets one, as wg-quick save;
#   - at the default log level, a daemon whose link is deleted says why it exits.
#
#   ns A: noisetun up FILE (config mode, no peer answers: these look at the host state)
set -eu
. "$(dirname "$0")/lib.sh"
nt_init hooks
need_impl noisetund
NTD=$BUILD/noisetund
NT=$BUILD/noisetun
[ -x "$NT" ] || skip "noisetun not built"
command -v bash >/dev/null || skip "bash missing"

NSA=$(ns_name a) NSB=$(ns_name b)
IFA=$(if_name a)
ns_create "$NSA"
ns_create "$NSB"
link_pair "$NSA" 1 "$NSB" 2
key_new a
key_new a2
key_new b
NT_IFACES+=("$IFA")
mkdir -m 700 "$NT_TMP/conf"
CONF=$NT_TMP/conf/$IFA.conf

# write_conf ALLOWED_IPS [EXTRA INTERFACE LINES...]
write_conf() {
	local aips=$1 l
	shift
	{
		echo "[Interface]"
		echo "PrivateKey = $(cat "$(key_file a)")"
		echo "Address = 10.0.0.1/24"
		for l in "$@"; do echo "$l"; done
		echo
		echo "[Peer]"
		echo "PublicKey = $(key_pub b)"
		echo "Endpoint = 192.0.2.2:51820"
		echo "AllowedIPs = $aips"
	} >"$CONF"
	chmod 600 "$CONF"
}

# up [ENV...]: noisetun up CONF in A, at most 15 s (a deadlock fails, not hangs), output
# in $NT_TMP/up.out; sets DPID.
up() {
	local rc=0 t0
	t0=$(date +%s%N)
	timeout 15 env "$@" ip netns exec "$NSA" "$NT" up "$CONF" >"$NT_TMP/up.out" 2>&1 </dev/null || rc=$?
	UP_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
	cat "$NT_TMP/up.out" >>"$NT_TMP/$IFA.log"
	[ "$rc" = 0 ] || fail "noisetun up: exit $rc after ${UP_MS} ms: $(cat "$NT_TMP/up.out")"
	DPID=$(_find_daemon "$IFA" "$NTD") || fail "no daemon for $IFA"
	NT_PIDS+=("$DPID")
	echo "$DPID" >"$NT_TMP/$IFA.pid"
}

# down: noisetun down CONF, at most 15 s; output in $NT_TMP/down.out, exit in DOWN_RC.
down() {
	DOWN_RC=0
	timeout 15 "$NT" down "$CONF" >"$NT_TMP/down.out" 2>&1 </dev/null || DOWN_RC=$?
	cat "$NT_TMP/down.out" >>"$NT_TMP/$IFA.log"
	wait_for 5 "the daemon (pid $DPID) to exit" sh -c "! kill -0 $DPID 2>/dev/null || grep -q '^State:.*Z' /proc/$DPID/status"
	! ip -n "$NSA" link show "$IFA" >/dev/null 2>&1 || fail "$IFA still there after down"
}

# Test that hooks calling `wg` on their own interface complete and apply, in both process
# layouts: PostUp sets another private key and reads it back, PreDown reads the device.
for user in nobody root; do
	rm -f "$NT_TMP/hooks"
	write_conf "10.50.0.0/16" \
		"PostUp = wg set %i private-key $(key_file a2) && wg show %i private-key >>$NT_TMP/hooks" \
		"PreDown = wg show %i listen-port >$NT_TMP/predown-port"
	up NOISETUN_USER=$user
	[ "$(cat "$NT_TMP/hooks")" = "$(cat "$(key_file a2)")" ] || fail "user $user: PostUp's wg show printed '$(cat "$NT_TMP/hooks")'"
	[ "$(wgn "$NSA" show "$IFA" private-key)" = "$(cat "$(key_file a2)")" ] || fail "user $user: PostUp's wg set did not apply"
	port=$(wgn "$NSA" show "$IFA" listen-port)
	down
	[ "$DOWN_RC" = 0 ] || fail "user $user: down exited $DOWN_RC: $(cat "$NT_TMP/down.out")"
	[ "$(cat "$NT_TMP/predown-port")" = "$port" ] || fail "user $user: PreDown's wg show printed '$(cat "$NT_TMP/predown-port")', not $port"
	log "NOISETUN_USER=$user: PostUp 'wg set %i; wg show %i' applied, up took ${UP_MS} ms; PreDown 'wg show %i' answered"
done

# Test that a failing PostUp still fails the start and undoes it, in both layouts.
for user in nobody root; do
	write_conf "10.50.0.0/16" "PostUp = echo failing-%i; exit 3"
	rc=0
	out=$(timeout 15 env NOISETUN_USER=$user ip netns exec "$NSA" "$NT" up "$CONF" 2>&1 </dev/null) || rc=$?
	[ "$rc" = 1 ] || fail "user $user: a failing PostUp: exit $rc: $out"
	[[ $out == *"failing-$IFA"* && $out == *"PostUp \`echo failing-$IFA; exit 3' exited with status 3"* ]] ||
		fail "user $user: a failing PostUp said: $out"
	wait_for 5 "$IFA to go after a failing PostUp" sh -c "! ip -n $NSA link show $IFA"
	[ ! -e "$NT_SOCK_DIR/$IFA.sock" ] || fail "user $user: socket left after a failing PostUp"
done
log "a failing PostUp fails up (exit 1, its output and the reason shown) and leaves nothing"

# Test that hooks are bash: process substitution, [[ ]], arrays, as wg-quick evaluates them.
rm -f "$NT_TMP/hooks"
write_conf "10.50.0.0/16" \
	"PostUp = cat <(echo subst-%i) >>$NT_TMP/hooks" \
	"PostUp = [[ %i == nt* ]] && a=(x y z) && echo \"array \${#a[@]}\" >>$NT_TMP/hooks"
up
down
[ "$(cat "$NT_TMP/hooks")" = "$(printf 'subst-%s\narray 3' "$IFA")" ] || fail "bash hooks: '$(cat "$NT_TMP/hooks" 2>/dev/null)'"
grep -qxF "[#] cat <(echo subst-$IFA) >>$NT_TMP/hooks" "$NT_TMP/up.out" || fail "up did not show '[#] hook': $(cat "$NT_TMP/up.out")"
log "hooks run by bash; up shows '[#] HOOK' as wg-quick"

# Test that `noisetun up FILE 2>&1 | cat` returns: nothing of the daemon holds the pipe.
write_conf "10.50.0.0/16" "PostUp = echo postup-said-this"
t0=$(date +%s%N)
rc=0
out=$(timeout 10 ip netns exec "$NSA" "$NT" up "$CONF" 2>&1 </dev/null | cat) || rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
DPID=$(_find_daemon "$IFA" "$NTD") || fail "no daemon for $IFA after up | cat"
NT_PIDS+=("$DPID")
echo "$DPID" >"$NT_TMP/$IFA.pid"
[ "$rc" = 0 ] || fail "up 2>&1 | cat: exit $rc after $ms ms (the daemon held the pipe)"
[[ $out == *postup-said-this* ]] || fail "up | cat lost PostUp's output: $out"
for fd in 0 1 2; do
	for p in $DPID $(daemon_worker_pid "$IFA"); do
		t=$(readlink "/proc/$p/fd/$fd")
		[ "$t" = /dev/null ] || fail "pid $p fd $fd is $t after up, not /dev/null"
	done
done
log "up 2>&1 | cat returned in $ms ms with PostUp's output; the daemon's stdio is /dev/null"
down

# Test that a failing PreDown shows its "[#]" line, its output and the error on down's
# terminal (PostDown's too), and the tunnel still goes down.
write_conf "10.50.0.0/16" "PreDown = echo predown-output-%i; exit 4" "PostDown = echo postdown-output"
up
down
log "down with a failing PreDown: exit $DOWN_RC: $(tr '\n' '|' <"$NT_TMP/down.out")"
for want in "[#] echo predown-output-$IFA; exit 4" "predown-output-$IFA" "postdown-output"; do
	grep -qxF -- "$want" "$NT_TMP/down.out" || fail "down did not show '$want': $(cat "$NT_TMP/down.out")"
done
grep -q "PreDown .* exited with status 4" "$NT_TMP/down.out" || fail "down did not say PreDown failed: $(cat "$NT_TMP/down.out")"
[ ! -e "$NT_SOCK_DIR/$IFA.down" ] || fail "down left $NT_SOCK_DIR/$IFA.down"

# Test that Table = main is taken as ip takes it: the routes go to table main, with no
# policy rules.
write_conf "10.50.0.0/16, 10.60.0.0/16" "Table = main"
rules=$(ip -n "$NSA" -4 rule show)
up
ip -n "$NSA" -4 route show table main | grep -q "^10.50.0.0/16 dev $IFA" || fail "Table = main: no 10.50.0.0/16 in table main"
ip -n "$NSA" -4 route show table main | grep -q "^10.60.0.0/16 dev $IFA" || fail "Table = main: no 10.60.0.0/16 in table main"
[ "$(ip -n "$NSA" -4 rule show)" = "$rules" ] || fail "Table = main added rules"
down
! ip -n "$NSA" -4 route show table all | grep -q 10.50.0.0/16 || fail "Table = main: route left after down"
log "Table = main: routes in table main, removed on down"

# Test that a name from rt_tables works too, and an unknown one is refused before anything
# exists. Our rt_tables is bound over /etc/iproute2 in a private mount namespace only.
if unshare -m --propagation private true 2>/dev/null; then
	mkdir "$NT_TMP/iproute2"
	cp -a /etc/iproute2/. "$NT_TMP/iproute2/"
	printf '# test\n200\tntvpn\n' >"$NT_TMP/iproute2/rt_tables"
	# in_ns_etc CMD...: CMD in A, seeing our rt_tables
	in_ns_etc() {
		unshare -m --propagation private sh -c 'mount --bind "$0" /etc/iproute2 && exec "$@"' \
			"$NT_TMP/iproute2" ip netns exec "$NSA" "$@"
	}
	write_conf "10.50.0.0/16" "Table = ntvpn"
	rc=0; in_ns_etc "$NT" up "$CONF" >"$NT_TMP/up.out" 2>&1 </dev/null || rc=$?
	[ "$rc" = 0 ] || fail "Table = ntvpn: up exit $rc: $(cat "$NT_TMP/up.out")"
	DPID=$(_find_daemon "$IFA" "$NTD") || fail "no daemon for $IFA"
	NT_PIDS+=("$DPID")
	ip -n "$NSA" -4 route show table 200 | grep -q "^10.50.0.0/16 dev $IFA" || fail "Table = ntvpn: no route in table 200"
	down
	write_conf "10.50.0.0/16" "Table = ntnosuch"
	rc=0; out=$(in_ns_etc "$NT" up "$CONF" 2>&1 </dev/null) || rc=$?
	[ "$rc" = 78 ] && [[ $out == *'Table: no table "ntnosuch"'* ]] || fail "Table = ntnosuch: exit $rc: $out"
	! ip -n "$NSA" link show "$IFA" >/dev/null 2>&1 || fail "Table = ntnosuch: $IFA was created"
	log "Table = ntvpn (rt_tables: 200) routes to table 200; an unknown name: '$out'"
else
	log "no private mount namespace: rt_tables names not tested"
fi

# Test that save writes an MTU the file sets as the link has it now (wg-quick save), and
# keeps the file's addresses (deliberately not the link's: README).
write_conf "10.50.0.0/16" "MTU = 1400"
up
ip -n "$NSA" link set "$IFA" mtu 1380
ip -n "$NSA" addr add 10.0.0.99/24 dev "$IFA"
ip netns exec "$NSA" "$NT" save "$CONF" || fail "noisetun save"
grep -qx "MTU = 1380" "$CONF" || fail "save: MTU is '$(grep MTU "$CONF")', not the link's 1380"
[ "$(grep -c '^Address' "$CONF")" = 1 ] && grep -qx "Address = 10.0.0.1/24" "$CONF" || fail "save: addresses $(grep Address "$CONF")"
down
log "save: MTU = 1380 as the link has it, addresses from the file"

# Test that at the default log level (no LOG_LEVEL) the daemon says why it exits when its
# link is deleted.
write_conf "10.50.0.0/16"
rc=0
ip netns exec "$NSA" "$NTD" -c "$CONF" "$IFA" >"$NT_TMP/default-level.log" 2>&1 </dev/null || rc=$?
[ "$rc" = 0 ] || fail "noisetund -c: exit $rc: $(cat "$NT_TMP/default-level.log")"
DPID=$(_find_daemon "$IFA" "$NTD") || fail "no daemon for $IFA"
NT_PIDS+=("$DPID")
ip -n "$NSA" link del "$IFA"
wait_for 5 "the daemon to exit after ip link del" sh -c "! kill -0 $DPID 2>/dev/null || grep -q '^State:.*Z' /proc/$DPID/status"
grep -q "$IFA: interface deleted.*exiting" "$NT_TMP/default-level.log" ||
	fail "no exit reason at the default level: '$(cat "$NT_TMP/default-level.log")'"
log "ip link del: '$(grep 'interface deleted' "$NT_TMP/default-level.log")'"

log "pass"
