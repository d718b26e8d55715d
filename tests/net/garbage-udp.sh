#!/bin/bash
# Garbage datagrams from a third host: no crash, no state change, the tunnel still works.
#
#   ns A                        ns sw (bridge br0)                   ns B
#   +----------------------+    +---------------+    +----------------------+
#   | IMPL_A ntga<id>a     |    |               |    | IMPL_B ntga<id>b     |
#   |  10.0.0.1  fd00::1   |    |               |    |  10.0.0.2  fd00::2   |
#   | eth0 192.0.2.1 :51820|----|     br0       |----| eth0 192.0.2.2 :51821|
#   |      2001:db8::1     |    |               |    |      2001:db8::2     |
#   +----------------------+    +-------+-------+    +----------------------+
#                                       |
#                              +--------+--------+
#                              | ns C (python3)  |  the sender of garbage
#                              | 192.0.2.3       |
#                              | 2001:db8::3     |
#                              +-----------------+
#
# Phase 1, before any handshake: to A (v4 and v6) and to B, every size 0..200 of each
# first byte in {1,2,3,4} (reserved bytes zero, and again nonzero) and {0,5,0x80,0xff},
# random contents, plus a few big datagrams (1420, 1500, 9000, 65507 bytes); then a burst
# of 64 truncated initiations/responses that B reads in one batch (B is SIGSTOPped while
# they queue): the next real handshake must need no cookie round.
# Phase 2, after a handshake: the same sweep again, then the datagrams A and B really
# exchanged (captured on A's veth) replayed from C whole, truncated at every length and
# with each byte flipped in turn: these carry live receiver indices and valid MAC1s.
# After each phase: same daemon pids, `wg show` answers, no new handshake, endpoints as
# before (nothing from C may become an endpoint), and a ping passes.
set -eu
# shellcheck source=tests/net/lib.sh
. "$(dirname "$0")/lib.sh"
nt_init garbage
need_impl "$NT_IMPL_A"
need_impl "$NT_IMPL_B"

NSA=$(ns_name a) NSB=$(ns_name b) NSC=$(ns_name c)
IFA=$(if_name a) IFB=$(if_name b)
ns_create "$NSA"
ns_create "$NSB"
ns_create "$NSC"
lan_create "$NSA" "$NSB" "$NSC"
tunnel_up "$NT_IMPL_A" "$NT_IMPL_B"
PIDA=$(daemon_pid "$IFA") PIDB=$(daemon_pid "$IFB")

cat >"$NT_TMP/garbage.py" <<'EOF'
# garbage.py sweep|burst HOST PORT | replay HOST PORT HEXFILE: send from this namespace.
import os, random, socket, sys, time
mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
rng = random.Random(os.urandom(8))
sent = 0
def send(b):
    global sent
    try:
        s.sendto(b, (host, port))
        sent += 1
    except OSError as e:          # EMSGSIZE for the biggest over v6 and the like
        print(f"send {len(b)} bytes: {e}", file=sys.stderr)
    if sent % 64 == 0 and mode != "burst":
        time.sleep(0.002)         # let the daemon read rather than the socket drop
if mode == "sweep":
    for first, zero in [(1, 1), (2, 1), (3, 1), (4, 1), (1, 0), (2, 0), (3, 0), (4, 0),
                        (0, 1), (5, 1), (0x80, 1), (0xff, 0)]:
        for n in range(0, 201):
            b = bytearray(rng.randbytes(n))
            if n >= 1: b[0] = first
            if zero: b[1:4] = bytes(min(3, max(0, n - 1)))
            send(bytes(b))
    for n in (1420, 1500, 9000, 65507):
        for first in (1, 2, 3, 4):
            send(bytes([first, 0, 0, 0]) + rng.randbytes(n - 4))
elif mode == "burst":
    # 64 truncated handshake messages, none of a handshake's exact length (148 / 92).
    for i in range(64):
        first, full = (1, 148) if i % 2 else (2, 92)
        send(bytes([first, 0, 0, 0]) + rng.randbytes(rng.randrange(0, full - 4)))
else:
    for line in open(sys.argv[4]):
        pkt = bytes.fromhex(line.split()[1])
        send(pkt)                              # whole: a replay
        for n in range(len(pkt)):              # every truncation
            send(pkt[:n])
        for i in range(len(pkt)):              # every single-byte flip
            b = bytearray(pkt); b[i] ^= 1 << rng.randrange(8); send(bytes(b))
        send(pkt + rng.randbytes(16))          # trailing junk
print(f"sent {sent} datagrams to {host}:{port}")
EOF

cat >"$NT_TMP/sniff.py" <<'EOF'
# sniff.py DEV PORT OUT READY STOP: capture UDP/IPv4 datagrams to or from PORT on DEV,
# both directions, until the file STOP exists (at most 10 s); write "to|from hex" lines
# (direction relative to PORT), each distinct payload once.
import os, socket, struct, sys, time
dev, port, out, ready, stop = sys.argv[1], int(sys.argv[2]), *sys.argv[3:6]
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0003))
s.bind((dev, 0x0003))
s.settimeout(0.1)
open(ready, "w").close()
got, seen, end = [], set(), time.time() + 10
while time.time() < end and not os.path.exists(stop):
    try:
        pkt, addr = s.recvfrom(65535)
    except socket.timeout:
        continue
    if addr[1] != 0x0800 or len(pkt) < 28 or pkt[9] != 17:
        continue
    ihl = (pkt[0] & 15) * 4
    sport, dport = struct.unpack("!HH", pkt[ihl:ihl + 4])
    payload = pkt[ihl + 8:]
    if port not in (sport, dport) or payload in seen:
        continue
    seen.add(payload)
    got.append(("to" if dport == port else "from") + " " + payload.hex())
open(out, "w").write("\n".join(got) + "\n")
EOF

# check_state PHASE: daemons alive, no handshake beyond HS_A/HS_B, endpoints unchanged.
check_state() {
	local phase=$1
	_pid_is "$PIDA" "$IFA" || fail "$phase: A's daemon died"
	_pid_is "$PIDB" "$IFB" || fail "$phase: B's daemon died"
	daemon_alive "$IFA" || fail "$phase: A does not answer"
	daemon_alive "$IFB" || fail "$phase: B does not answer"
	[ "$(handshake_time "$NSA" "$IFA")" = "$HS_A" ] || fail "$phase: A's handshake time moved: $(handshake_time "$NSA" "$IFA") (was $HS_A)"
	[ "$(handshake_time "$NSB" "$IFB")" = "$HS_B" ] || fail "$phase: B's handshake time moved: $(handshake_time "$NSB" "$IFB") (was $HS_B)"
	[ "$(endpoint_of "$NSA" "$IFA")" = 192.0.2.2:51821 ] || fail "$phase: A's endpoint is now $(endpoint_of "$NSA" "$IFA")"
	[ "$(endpoint_of "$NSB" "$IFB")" = 192.0.2.1:51820 ] || fail "$phase: B's endpoint is now $(endpoint_of "$NSB" "$IFB")"
	log "$phase: both daemons alive, handshakes ($HS_A, $HS_B) and endpoints unchanged"
}

sweep() {
	ip netns exec "$NSC" python3 "$NT_TMP/garbage.py" sweep 192.0.2.1 51820
	ip netns exec "$NSC" python3 "$NT_TMP/garbage.py" sweep 2001:db8::1 51820
	ip netns exec "$NSC" python3 "$NT_TMP/garbage.py" sweep 192.0.2.2 51821
}

# Test that garbage before any handshake starts none and moves no endpoint.
HS_A=0 HS_B=0
sweep
sleep 0.5    # let the daemons drain their sockets before looking
check_state "phase 1"

# Test that a burst of truncated handshake messages, all read in one go (B is stopped
# while they queue in its socket), does not count as handshake load: the tunnel must then
# come up at once, without a cookie round (checked on the capture below).
WORKERB=$(daemon_worker_pid "$IFB")
kill -STOP "$WORKERB"
ip netns exec "$NSC" python3 "$NT_TMP/garbage.py" burst 192.0.2.2 51821
kill -CONT "$WORKERB"

# Test that the tunnel then comes up normally (while A's veth is captured).
ip netns exec "$NSA" python3 "$NT_TMP/sniff.py" eth0 51820 "$NT_TMP/captured" \
	"$NT_TMP/sniff.ready" "$NT_TMP/sniff.stop" &
sniff_pid=$!
NT_PIDS+=("$sniff_pid")
wait_for 5 "the capture to start" test -e "$NT_TMP/sniff.ready"
ping_ok "$NSA" 10.0.0.2
ping_ok "$NSB" fd00::1
touch "$NT_TMP/sniff.stop"
wait "$sniff_pid" || fail "capture failed"
HS_A=$(handshake_time "$NSA" "$IFA") HS_B=$(handshake_time "$NSB" "$IFB")
{ [ "$HS_A" -gt 0 ] && [ "$HS_B" -gt 0 ]; } || fail "no handshake after ping"
log "captured $(wc -l <"$NT_TMP/captured") datagrams; (direction, type): $(awk '{ print $1 "/" substr($2, 1, 2) }' "$NT_TMP/captured" | sort | uniq -c | tr -s ' \n' ' ')"
# Test that the junk did not count as handshake load: the sweep and the burst hold only a
# couple of datagrams of a handshake message's exact length (148 or 92 bytes), far below
# any under-load threshold (the kernel and wireguard-go queue, and so count, only
# exact-length handshake messages), so this first handshake must need no cookie round
# (a cookie reply costs the initiator a 5 s REKEY_TIMEOUT retry).
if grep -q '^[a-z]* 03000000' "$NT_TMP/captured"; then
	fail "a cookie reply (type 3) answered the first real handshake after the junk: truncated handshake messages were counted as handshake load"
fi

# Test that the sweep and replays of real traffic, sent while the session is live,
# change nothing and end no session.
sweep
grep '^to ' "$NT_TMP/captured" >"$NT_TMP/to-a" || true
grep '^from ' "$NT_TMP/captured" >"$NT_TMP/to-b" || true
ip netns exec "$NSC" python3 "$NT_TMP/garbage.py" replay 192.0.2.1 51820 "$NT_TMP/to-a"
ip netns exec "$NSC" python3 "$NT_TMP/garbage.py" replay 192.0.2.2 51821 "$NT_TMP/to-b"
sleep 0.5
check_state "phase 2"
ping_ok "$NSA" 10.0.0.2
ping_ok "$NSA" fd00::2
ping_ok "$NSB" 10.0.0.1
check_state "after the final pings"
log "pass"
