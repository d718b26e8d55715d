# shellcheck shell=bash
# Helpers for the adversarial scenarios (flood, replay, spoof, lowkey, kernel-selftest).
# Sourced after lib.sh, never run: scripts/run-net runs every tests/net/*.sh, so run
# directly this file says what it is and exits 77 (skip).
#
#   adv_tool NAME                 build tests/net/tools/NAME.c against $BUILD/libnoisetun.a
#                                 (when it, tools/toolkit.h, the tools' shared helpers,
#                                 or the library is newer) into $BUILD/tests/net/tools/NAME;
#                                 prints the path. With a sanitizer build of the library
#                                 the tool gets the same sanitizers.
#   adv_sniff_start TAG NS DEV [MAXHEX]
#                                 capture IPv4/IPv6 on DEV (a veth or a TUN) inside NS,
#                                 both directions, into $NT_TMP/TAG.cap, one line a packet:
#                                   t_ns dir l4 src A dst B len hex
#                                 dir: in|out; l4: udp (A, B = ports; hex = the payload, at
#                                 most MAXHEX bytes, default 2048), icmp (A = type, B =
#                                 id:seq), frag, or ipN; hex is "-" when not kept. A UDP
#                                 GSO super-packet is split into its datagrams.
#   adv_sniff_stop TAG            stop it (bounded wait) and flush the file
#   adv_wg_types FILE DIR         "type:count ..." of the WireGuard messages (UDP) in FILE
#   adv_ping NS ADDR ARGS...      ping that returns its status instead of failing the test
#   adv_now_ms                    monotonic-enough milliseconds (date +%s%3N)

[ -n "${BASH_VERSION:-}" ] || { echo "adversary-lib.sh: needs bash" >&2; exit 1; }
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	echo "adversary-lib.sh is a helper of the adversarial scenarios, not a scenario"
	exit 77
fi

ADV_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
declare -A ADV_SNIFF_PID=()

adv_now_ms() { date +%s%3N; }

adv_tool() {
	local name=$1 src lib out tmp san=""
	src=$ADV_ROOT/tests/net/tools/$name.c
	lib=$BUILD/libnoisetun.a
	out=$BUILD/tests/net/tools/$name
	[ -f "$src" ] || fail "adv_tool: $src missing"
	command -v cc >/dev/null || skip "cc is not installed (needed for tests/net/tools/$name.c)"
	[ -f "$lib" ] || skip "$lib missing: build the core first (make $lib)"
	if [ ! -x "$out" ] || [ "$src" -nt "$out" ] || [ "$lib" -nt "$out" ] ||
		[ "$ADV_ROOT/tests/net/tools/toolkit.h" -nt "$out" ]; then
		mkdir -p "$(dirname "$out")"
		if nm "$lib" 2>/dev/null | grep -q '__asan_'; then
			san="-fsanitize=address,undefined -fno-omit-frame-pointer"
		fi
		tmp=$out.tmp.$$
		# shellcheck disable=SC2086,SC2046
		if ! cc -std=gnu11 -O2 -Wall -Wextra -I"$ADV_ROOT/include" \
			$(pkg-config --cflags libsodium libb2 2>/dev/null) $san \
			-o "$tmp" "$src" "$lib" -lsodium -lb2 -lcrypto >"$NT_TMP/cc-$name.log" 2>&1; then
			cat "$NT_TMP/cc-$name.log"
			rm -f "$tmp"
			fail "cannot compile tests/net/tools/$name.c"
		fi
		mv -f "$tmp" "$out"
	fi
	echo "$out"
}

_adv_write_sniffer() {
	[ -f "$NT_TMP/adv_sniff.py" ] && return 0
	cat >"$NT_TMP/adv_sniff.py" <<'EOF'
# adv_sniff.py DEV OUT READY STOP MAXHEX: see adversary-lib.sh (adv_sniff_start).
import os, signal, socket, struct, sys, time
dev, out, ready, stop, maxhex = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
# SOCK_RAW (PACKET_VNET_HDR needs it): an Ethernet header is stripped below.
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
try:
    s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)   # SO_RCVBUFFORCE
except OSError:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
# A virtio_net_hdr before each packet tells GSO super-packets (a daemon sending with
# UDP_SEGMENT hands the veth one skb for many datagrams) and their segment size.
try:
    s.setsockopt(263, 15, 1)                        # SOL_PACKET, PACKET_VNET_HDR
    vnet = 10
except OSError:
    vnet = 0
s.bind((dev, 0x0003))
s.settimeout(0.05)
f = open(out, "w", buffering=1 << 16)
open(ready, "w").close()
running = True
last_flush = time.time()
def on_term(*_):
    global running
    running = False
signal.signal(signal.SIGTERM, on_term)
def a4(b): return socket.inet_ntop(socket.AF_INET, b)
def a6(b): return socket.inet_ntop(socket.AF_INET6, b)
while running and not os.path.exists(stop):
    if time.time() - last_flush > 0.1:
        f.flush()            # readers may look while the capture runs
        last_flush = time.time()
    try:
        pkt, addr = s.recvfrom(262144)
    except (socket.timeout, InterruptedError):
        continue
    t = time.time_ns()
    d = "out" if addr[2] == socket.PACKET_OUTGOING else "in"
    gso = 0
    if vnet:
        if len(pkt) < vnet:
            continue
        _, gso_type, _, gso_size = struct.unpack("<BBHH", pkt[:6])
        if gso_type and gso_size:
            gso = gso_size
        pkt = pkt[vnet:]
    if addr[3] == 1:                                # ARPHRD_ETHER
        if len(pkt) < 14 or pkt[12:14] not in (b"\x08\x00", b"\x86\xdd"):
            continue
        pkt = pkt[14:]
    if not pkt:
        continue
    v = pkt[0] >> 4
    if v == 4 and len(pkt) >= 20:
        ihl = (pkt[0] & 15) * 4
        proto, src, dst = pkt[9], a4(pkt[12:16]), a4(pkt[16:20])
        frag = struct.unpack("!H", pkt[6:8])[0] & 0x1fff
        more = struct.unpack("!H", pkt[6:8])[0] & 0x2000
        l4 = pkt[ihl:]
        if frag or more:
            proto = -1
        icmp = 1
    elif v == 6 and len(pkt) >= 40:
        proto, src, dst = pkt[6], a6(pkt[8:24]), a6(pkt[24:40])
        l4 = pkt[40:]
        if proto == 44:
            proto = -1
        icmp = 58
    else:
        continue
    if proto == 17 and len(l4) >= 8:
        sp, dp = struct.unpack("!HH", l4[:4])
        pl = l4[8:]
        for i in range(0, max(len(pl), 1), gso or max(len(pl), 1)):
            seg = pl[i:i + gso] if gso else pl
            f.write(f"{t} {d} udp {src} {sp} {dst} {dp} {len(seg)} {seg[:maxhex].hex() or '-'}\n")
    elif proto == icmp and len(l4) >= 8:
        ty = l4[0]
        ident, seq = struct.unpack("!HH", l4[4:8])
        f.write(f"{t} {d} icmp {src} {ty} {dst} {ident}:{seq} {len(l4)} -\n")
    elif proto == -1:
        f.write(f"{t} {d} frag {src} - {dst} - {len(pkt)} -\n")
    else:
        f.write(f"{t} {d} ip{proto} {src} - {dst} - {len(pkt)} -\n")
f.close()
EOF
}

adv_sniff_start() {
	local tag=$1 ns=$2 dev=$3 maxhex=${4:-2048} pid
	_adv_write_sniffer
	rm -f "$NT_TMP/$tag.cap" "$NT_TMP/$tag.ready" "$NT_TMP/$tag.stop"
	ip netns exec "$ns" python3 "$NT_TMP/adv_sniff.py" "$dev" "$NT_TMP/$tag.cap" \
		"$NT_TMP/$tag.ready" "$NT_TMP/$tag.stop" "$maxhex" 2>"$NT_TMP/$tag.err" &
	pid=$!
	NT_PIDS+=("$pid")
	ADV_SNIFF_PID[$tag]=$pid
	wait_for 5 "the capture $tag on $dev to start" test -e "$NT_TMP/$tag.ready"
}

adv_sniff_stop() {
	local tag=$1 pid
	pid=${ADV_SNIFF_PID[$tag]:-}
	[ -n "$pid" ] || return 0
	touch "$NT_TMP/$tag.stop"
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	unset "ADV_SNIFF_PID[$tag]"
	[ -f "$NT_TMP/$tag.cap" ] || : >"$NT_TMP/$tag.cap"
}

# The file is flushed every 0.1 s while the capture runs, so it can be read meanwhile.

# adv_wg_types FILE DIR [HOST]: WireGuard message types among the UDP lines of FILE in
# direction DIR (in|out), optionally only those to or from HOST: "1:n 2:n 3:n 4:n".
adv_wg_types() {
	local file=$1 dir=$2 host=${3:-}
	awk -v d="$dir" -v h="$host" '
		$3 == "udp" && $2 == d && (h == "" || $4 == h || $6 == h) && $9 != "-" {
			t = substr($9, 1, 2); c[t]++
		}
		END { printf "1:%d 2:%d 3:%d 4:%d\n", c["01"], c["02"], c["03"], c["04"] }' "$file"
}

# adv_wg_count FILE DIR TYPE [HOST]: how many WireGuard messages of TYPE (1..4).
adv_wg_count() {
	local file=$1 dir=$2 type=$3 host=${4:-}
	awk -v d="$dir" -v h="$host" -v ty="0$type" '
		$3 == "udp" && $2 == d && (h == "" || $4 == h || $6 == h) && substr($9, 1, 2) == ty { n++ }
		END { print n + 0 }' "$file"
}

adv_ping() {
	local ns=$1 addr=$2
	shift 2
	ip netns exec "$ns" ping -n -q "$@" "$addr" >/dev/null 2>&1
}
