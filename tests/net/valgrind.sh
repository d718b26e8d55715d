#!/bin/bash
# noisetund under valgrind (memcheck) through a whole life: zero errors, zero leaks.
#
#   ns A                                        ns B
#   +--------------------------+   veth   +--------------------------+
#   | valgrind noisetund -f    |          | IMPL_B ntva<id>b         |
#   |   ntva<id>a              |          |   (not under valgrind)   |
#   |   10.0.0.1/24 fd00::1/64 |          |   10.0.0.2/24 fd00::2/64 |
#   | eth0 192.0.2.1    :51820 |----------| eth0 192.0.2.2    :51821 |
#   +--------------------------+          +--------------------------+
#
# A is configured with `wg set` (private key, a peer with a preshared key, allowed IPs,
# endpoint), handshakes, pings both ways, carries bulk traffic (1300-byte pings, and iperf3
# TCP both ways when installed, which goes through the TUN/UDP offloads), changes its
# private key, loses and regains its peer, refuses bad requests (raw control lines, and a
# `wg set` whose port is taken), answers `wg show`/`showconf`/`show IFACE dump`, then stops
# on SIGTERM. Every process valgrind ran (a privilege-separated daemon forks a worker,
# which keeps the tool: one log per pid) must report 0 errors and 0 bytes definitely,
# indirectly or possibly lost; valgrind's exit status must be 0 (--error-exitcode=99).
#
# The release build only (BUILD, default build/release): an ASan build cannot run under
# valgrind and is covered by the sanitizer pass. NOISETUN_SECCOMP=0: valgrind makes
# syscalls of its own that a seccomp filter for the daemon would kill. NT_IMPL_B picks the
# peer (default noisetund). Suppressions, if any, are in tests/net/valgrind.supp.
set -eu
# shellcheck source=tests/net/lib.sh
. "$(dirname "$0")/lib.sh"
nt_init valgrind
command -v valgrind >/dev/null || skip "valgrind is not installed"
need_impl noisetund
need_impl "$NT_IMPL_B"
BIN=$BUILD/noisetund
if grep -q __asan_init "$BIN"; then
	skip "$BIN is built with AddressSanitizer, which cannot run under valgrind (the release pass covers this)"
fi
# No suppressions are needed today (libsodium's guarded, mlock'd sodium_malloc and glibc
# raise nothing); a clear false positive of theirs would go in valgrind.supp, with a why.
SUPP=$(cd "$(dirname "$0")" && pwd)/valgrind.supp
# shellcheck disable=SC2054 # the commas are valgrind's list syntax
VG_ARGS=(--leak-check=full --show-leak-kinds=definite,indirect,possible
	--errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 --track-fds=no
	--num-callers=30 "--log-file=$NT_TMP/vg.%p.log")
[ -f "$SUPP" ] && VG_ARGS+=("--suppressions=$SUPP")

NSA=$(ns_name a) NSB=$(ns_name b)
IFA=$(if_name a) IFB=$(if_name b)
ns_create "$NSA"
ns_create "$NSB"
link_pair "$NSA" 1 "$NSB" 2
key_new a
key_new a2
key_new b
psk_new p

# A: valgrind in the foreground, its pid is our child's (ip netns exec execs).
NT_IFACES+=("$IFA")
rm -f "$NT_SOCK_DIR/$IFA.sock"
NOISETUN_SECCOMP=0 LOG_LEVEL=verbose ip netns exec "$NSA" \
	valgrind "${VG_ARGS[@]}" "$BIN" -f "$IFA" >>"$NT_TMP/$IFA.log" 2>&1 </dev/null &
VG=$!
NT_PIDS+=("$VG")
echo "$VG" >"$NT_TMP/$IFA.pid"
wait_for 30 "$NT_SOCK_DIR/$IFA.sock (under valgrind)" test -S "$NT_SOCK_DIR/$IFA.sock"
wait_for 5 "$IFA to exist in $NSA" ip -n "$NSA" link show "$IFA"
log "started valgrind noisetund for $IFA in $NSA (pid $VG)"
start_wg "$NT_IMPL_B" "$NSB" "$IFB"

wgn "$NSA" set "$IFA" private-key "$(key_file a)" listen-port 51820 \
	peer "$(key_pub b)" preshared-key "$NT_TMP/p.psk" endpoint 192.0.2.2:51821 \
	allowed-ips 10.0.0.2/32,fd00::2/128
wgn "$NSB" set "$IFB" private-key "$(key_file b)" listen-port 51821 \
	peer "$(key_pub a)" preshared-key "$NT_TMP/p.psk" endpoint 192.0.2.1:51820 \
	allowed-ips 10.0.0.1/32,fd00::1/128
tun_up "$NSA" "$IFA" 10.0.0.1/24 fd00::1/64
tun_up "$NSB" "$IFB" 10.0.0.2/24 fd00::2/64

# Test that the handshake and pings work both ways, v4 and v6.
ping_ok "$NSA" 10.0.0.2
ping_ok "$NSB" fd00::1
assert_handshake "$NSA" "$IFA" "$(key_pub b)"
assert_handshake "$NSB" "$IFB" "$(key_pub a)"

# Test that bulk traffic passes: 200 pings of 1300 bytes each way, then iperf3 TCP.
for dir in "$NSA 10.0.0.2" "$NSB fd00::1"; do
	read -r ns addr <<<"$dir"
	out=$(ip netns exec "$ns" ping -n -q -s 1300 -c 200 -i 0.01 -w 30 "$addr" 2>&1) ||
		{ echo "$out"; fail "bulk ping $ns -> $addr failed"; }
	log "bulk ping $ns -> $addr: $(echo "$out" | grep -E 'packets transmitted')"
done
if command -v iperf3 >/dev/null; then
	ip netns exec "$NSB" iperf3 -s -B 10.0.0.2 >"$NT_TMP/iperf3-server.out" 2>&1 &
	NT_PIDS+=("$!")
	wait_for 5 "iperf3 server in B" sh -c "ip netns exec '$NSB' ss -ltn | grep -q '10.0.0.2:5201'"
	for rev in "" -R; do
		ip netns exec "$NSA" iperf3 -c 10.0.0.2 -t 2 -f m $rev >"$NT_TMP/iperf3.out" 2>&1 ||
			{ cat "$NT_TMP/iperf3.out"; fail "iperf3 $rev through the tunnel failed"; }
		log "iperf3 $([ -z "$rev" ] && echo 'A -> B' || echo 'B -> A'): $(awk '/receiver$/ { for (i = 1; i < NF; i++) if ($(i+1) == "Mbits/sec") print $i }' "$NT_TMP/iperf3.out") Mbits/s"
	done
else
	warn "iperf3 is not installed: no TCP bulk traffic (offload paths not exercised)"
fi

# Test that a private key change on A handshakes again (B knows the new key first).
wgn "$NSB" set "$IFB" peer "$(key_pub a2)" preshared-key "$NT_TMP/p.psk" \
	endpoint 192.0.2.1:51820 allowed-ips 10.0.0.1/32,fd00::1/128 peer "$(key_pub a)" remove
wgn "$NSA" set "$IFA" private-key "$(key_file a2)"
ping_ok "$NSA" 10.0.0.2
assert_handshake "$NSB" "$IFB" "$(key_pub a2)"

# Test that removing B on A and adding it back works (peer, keypairs and allowed IPs freed
# and allocated again).
wgn "$NSA" set "$IFA" peer "$(key_pub b)" remove
[ -z "$(wgn "$NSA" show "$IFA" peers)" ] || fail "A still has a peer after removing B"
wgn "$NSA" set "$IFA" peer "$(key_pub b)" preshared-key "$NT_TMP/p.psk" \
	endpoint 192.0.2.2:51821 allowed-ips 10.0.0.2/32,fd00::2/128,10.9.0.0/16
ping_ok "$NSA" 10.0.0.2
ping_ok "$NSB" fd00::1

# Test that bad requests are refused and change nothing: raw control requests, and a
# `wg set` whose listen port is taken in A's namespace.
wgn "$NSA" showconf "$IFA" >"$NT_TMP/before.conf"
cat >"$NT_TMP/ctl.py" <<'EOF'
# ctl.py SOCK REQUEST: send REQUEST (with \n escapes), print the reply or "(closed)".
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
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
BPUB_HEX=$(python3 -c 'import base64, sys; print(base64.b64decode(sys.argv[1]).hex())' "$(key_pub b)")
NEW_HEX=$(python3 -c 'import os; print(os.urandom(32).hex())')
SOCKA=$NT_SOCK_DIR/$IFA.sock
for req in \
	"set=1\nfrobnicate=1\n\n" \
	"set=1\nprivate_key=$(printf 'g%.0s' $(seq 64))\n\n" \
	"set=1\npublic_key=$BPUB_HEX\nallowed_ip=10.0.0.300/32\n\n" \
	"set=1\npublic_key=$NEW_HEX\nallowed_ip=10.8.0.0/16\nendpoint=nohost\n\n" \
	"set=1\npublic_key=$NEW_HEX\nallowed_ip=10.8.0.0/16\nprotocol_version=2\n\n" \
	"set=1\nlisten_port=51999\npublic_key=$BPUB_HEX\nremove=1\nfrobnicate=1\n\n" \
	"frobnicate=1\n\n" \
	"get=1\n\nget=1\n\n"; do
	reply=$(python3 "$NT_TMP/ctl.py" "$SOCKA" "$req")
	case $req:$reply in
	get=1*:*errno=0) ;;
	*:errno=-22|*:"(closed)") ;;
	*) fail "request '$req' answered '$reply'";;
	esac
done
# A connection that sends half a request and goes away.
python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(sys.argv[1])
s.sendall(b"set=1\nlisten_port=5"); s.close()' "$SOCKA"
ip netns exec "$NSA" python3 -c 'import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 51999)); time.sleep(60)' &
NT_PIDS+=("$!")
port_holder=$!
wait_for 5 "a socket on UDP 51999 in A" sh -c "ip netns exec '$NSA' ss -Hlun | grep -q ':51999 '"
if wgn "$NSA" set "$IFA" listen-port 51999 2>"$NT_TMP/wg-set.err"; then
	fail "wg set listen-port 51999 succeeded with the port taken"
fi
log "wg set with a taken port failed: $(cat "$NT_TMP/wg-set.err")"
_stop_pid "$port_holder"
wgn "$NSA" showconf "$IFA" >"$NT_TMP/after.conf"
cmp -s "$NT_TMP/before.conf" "$NT_TMP/after.conf" || {
	diff "$NT_TMP/before.conf" "$NT_TMP/after.conf" | grep -v Key || true
	fail "a refused request changed A's configuration"
}

# Test that the show requests are answered, and the tunnel still works after all that.
wgn "$NSA" show "$IFA" >/dev/null
wgn "$NSA" show "$IFA" dump >/dev/null
ping_ok "$NSA" 10.0.0.2 2
daemon_alive "$IFA" || fail "$IFA (under valgrind) does not answer"

# Stop A with SIGTERM and let valgrind finish its leak check (slow: allow 60 s).
kill -TERM "$VG"
rc=0
end=$((SECONDS + 60))
while pid_alive "$VG"; do
	if [ "$SECONDS" -ge "$end" ]; then
		ps -o pid,ppid,stat,wchan:24,user,args -p "$VG" --ppid "$VG" || true
		fail "valgrind noisetund did not exit within 60 s of SIGTERM"
	fi
	sleep 0.2
done
wait "$VG" || rc=$?
log "valgrind noisetund exited with status $rc"
pid_gone() { ! pid_alive "$1"; }
# Any other process valgrind ran (a forked worker) must be gone too before its log is read.
for f in "$NT_TMP"/vg.*.log; do
	p=${f##*/vg.}
	p=${p%.log}
	wait_for 30 "valgrind process $p to exit" pid_gone "$p"
done

# Test that every valgrind log is complete and clean.
show_log() { echo "---- $1"; grep -vE '^==[0-9]+== *$' "$1" | head -n 80; }
n=0
for f in "$NT_TMP"/vg.*.log; do
	[ -e "$f" ] || fail "no valgrind log in $NT_TMP"
	n=$((n + 1))
	grep -qE '== ERROR SUMMARY: 0 errors' "$f" || { show_log "$f"; fail "valgrind found errors (or did not finish): $f"; }
	if ! grep -q 'All heap blocks were freed' "$f"; then
		for kind in definitely indirectly possibly; do
			grep -qE "== +$kind lost: 0 bytes in 0 blocks" "$f" ||
				{ show_log "$f"; fail "valgrind: memory $kind lost in $(basename "$f")"; }
		done
	fi
	if grep -qiE 'unhandled (ioctl|syscall)|uninitialised|Invalid (read|write|free)' "$f"; then
		show_log "$f"
		warn "valgrind notes in $(basename "$f") (above)"
	fi
	log "$(basename "$f"): $(grep -oE 'ERROR SUMMARY: .*' "$f"); $(grep -oE '(in use at exit|All heap blocks were freed).*' "$f" | head -n 1)"
done
[ -e "$NT_TMP/vg.$VG.log" ] || fail "no valgrind log for the daemon's pid $VG"
[ "$rc" -eq 0 ] || fail "valgrind exited with status $rc (99: errors or leaks)"
log "pass: $n valgrind log(s), 0 errors, 0 bytes lost"
