#!/bin/bash
# Replays: real handshake and transport datagrams, captured on the wire and sent again
# later from a third host (and with the original sender's address forged), are dropped:
# no inner packet reaches a TUN twice, no handshake replay gets a response, the live
# session is not disturbed.
#
#   ns A                        ns sw (bridge br0)                   ns B
#   +----------------------+    +---------------+    +----------------------+
#   | IMPL_A ntre<id>a     |    |               |    | IMPL_B ntre<id>b     |
#   |  10.0.0.1  fd00::1   |    |               |    |  10.0.0.2  fd00::2   |
#   | eth0 192.0.2.1 :51820|----|     br0       |----| eth0 192.0.2.2 :51821|
#   +----------------------+    +-------+-------+    +----------------------+
#     (capture on eth0)                 |               (packet socket on the TUN)
#     (packet socket on the TUN) +------+----------+
#                                | ns C (python3)  |  the replayer
#                                | 192.0.2.3       |
#                                +-----------------+
#
# "Never delivered twice" is counted where it matters, on the TUNs: a packet socket on
# each TUN records every ICMP echo request/reply the daemon writes into it, keyed by
# (type, id, seq): every key must appear exactly once, before and after the replays.
# A handshake replay "gets a response" if any handshake response (type 2) leaves the
# replayed-to daemon (captured on its veth) or reaches the replayer (its own socket).
set -eu
# shellcheck source=tests/net/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/net/adversary-lib.sh
. "$(dirname "$0")/adversary-lib.sh"
nt_init replay
need_impl "$NT_IMPL_A"
need_impl "$NT_IMPL_B"

NSA=$(ns_name a) NSB=$(ns_name b) NSC=$(ns_name c)
IFA=$(if_name a) IFB=$(if_name b)
ns_create "$NSA"
ns_create "$NSB"
ns_create "$NSC"
lan_create "$NSA" "$NSB" "$NSC"
tunnel_up "$NT_IMPL_A" "$NT_IMPL_B"

cat >"$NT_TMP/replay.py" <<'EOF'
# replay.py udp HOST PORT FILE PASSES INTERVAL_MS
# replay.py spoof SRC SPORT HOST PORT FILE PASSES INTERVAL_MS
# Send every hex payload of FILE (one a line) PASSES times (odd passes in reverse order),
# INTERVAL_MS apart: from an ordinary UDP socket (udp), or with a forged IPv4 source
# through a raw socket (spoof). udp then listens 1 s more and reports the replies it got.
import socket, struct, sys, time
mode = sys.argv[1]
if mode == "udp":
    host, port, path, passes, ms = sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), float(sys.argv[6])
else:
    src, sport, host, port, path, passes, ms = sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6], int(sys.argv[7]), float(sys.argv[8])
pkts = [bytes.fromhex(l.split()[0]) for l in open(path) if l.strip()]
if mode == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))
    send = s.send
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    def send(p):
        udp = struct.pack("!HHHH", sport, port, 8 + len(p), 0) + p
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                         socket.inet_aton(src), socket.inet_aton(host))
        s.sendto(ip + udp, (host, 0))
sent = 0
replies = {}
def drain(timeout):
    if mode != "udp":
        return
    s.settimeout(timeout)
    try:
        while True:
            b = s.recv(4096)
            t = b[0] if b else -1
            replies[t] = replies.get(t, 0) + 1
            s.settimeout(0)
    except (BlockingIOError, socket.timeout):
        pass
    except ConnectionRefusedError:
        replies["refused"] = replies.get("refused", 0) + 1
for n in range(passes):
    for p in (pkts if n % 2 == 0 else pkts[::-1]):
        send(p)
        sent += 1
        if ms > 0:
            time.sleep(ms / 1000)
        if sent % 50 == 0:
            drain(0)
end = time.time() + (1 if mode == "udp" else 0)
while time.time() < end:
    drain(0.1)
print(f"sent={sent} replies_type1={replies.get(1, 0)} replies_type2={replies.get(2, 0)} "
      f"replies_type3={replies.get(3, 0)} replies_type4={replies.get(4, 0)} "
      f"replies_other={sum(v for k, v in replies.items() if k not in (1, 2, 3, 4))}")
EOF

# tun_keys TAG: the ICMP echo (request 8 / reply 0, v4 and v6 128/129) keys "type id:seq"
# the daemon wrote into the TUN, with how often each came.
tun_keys() {
	awk '$3 == "icmp" && $2 == "in" { print $5, $7 }' "$NT_TMP/$1.cap" | sort | uniq -c
}
# tun_check TAG WHAT: every key exactly once; prints the number of keys.
tun_check() {
	local tag=$1 what=$2 dup
	dup=$(tun_keys "$tag" | awk '$1 > 1')
	if [ -n "$dup" ]; then
		echo "$dup" | head -n 10
		fail "$what: inner packets delivered more than once to the TUN ($tag)"
	fi
	tun_keys "$tag" | wc -l
}
state() {
	wgn "$NSA" show "$IFA" latest-handshakes
	wgn "$NSB" show "$IFB" latest-handshakes
	wgn "$NSA" show "$IFA" endpoints
	wgn "$NSB" show "$IFB" endpoints
}
transfer() { wgn "$1" show "$2" transfer | awk '{ print $2, $3 }'; }
payloads() {   # payloads CAP DIR TYPE: the hex payloads of that WireGuard type, in order
	awk -v d="$2" -v ty="0$3" '$3 == "udp" && $2 == d && substr($9, 1, 2) == ty { print $9 }' "$1"
}

# ---- capture a real session
adv_sniff_start tuna "$NSA" "$IFA" 0
adv_sniff_start tunb "$NSB" "$IFB" 0
adv_sniff_start wire "$NSA" eth0 4096

# Test that the tunnel comes up and ping works both ways (the traffic to replay).
ping_ok "$NSA" 10.0.0.2 20
ping_ok "$NSB" 10.0.0.1 10
ping_ok "$NSA" fd00::2 5
sleep 0.3
adv_sniff_stop wire
payloads "$NT_TMP/wire.cap" out 1 >"$NT_TMP/init.hex"
payloads "$NT_TMP/wire.cap" in 2 >"$NT_TMP/resp.hex"
payloads "$NT_TMP/wire.cap" out 4 >"$NT_TMP/data-to-b.hex"
payloads "$NT_TMP/wire.cap" in 4 >"$NT_TMP/data-to-a.hex"
n_init=$(wc -l <"$NT_TMP/init.hex") n_resp=$(wc -l <"$NT_TMP/resp.hex")
n_tob=$(wc -l <"$NT_TMP/data-to-b.hex") n_toa=$(wc -l <"$NT_TMP/data-to-a.hex")
log "captured on A's veth: $n_init initiation(s), $n_resp response(s), $n_tob transport A->B, $n_toa transport B->A"
[ "$n_init" -ge 1 ] && [ "$n_resp" -ge 1 ] || fail "the capture holds no complete handshake"
[ "$n_tob" -ge 35 ] && [ "$n_toa" -ge 35 ] || fail "the capture holds too few transport messages"
head -n 1 "$NT_TMP/init.hex" >"$NT_TMP/init1.hex"
head -n 1 "$NT_TMP/resp.hex" >"$NT_TMP/resp1.hex"

keys_a0=$(tun_check tuna "before the replays")
keys_b0=$(tun_check tunb "before the replays")
log "echo packets delivered so far, each once: $keys_a0 to A's TUN, $keys_b0 to B's TUN"
[ "$keys_b0" -ge 35 ] && [ "$keys_a0" -ge 35 ] || fail "too few echo packets seen on the TUNs"

# ---- replays, later, from C
adv_sniff_start wirea "$NSA" eth0 64
adv_sniff_start wireb "$NSB" eth0 64
state0=$(state)
tra0=$(transfer "$NSA" "$IFA") trb0=$(transfer "$NSB" "$IFB")
sleep 1
replay() {   # replay WHAT ARGS...: run replay.py in C, log and keep its summary
	local what=$1 out
	shift
	out=$(ip netns exec "$NSC" python3 "$NT_TMP/replay.py" "$@") || fail "replay.py failed ($what)"
	log "replay $what: $out"
	echo "$what $out" >>"$NT_TMP/replay.summary"
}

# Test that transport messages replayed from another host are not delivered again:
# every captured one, three passes (forward, reverse, forward), to each side.
replay "transport->B from C" udp 192.0.2.2 51821 "$NT_TMP/data-to-b.hex" 3 0.5
replay "transport->A from C" udp 192.0.2.1 51820 "$NT_TMP/data-to-a.hex" 3 0.5
# ... and with the original sender's address and port forged (an on-path replay).
replay "transport->B as A" spoof 192.0.2.1 51820 192.0.2.2 51821 "$NT_TMP/data-to-b.hex" 1 0.5
replay "transport->A as B" spoof 192.0.2.2 51821 192.0.2.1 51820 "$NT_TMP/data-to-a.hex" 1 0.5

# Test that 1,000 replays of the initiation and of the response get no response.
replay "initiation->B x1000 from C" udp 192.0.2.2 51821 "$NT_TMP/init1.hex" 1000 1
replay "initiation->B x1000 as A" spoof 192.0.2.1 51820 192.0.2.2 51821 "$NT_TMP/init1.hex" 1000 1
replay "response->A x1000 from C" udp 192.0.2.1 51820 "$NT_TMP/resp1.hex" 1000 1
sleep 0.5
tra1=$(transfer "$NSA" "$IFA") trb1=$(transfer "$NSB" "$IFB")
state1=$(state)
adv_sniff_stop wirea
adv_sniff_stop wireb

# What left the daemons while the replays ran. The only genuine traffic then is a passive
# keepalive or two (an empty transport message 10 s after the last data received).
out_b=$(adv_wg_types "$NT_TMP/wireb.cap" out)
out_a=$(adv_wg_types "$NT_TMP/wirea.cap" out)
in_b=$(adv_wg_types "$NT_TMP/wireb.cap" in)
in_a=$(adv_wg_types "$NT_TMP/wirea.cap" in)
log "during the replays B received $in_b and sent $out_b; A received $in_a and sent $out_a (type:count)"
resp_b=$(adv_wg_count "$NT_TMP/wireb.cap" out 2)
resp_a=$(adv_wg_count "$NT_TMP/wirea.cap" out 2)
to_c=$(awk '/^initiation|^response|^transport/ { for (i = 1; i <= NF; i++) if ($i ~ /^replies_type2=/) { split($i, kv, "="); s += kv[2] } } END { print s + 0 }' "$NT_TMP/replay.summary")
[ "$resp_b" = 0 ] || fail "B sent $resp_b handshake response(s) while initiations were replayed to it"
[ "$resp_a" = 0 ] || fail "A sent $resp_a handshake response(s) during the replays"
[ "$to_c" = 0 ] || fail "the replayer received $to_c handshake response(s)"
init_a=$(adv_wg_count "$NT_TMP/wirea.cap" out 1)
init_b=$(adv_wg_count "$NT_TMP/wireb.cap" out 1)
[ "$init_a" = 0 ] && [ "$init_b" = 0 ] || fail "the replays made a daemon start a handshake (A sent $init_a, B $init_b initiations)"
# sent_data CAP: transport messages with a payload (not keepalives) sent; sent_bytes CAP:
# the bytes of all transport messages sent (what the other side may count as received)
sent_data() { awk '$3 == "udp" && $2 == "out" && substr($9, 1, 2) == "04" && $8 > 32 { n++ } END { print n + 0 }' "$1"; }
sent_bytes() { awk '$3 == "udp" && $2 == "out" && substr($9, 1, 2) == "04" { n += $8 } END { print n + 0 }' "$1"; }
data_out=$(( $(sent_data "$NT_TMP/wirea.cap") + $(sent_data "$NT_TMP/wireb.cap") ))
[ "$data_out" = 0 ] || fail "the daemons sent $data_out transport message(s) with data during the replays (a replayed packet was taken for live traffic)"

# Test that nothing was delivered to a TUN again, and that the receive counters grew by
# exactly the genuine keepalives the other side sent, not by any replay.
keys_a1=$(tun_check tuna "after the replays")
keys_b1=$(tun_check tunb "after the replays")
[ "$keys_a1" = "$keys_a0" ] || fail "A's TUN got $((keys_a1 - keys_a0)) new echo packets from replays"
[ "$keys_b1" = "$keys_b0" ] || fail "B's TUN got $((keys_b1 - keys_b0)) new echo packets from replays"
exp_a=$(sent_bytes "$NT_TMP/wireb.cap") exp_b=$(sent_bytes "$NT_TMP/wirea.cap")
log "transfer (rx tx) A: $tra0 -> $tra1; B: $trb0 -> $trb1; genuine transport bytes meanwhile: to A $exp_a, to B $exp_b"
[ $(( ${tra1%% *} - ${tra0%% *} )) -eq "$exp_a" ] || fail "A's rx counter moved by $(( ${tra1%% *} - ${tra0%% *} )) bytes, expected $exp_a: replays were counted"
[ $(( ${trb1%% *} - ${trb0%% *} )) -eq "$exp_b" ] || fail "B's rx counter moved by $(( ${trb1%% *} - ${trb0%% *} )) bytes, expected $exp_b: replays were counted"

# Test that the live session is undisturbed: same handshakes and endpoints, and it still
# carries new traffic both ways without a new handshake.
if [ "$state1" != "$state0" ]; then
	diff <(echo "$state0") <(echo "$state1") || true
	fail "handshake times or endpoints changed during the replays"
fi
ping_ok "$NSA" 10.0.0.2 5
ping_ok "$NSB" 10.0.0.1 5
ping_ok "$NSB" fd00::1 3
state2=$(state)
[ "$state2" = "$state0" ] || fail "a new handshake or endpoint after the replays: $(diff <(echo "$state0") <(echo "$state2") || true)"

# Test that every inner packet, old and new, reached its TUN exactly once.
sleep 0.2
adv_sniff_stop tuna
adv_sniff_stop tunb
keys_a2=$(tun_check tuna "at the end")
keys_b2=$(tun_check tunb "at the end")
[ "$keys_a2" -eq $((keys_a0 + 13)) ] && [ "$keys_b2" -eq $((keys_b0 + 13)) ] ||
	fail "expected exactly the 13 new echo packets on each TUN: got $((keys_a2 - keys_a0)) and $((keys_b2 - keys_b0))"
daemon_alive "$IFA" || fail "A's daemon died"
daemon_alive "$IFB" || fail "B's daemon died"
total_tr=$(( 3 * n_tob + 3 * n_toa + n_tob + n_toa ))
log "pass: $total_tr transport replays, 0 delivered; 2,000 initiation and 1,000 response replays, 0 responses; echo packets on the TUNs each exactly once ($keys_a2 on A, $keys_b2 on B)"
