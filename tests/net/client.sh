#!/bin/bash
# noisetun client add|list|remove: road-warrior clients provisioned on a running server,
# then connected with the stock wg-quick and wireguard-go from the config add printed.
#
#   ns S: noisetun up S.conf (noisetund -c)   10.0.0.1/24 fd00::1/64  eth0 192.0.2.1 :51820
#   ns E: noisetund, the existing peer         10.0.0.2               eth0 192.0.2.2
#   ns C1: wg-quick + wireguard-go, alice's printed config            eth0 192.0.2.3
#   ns C2: wg-quick + wireguard-go, bob's (--full-tunnel --dns)       eth0 192.0.2.4
#   (one bridge between them)
#
# Six `client add` run at once must take six distinct addresses (the flock); the daemon
# gets each new peer live while E's session (its handshake time) stays as it was; the PNG
# decodes with zbarimg to the printed config; list names them; remove takes a peer out of
# the file and the daemon; every other line of the file is kept byte for byte, mode 0600.
set -eu
# shellcheck source=tests/net/lib.sh
. "$(dirname "$0")/lib.sh"
nt_init client
need_impl noisetund
NT=$BUILD/noisetun
[ -x "$NT" ] || skip "noisetun not built ($NT missing)"
for t in wg-quick wireguard-go zbarimg nft; do
	command -v "$t" >/dev/null || skip "$t is not installed"
done

NSS=$(ns_name s) NSE=$(ns_name e) NSC1=$(ns_name c1) NSC2=$(ns_name c2)
IFS_=$(if_name s) IFE=$(if_name e) IFC1=$(if_name 1) IFC2=$(if_name 2)
for ns in "$NSS" "$NSE" "$NSC1" "$NSC2"; do ns_create "$ns"; done
lan_create "$NSS" "$NSE" "$NSC1" "$NSC2"
key_new s
key_new e

# The stock wg-quick, made to take the userspace path even where the kernel module is
# loaded (as tests/net/wg-quick.sh does), and a stand-in resolvconf that records DNS.
WG_QUICK=$(command -v wg-quick)
mkdir "$NT_TMP/bin"
if ip -n "$NSC1" link add "$IFC1" type wireguard 2>/dev/null; then
	ip -n "$NSC1" link del "$IFC1" 2>/dev/null || true
	sed 's|\[\[ -e /sys/module/wireguard \]\] \|\| ||' "$WG_QUICK" >"$NT_TMP/bin/wg-quick"
	grep -q '/sys/module/wireguard' "$NT_TMP/bin/wg-quick" && fail "could not patch wg-quick"
	chmod 755 "$NT_TMP/bin/wg-quick"
	real_ip=$(command -v ip)
	cat >"$NT_TMP/bin/ip" <<EOF
#!/bin/sh
[ "\$1 \$2 \$4 \$5" = "link add type wireguard" ] && { echo "test shim: no kernel wireguard" >&2; exit 2; }
exec $real_ip "\$@"
EOF
	chmod 755 "$NT_TMP/bin/ip"
	WG_QUICK=$NT_TMP/bin/wg-quick
fi
cat >"$NT_TMP/bin/resolvconf" <<EOF
#!/bin/sh
{ echo "resolvconf \$*"; [ "\$1" = -a ] && sed 's/^/  /'; } >>"$NT_TMP/resolvconf.log"
EOF
chmod 755 "$NT_TMP/bin/resolvconf"

# The server's file: comments everywhere, which must survive every change byte for byte.
CONF=$NT_TMP/$IFS_.conf
(umask 077; cat >"$CONF" <<EOF
# road-warrior server; edited by hand   (keep this line)
[Interface]   # the server
PrivateKey = $(cat "$(key_file s)")
ListenPort = 51820
Address = 10.0.0.1/24, fd00::1/64
	# a tab-indented comment, trailing blanks   

[Peer]
# friendly_name = existing
PublicKey = $(key_pub e)
AllowedIPs = 10.0.0.2/32, fd00::2/128   # E's addresses
EOF
)
cp -p "$CONF" "$NT_TMP/orig.conf"
mode_is_0600() { [ "$(stat -c %a "$CONF")" = 600 ] || fail "$CONF has mode $(stat -c %a "$CONF"), not 600"; }

# Test that without an endpoint (none recorded, no --endpoint) add refuses, changing nothing.
if "$NT" client add "$CONF" nobody >"$NT_TMP/nobody.out" 2>"$NT_TMP/nobody.err"; then
	fail "client add without an endpoint succeeded"
fi
grep -q 'no endpoint for clients' "$NT_TMP/nobody.err" || fail "unclear error: $(cat "$NT_TMP/nobody.err")"
[ ! -s "$NT_TMP/nobody.out" ] || fail "client add without an endpoint printed a config"
cmp -s "$CONF" "$NT_TMP/orig.conf" || fail "a failed add changed the file"
# ... and that a bad name is refused.
"$NT" client add "$CONF" "$(printf 'a\nb')" --endpoint 192.0.2.1:51820 >/dev/null 2>&1 && fail "a name with a newline was accepted"
cmp -s "$CONF" "$NT_TMP/orig.conf" || fail "a refused name changed the file"

# The server, brought up as a user would (noisetun up execs noisetund -c in config mode).
NT_IFACES+=("$IFS_")
LOG_LEVEL=verbose ip netns exec "$NSS" "$NT" up "$CONF" >>"$NT_TMP/$IFS_.log" 2>&1 </dev/null ||
	fail "noisetun up $CONF failed"
SPID=$(_find_daemon "$IFS_" noisetund) || fail "no daemon for $IFS_"
NT_PIDS+=("$SPID")
echo "$SPID" >"$NT_TMP/$IFS_.pid"
log "server up: noisetund pid $SPID"

# The existing peer E, with a session before any client is added.
start_wg noisetund "$NSE" "$IFE"
wgn "$NSE" set "$IFE" private-key "$(key_file e)" peer "$(key_pub s)" endpoint 192.0.2.1:51820 \
	allowed-ips 10.0.0.0/24,fd00::/64
tun_up "$NSE" "$IFE" 10.0.0.2/24 fd00::2/64
ping_ok "$NSE" 10.0.0.1
assert_handshake "$NSS" "$IFS_" "$(key_pub e)"
E_HS=$(handshake_time "$NSS" "$IFS_" "$(key_pub e)")
sleep 1.1 # a new handshake of E would now show another second

# Test that six concurrent adds take six distinct addresses (and the endpoint is recorded
# once): the flock serialises them. alice and bob are the two real clients.
t0=$(date +%s%N)
pids=()
for n in alice bob carol dave erin frank; do
	extra=()
	case $n in
	alice) extra=(--qr "$NT_TMP/alice.png");;
	bob) extra=(--full-tunnel --dns 10.0.0.1);;
	esac
	"$NT" client add "$CONF" "$n" --endpoint 192.0.2.1:51820 "${extra[@]}" \
		>"$NT_TMP/$n.client" 2>"$NT_TMP/$n.err" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a concurrent client add failed: $(cat "$NT_TMP"/*.err)"; done
log "6 concurrent client add: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
addrs=$(grep -h '^Address = ' "$NT_TMP"/{alice,bob,carol,dave,erin,frank}.client | sort)
[ "$(echo "$addrs" | wc -l)" = 6 ] || fail "not six client configs: $addrs"
[ "$(echo "$addrs" | sort -u | wc -l)" = 6 ] || fail "concurrent adds took the same address: $addrs"
v4s=$(echo "$addrs" | sed 's/^Address = \([0-9.]*\)\/32, .*/\1/' | sort -t. -k4n | tr '\n' ' ')
[ "$v4s" = "10.0.0.3 10.0.0.4 10.0.0.5 10.0.0.6 10.0.0.7 10.0.0.8 " ] || fail "unexpected addresses: $v4s"
echo "$addrs" | grep -qv 'fd00::[3-8]/128$' && fail "IPv6 addresses not the next free ones: $addrs"
log "addresses: $v4s(and fd00::3-8)"
[ "$(grep -c '^# noisetun-endpoint = 192.0.2.1:51820$' "$CONF")" = 1 ] || fail "endpoint not recorded exactly once"
mode_is_0600

# Test that the printed config is complete and the private key stays out of the server file.
A=$NT_TMP/alice.client
for k in '^\[Interface\]$' '^PrivateKey = ' '^\[Peer\]$' "^PublicKey = $(key_pub s)\$" '^PresharedKey = ' \
	'^Endpoint = 192.0.2.1:51820$' '^AllowedIPs = 10.0.0.0/24, fd00::/64$' '^PersistentKeepalive = 25$'; do
	grep -q "$k" "$A" || fail "alice's config lacks $k: $(sed 's/PrivateKey = .*/PrivateKey = (hidden)/' "$A")"
done
grep -q '^AllowedIPs = 0.0.0.0/0, ::/0$' "$NT_TMP/bob.client" || fail "--full-tunnel not in bob's config"
grep -q '^DNS = 10.0.0.1$' "$NT_TMP/bob.client" || fail "--dns not in bob's config"
for n in alice bob carol dave erin frank; do
	priv=$(sed -n 's/^PrivateKey = //p' "$NT_TMP/$n.client")
	! grep -qF "$priv" "$CONF" || fail "$n's private key is in the server file"
	pub=$(echo "$priv" | wg pubkey)
	psk=$(sed -n 's/^PresharedKey = //p' "$NT_TMP/$n.client")
	grep -qx "PublicKey = $pub" "$CONF" || fail "$n's public key is not in the server file"
	grep -qx "PresharedKey = $psk" "$CONF" || fail "$n's PSK is not in the server file"
	grep -qx "# friendly_name = $n" "$CONF" || fail "$n's name is not in the server file"
	eval "PUB_$n=\$pub"
done

# Test that the running daemon got every new peer live, with its PSK and address...
for n in alice bob carol dave erin frank; do
	eval "pub=\$PUB_$n"
	wgn "$NSS" show "$IFS_" allowed-ips | grep -q "^$pub	" || fail "the daemon does not have $n"
	WG_COLOR_MODE=never "$NT" show "$IFS_" | grep -qxF "peer: $pub ($n)" || fail "the daemon does not have $n's name"
done
[ "$(wgn "$NSS" show "$IFS_" peers | wc -l)" = 7 ] || fail "the daemon has $(wgn "$NSS" show "$IFS_" peers | wc -l) peers, not 7"
# ... while E's session went on untouched (same handshake, and traffic without a new one).
[ "$(handshake_time "$NSS" "$IFS_" "$(key_pub e)")" = "$E_HS" ] ||
	fail "E's handshake changed from $E_HS to $(handshake_time "$NSS" "$IFS_" "$(key_pub e)"): its session was touched"
ping_ok "$NSE" 10.0.0.1
[ "$(handshake_time "$NSS" "$IFS_" "$(key_pub e)")" = "$E_HS" ] || fail "E needed a new handshake after the adds"
log "E's session untouched: handshake still $E_HS"

# Test that the PNG decodes to exactly the printed config (zbarimg adds one newline).
zbarimg --raw -q -Sdisable -Sqrcode.enable "$NT_TMP/alice.png" 2>/dev/null >"$NT_TMP/alice.decoded" || fail "zbarimg could not decode alice.png"
{ cat "$A"; echo; } | cmp -s - "$NT_TMP/alice.decoded" || fail "the QR code does not decode to the printed config"
[ "$(stat -c %a "$NT_TMP/alice.png")" = 600 ] || fail "the PNG (it holds a private key) is not 0600"
log "alice.png ($(stat -c %s "$NT_TMP/alice.png") bytes) decodes to the printed config"

# Test that on a terminal the config is followed by a QR code in UTF-8 half blocks that
# decodes to it (drawn as an image here, white for the light modules). On a copy of the
# file: no daemon serves its name.
if command -v script >/dev/null; then
	cp -p "$CONF" "$NT_TMP/qrcopy.conf"
	script -qc "'$NT' client add '$NT_TMP/qrcopy.conf' tty" /dev/null </dev/null 2>/dev/null | tr -d '\r' >"$NT_TMP/tty.out" ||
		fail "client add on a terminal failed"
	python3 - "$NT_TMP/tty.out" "$NT_TMP/tty.conf" "$NT_TMP/tty.pgm" <<'PY' || fail "no QR code on the terminal"
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
conf, sep, art = text.partition("\n\n\x1b[40;97m")
if not sep:
    sys.exit("no coloured block art after the config")
lines = [re.sub(r"\x1b\[[0-9;]*m", "", l) for l in ("\x1b[40;97m" + art).split("\n") if l.startswith("\x1b[40;97m")]
half = {" ": (0, 0), "\u2580": (1, 0), "\u2584": (0, 1), "\u2588": (1, 1)}
rows = []
for l in lines:
    cells = [half[c] for c in l]
    rows.append([c[0] for c in cells])
    rows.append([c[1] for c in cells])
s = 4
w, h = len(rows[0]) * s, len(rows) * s
with open(sys.argv[3], "wb") as f:
    f.write(b"P5 %d %d 255\n" % (w, h))
    for r in rows:
        line = bytes(255 if v else 0 for v in r for _ in range(s))
        f.write(line * s)
open(sys.argv[2], "w").write(conf + "\n")
PY
	zbarimg --raw -q -Sdisable -Sqrcode.enable "$NT_TMP/tty.pgm" 2>/dev/null >"$NT_TMP/tty.decoded" || fail "the terminal QR code does not decode"
	{ cat "$NT_TMP/tty.conf"; echo; } | cmp -s - "$NT_TMP/tty.decoded" || fail "the terminal QR code decodes to something else"
	grep -q '^PrivateKey = ' "$NT_TMP/tty.conf" || fail "no config before the terminal QR code"
	log "on a terminal: the config, then a QR code ($(grep -c $'\x1b\[40;97m' "$NT_TMP/tty.out") lines) that decodes to it"
else
	warn "no script(1): the terminal QR code is not checked"
fi

# Test that the printed configs work with the stock wg-quick and wireguard-go.
wq() {
	local ns=$1 ifc=$2
	shift 2
	timeout 30 ip netns exec "$ns" env WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go PATH="$NT_TMP/bin:$PATH" \
		"$WG_QUICK" "$@" >>"$NT_TMP/$ifc.log" 2>&1 </dev/null
}
client_up() {
	local ns=$1 ifc=$2 name=$3 pid
	NT_IFACES+=("$ifc")
	(umask 077; cp "$NT_TMP/$name.client" "$NT_TMP/$ifc.conf")
	wq "$ns" "$ifc" up "$NT_TMP/$ifc.conf" || { cat "$NT_TMP/$ifc.log"; fail "wg-quick up $name's config failed"; }
	pid=$(_find_daemon "$ifc" wireguard-go) || fail "no wireguard-go for $ifc"
	NT_PIDS+=("$pid")
}
client_up "$NSC1" "$IFC1" alice
client_up "$NSC2" "$IFC2" bob
ping_ok "$NSC1" 10.0.0.1
ping_ok "$NSC1" fd00::1
ping_ok "$NSC2" 10.0.0.1
ping_ok "$NSC2" fd00::1
ping_ok "$NSS" "$(sed -n 's/^Address = \([0-9.]*\)\/32.*/\1/p' "$A")"
grep -q "^resolvconf -a \(tun\.\)\?$IFC2 " "$NT_TMP/resolvconf.log" && grep -q 'nameserver 10.0.0.1' "$NT_TMP/resolvconf.log" ||
	fail "wg-quick did not set bob's DNS: $(cat "$NT_TMP/resolvconf.log" 2>/dev/null)"
assert_handshake "$NSS" "$IFS_" "$PUB_alice"
assert_handshake "$NSS" "$IFS_" "$PUB_bob"
[ "$(handshake_time "$NSS" "$IFS_" "$(key_pub e)")" = "$E_HS" ] || fail "E's session changed while clients joined"

# Test that list shows every name, address and key, and the handshakes of the running daemon.
"$NT" client list "$CONF" >"$NT_TMP/list" || fail "client list failed"
sed 's/^/    /' "$NT_TMP/list"
[ "$(wc -l <"$NT_TMP/list")" = 7 ] || fail "list has $(wc -l <"$NT_TMP/list") lines, not 7"
grep -q "^existing	10.0.0.2/32,fd00::2/128	$(key_pub e)	20[0-9-]*T[0-9:]*Z\$" "$NT_TMP/list" || fail "list: bad line for existing"
grep -q "^alice	10.0.0.[3-8]/32,fd00::[3-8]/128	$PUB_alice	20[0-9-]*T[0-9:]*Z\$" "$NT_TMP/list" || fail "list: bad line for alice"
grep -q "^carol	.*	$PUB_carol	never\$" "$NT_TMP/list" || fail "list: carol should have no handshake"

# Test that remove takes alice out of the file and the daemon: her session ends.
"$NT" client remove "$CONF" alice || fail "client remove alice failed"
! grep -q "$PUB_alice" "$CONF" || fail "alice is still in the file"
! grep -q 'friendly_name = alice' "$CONF" || fail "alice's name is still in the file"
! wgn "$NSS" show "$IFS_" peers | grep -q "$PUB_alice" || fail "alice is still in the daemon"
! ip netns exec "$NSC1" ping -n -q -c 2 -i 0.2 -w 2 10.0.0.1 >/dev/null 2>&1 || fail "alice still reaches the server"
log "alice removed: gone from file and daemon, her ping fails"
ping_ok "$NSC2" 10.0.0.1
[ "$(handshake_time "$NSS" "$IFS_" "$(key_pub e)")" = "$E_HS" ] || fail "E's session changed on remove"
"$NT" client remove "$CONF" alice 2>/dev/null && fail "removing alice twice succeeded"
mode_is_0600

# Test that a freed address is taken again, and that strip drops the noisetun-only comment.
"$NT" client add "$CONF" gina >"$NT_TMP/gina.client" 2>/dev/null || fail "add with the recorded endpoint failed"
grep -q '^Endpoint = 192.0.2.1:51820$' "$NT_TMP/gina.client" || fail "the recorded endpoint was not used"
grep -q "^Address = $(sed -n 's/^Address = //p' "$A")\$" "$NT_TMP/gina.client" || fail "alice's freed address was not reused"
"$NT" strip "$CONF" | grep -q noisetun-endpoint && fail "strip kept the noisetun-endpoint comment"
# The stock wg-quick reads the edited file: its strip differs from noisetun's only by the comment.
"$(command -v wg-quick)" strip "$CONF" >"$NT_TMP/wq.strip" 2>"$NT_TMP/wq.strip.err" || fail "wg-quick strip failed: $(cat "$NT_TMP/wq.strip.err")"
grep -v '^# noisetun-endpoint = ' "$NT_TMP/wq.strip" | cmp -s - <("$NT" strip "$CONF") ||
	{ diff "$NT_TMP/wq.strip" <("$NT" strip "$CONF"); fail "wg-quick strip and noisetun strip differ by more than the endpoint comment"; }

# Test that removing every added client leaves the original file byte for byte (but for the
# recorded endpoint line), mode 0600.
for n in bob carol dave erin frank gina; do
	"$NT" client remove "$CONF" "$n" 2>/dev/null || fail "client remove $n failed"
done
grep -v '^# noisetun-endpoint = ' "$CONF" | cmp -s - "$NT_TMP/orig.conf" ||
	{ diff "$NT_TMP/orig.conf" "$CONF"; fail "lines the client verbs did not own changed"; }
mode_is_0600
[ "$(wgn "$NSS" show "$IFS_" peers)" = "$(key_pub e)" ] || fail "the daemon has other peers than E left"
ping_ok "$NSE" 10.0.0.1
[ "$(handshake_time "$NSS" "$IFS_" "$(key_pub e)")" = "$E_HS" ] || fail "E's session changed"
ls -a "$NT_TMP" | grep -q "^\.$IFS_\.conf\." && fail "a temporary file was left beside the config"
# Test that CONFIG may be a NAME as `up` resolves it (/etc/noisetun/NAME.conf first), in a
# mount namespace of its own with an overlay on /etc, so the real one is not touched.
IFN=$(if_name n)
if command -v unshare >/dev/null && unshare -m --propagation private true 2>/dev/null; then
	mkdir -p "$NT_TMP/etc.upper" "$NT_TMP/etc.work"
	(umask 077; cp "$NT_TMP/orig.conf" "$NT_TMP/named.conf")
	rc=0
	NT="$NT" T="$NT_TMP" N="$IFN" unshare -m --propagation private bash -c '
		set -eu
		mount -t overlay nt-client-etc -o "lowerdir=/etc,upperdir=$T/etc.upper,workdir=$T/etc.work" /etc || exit 77
		mkdir -p /etc/noisetun /etc/wireguard
		cp -p "$T/named.conf" "/etc/noisetun/$N.conf"
		echo "[Interface]" >"/etc/wireguard/$N.conf"
		"$NT" client add "$N" zed --endpoint 192.0.2.1:51820 >"$T/zed.client" 2>/dev/null
		"$NT" client list "$N" >"$T/named.list"
		grep -qx "# friendly_name = zed" "/etc/noisetun/$N.conf"
		[ "$(stat -c %a "/etc/noisetun/$N.conf")" = 600 ]
		! grep -q zed "/etc/wireguard/$N.conf"' >"$NT_TMP/named.log" 2>&1 || rc=$?
	if [ "$rc" = 77 ]; then
		log "no overlay mount for /etc: client add NAME not tested"
	else
		[ "$rc" = 0 ] || fail "client add/list NAME (/etc/noisetun/NAME.conf) failed: $(cat "$NT_TMP/named.log")"
		grep -q "^zed	10.0.0.3/32,fd00::3/128	" "$NT_TMP/named.list" || fail "client list NAME: $(cat "$NT_TMP/named.list")"
		log "client add/list NAME: /etc/noisetun/NAME.conf"
	fi
else
	log "no unshare -m: client add NAME not tested"
fi
log "pass"
