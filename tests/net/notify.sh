#!/bin/bash
# sd_notify without systemd: a python3 datagram socket plays the service manager, and
# noisetund -c must say READY=1 only once the tunnel is up, then STATUS=, WATCHDOG=1,
# RELOADING=1/READY=1 around a SIGHUP, and STOPPING=1.
#
#   ns A                                          ns B (route target only)
#   +---------------------------------------+     +----------------+
#   | noisetund -c FILE ntnt<id>a / <id>b   |     |                |
#   |   10.0.0.1/24                         |     |                |
#   | eth0 192.0.2.1                        |-----| eth0 192.0.2.2 |
#   +---------------------------------------+     +----------------+
#   listener: $NT_TMP/notify.sock (a path, from the host), then "@name" (abstract,
#   inside ns A: abstract sockets belong to a network namespace)
set -eu
. "$(dirname "$0")/lib.sh"
nt_init notify
need_impl noisetund
NTD=$BUILD/noisetund

NSA=$(ns_name a) NSB=$(ns_name b)
IFA=$(if_name a) IFB=$(if_name b)
ns_create "$NSA"
ns_create "$NSB"
link_pair "$NSA" 1 "$NSB" 2
key_new a
key_new b
key_new c

CONF=$NT_TMP/a.conf
cat >"$CONF" <<EOF
[Interface]
PrivateKey = $(cat "$(key_file a)")
Address = 10.0.0.1/24

[Peer]
PublicKey = $(key_pub b)
Endpoint = 192.0.2.2:51820
AllowedIPs = 10.0.0.2/32, 10.50.0.0/16
EOF
chmod 600 "$CONF"

# The listener: one line per datagram ("MSG " and its lines joined by "|"); right after
# the first READY=1 it runs CHECK and logs its exit status, so the state of the link at
# that moment is what the test sees.
cat >"$NT_TMP/listen.py" <<'EOF'
import socket, subprocess, sys, time
addr, out, check = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + addr[1:] if addr.startswith("@") else addr)
s.settimeout(0.2)
log = open(out, "a", buffering=1)
log.write("LISTENING\n")
checked = False
deadline = time.time() + 60
while time.time() < deadline:
    try:
        lines = s.recv(4096).decode().split("\n")
    except socket.timeout:
        continue
    log.write("MSG " + "|".join(lines) + "\n")
    if "READY=1" in lines and not checked:
        checked = True
        r = subprocess.run(["sh", "-c", check])
        log.write("CHECK rc=%d\n" % r.returncode)
    if "STOPPING=1" in lines:
        break
EOF

# listen LOG ADDR IFACE [ip netns exec NS]: start the listener; CHECK = IFACE is up with
# 10.0.0.1/24 and its route to 10.50.0.0/16.
listen() {
	local out=$1 addr=$2 ifc=$3
	shift 3
	local check="ip -n $NSA -o addr show dev $ifc | grep -q ' 10.0.0.1/24 ' && ip -n $NSA link show $ifc | grep -q '[<,]UP[,>]' && ip -n $NSA route show 10.50.0.0/16 | grep -q $ifc"
	"$@" python3 "$NT_TMP/listen.py" "$addr" "$out" "$check" &
	NT_PIDS+=("$!")
	wait_for 5 "the listener on $addr" grep -q LISTENING "$out"
}

msgs() { grep -c "^MSG .*$1" "$2" || true; }

# Test that READY=1 comes once the link is up with its address and routes (foreground,
# as systemd runs it), with STATUS= giving the peer count.
OUT=$NT_TMP/notify-path.log
listen "$OUT" "$NT_TMP/notify.sock" "$IFA"
NT_IFACES+=("$IFA")
NOTIFY_SOCKET=$NT_TMP/notify.sock WATCHDOG_USEC=300000 LOG_LEVEL=verbose \
	ip netns exec "$NSA" "$NTD" -f -c "$CONF" "$IFA" >>"$NT_TMP/$IFA.log" 2>&1 </dev/null &
DPID=$!
NT_PIDS+=("$DPID")
echo "$DPID" >"$NT_TMP/$IFA.pid"
wait_for 10 "READY=1" grep -q '^MSG .*READY=1' "$OUT"
wait_for 5 "the check at READY=1" grep -q '^CHECK' "$OUT"
grep -q '^CHECK rc=0' "$OUT" || { cat "$OUT"; fail "at READY=1 the link was not up with its address and route"; }
grep -m1 '^MSG .*READY=1' "$OUT" | grep -q 'STATUS=1 peer, ' || fail "no STATUS with the peer count: $(grep -m1 READY "$OUT")"
log "READY=1 after the link was up: $(grep -m1 '^MSG .*READY=1' "$OUT")"

# Test that WATCHDOG=1 comes every WATCHDOG_USEC/2 (150 ms here).
n0=$(msgs WATCHDOG=1 "$OUT")
sleep 1.2
n1=$(msgs WATCHDOG=1 "$OUT")
[ $((n1 - n0)) -ge 5 ] && [ $((n1 - n0)) -le 10 ] || fail "$((n1 - n0)) WATCHDOG=1 in 1.2 s, expected about 8"
log "$((n1 - n0)) WATCHDOG=1 in 1.2 s"

# Test that a peer added at run time updates STATUS=.
wgn "$NSA" set "$IFA" peer "$(key_pub c)" allowed-ips 10.60.0.0/16
wait_for 5 "STATUS=2 peers" grep -q '^MSG STATUS=2 peers' "$OUT"

# Test that SIGHUP is framed by RELOADING=1 and READY=1 (and the file's peers return).
kill -HUP "$DPID"
wait_for 5 "RELOADING=1" grep -q '^MSG RELOADING=1|MONOTONIC_USEC=' "$OUT"
wait_for 5 "READY=1 after the reload" sh -c "sed -n '/RELOADING=1/,\$p' $OUT | grep -q '^MSG READY=1|STATUS=1 peer'"

# Test that SIGTERM sends STOPPING=1 and the daemon exits.
kill -TERM "$DPID"
wait_for 5 "STOPPING=1" grep -q '^MSG STOPPING=1' "$OUT"
wait_for 5 "the daemon to exit" sh -c "! kill -0 $DPID 2>/dev/null"
log "RELOADING/READY and STOPPING as expected"

# Test that an abstract "@name" socket works, from a daemon that forks away, and that a
# WATCHDOG_PID naming another process turns the watchdog off.
OUT=$NT_TMP/notify-abstract.log
listen "$OUT" "@nt-notify-$NT_ID" "$IFB" ip netns exec "$NSA"
NT_IFACES+=("$IFB")
NOTIFY_SOCKET=@nt-notify-$NT_ID WATCHDOG_USEC=100000 WATCHDOG_PID=1 LOG_LEVEL=verbose \
	ip netns exec "$NSA" "$NTD" -c "$CONF" "$IFB" >>"$NT_TMP/$IFB.log" 2>&1 </dev/null || fail "noisetund -c failed"
DPID=$(_find_daemon "$IFB" "$NTD") || fail "no daemon for $IFB"
NT_PIDS+=("$DPID")
echo "$DPID" >"$NT_TMP/$IFB.pid"
wait_for 5 "READY=1 on the abstract socket" grep -q '^MSG .*READY=1' "$OUT"
wait_for 5 "the check at READY=1" grep -q '^CHECK' "$OUT"
grep -q '^CHECK rc=0' "$OUT" || fail "at READY=1 (abstract) the link was not up"
sleep 0.5
[ "$(msgs WATCHDOG=1 "$OUT")" = 0 ] || fail "WATCHDOG=1 sent although WATCHDOG_PID is another process"
kill -TERM "$DPID"
wait_for 5 "STOPPING=1 on the abstract socket" grep -q '^MSG STOPPING=1' "$OUT"
log "abstract socket: READY=1 and STOPPING=1; no watchdog for another WATCHDOG_PID"

# Test that the unit file, with its paths as make install writes them, passes
# systemd-analyze verify (a static check: no service manager runs here).
if command -v systemd-analyze >/dev/null; then
	# the monitor's unit and the worker's (a socket-activated unit of its own), together
	UNIT_DIR=$(cd "$(dirname "$0")/../.." && pwd)/systemd
	mkdir "$NT_TMP/unit"
	for u in noisetun@.service noisetun-worker@.service noisetun-worker@.socket; do
		sed "s|/usr/local/bin/|$BUILD/|g" "$UNIT_DIR/$u" >"$NT_TMP/unit/$u"
	done
	out=$(cd "$NT_TMP/unit" && systemd-analyze verify ./noisetun@wg0.service ./noisetun-worker@wg0.socket \
		./noisetun-worker@wg0.service 2>&1) || fail "systemd-analyze verify: $out"
	[ -z "$out" ] || fail "systemd-analyze verify complains: $out"
	log "systemd-analyze verify: clean; $(cd "$NT_TMP/unit" && systemd-analyze security --offline=yes ./noisetun@wg0.service 2>/dev/null | tail -n 1)"
else
	warn "systemd-analyze is not installed: the unit file was not verified"
fi
log "pass"
