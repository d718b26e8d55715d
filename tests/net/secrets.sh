#!/bin/bash
# Secrets stay secret: no private key, preshared key or session key reaches a daemon's log,
# `show` hides them unless asked for them by name (as wg's `show` and `showconf` do), and
# the daemon's memory is closed to other processes (PR_SET_DUMPABLE 0).
#
#   ns A                                        ns B
#   +--------------------------+   veth   +--------------------------+
#   | noisetund ntse<id>a      |          | noisetund ntse<id>b      |
#   |   10.0.0.1/24 fd00::1/64 |          |   10.0.0.2/24 fd00::2/64 |
#   | eth0 192.0.2.1    :51820 |----------| eth0 192.0.2.2    :51821 |
#   +--------------------------+          +--------------------------+
#
# Both daemons run with LOG_LEVEL=verbose, stderr into $NT_TMP/IFACE.log (start_wg). Every
# key is handed to them: A's first and second private key (a rotation), B's, and two
# preshared keys, over `wg setconf`, `wg set` and raw control requests, good and bad.
# Then the logs are searched for each secret as base64, as hex (what `wg` sends on the
# control socket), as raw bytes, and for any 12-character base64 / 16-digit hex piece of
# one; and for any key-shaped string at all (session keys cannot be named from here): a
# run of >= 32 hex digits, or a 44-character base64 key that is not a known public key.
# A key planted in a copy of a log must be found, so the search itself is tested.
# Dumpability is seen from outside: see "Test that every daemon process is non-dumpable".
# Works with a single-process daemon and with a split one (root monitor + worker): every
# process of the daemon is checked. A sanitizer build keeps its worker dumpable on purpose
# (LeakSanitizer ptraces it): a warning there, a failure in a release build.
set -eu
# shellcheck source=tests/net/lib.sh
. "$(dirname "$0")/lib.sh"
nt_init secrets
need_impl noisetund
command -v setpriv >/dev/null || skip "setpriv is not installed"
unset WG_HIDE_KEYS

NSA=$(ns_name a) NSB=$(ns_name b)
IFA=$(if_name a) IFB=$(if_name b)
ns_create "$NSA"
ns_create "$NSB"
link_pair "$NSA" 1 "$NSB" 2

key_new a
key_new a2
key_new b
psk_new p1
psk_new p2
# The daemons start without CAP_SYS_PTRACE in their bounding set, so that whether they are
# dumpable can be seen from outside (below); nothing in noisetund needs that capability.
mkdir "$NT_TMP/noptrace"
printf '#!/bin/sh\nexec setpriv --bounding-set=-sys_ptrace "%s" "$@"\n' "$BUILD/noisetund" \
	>"$NT_TMP/noptrace/noisetund"
chmod 755 "$NT_TMP/noptrace/noisetund"
start_wg "$NT_TMP/noptrace/noisetund" "$NSA" "$IFA"
start_wg "$NT_TMP/noptrace/noisetund" "$NSB" "$IFB"

# key_hex FILE: the key in FILE as the control protocol writes it (64 lowercase hex digits).
key_hex() {
	python3 -c 'import base64, sys; print(base64.b64decode(open(sys.argv[1]).read().strip()).hex())' "$1"
}

# A with a config file (wg setconf), B with `wg set`, both with preshared key p1.
cat >"$NT_TMP/a.conf" <<EOF
[Interface]
PrivateKey = $(cat "$(key_file a)")
ListenPort = 51820

[Peer]
PublicKey = $(key_pub b)
PresharedKey = $(cat "$NT_TMP/p1.psk")
Endpoint = 192.0.2.2:51821
AllowedIPs = 10.0.0.2/32, fd00::2/128
EOF
chmod 600 "$NT_TMP/a.conf"
wgn "$NSA" setconf "$IFA" "$NT_TMP/a.conf"
wgn "$NSB" set "$IFB" private-key "$(key_file b)" listen-port 51821 \
	peer "$(key_pub a)" preshared-key "$NT_TMP/p1.psk" endpoint 192.0.2.1:51820 \
	allowed-ips 10.0.0.1/32,fd00::1/128
tun_up "$NSA" "$IFA" 10.0.0.1/24 fd00::1/64
tun_up "$NSB" "$IFB" 10.0.0.2/24 fd00::2/64

# Test that the tunnel works with these keys (so they really were used in handshakes).
ping_ok "$NSA" 10.0.0.2
ping_ok "$NSB" fd00::1
assert_handshake "$NSA" "$IFA" "$(key_pub b)"
assert_handshake "$NSB" "$IFB" "$(key_pub a)"

# Test that `wg show` hides the private and preshared keys, and that asking for them by
# name (`show private-key`, `show preshared-keys`, `showconf`) prints them.
out=$(wgn "$NSA" show "$IFA")
echo "$out" | grep -qE '^ *private key: \(hidden\)$' || { echo "$out"; fail "wg show: no 'private key: (hidden)'"; }
echo "$out" | grep -qE '^ *preshared key: \(hidden\)$' || { echo "$out"; fail "wg show: no 'preshared key: (hidden)'"; }
for s in "$(cat "$(key_file a)")" "$(cat "$NT_TMP/p1.psk")"; do
	case $out in *"$s"*) fail "wg show printed a secret key";; esac
done
[ "$(wgn "$NSA" show "$IFA" private-key)" = "$(cat "$(key_file a)")" ] ||
	fail "wg show $IFA private-key does not print A's private key"
[ "$(wgn "$NSA" show "$IFA" preshared-keys)" = "$(key_pub b)"$'\t'"$(cat "$NT_TMP/p1.psk")" ] ||
	fail "wg show $IFA preshared-keys: '$(wgn "$NSA" show "$IFA" preshared-keys)'"
conf=$(wgn "$NSA" showconf "$IFA")
echo "$conf" | grep -qxF "PrivateKey = $(cat "$(key_file a)")" || fail "wg showconf: no PrivateKey line with A's key"
echo "$conf" | grep -qxF "PresharedKey = $(cat "$NT_TMP/p1.psk")" || fail "wg showconf: no PresharedKey line with p1"
log "wg show hides both keys; show private-key, show preshared-keys and showconf print them"

# The same for the project's own CLI, when built: `noisetun show` hides, --json omits.
CLI=$BUILD/noisetun
if [ -x "$CLI" ]; then
	out=$(ip netns exec "$NSA" "$CLI" show "$IFA")
	echo "$out" | grep -qE 'private key.*: \(hidden\)' || { echo "$out"; fail "noisetun show: private key not hidden"; }
	echo "$out" | grep -qE 'preshared key.*: \(hidden\)' || { echo "$out"; fail "noisetun show: preshared key not hidden"; }
	json=$(ip netns exec "$NSA" "$CLI" show "$IFA" --json)
	for s in "$(cat "$(key_file a)")" "$(cat "$NT_TMP/p1.psk")" "$(key_hex "$(key_file a)")" "$(key_hex "$NT_TMP/p1.psk")"; do
		case "$out$json" in *"$s"*) fail "noisetun show (or --json) printed a secret key";; esac
	done
	[ "$(ip netns exec "$NSA" "$CLI" show "$IFA" private-key)" = "$(cat "$(key_file a)")" ] ||
		fail "noisetun show $IFA private-key does not print the key"
	log "noisetun show hides both keys, --json has neither, show private-key prints it"
else
	warn "no $CLI: the noisetun CLI's show was not checked"
fi

# Test that a new preshared key is accepted on both sides (it enters the next handshakes).
wgn "$NSA" set "$IFA" peer "$(key_pub b)" preshared-key "$NT_TMP/p2.psk"
wgn "$NSB" set "$IFB" peer "$(key_pub a)" preshared-key "$NT_TMP/p2.psk"
ping_ok "$NSA" 10.0.0.2 2

# Test that changing A's private key drops A's sessions: A must handshake again, which B
# refuses while it still knows A by the old key, so nothing passes A -> B.
hs_a=$(handshake_time "$NSA" "$IFA" "$(key_pub b)")
sleep 1.1   # handshake times are in whole seconds
wgn "$NSA" set "$IFA" private-key "$(key_file a2)"
if ip netns exec "$NSA" ping -n -q -c 2 -i 0.3 -w 2 10.0.0.2 >/dev/null 2>&1; then
	fail "A still reached B on its old session after changing its private key"
fi
log "A's private key changed: A -> B fails while B knows the old key"

# Test that removing A's old peer on B and adding the new one (with p2) brings it back,
# with a new handshake on both sides.
wgn "$NSB" set "$IFB" peer "$(key_pub a)" remove
[ -z "$(wgn "$NSB" show "$IFB" peers)" ] || fail "B still has a peer after removing A"
wgn "$NSB" set "$IFB" peer "$(key_pub a2)" preshared-key "$NT_TMP/p2.psk" \
	endpoint 192.0.2.1:51820 allowed-ips 10.0.0.1/32,fd00::1/128
ping_ok "$NSA" 10.0.0.2
ping_ok "$NSB" fd00::1
assert_handshake "$NSB" "$IFB" "$(key_pub a2)"
hs_a2=$(handshake_time "$NSA" "$IFA" "$(key_pub b)")
[ "$hs_a2" -gt "$hs_a" ] || fail "A's handshake did not renew after its key change ($hs_a -> $hs_a2)"
[ "$(wgn "$NSA" show "$IFA" public-key)" = "$(key_pub a2)" ] || fail "A's public key is not a2's"

# Test that removing B on A and adding it back (same psk) handshakes again.
sleep 1.1
wgn "$NSA" set "$IFA" peer "$(key_pub b)" remove
[ -z "$(wgn "$NSA" show "$IFA" peers)" ] || fail "A still has a peer after removing B"
wgn "$NSA" set "$IFA" peer "$(key_pub b)" preshared-key "$NT_TMP/p2.psk" \
	endpoint 192.0.2.2:51821 allowed-ips 10.0.0.2/32,fd00::2/128
ping_ok "$NSA" 10.0.0.2 2
hs_a3=$(handshake_time "$NSA" "$IFA" "$(key_pub b)")
[ "$hs_a3" -gt "$hs_a2" ] || fail "no new handshake after re-adding B ($hs_a2 -> $hs_a3)"

# Test that bad requests carrying secrets are refused (errno=-22 or EADDRINUSE), change
# nothing, and leave the secrets out of the log line that reports them.
wgn "$NSA" showconf "$IFA" >"$NT_TMP/before.conf"
cat >"$NT_TMP/ctl.py" <<'EOF'
# ctl.py SOCK REQUEST: send REQUEST (with \n escapes) and print the daemon's reply.
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode())
reply = b""
while not reply.endswith(b"\n\n"):
	chunk = s.recv(4096)
	if not chunk:
		break
	reply += chunk
print(reply.decode(errors="replace").strip() or "(closed)")
EOF
A2_HEX=$(key_hex "$(key_file a2)") B_HEX=$(key_hex "$(key_file b)")
P2_HEX=$(key_hex "$NT_TMP/p2.psk") B_PUB_HEX=$(key_hex "$NT_TMP/b.pub")
SOCKA=$NT_SOCK_DIR/$IFA.sock
for req in \
	"set=1\nprivate_key=$B_HEX\nfrobnicate=1\n\n" \
	"set=1\nprivate_key=${A2_HEX:0:63}g\n\n" \
	"set=1\nprivate_key=${A2_HEX}00\n\n" \
	"set=1\npublic_key=$B_PUB_HEX\npreshared_key=$P2_HEX\nallowed_ip=10.0.0.300/32\n\n" \
	"set=1\npublic_key=$B_PUB_HEX\npreshared_key=${P2_HEX:0:60}\n\n" \
	"set=1\npublic_key=$B_PUB_HEX\npreshared_key=$P2_HEX\nprotocol_version=2\n\n"; do
	reply=$(python3 "$NT_TMP/ctl.py" "$SOCKA" "$req")
	case $reply in errno=-22|"(closed)") ;; *) fail "bad request answered '$reply'";; esac
done
# A bad `wg set`: the port is taken in A's namespace, the request carries the key.
ip netns exec "$NSA" python3 -c 'import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 51999))
t = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1); t.bind(("::", 51999)); time.sleep(60)' &
NT_PIDS+=("$!")
port_holder=$!
wait_for 5 "a socket on UDP 51999 in A" sh -c "ip netns exec '$NSA' ss -Hlun | grep -q ':51999 '"
if wgn "$NSA" set "$IFA" listen-port 51999 private-key "$(key_file a2)" 2>"$NT_TMP/wg-set.err"; then
	fail "wg set listen-port 51999 succeeded with the port taken"
fi
log "wg set with a taken port failed: $(cat "$NT_TMP/wg-set.err")"
_stop_pid "$port_holder"
wgn "$NSA" showconf "$IFA" >"$NT_TMP/after.conf"
cmp -s "$NT_TMP/before.conf" "$NT_TMP/after.conf" || {
	diff "$NT_TMP/before.conf" "$NT_TMP/after.conf" | grep -v Key || true
	fail "a refused request changed A's configuration"
}
ping_ok "$NSA" 10.0.0.2 2
daemon_alive "$IFA" || fail "$IFA died"
daemon_alive "$IFB" || fail "$IFB died"

# daemon_procs IFACE: the daemon's processes, one a line: the pid start_wg found, its
# children, and any other live noisetund whose last argument is IFACE (a privilege-separated
# daemon may be a monitor and a worker).
daemon_procs() {
	local ifc=$1 p main
	main=$(daemon_pid "$ifc")
	{
		echo "$main"
		pgrep -P "$main" || true
		for p in /proc/[0-9]*; do
			p=${p#/proc/}
			_pid_is "$p" "$ifc" || continue
			tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | head -n 1 | grep -q noisetund && echo "$p"
		done
	} | sort -un | while read -r p; do
		if pid_alive "$p"; then echo "$p"; fi
	done
}

# Test that every daemon process is non-dumpable (no core dumps, no ptrace by peers):
# - euid 0: the daemons run without CAP_SYS_PTRACE in their bounding set (the wrapper
#   above), so root without CAP_SYS_PTRACE (same uid, same capabilities) may read
#   /proc/PID/exe of a dumpable one and not of a non-dumpable one. A dumpable control
#   process started the same way must be readable, or the probe proves nothing.
# - any other euid (a privilege-separated worker): the kernel makes the /proc/PID files of
#   a non-dumpable process belong to root, of a dumpable one to its euid.
noptrace_can_read() { setpriv --bounding-set=-sys_ptrace readlink "/proc/$1/exe" >/dev/null 2>&1; }
setpriv --bounding-set=-sys_ptrace sleep 300 &
control=$!
NT_PIDS+=("$control")
wait_for 5 "the control process to exec sleep" sh -c "readlink /proc/$control/exe | grep -q sleep"
noptrace_can_read "$control" ||
	fail "root without CAP_SYS_PTRACE cannot read /proc/PID/exe of a dumpable process like it: probe broken"
asan=0
grep -q __asan_init "$BUILD/noisetund" && asan=1
n=0
for ifc in "$IFA" "$IFB"; do
	for p in $(daemon_procs "$ifc"); do
		n=$((n + 1))
		euid=$(awk '/^Uid:/ { print $3 }' "/proc/$p/status")
		if [ "$euid" = 0 ]; then
			noptrace_can_read "$p" && fail "pid $p ($ifc, euid 0) is dumpable: /proc/$p/exe readable without CAP_SYS_PTRACE"
			log "pid $p ($ifc, euid 0): non-dumpable (/proc/$p/exe closed to root without CAP_SYS_PTRACE)"
		else
			owner=$(stat -c %u:%g "/proc/$p/environ")
			if [ "$owner" = 0:0 ]; then
				log "pid $p ($ifc, euid $euid): non-dumpable (/proc/$p/environ belongs to root)"
			elif [ "$asan" = 1 ]; then
				# By design (daemon/privsep.c, NT_SANITIZE): LeakSanitizer's tracer, running
				# as the worker's user, must ptrace it. The release pass checks it.
				warn "pid $p ($ifc, euid $euid) is dumpable: a sanitizer build keeps its worker so"
			else
				fail "pid $p ($ifc, euid $euid) is dumpable: /proc/$p/environ belongs to $owner"
			fi
		fi
	done
done
[ "$n" -ge 2 ] || fail "found only $n daemon processes to check"
_stop_pid "$control"

pid_gone() { ! pid_alive "$1"; }
# Stop both daemons (their exit paths log too) before reading the logs: SIGTERM to the
# daemon (a split one's monitor stops its worker), then every process of it must be gone.
for ifc in "$IFA" "$IFB"; do
	procs=$(daemon_procs "$ifc")
	_stop_pid "$(daemon_pid "$ifc")"
	for p in $procs; do wait_for 10 "pid $p ($ifc) to exit" pid_gone "$p"; done
done

cat >"$NT_TMP/scan.py" <<'EOF'
# scan.py SECRETS PUBLICS FILE...: report every trace of a secret in FILEs. SECRETS and
# PUBLICS hold "name base64key" lines. Exit 1 on any finding.
import base64, re, sys

def keys(path):
	return [(l.split()[0], base64.b64decode(l.split()[1])) for l in open(path) if l.strip()]

secrets, publics = keys(sys.argv[1]), keys(sys.argv[2])
public_b64 = {base64.b64encode(k).decode() for _, k in publics}
public_hex = {k.hex() for _, k in publics}
found = 0

def report(path, data, at, what):
	global found
	found += 1
	line = data[:at].count(b"\n") + 1
	print(f"{path}:{line}: {what}")

for path in sys.argv[3:]:
	data = open(path, "rb").read()
	low = data.lower()
	for name, key in secrets:
		b64, hx = base64.b64encode(key), key.hex().encode()
		pieces = [(b64[i:i + 12], data, "base64") for i in range(len(b64) - 12 + 1)]
		pieces += [(hx[i:i + 16], low, "hex") for i in range(0, len(hx) - 16 + 1)]
		pieces += [(key[i:i + 8], data, "raw bytes") for i in range(len(key) - 8 + 1)]
		for piece, hay, form in pieces:
			at = hay.find(piece)
			if at >= 0:
				report(path, data, at, f"part of {name} in {form}: {piece!r}")
				break
	for m in re.finditer(rb"[0-9a-f]{32,}", low):
		if m.group().decode() not in public_hex:
			report(path, data, m.start(), f"a run of {len(m.group())} hex digits")
	for m in re.finditer(rb"[A-Za-z0-9+/]{43}=", data):
		if m.group().decode() not in public_b64:
			report(path, data, m.start(), "a base64 key that is not a known public key")
sys.exit(1 if found else 0)
EOF
: >"$NT_TMP/secrets.list"
: >"$NT_TMP/publics.list"
for k in a a2 b; do
	echo "private-key-$k $(cat "$(key_file "$k")")" >>"$NT_TMP/secrets.list"
	echo "public-key-$k $(key_pub "$k")" >>"$NT_TMP/publics.list"
done
for k in p1 p2; do echo "preshared-key-$k $(cat "$NT_TMP/$k.psk")" >>"$NT_TMP/secrets.list"; done
logs=("$NT_TMP/$IFA.log" "$NT_TMP/$IFB.log")

# Test that the search finds a key planted in a copy of a log, in each form it looks for.
for form in b64 hex piece raw session; do
	cp "$NT_TMP/$IFA.log" "$NT_TMP/planted"
	case $form in
	b64) echo "noisetund: x: key $(cat "$NT_TMP/p2.psk")" >>"$NT_TMP/planted";;
	hex) echo "noisetund: x: private_key=$A2_HEX" | tr a-f A-F >>"$NT_TMP/planted";;
	piece) echo "noisetund: x: bad line '${B_HEX:20:16}'" >>"$NT_TMP/planted";;
	raw) python3 -c 'import base64, sys; sys.stdout.buffer.write(base64.b64decode(sys.argv[1])[5:15])' \
		"$(cat "$(key_file b)")" >>"$NT_TMP/planted";;
	session) echo "noisetund: x: key $(wg genpsk)" >>"$NT_TMP/planted";;
	esac
	if python3 "$NT_TMP/scan.py" "$NT_TMP/secrets.list" "$NT_TMP/publics.list" "$NT_TMP/planted" >/dev/null; then
		fail "the log search missed a key planted as $form"
	fi
done
rm -f "$NT_TMP/planted"
log "the search finds planted keys (base64, upper-case hex, a 16-digit piece, raw bytes, an unknown key)"

# Test that the logs are not empty of what was done (verbose logging really was on), and
# that no secret, nor anything shaped like a key, is in them.
for f in "${logs[@]}"; do
	[ -s "$f" ] || fail "empty daemon log $f"
	log "$(basename "$f"): $(wc -l <"$f") lines"
done
grep -q 'handshake' "$NT_TMP/$IFA.log" || fail "no handshake in A's verbose log: was LOG_LEVEL=verbose honoured?"
grep -q 'set request failed' "$NT_TMP/$IFA.log" || fail "A's log does not report the refused set requests"
if ! python3 "$NT_TMP/scan.py" "$NT_TMP/secrets.list" "$NT_TMP/publics.list" "${logs[@]}"; then
	fail "secret or key-shaped material in the daemon logs (above)"
fi
log "pass: $(wc -l <"$NT_TMP/secrets.list") secrets handed over, none in $(cat "${logs[@]}" | wc -l) log lines"
