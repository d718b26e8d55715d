#!/bin/bash
# The noisetun CLI against the stock wg, byte for byte, on live daemons and on fake ones.
#
#   ns A                                           ns B
#   +------------------------------+   veth   +------------------------------+
#   | noisetund ntcl<id>a          |          | noisetund ntcl<id>b          |
#   |   (noisetun setconf a.conf)  |          |   (noisetun set ...)         |
#   |   10.0.0.1/24 fd00::1/64     |          |   10.0.0.2/24 fd00::2/64     |
#   | eth0 192.0.2.1        :51820 |----------| eth0 192.0.2.2        :51821 |
#   +------------------------------+          +------------------------------+
#   A also has peers C and D (no traffic) around B, so that wg's human order (latest
#   handshake first) differs from the daemon's; later E replaces C (syncconf).
#
#   fake daemons ntcl<id>f, ntcl<id>g: python sockets answering get=1 with canned state
#   (handshakes 63 s and 400 days ago, "Now", in the future, KiB..TiB counters, no private
#   key, no peers) and logging set=1 requests, so human output and the exact requests of
#   wg and noisetun can be compared.
#
# The whole test runs in a private mount namespace with its own /var/run/wireguard, so
# `show all` sees only this test's interfaces.
set -eu
if [ -z "${NT_CLI_PRIVATE_MOUNTS:-}" ] && [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null; then
	mkdir -p /var/run/wireguard /run/netns
	if unshare -m --propagation private true 2>/dev/null; then
		export NT_CLI_PRIVATE_MOUNTS=1
		exec unshare -m --propagation private bash "$0" "$@"
	fi
fi
# shellcheck source=tests/net/lib.sh
. "$(dirname "$0")/lib.sh"
nt_init cli
[ -n "${NT_CLI_PRIVATE_MOUNTS:-}" ] || skip "cannot create a private mount namespace (unshare -m)"
mount -t tmpfs -o mode=0755 nt-cli-run "$NT_SOCK_DIR" || skip "cannot mount a private $NT_SOCK_DIR"
# The copies of other runs' /run/netns mounts would keep their namespaces alive until we
# exit: drop them, and keep our own namespaces in a /run/netns of our own.
findmnt -rn -o TARGET | grep '^/run/netns/' | while read -r m; do umount "$m" 2>/dev/null || true; done
mount -t tmpfs -o mode=0755 nt-cli-netns /run/netns || skip "cannot mount a private /run/netns"
need_impl noisetund
NT=$BUILD/noisetun
[ -x "$NT" ] || skip "noisetun not built ($NT missing)"
command -v wg-quick >/dev/null || skip "wg-quick is not installed"

NSA=$(ns_name a) NSB=$(ns_name b)
IFA=$(if_name a) IFB=$(if_name b) IFD=$(if_name d) IFU=$(if_name u) IFF=$(if_name f) IFG=$(if_name g)
ns_create "$NSA"
ns_create "$NSB"
link_pair "$NSA" 1 "$NSB" 2
for k in a b c d e; do key_new "$k"; done
psk_new ab

# same DESC CMD...: CMD run with wg, then with noisetun, must print the same bytes (stdout
# and exit code), and succeed unless DESC says "(exit code)". The human output says "N
# seconds ago": at a second boundary the two runs may differ, so a few attempts are allowed.
same() {
	local desc=$1 i w n
	shift
	for i in 1 2 3; do
		w=$("$@" 2>/dev/null; echo "rc=$?")
		n=$(run_nt "$@" 2>/dev/null; echo "rc=$?")
		if [ "$w" = "$n" ]; then
			case $desc in
			*"(exit code)"*) ;;
			*) [ "${w##*rc=}" = 0 ] || fail "wg failed: $desc";;
			esac
			return 0
		fi
		sleep 0.3
	done
	diff <(echo "$w") <(echo "$n") | head -n 20
	fail "noisetun differs from wg: $desc"
}

# run_nt wg ARGS...: the same command with noisetun in place of the first wg word.
run_nt() {
	local args=() a replaced=0
	for a in "$@"; do
		if [ "$replaced" = 0 ] && [ "$a" = wg ]; then
			args+=("$NT")
			replaced=1
		else
			args+=("$a")
		fi
	done
	"${args[@]}"
}

start_wg noisetund "$NSA" "$IFA"
start_wg noisetund "$NSB" "$IFB"

# Test that genkey, genpsk and pubkey make keys wg agrees with, and warn as wg does.
k=$("$NT" genkey)
[ "$(echo "$k" | "$NT" pubkey)" = "$(echo "$k" | wg pubkey)" ] || fail "pubkey differs from wg pubkey"
[ "$("$NT" pubkey <"$(key_file a)")" = "$(key_pub a)" ] || fail "pubkey of key a"
psk=$("$NT" genpsk)
echo "$psk" | grep -Eq '^[A-Za-z0-9+/]{43}=$' || fail "genpsk: $psk"
[ "$(echo "$k" | wg pubkey)" != "$(echo "$psk" | wg pubkey)" ] || fail "genkey and genpsk gave the same key"
(umask 022; "$NT" genkey >"$NT_TMP/open.key" 2>"$NT_TMP/genkey.err")
grep -qx "Warning: writing to world accessible file." "$NT_TMP/genkey.err" || fail "genkey did not warn about a world-readable file"
(umask 077; "$NT" genkey >"$NT_TMP/closed.key" 2>"$NT_TMP/genkey.err")
[ ! -s "$NT_TMP/genkey.err" ] || fail "genkey warned about a 0600 file: $(cat "$NT_TMP/genkey.err")"
[ "$(stat -c %a "$NT_TMP/closed.key")" = 600 ] || fail "umask 077 key file is $(stat -c %a "$NT_TMP/closed.key")"
for bad in "abc" "$(cat "$(key_file a)")x"; do
	rc=0; echo "$bad" | "$NT" pubkey >/dev/null 2>&1 || rc=$?
	rw=0; echo "$bad" | wg pubkey >/dev/null 2>&1 || rw=$?
	[ "$rc" = "$rw" ] && [ "$rc" = 1 ] || fail "pubkey of a bad key: exit $rc, wg $rw"
done
log "genkey/genpsk/pubkey agree with wg"

# Test that setconf configures A from a file, and set configures B from arguments (keys
# from files, one through /dev/stdin).
cat >"$NT_TMP/a.conf" <<EOF
[Interface]
PrivateKey = $(cat "$(key_file a)")
ListenPort = 51820
FwMark = 0x1234

# C: never reached
[Peer]
PublicKey = $(key_pub c)
AllowedIPs = 10.0.3.0/24
Endpoint = 192.0.2.3:51820

[Peer]
PublicKey = $(key_pub b)
PresharedKey = $(cat "$NT_TMP/ab.psk")
AllowedIPs = 10.0.0.2/32 , fd00::2/128
Endpoint = 192.0.2.2:51821

[Peer]
PublicKey = $(key_pub d)
AllowedIPs = 10.0.4.0/24, fd00:4::/64
PersistentKeepalive = off
EOF
"$NT" setconf "$IFA" "$NT_TMP/a.conf" || fail "noisetun setconf"
"$NT" set "$IFB" private-key /dev/stdin listen-port 51821 peer "$(key_pub a)" preshared-key "$NT_TMP/ab.psk" \
	endpoint 192.0.2.1:51820 allowed-ips "10.0.0.1/32, fd00::1/128" persistent-keepalive 25 <"$(key_file b)" ||
	fail "noisetun set"
[ "$(wg show "$IFB" private-key)" = "$(cat "$(key_file b)")" ] || fail "private-key from /dev/stdin"
[ "$(wg show "$IFA" fwmark)" = 0x1234 ] || fail "fwmark: $(wg show "$IFA" fwmark)"
tun_up "$NSA" "$IFA" 10.0.0.1/24 fd00::1/64
tun_up "$NSB" "$IFB" 10.0.0.2/24 fd00::2/64
ping_ok "$NSA" 10.0.0.2
ping_ok "$NSB" fd00::1
assert_handshake "$NSA" "$IFA" "$(key_pub b)"

# Test that show, every field, dump and showconf match wg byte for byte after a handshake.
for ifc in "$IFA" "$IFB" all; do
	same "show $ifc" wg show "$ifc"
	for f in public-key private-key listen-port fwmark peers preshared-keys endpoints allowed-ips \
		latest-handshakes persistent-keepalive transfer dump; do
		same "show $ifc $f" wg show "$ifc" "$f"
	done
done
same "show" wg
same "show interfaces" wg show interfaces
same "showconf $IFA" wg showconf "$IFA"
same "showconf $IFB" wg showconf "$IFB"
same "coloured show" env WG_COLOR_MODE=always wg show "$IFA"
same "unhidden keys" env WG_HIDE_KEYS=never wg show "$IFA"
same "show of a missing interface (exit code)" wg show "$(if_name x)"
same "showconf of a missing interface (exit code)" wg showconf "$(if_name x)"
same "unknown field (exit code)" wg show "$IFA" bogus
# B shook hands last: wg's human order puts it first although the daemon lists C first.
[ "$("$NT" show "$IFA" peers | head -n 1)" = "$(key_pub c)" ] || fail "daemon order changed: C is not first"
[ "$("$NT" show "$IFA" | grep -m 1 '^peer:')" = "peer: $(key_pub b)" ] || fail "human show does not list B first"
log "show, fields, dump, showconf: identical to wg"

# Test human-readable times, sizes, orders and corner cases on fake daemons.
cat >"$NT_TMP/fake.py" <<'EOF'
# fake.py SOCKET REPLY LOG: answer get=1 with REPLY ("@N" values: now + N), log set=1.
import os, socket, sys, time
path, reply_path, log_path = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(16)
while True:
    c, _ = s.accept()
    buf = b''
    with c:
        while True:
            d = c.recv(65536)
            if not d:
                break
            buf += d
            while b'\n\n' in buf:
                req, buf = buf.split(b'\n\n', 1)
                # noisetun asks get=1 + noisetun=1 (names): answered as noisetund does
                if req in (b'get=1', b'get=1\nnoisetun=1'):
                    now = int(time.time())
                    out = []
                    for line in open(reply_path).read().splitlines():
                        k, _, v = line.partition('=')
                        if v.startswith('@'):
                            v = str(now + int(v[1:]))
                        out.append(k + '=' + v)
                    c.sendall(('\n'.join(out + ['errno=0']) + '\n\n').encode())
                elif req.startswith(b'set=1'):
                    with open(log_path, 'ab') as f:
                        f.write(req + b'\n\n')
                    c.sendall(b'errno=0\n\n')
EOF
kh() { python3 -c 'import base64,sys; print(base64.b64decode(sys.argv[1]).hex())' "$1"; }
PK=()
for i in 1 2 3 4 5 6; do PK+=("$(wg genkey | wg pubkey)"); done
cat >"$NT_TMP/f.reply" <<EOF
private_key=$(kh "$(cat "$(key_file a)")")
listen_port=51820
fwmark=51820
public_key=$(kh "${PK[0]}")
preshared_key=$(kh "$(cat "$NT_TMP/ab.psk")")
protocol_version=1
endpoint=[2001:db8::1]:51820
last_handshake_time_sec=@-63
last_handshake_time_nsec=5
tx_bytes=1263
rx_bytes=5000000
persistent_keepalive_interval=3725
allowed_ip=10.0.0.2/32
allowed_ip=fd00::2/128
public_key=$(kh "${PK[1]}")
preshared_key=0000000000000000000000000000000000000000000000000000000000000000
endpoint=192.0.2.7:1
last_handshake_time_sec=@-34571001
last_handshake_time_nsec=0
tx_bytes=3298534883328
rx_bytes=5368709120
persistent_keepalive_interval=0
public_key=$(kh "${PK[2]}")
last_handshake_time_sec=0
last_handshake_time_nsec=0
tx_bytes=0
rx_bytes=0
persistent_keepalive_interval=1
allowed_ip=0.0.0.0/0
allowed_ip=::/0
public_key=$(kh "${PK[3]}")
endpoint=[fe80::1%1]:5
last_handshake_time_sec=@0
last_handshake_time_nsec=0
tx_bytes=1023
rx_bytes=1024
persistent_keepalive_interval=65535
allowed_ip=192.168.0.0/16
public_key=$(kh "${PK[4]}")
last_handshake_time_sec=@100
last_handshake_time_nsec=0
tx_bytes=0
rx_bytes=1
public_key=$(kh "${PK[5]}")
last_handshake_time_sec=@-63
last_handshake_time_nsec=999
unknown_future_key=1
EOF
: >"$NT_TMP/g.reply"
python3 "$NT_TMP/fake.py" "$NT_SOCK_DIR/$IFF.sock" "$NT_TMP/f.reply" "$NT_TMP/f.log" &
NT_PIDS+=("$!")
python3 "$NT_TMP/fake.py" "$NT_SOCK_DIR/$IFG.sock" "$NT_TMP/g.reply" "$NT_TMP/g.log" &
NT_PIDS+=("$!")
NT_IFACES+=("$IFF" "$IFG")
wait_for 5 "fake sockets" test -S "$NT_SOCK_DIR/$IFF.sock" -a -S "$NT_SOCK_DIR/$IFG.sock"
out=$("$NT" show "$IFF")
# (the fake's clock and the CLI's may be a second apart: time() is the coarse clock, a tick
# behind the one Python reads, so a reply made just after a second turns can be read as 62 s)
echo "$out" | grep -Eqx "  latest handshake: 1 minute, [234] seconds ago" || fail "no '1 minute, 3 seconds ago' in: $out"
echo "$out" | grep -qx "  transfer: 4.77 MiB received, 1.23 KiB sent" || fail "transfer line: $out"
echo "$out" | grep -Eqx "  latest handshake: 1 year, 35 days, 3 hours, 3 minutes, 2[012] seconds ago" || fail "year-old handshake: $out"
echo "$out" | grep -qx "  persistent keepalive: every 1 hour, 2 minutes, 5 seconds" || fail "keepalive line: $out"
for ifc in "$IFF" "$IFG" all; do
	same "fake show $ifc" wg show "$ifc"
	for f in public-key private-key listen-port fwmark peers preshared-keys endpoints allowed-ips \
		latest-handshakes persistent-keepalive transfer dump; do
		same "fake show $ifc $f" wg show "$ifc" "$f"
	done
done
same "fake show, colour" env WG_COLOR_MODE=always wg show all
same "fake showconf" wg showconf "$IFF"
same "fake showconf, empty" wg showconf "$IFG"
log "human times, sizes and order on the fake daemons: identical to wg"

# Test that set, setconf and addconf send exactly wg's requests (fake daemon log).
cat >"$NT_TMP/req.conf" <<EOF
[Interface]
ListenPort = 1234
[Peer]
PublicKey = ${PK[0]}
PresharedKey = $(cat "$NT_TMP/ab.psk")
AllowedIPs = 10.0.0.0/8, fd00::/8
Endpoint = [2001:db8::5]:443
PersistentKeepalive = 15
[Peer]
PublicKey = ${PK[1]}
Endpoint = localhost:9
EOF
: >"$NT_TMP/empty.key"
requests() {
	local tool=$1
	: >"$NT_TMP/g.log"
	"$tool" set "$IFG" listen-port 0 fwmark 0x10 private-key "$(key_file a)"
	"$tool" set "$IFG" fwmark off peer "${PK[0]}" remove peer "${PK[1]}" endpoint 192.0.2.9:7 \
		allowed-ips "10.1.0.0/16,fd00:1::/48" persistent-keepalive off preshared-key "$NT_TMP/empty.key"
	"$tool" set "$IFG" peer "${PK[2]}" allowed-ips "" endpoint "[::1]:51820" persistent-keepalive 0 \
		peer "${PK[3]}" preshared-key /dev/stdin <"$NT_TMP/ab.psk"
	"$tool" setconf "$IFG" "$NT_TMP/req.conf"
	"$tool" addconf "$IFG" "$NT_TMP/req.conf"
	cat "$NT_TMP/g.log"
}
[ "$(requests wg)" = "$(requests "$NT")" ] || {
	diff <(requests wg) <(requests "$NT") | head -n 20
	fail "set/setconf/addconf requests differ from wg's"
}
for args in "" "listen-port" "listen-port x" "fwmark 0X10" "peer" "peer abc" "bogus" "peer ${PK[0]} update-only" \
	"peer ${PK[0]} endpoint 1.2.3.4" "peer ${PK[0]} allowed-ips 1.2.3.4/33" "peer ${PK[0]} persistent-keepalive x" \
	"private-key /nonexistent" "peer ${PK[0]} remove listen-port 1"; do
	# shellcheck disable=SC2086
	same "set $args (exit code)" wg set "$IFG" $args
done
log "set, setconf, addconf: the same requests and exit codes as wg"

# Test that syncconf removes C, changes D, adds E, and leaves B's session alone: same
# handshake time on both sides, traffic flows on, no handshake logged.
sleep 1.1 # a new handshake would now show a later second
hs_a=$(handshake_time "$NSA" "$IFA" "$(key_pub b)")
hs_b=$(handshake_time "$NSB" "$IFB" "$(key_pub a)")
logged=$(grep -ci handshake "$NT_TMP/$IFA.log" || true)
sed -e "/^# C/,/^$/d" -e "s|10.0.4.0/24, fd00:4::/64|10.0.5.0/24|" "$NT_TMP/a.conf" >"$NT_TMP/a2.conf"
cat >>"$NT_TMP/a2.conf" <<EOF

[Peer]
PublicKey = $(key_pub e)
AllowedIPs = 10.0.6.0/24
EOF
grep -q "$(key_pub c)" "$NT_TMP/a2.conf" && fail "a2.conf still has C"
"$NT" syncconf "$IFA" "$NT_TMP/a2.conf" || fail "noisetun syncconf"
want=$(printf '%s\n' "$(key_pub b)" "$(key_pub d)" "$(key_pub e)" | sort)
[ "$(wg show "$IFA" peers | sort)" = "$want" ] || fail "peers after syncconf: $(wg show "$IFA" peers)"
[ "$(wg show "$IFA" allowed-ips | grep "$(key_pub d)" | cut -f 2)" = 10.0.5.0/24 ] || fail "D's allowed IPs not changed"
[ "$(wg show "$IFA" private-key)" = "$(cat "$(key_file a)")" ] || fail "private key lost"
[ "$(wg show "$IFA" listen-port)" = 51820 ] || fail "listen port lost"
ping_ok "$NSA" 10.0.0.2
ping_ok "$NSB" 10.0.0.1
[ "$(handshake_time "$NSA" "$IFA" "$(key_pub b)")" = "$hs_a" ] || fail "syncconf made A shake hands with B again"
[ "$(handshake_time "$NSB" "$IFB" "$(key_pub a)")" = "$hs_b" ] || fail "syncconf made B shake hands with A again"
[ "$(grep -ci handshake "$NT_TMP/$IFA.log" || true)" = "$logged" ] || fail "a handshake was logged after syncconf"
log "syncconf: C removed, D changed, E added, B's session kept (handshake $hs_a)"

# Test that show --json parses and carries the fields, and never a private or preshared key.
"$NT" show "$IFA" --json >"$NT_TMP/a.json" || fail "show --json"
"$NT" show --json >"$NT_TMP/all.json" || fail "show --json (all)"
python3 - "$NT_TMP/a.json" "$NT_TMP/all.json" "$IFA" "$IFB" "$(key_pub a)" "$(key_pub b)" \
	"$(wg show "$IFA" latest-handshakes | grep "$(key_pub b)" | cut -f 2)" <<'EOF' || fail "show --json content"
import json, sys
one, every, ifa, ifb, pub_a, pub_b, hs = sys.argv[1:]
d = json.load(open(one))
assert d["interface"] == ifa and d["public_key"] == pub_a, d
assert d["listen_port"] == 51820 and d["fwmark"] == 0x1234, d
peers = {p["public_key"]: p for p in d["peers"]}
b = peers[pub_b]
assert set(b) == {"public_key", "name", "endpoint", "allowed_ips", "latest_handshake", "rx_bytes", "tx_bytes",
                  "persistent_keepalive"}, b
assert b["name"] is None, b  # named peers: tests/net/names.sh
assert b["endpoint"] == "192.0.2.2:51821" and b["allowed_ips"] == ["10.0.0.2/32", "fd00::2/128"], b
assert b["latest_handshake"] == int(hs) and b["rx_bytes"] > 0 and b["tx_bytes"] > 0, b
assert b["persistent_keepalive"] == 0, b
assert all(p["endpoint"] is None for k, p in peers.items() if k != pub_b), peers
names = [i["interface"] for i in json.load(open(every))]
assert ifa in names and ifb in names, names
EOF
for secret in "$(cat "$(key_file a)")" "$(cat "$NT_TMP/ab.psk")"; do
	grep -qF "$secret" "$NT_TMP/a.json" "$NT_TMP/all.json" && fail "a secret key is in the JSON"
done
log "show --json: fields present, no secrets"

# Test that a bad config names file, line and reason, exits 1 and changes nothing.
before=$(wg showconf "$IFA")
cat >"$NT_TMP/bad.conf" <<EOF
[Interface]
ListenPort = 4444

[Peer]
PublicKey = $(key_pub c)
# a comment
AllowedIPs = 10.0.0.300/32
EOF
rc=0; err=$(cd "$NT_TMP" && "$NT" setconf "$IFA" bad.conf 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "setconf of a bad config exited $rc"
[ "$err" = 'bad.conf:7: AllowedIPs: "10.0.0.300/32" is not an IP prefix' ] || fail "bad config message: $err"
rc=0; (cd "$NT_TMP" && "$NT" syncconf "$IFA" bad.conf) 2>/dev/null || rc=$?
[ "$rc" = 1 ] || fail "syncconf of a bad config exited $rc"
printf '[Interface]\nListenPort = 4444\nAddress = 10.9.9.9/24\n' >"$NT_TMP/quick.conf"
rc=0; err=$(cd "$NT_TMP" && "$NT" addconf "$IFA" quick.conf 2>&1) || rc=$?
[ "$rc" = 1 ] && [ "$err" = 'quick.conf:3: Address: a wg-quick key, not accepted here (remove it, or use "noisetun strip")' ] ||
	fail "addconf with a wg-quick key: exit $rc: $err"
[ "$(wg showconf "$IFA")" = "$before" ] || fail "a bad config changed the interface"
cp "$NT_TMP/bad.conf" "$NT_TMP/$IFU.conf"
rc=0; err=$(cd "$NT_TMP" && ip netns exec "$NSA" "$NT" up "./$IFU.conf" 2>&1) || rc=$?
[ "$rc" = 1 ] && [ "$err" = "./$IFU.conf:7: AllowedIPs: \"10.0.0.300/32\" is not an IP prefix" ] ||
	fail "up with a bad config: exit $rc: $err"
[ ! -e "$NT_SOCK_DIR/$IFU.sock" ] && ! ip -n "$NSA" link show "$IFU" >/dev/null 2>&1 || fail "up with a bad config left $IFU"
log "bad configs: file:line: reason, exit 1, nothing changed"

# Test that strip prints what wg-quick strip prints, world-accessible warning included.
mkdir -m 755 "$NT_TMP/pub"
cat >"$NT_TMP/pub/$IFU.conf" <<EOF
# road warrior
  [Interface]
PrivateKey = $(cat "$(key_file d)")
Address = 10.8.0.2/32, fd00:8::2/128
DNS = 192.0.2.53, example.com
ListenPort = 51999
MTU = 1380
Table = off
PreUp = echo pre %i
PostUp = echo 'a # b' = c
SaveConfig = false

[Peer]
PublicKey = $(key_pub a)
AllowedIPs = 0.0.0.0/0,::/0
Endpoint = 192.0.2.1:51820
EOF
printf 'PersistentKeepalive = 25' >>"$NT_TMP/pub/$IFU.conf"
chmod 644 "$NT_TMP/pub/$IFU.conf"
wg-quick strip "$NT_TMP/pub/$IFU.conf" >"$NT_TMP/strip.wg" 2>"$NT_TMP/strip.wg.err"
"$NT" strip "$NT_TMP/pub/$IFU.conf" >"$NT_TMP/strip.nt" 2>"$NT_TMP/strip.nt.err" || fail "noisetun strip"
cmp -s "$NT_TMP/strip.wg" "$NT_TMP/strip.nt" || { diff "$NT_TMP/strip.wg" "$NT_TMP/strip.nt"; fail "strip differs from wg-quick strip"; }
cmp -s "$NT_TMP/strip.wg.err" "$NT_TMP/strip.nt.err" || fail "strip warning: $(cat "$NT_TMP/strip.nt.err") vs $(cat "$NT_TMP/strip.wg.err")"
grep -q "is world accessible" "$NT_TMP/strip.nt.err" || fail "no world-accessible warning"
log "strip: identical to wg-quick strip"

# Test that save writes the running config back behind the file's wg-quick keys, 0600.
cat >"$NT_TMP/$IFA.conf" <<EOF
[Interface]
Address = 10.0.0.1/24, fd00::1/64
DNS = 192.0.2.53, example.com
MTU = 1420
Table = off
SaveConfig = true
PreUp = echo 'pre # up'
PostDown = echo down
PrivateKey = $(cat "$(key_file b)")
EOF
"$NT" save "$NT_TMP/$IFA.conf" || fail "noisetun save"
{
	printf '[Interface]\nAddress = 10.0.0.1/24\nAddress = fd00::1/64\nDNS = 192.0.2.53\nDNS = example.com\n'
	printf "MTU = 1420\nTable = off\nSaveConfig = true\nPreUp = echo 'pre # up'\nPostDown = echo down\n"
	printf '%s\n' "$(wg showconf "$IFA" | tail -n +2)"
} >"$NT_TMP/save.want"
cmp -s "$NT_TMP/save.want" "$NT_TMP/$IFA.conf" || { diff "$NT_TMP/save.want" "$NT_TMP/$IFA.conf"; fail "saved config"; }
[ "$(stat -c %a "$NT_TMP/$IFA.conf")" = 600 ] || fail "saved config mode $(stat -c %a "$NT_TMP/$IFA.conf")"
log "save: running config behind the wg-quick keys, mode 600"

# Test that down stops a daemon by its socket (SO_PEERCRED) and waits until it is gone.
start_wg noisetund "$NSA" "$IFD"
pid=$(daemon_pid "$IFD")
"$NT" down "$IFD" || fail "noisetun down $IFD"
[ ! -e "$NT_SOCK_DIR/$IFD.sock" ] || fail "socket of $IFD still there after down"
wait_for 2 "pid $pid to exit" sh -c "! kill -0 $pid 2>/dev/null || grep -q '^State:.*Z' /proc/$pid/status"
rc=0; err=$("$NT" down "$IFD" 2>&1) || rc=$?
[ "$rc" = 1 ] && [ "$err" = "noisetun: \`$IFD' is not a WireGuard interface" ] || fail "second down: exit $rc: $err"
log "down: daemon $pid stopped, socket gone"

# Test the round trip showconf -> setconf: the same configuration comes back.
"$NT" showconf "$IFA" >"$NT_TMP/rt.conf"
"$NT" setconf "$IFA" "$NT_TMP/rt.conf" || fail "setconf of showconf's output"
[ "$(wg showconf "$IFA")" = "$(cat "$NT_TMP/rt.conf")" ] || fail "showconf -> setconf did not round-trip"
log "showconf -> setconf: round trip"

# Test that a NAME is /etc/noisetun/NAME.conf, else /etc/wireguard/NAME.conf. /etc gets an
# overlay in this mount namespace, so the real one is not touched.
UP_ARG=$NT_TMP/$IFU.conf
(umask 077; sed -e '/^Table/d' -e '/^DNS/d' -e 's|^AllowedIPs = 0.0.0.0/0,::/0|AllowedIPs = 10.0.0.1/32|' \
	"$NT_TMP/pub/$IFU.conf" >"$NT_TMP/$IFU.conf")
mkdir -p "$NT_TMP/etc.upper" "$NT_TMP/etc.work"
if mount -t overlay nt-cli-etc -o "lowerdir=/etc,upperdir=$NT_TMP/etc.upper,workdir=$NT_TMP/etc.work" /etc 2>/dev/null; then
	mkdir -p /etc/wireguard /etc/noisetun
	rm -f "/etc/noisetun/$IFU.conf"
	(umask 077; sed 's/^ListenPort = .*/ListenPort = 51998/' "$NT_TMP/$IFU.conf" >"/etc/wireguard/$IFU.conf")
	"$NT" strip "$IFU" | grep -qx "ListenPort = 51998" || fail "strip NAME did not read /etc/wireguard/NAME.conf"
	(umask 077; cp "$NT_TMP/$IFU.conf" "/etc/noisetun/$IFU.conf")
	"$NT" strip "$IFU" | grep -qx "ListenPort = 51999" || fail "strip NAME did not prefer /etc/noisetun/NAME.conf"
	rc=0; err=$("$NT" strip "$(if_name x)" 2>&1) || rc=$?
	[ "$rc" = 1 ] || fail "strip of a missing NAME exited $rc: $err"
	UP_ARG=$IFU
	log "NAME: /etc/noisetun first, then /etc/wireguard"
else
	log "no overlay mount for /etc: NAME lookup not tested, up/down use a path"
fi

# Test up/down of a wg-quick config (the daemon's config mode does the work).
if "$BUILD/noisetund" --help 2>&1 | grep -q -- '--config'; then
	NT_IFACES+=("$IFU")
	# The daemon keeps the launcher's stderr open: a file, not a pipe that would never close.
	rc=0; ip netns exec "$NSA" "$NT" up "$UP_ARG" >"$NT_TMP/up.log" 2>&1 </dev/null || rc=$?
	[ "$rc" = 0 ] || fail "up $UP_ARG: exit $rc: $(cat "$NT_TMP/up.log")"
	ip -n "$NSA" -brief address show dev "$IFU" | grep -q 10.8.0.2/32 || fail "up: no address on $IFU"
	[ "$("$NT" show "$IFU" listen-port)" = 51999 ] || fail "up: listen port"
	rc=0; err=$(ip netns exec "$NSA" "$NT" up "$UP_ARG" 2>&1) || rc=$?
	[ "$rc" = 1 ] && [ "$err" = "noisetun: \`$IFU' already exists" ] || fail "second up: exit $rc: $err"
	"$NT" down "$UP_ARG" || fail "down $UP_ARG"
	wait_for 5 "$IFU to go" sh -c "! ip -n '$NSA' link show '$IFU'"
	log "up/down $UP_ARG: $IFU came up with its address and went away"
else
	log "noisetund has no config mode yet: up/down cycle not tested"
fi

log "cli: all passed"
