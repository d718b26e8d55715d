#!/bin/bash
# Peer names (issue 17): "# friendly_name = NAME" and "# Name = NAME" in a [Peer] of a
# config-mode file, `noisetun set IFACE peer KEY name NAME`, shown by `noisetun show` and
# `show --json`, kept by `noisetun showconf` and SaveConfig; stock `wg` sees exactly what
# it saw before (a plain get=1 reply is byte for byte the same with and without names).
# And counters: a peer's transfer bytes and handshake survive a SIGHUP reload and a
# syncconf, renamed or not.
#
#   ns srv 192.0.2.1  ntnm<id>s  noisetund -c srv.conf (SaveConfig = true)  10.9.0.1/24
#                     peers: b "laptop b" (friendly_name), c "phone" (Name), d unnamed
#   ns b   192.0.2.2  ntnm<id>b  noisetund -c b.conf                        10.9.0.2/24
set -eu
. "$(dirname "$0")/lib.sh"
nt_init names
need_impl noisetund
NTD=$BUILD/noisetund
NT=$BUILD/noisetun
[ -x "$NT" ] || skip "noisetun not built ($NT missing)"

# A stand-in resolvconf, so that no config here can touch the host's DNS.
mkdir "$NT_TMP/bin"
printf '#!/bin/sh\ncat >/dev/null\n' >"$NT_TMP/bin/resolvconf"
chmod 755 "$NT_TMP/bin/resolvconf"
export PATH="$NT_TMP/bin:$PATH"

declare -A NS IF PID
for r in srv b; do
	NS[$r]=$(ns_name "$r")
	IF[$r]=$(if_name "${r:0:1}")
	ns_create "${NS[$r]}"
done
for r in srv b c d; do key_new "$r"; done
link_pair "${NS[srv]}" 1 "${NS[b]}" 2
S=${IF[srv]}
SCONF=$NT_TMP/$S.conf
B=$(key_pub b) C=$(key_pub c) D=$(key_pub d)

# server_conf NAME_B NAME_C: the server's file; a name "" leaves the comment out. b's name
# is a friendly_name comment, c's a Name comment (both accepted).
server_conf() {
	{
		printf '[Interface]\nPrivateKey = %s\nListenPort = 51820\nAddress = 10.9.0.1/24\nSaveConfig = true\n' \
			"$(cat "$(key_file srv)")"
		printf '\n[Peer]\n'
		[ -z "$1" ] || printf '# friendly_name = %s\n' "$1"
		printf 'PublicKey = %s\nAllowedIPs = 10.9.0.2/32\n' "$B"
		printf '\n[Peer]\nPublicKey = %s\n' "$C"
		[ -z "$2" ] || printf '#   Name=%s  \n' "$2"
		printf 'AllowedIPs = 10.9.0.3/32\nEndpoint = 192.0.2.3:51820\n'
		printf '\n[Peer]\nPublicKey = %s\nAllowedIPs = 10.9.0.4/32\n' "$D"
	} >"$SCONF.new"
	chmod 600 "$SCONF.new"
	mv "$SCONF.new" "$SCONF"
}
cat >"$NT_TMP/b.conf" <<EOF
[Interface]
PrivateKey = $(cat "$(key_file b)")
Address = 10.9.0.2/24

[Peer]
PublicKey = $(key_pub srv)
Endpoint = 192.0.2.1:51820
AllowedIPs = 10.9.0.0/24
EOF
chmod 600 "$NT_TMP/b.conf"

start_conf() {
	local r=$1 conf=$2
	NT_IFACES+=("${IF[$r]}")
	LOG_LEVEL=verbose ip netns exec "${NS[$r]}" "$NTD" -c "$conf" "${IF[$r]}" \
		>>"$NT_TMP/${IF[$r]}.log" 2>&1 </dev/null || fail "noisetund -c $conf failed"
	PID[$r]=$(_find_daemon "${IF[$r]}" "$NTD") || fail "no daemon for $r"
	NT_PIDS+=("${PID[$r]}")
	echo "${PID[$r]}" >"$NT_TMP/${IF[$r]}.pid"
}

# What stock wg shows (the relative "latest handshake: N seconds ago" left out).
stock_views() {
	WG_COLOR_MODE=never wgn "${NS[srv]}" show "$S" | grep -v 'latest handshake'
	echo ----
	wgn "${NS[srv]}" showconf "$S"
	echo ----
	wgn "${NS[srv]}" show "$S" dump
}

# json_names: "KEY=NAME" per peer (None for null), sorted, from `noisetun show --json`.
json_names() {
	"$NT" show "$S" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
for p in sorted(d["peers"], key=lambda p: p["public_key"]):
    print("%s=%s" % (p["public_key"], p["name"]))'
}
expect_json() {
	local want got
	want=$(printf '%s\n' "$B=$1" "$C=$2" "$D=${3:-None}" | sort)
	got=$(json_names) || fail "show --json does not parse"
	[ "$got" = "$want" ] || fail "show --json names: got
$got
want
$want"
}

# b_state: "handshake rx tx" of b on the server, from the stock dump.
b_state() { wgn "${NS[srv]}" show "$S" dump | awk -v k="$B" '$1 == k { print $5, $6, $7 }'; }

server_conf "laptop b" "phone"
start_conf srv "$SCONF"

# Test that the names of the file reach noisetun show, --json and showconf.
show=$(WG_COLOR_MODE=never "$NT" show "$S")
grep -qxF "peer: $B (laptop b)" <<<"$show" || fail "show lacks b's name:
$show"
grep -qxF "peer: $C (phone)" <<<"$show" || fail "show lacks c's name (# Name =):
$show"
grep -qxF "peer: $D" <<<"$show" || fail "show names d, which has no name:
$show"
expect_json "laptop b" "phone"
conf=$("$NT" showconf "$S")
grep -A1 -xF '[Peer]' <<<"$conf" | grep -qxF '# friendly_name = laptop b' &&
	grep -A2 -xF '[Peer]' <<<"$conf" | grep -B1 -xF "PublicKey = $B" | grep -qxF '# friendly_name = laptop b' ||
	fail "showconf does not write b's name first in its [Peer]:
$conf"
[ "$(grep -c friendly_name <<<"$conf")" = 2 ] || fail "showconf: not exactly two names:
$conf"
[ "$("$NT" show "$S" dump)" = "$(wgn "${NS[srv]}" show "$S" dump)" ] || fail "noisetun show dump differs from wg's"
log "names from the file: show, --json and showconf have them"

# Test that a plain get=1 and stock wg are the same with and without names, and that only
# get=1 + noisetun=1 carries them.
rawget "$S" 'get=1\n\n' >"$NT_TMP/get.named"
rawget "$S" 'get=1\nnoisetun=1\n\n' >"$NT_TMP/get.ext"
stock_views >"$NT_TMP/wg.named"
! grep -q noisetun "$NT_TMP/get.named" || fail "a plain get carries noisetun lines"
[ "$(grep -c '^noisetun_name=' "$NT_TMP/get.ext")" = 2 ] && grep -qxF 'noisetun_name=laptop b' "$NT_TMP/get.ext" &&
	grep -qxF 'noisetun_name=phone' "$NT_TMP/get.ext" || fail "get=1 + noisetun=1 lacks the names: $(cat "$NT_TMP/get.ext")"
[ "$(grep -v '^noisetun_' "$NT_TMP/get.ext")" = "$(cat "$NT_TMP/get.named")" ] ||
	fail "get=1 + noisetun=1 differs from get=1 by more than noisetun_ lines"
"$NT" set "$S" peer "$B" name "" peer "$C" name "" || fail "noisetun set ... name \"\" failed"
rawget "$S" 'get=1\n\n' >"$NT_TMP/get.plain"
stock_views >"$NT_TMP/wg.plain"
cmp "$NT_TMP/get.named" "$NT_TMP/get.plain" || fail "a plain get=1 differs with and without names"
diff "$NT_TMP/wg.plain" "$NT_TMP/wg.named" || fail "stock wg show/showconf/dump differ with and without names"
! grep -q '^noisetun_name=' <(rawget "$S" 'get=1\nnoisetun=1\n\n') || fail "name \"\" did not remove the names"
expect_json None None
log "plain get=1 ($(wc -c <"$NT_TMP/get.plain") bytes) and stock wg identical with and without names"

# Test that set refuses a bad name and changes nothing then.
! "$NT" set "$S" peer "$B" name "$(printf 'bad\033[31mname')" 2>/dev/null || fail "a name with an escape was accepted"
! "$NT" set "$S" peer "$B" name "$(printf '%065d' 0)" 2>/dev/null || fail "a 65-byte name was accepted"
[ "$(printf 'set=1\npublic_key=%s\nnoisetun_name=a\tb\n\n' "$(key_pub b | base64 -d | od -An -tx1 | tr -d ' \n')" |
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.stdin.buffer.read())
print(s.recv(100).decode().strip())' "$NT_SOCK_DIR/$S.sock")" = "errno=-22" ] || fail "the daemon took a name with a tab"
expect_json None None
"$NT" set "$S" peer "$B" name "laptop b" peer "$C" name phone || fail "noisetun set ... name failed"
expect_json "laptop b" "phone"

# Test that a live rename keeps b's session: same handshake, and traffic needs no new one.
start_conf b "$NT_TMP/b.conf"
ping_ok "${NS[b]}" 10.9.0.1 2
hs=$(handshake_time "${NS[srv]}" "$S" "$B")
[ "$hs" -gt 0 ] || fail "no handshake with b"
sleep 1.1 # a new handshake would now show another second
"$NT" set "$S" peer "$B" name "Bob's laptop (x = y)" || fail "rename failed"
WG_COLOR_MODE=never "$NT" show "$S" | grep -qxF "peer: $B (Bob's laptop (x = y))" || fail "show lacks the new name"
ping_ok "${NS[b]}" 10.9.0.1 1
[ "$(handshake_time "${NS[srv]}" "$S" "$B")" = "$hs" ] || fail "the rename replaced b's session"
log "renamed live; b's handshake stays at $hs"

# From here b is stopped, so that nothing moves the server's counters for b (its passive
# keepalive would come 10 s after the last reply); the server itself would start a
# handshake only 15 s after its last reply, well after the checks below.
kill -TERM "${PID[b]}"
wait_for 5 "b's daemon to stop" sh -c "! kill -0 ${PID[b]} 2>/dev/null"
st0=$(b_state)
read -r _ rx tx <<<"$st0"
[ "$rx" -gt 0 ] && [ "$tx" -gt 0 ] || fail "no traffic counted for b: $st0"

# Test that a SIGHUP reload keeps the counters of b, renamed in the file, and removes the
# name c no longer has in the file.
reloads() { grep -c 'reloaded ' "$NT_TMP/$S.log" || true; }
reloaded_since() { [ "$(reloads)" -gt "$1" ]; }
n=$(reloads)
server_conf "laptop b v2" ""
kill -HUP "${PID[srv]}"
wait_for 5 "the reload" reloaded_since "$n"
expect_json "laptop b v2" None
[ "$(b_state)" = "$st0" ] || fail "the reload changed b's handshake or counters: $(b_state), before $st0"
log "SIGHUP: b renamed from the file, c's name removed, b's handshake rx tx = $st0 kept"

# Test that syncconf (a wg file: the server's, stripped) keeps them too, passes names and
# removes a running name the file does not have.
"$NT" strip "$SCONF" | sed 's/^# friendly_name = laptop b v2$/# Name = laptop b v3/' >"$NT_TMP/sync.conf"
grep -qxF '# Name = laptop b v3' "$NT_TMP/sync.conf" || fail "strip lost the name comment: $(cat "$NT_TMP/sync.conf")"
"$NT" set "$S" peer "$C" name "to be removed" || fail "naming c failed" # c has none in the file
"$NT" syncconf "$S" "$NT_TMP/sync.conf" || fail "syncconf failed"
expect_json "laptop b v3" None
[ "$(b_state)" = "$st0" ] || fail "syncconf changed b's handshake or counters: $(b_state), before $st0"
log "syncconf: b renamed, c's running name removed, handshake rx tx = $st0 kept"

# Test that SaveConfig writes the running names back as the first line of each [Peer].
"$NT" set "$S" peer "$D" name "desk top" || fail "naming d failed"
# `noisetun save` (wg-quick save) keeps them too.
"$NT" save "$SCONF" || fail "noisetun save failed"
grep -A1 -xF '# friendly_name = desk top' "$SCONF" | grep -qxF "PublicKey = $D" || fail "noisetun save lost d's name:
$(cat "$SCONF")"
"$NT" down "$S" || fail "noisetun down $S failed"
saved=$(cat "$SCONF")
grep -A1 -xF '[Peer]' <<<"$saved" | grep -v -e '^\[Peer\]$' -e '^--$' | sort >"$NT_TMP/saved.first"
printf '%s\n' "# friendly_name = desk top" "# friendly_name = laptop b v3" "PublicKey = $C" | sort |
	diff - "$NT_TMP/saved.first" || fail "SaveConfig did not keep the names:
$saved"
grep -A1 -xF '# friendly_name = laptop b v3' <<<"$saved" | grep -qxF "PublicKey = $B" || fail "b's name is not b's:
$saved"
! grep -q 'dropped' "$NT_TMP/$S.log" || fail "the monitor dropped a valid name: $(grep dropped "$NT_TMP/$S.log")"
log "SaveConfig kept the names"

# Test that the saved file starts again with them.
start_conf srv "$SCONF"
expect_json "laptop b v3" None "desk top"
log "PASS"
