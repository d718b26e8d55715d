#!/bin/bash
# Metrics (issue 17): `noisetun metrics` and noisetund --metrics-listen, scraped by a real
# Prometheus inside the namespace.
#
#   ns A (noisetund -c, split)                 ns B (noisetund, wg set)
#   +-----------------------------------+      +-----------------------------+
#   | ntme<id>a 10.0.0.1                |      | ntme<id>b 10.0.0.2 (unsplit)|
#   | --metrics-listen 192.0.2.1:9586   | veth | NOISETUN_METRICS_LISTEN=    |
#   | prometheus 127.0.0.1:9090 scrapes |------|   [2001:db8::2]:9586        |
#   |   192.0.2.1:9586 every 1 s        |      |                             |
#   +-----------------------------------+      +-----------------------------+
#
# Checks: the CLI's text passes `promtool check metrics` and its byte counters are wg show
# dump's transfer figures; GET /metrics answers the same, other methods, paths and an
# oversized request are refused; a slowloris connection neither stalls the tunnel nor
# other scrapes and is cut at the deadline; Prometheus's HTTP API returns the peer's byte
# counter; counters survive a SIGHUP reload.
set -eu
# shellcheck source=tests/net/lib.sh
. "$(dirname "$0")/lib.sh"
nt_init metrics
need_impl noisetund
for t in prometheus promtool curl; do
	command -v "$t" >/dev/null || skip "$t is not installed (scripts/install-deps installs it)"
done
NTD=$BUILD/noisetund
NT=$BUILD/noisetun

NSA=$(ns_name a) NSB=$(ns_name b)
IFA=$(if_name a) IFB=$(if_name b)
ns_create "$NSA"
ns_create "$NSB"
link_pair "$NSA" 1 "$NSB" 2
key_new a
key_new b
key_new c
PUBA=$(key_pub a) PUBB=$(key_pub b)
MA=192.0.2.1:9586

# A: config mode (SIGHUP reloads), metrics on the option.
conf_a() {
	{
		cat <<EOF
[Interface]
PrivateKey = $(cat "$(key_file a)")
ListenPort = 51820
Address = 10.0.0.1/24

[Peer]
PublicKey = $PUBB
Endpoint = 192.0.2.2:51821
AllowedIPs = 10.0.0.2/32
EOF
		[ "${1:-}" != v2 ] || printf '\n[Peer]\nPublicKey = %s\nAllowedIPs = 10.0.0.3/32\n' "$(key_pub c)"
	} >"$NT_TMP/a.conf"
	chmod 600 "$NT_TMP/a.conf"
}
conf_a
NT_IFACES+=("$IFA")
LOG_LEVEL=verbose ip netns exec "$NSA" "$NTD" --metrics-listen "$MA" -c "$NT_TMP/a.conf" "$IFA" \
	>>"$NT_TMP/$IFA.log" 2>&1 </dev/null || fail "noisetund -c a.conf --metrics-listen failed"
PIDA=$(_find_daemon "$IFA" "$NTD") || fail "no daemon for A"
NT_PIDS+=("$PIDA")
echo "$PIDA" >"$NT_TMP/$IFA.pid"

# B: as wg-quick starts it, metrics from the environment (IPv6), one process (no split:
# the same loop serves the tunnel and the metrics).
export NOISETUN_METRICS_LISTEN='[2001:db8::2]:9586' NOISETUN_USER=root
start_wg noisetund "$NSB" "$IFB"
unset NOISETUN_METRICS_LISTEN NOISETUN_USER
wgn "$NSB" set "$IFB" private-key "$(key_file b)" listen-port 51821 \
	peer "$PUBA" endpoint 192.0.2.1:51820 allowed-ips 10.0.0.1/32
tun_up "$NSB" "$IFB" 10.0.0.2/24 fd00::2/64

# Test that a bad --metrics-listen stops the start with a reason.
NT_IFACES+=("ntme${NT_ID}x")
if out=$(ip netns exec "$NSB" "$NTD" -f --metrics-listen 192.0.2.2 "ntme${NT_ID}x" 2>&1); then
	fail "noisetund took --metrics-listen without a port"
fi
echo "$out" | grep -q "metrics" || fail "no reason for a bad --metrics-listen: $out"

ping_ok "$NSA" 10.0.0.2 5
assert_handshake "$NSA" "$IFA" "$PUBB"

# metric NAME IFACE [PUB]: the value of a sample in the exposition on stdin.
metric() {
	awk -v n="$1" -v i="interface=\"$2\"" -v k="${3:+public_key=\"$3\"}" '
		index($0, n "{") == 1 && index($0, i) && (k == "" || index($0, k)) { print $NF; exit }'
}
# dump_field IFACE PUB COL: a column of wg show dump's peer line (6 rx, 7 tx).
dump_field() {
	local ns=$NSA
	[ "$1" = "$IFB" ] && ns=$NSB
	wgn "$ns" show "$1" dump | awk -v k="$2" -v c="$3" '$1 == k { print $c }'
}

# Test that `noisetun metrics IFACE` passes promtool and has every family.
"$NT" metrics "$IFA" >"$NT_TMP/a.prom" || fail "noisetun metrics $IFA failed"
promtool check metrics <"$NT_TMP/a.prom" >"$NT_TMP/promtool.out" 2>&1 ||
	{ cat "$NT_TMP/promtool.out"; fail "promtool check metrics refused noisetun metrics"; }
for f in noisetun_up noisetun_peers noisetun_under_load noisetun_cookie_replies_sent_total \
	noisetun_handshake_jobs_pending noisetun_handshake_jobs_discarded_total noisetun_drops_total \
	noisetun_peer_info noisetun_peer_receive_bytes_total noisetun_peer_transmit_bytes_total \
	noisetun_peer_receive_packets_total noisetun_peer_transmit_packets_total noisetun_peer_handshakes_total \
	noisetun_peer_handshake_attempts_total noisetun_peer_handshake_failures_total \
	noisetun_peer_last_handshake_timestamp_seconds noisetun_peer_session_age_seconds; do
	grep -q "^# TYPE $f " "$NT_TMP/a.prom" || fail "no $f in noisetun metrics"
	grep -q "^$f{" "$NT_TMP/a.prom" || fail "no $f sample in noisetun metrics"
done
[ "$(metric noisetun_up "$IFA" <"$NT_TMP/a.prom")" = 1 ] || fail "noisetun_up is not 1"
[ "$(metric noisetun_peers "$IFA" <"$NT_TMP/a.prom")" = 1 ] || fail "noisetun_peers is not 1"
grep -q "^noisetun_peer_info{interface=\"$IFA\",public_key=\"$PUBB\",name=\"\",endpoint=\"192.0.2.2:51821\"} 1$" \
	"$NT_TMP/a.prom" || fail "no noisetun_peer_info for B with its endpoint"
hs=$(metric noisetun_peer_handshakes_total "$IFA" "$PUBB" <"$NT_TMP/a.prom")
att=$(metric noisetun_peer_handshake_attempts_total "$IFA" "$PUBB" <"$NT_TMP/a.prom")
rxp=$(metric noisetun_peer_receive_packets_total "$IFA" "$PUBB" <"$NT_TMP/a.prom")
[ "$hs" -ge 1 ] && [ "$att" -ge 1 ] && [ "$rxp" -ge 6 ] ||
	fail "A's counters for B: handshakes $hs, attempts $att, packets received $rxp"
log "noisetun metrics: promtool ok, handshakes $hs, attempts $att, packets received $rxp"

# Test that the asynchronous handshake figures are the control socket's (get=1 with
# noisetun=1, the only get that carries them: a plain get=1 stays what stock wg reads),
# and that no job is left pending once the handshakes are done.
rawget "$IFA" 'get=1\n\n' >"$NT_TMP/get.plain"
! grep -q '^noisetun_' "$NT_TMP/get.plain" || fail "a plain get=1 carries noisetun_ lines"
for try in 1 2 3 4 5; do
	rawget "$IFA" 'get=1\nnoisetun=1\n\n' >"$NT_TMP/get.ext"
	"$NT" metrics "$IFA" >"$NT_TMP/a.prom"
	rawget "$IFA" 'get=1\nnoisetun=1\n\n' >"$NT_TMP/get.ext2"
	cmp -s <(grep '^noisetun_handshake_jobs_' "$NT_TMP/get.ext") \
		<(grep '^noisetun_handshake_jobs_' "$NT_TMP/get.ext2") && break
	sleep 0.3
done
gp=$(sed -n 's/^noisetun_handshake_jobs_pending=//p' "$NT_TMP/get.ext")
gd=$(sed -n 's/^noisetun_handshake_jobs_discarded=//p' "$NT_TMP/get.ext")
mp=$(metric noisetun_handshake_jobs_pending "$IFA" <"$NT_TMP/a.prom")
md=$(metric noisetun_handshake_jobs_discarded_total "$IFA" <"$NT_TMP/a.prom")
[ -n "$gp" ] && [ -n "$gd" ] || fail "get=1 + noisetun=1 lacks the handshake job lines: $(cat "$NT_TMP/get.ext")"
[ "$mp" = "$gp" ] && [ "$md" = "$gd" ] ||
	fail "metrics jobs pending/discarded $mp/$md, the control socket says $gp/$gd"
[ "$gp" = 0 ] || fail "$gp handshake jobs still pending after the handshake"
grep -q '^# HELP noisetun_handshake_jobs_pending [A-Z].*\.$' "$NT_TMP/a.prom" &&
	grep -q '^# HELP noisetun_handshake_jobs_discarded_total [A-Z].*\.$' "$NT_TMP/a.prom" ||
	fail "the handshake job families lack their HELP"
grep -E '^(# (HELP|TYPE) )?noisetun_handshake_jobs_' "$NT_TMP/a.prom" | sed 's/^/  /'
log "handshake jobs: pending $mp, discarded $md (= the control socket's get; read $try time(s))"

# Test that the byte counters are wg show dump's transfer figures (read while idle: the
# metrics before and after the dump agree).
for try in 1 2 3 4 5; do
	m1=$("$NT" metrics "$IFA" | metric noisetun_peer_receive_bytes_total "$IFA" "$PUBB")
	t1=$("$NT" metrics "$IFA" | metric noisetun_peer_transmit_bytes_total "$IFA" "$PUBB")
	drx=$(dump_field "$IFA" "$PUBB" 6)
	dtx=$(dump_field "$IFA" "$PUBB" 7)
	m2=$("$NT" metrics "$IFA" | metric noisetun_peer_receive_bytes_total "$IFA" "$PUBB")
	t2=$("$NT" metrics "$IFA" | metric noisetun_peer_transmit_bytes_total "$IFA" "$PUBB")
	[ "$m1" = "$m2" ] && [ "$t1" = "$t2" ] && break
	sleep 0.3
done
[ "$m1" = "$drx" ] && [ "$t1" = "$dtx" ] ||
	fail "metrics rx/tx $m1/$t1, wg show dump $drx/$dtx"
[ "$drx" -gt 0 ] || fail "no bytes received"
log "receive/transmit bytes = wg show dump: $drx / $dtx"

# Test that the all-interfaces form covers both of ours and still passes promtool (other
# runs' interfaces may come and go meanwhile: only ours are checked).
"$NT" metrics >"$NT_TMP/all.prom" 2>"$NT_TMP/all.err" || true
promtool check metrics <"$NT_TMP/all.prom" >"$NT_TMP/promtool.out" 2>&1 ||
	{ cat "$NT_TMP/promtool.out"; fail "promtool refused noisetun metrics (all)"; }
for i in "$IFA" "$IFB"; do
	grep -q "^noisetun_up{interface=\"$i\"} 1$" "$NT_TMP/all.prom" || fail "noisetun metrics (all) lacks $i"
done
[ "$(grep -c '^# TYPE noisetun_up ' "$NT_TMP/all.prom")" = 1 ] || fail "a family declared twice"

# ---- HTTP

ina() { ip netns exec "$NSA" "$@"; }

# Test that the listening socket is the worker's alone: the root monitor closed its copy.
holders=$(ina ss -ltnpH "sport = :9586" | grep -o 'pid=[0-9]*' | sort -u | tr '\n' ' ')
worker=$(daemon_worker_pid "$IFA")
[ "$worker" != "$PIDA" ] || fail "A did not split"
[ "$holders" = "pid=$worker " ] || fail "port 9586 held by $holders, not only by the worker ($worker; monitor $PIDA)"
# http NS METHOD URL: the status code (000 when the connection failed).
http() {
	ip netns exec "$1" curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X "$2" "$3" || true
}

# Test that GET /metrics serves the CLI's text, with the exposition's content type.
ina curl -s --max-time 5 -D "$NT_TMP/head" -o "$NT_TMP/http.prom" "http://$MA/metrics" || fail "GET /metrics failed"
grep -qi '^HTTP/1.1 200' "$NT_TMP/head" || fail "GET /metrics: $(head -n 1 "$NT_TMP/head")"
grep -qi '^Content-Type: text/plain; version=0.0.4' "$NT_TMP/head" || fail "GET /metrics: content type"
grep -qi '^Connection: close' "$NT_TMP/head" || fail "GET /metrics: no Connection: close"
promtool check metrics <"$NT_TMP/http.prom" >"$NT_TMP/promtool.out" 2>&1 ||
	{ cat "$NT_TMP/promtool.out"; fail "promtool check metrics refused GET /metrics"; }
diff <(grep -v -e session_age -e '^noisetun_under_load' "$NT_TMP/http.prom" | sed 's/ [0-9.]*$//') \
	<("$NT" metrics "$IFA" | grep -v -e session_age -e '^noisetun_under_load' | sed 's/ [0-9.]*$//') >/dev/null ||
	fail "GET /metrics and noisetun metrics differ in their samples"
[ "$(http "$NSA" GET "http://$MA/metrics?name%5B%5D=x")" = 200 ] || fail "GET /metrics?query refused"
[ "$(daemon_worker_pid "$IFB")" = "$(daemon_pid "$IFB")" ] || fail "B split despite NOISETUN_USER=root"
ip netns exec "$NSB" curl -sf --max-time 5 -o "$NT_TMP/b.http" "http://[2001:db8::2]:9586/metrics" ||
	fail "B (NOISETUN_METRICS_LISTEN, IPv6, unsplit): GET /metrics failed"
grep -q "^noisetun_peer_receive_bytes_total{interface=\"$IFB\",public_key=\"$PUBA\",name=\"\"} [1-9]" "$NT_TMP/b.http" ||
	fail "B's metrics lack A's received bytes"
for f in noisetun_handshake_jobs_pending noisetun_handshake_jobs_discarded_total; do
	grep -q "^$f{interface=\"$IFB\"} [0-9][0-9]*$" "$NT_TMP/b.http" || fail "B's GET /metrics lacks $f"
done

# Test that anything but GET /metrics is refused.
[ "$(http "$NSA" POST "http://$MA/metrics")" = 405 ] || fail "POST /metrics not refused with 405"
[ "$(http "$NSA" GET "http://$MA/")" = 404 ] || fail "GET / not refused with 404"
[ "$(http "$NSA" GET "http://$MA/metricsx")" = 404 ] || fail "GET /metricsx not refused with 404"
log "GET /metrics 200 (also with a query, and over IPv6); POST 405; other paths 404"

# Test that a malformed and an oversized request are refused, the connection closed.
ina python3 - "$MA" <<'EOF' || fail "bad requests were not refused"
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
def ask(data):
    s = socket.create_connection((host, int(port)), timeout=5)
    try:
        s.sendall(data)
    except OSError:
        pass
    reply = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            reply += b
    except ConnectionResetError:
        pass
    s.close()
    return reply.split(b"\r\n", 1)[0]
r = ask(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 8000 + b"\r\n\r\n")
assert r.startswith(b"HTTP/1.1 431") or r == b"", r
r = ask(b"HELLO\r\n\r\n")
assert r.startswith(b"HTTP/1.1 400"), r
r = ask(b"GET /metrics SPDY/9\r\n\r\n")
assert r.startswith(b"HTTP/1.1 400"), r
print("oversized: refused; malformed: 400")
EOF

# Test that a slowloris connection (a byte every 0.3 s, never done) stalls neither the
# tunnel nor other scrapes, and is closed at the deadline (5 s).
ina python3 - "$MA" >"$NT_TMP/slowloris.out" 2>&1 <<'EOF' &
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)))
t0 = time.monotonic()
try:
    for b in b"GET /metrics HTTP/1.1\r\nHost: slow\r\nX-Slow: " + b"a" * 100:
        s.send(bytes([b]))
        time.sleep(0.3)
        s.settimeout(0.01)
        try:
            if s.recv(1) == b"":
                break
        except socket.timeout:
            pass
        s.settimeout(None)
except OSError:
    pass
print("closed after %.1f s" % (time.monotonic() - t0))
EOF
SLOW=$!
NT_PIDS+=("$SLOW")
sleep 1
start=$(date +%s%N)
for i in 1 2 3; do
	[ "$(http "$NSA" GET "http://$MA/metrics")" = 200 ] || fail "a scrape failed while a slowloris connection was open"
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
# (blocked, the first would wait for the slowloris' deadline, 4 s away)
[ "$ms" -lt 3500 ] || fail "3 scrapes took $ms ms beside a slowloris connection"
ping_ok "$NSA" 10.0.0.2 5
wait "$SLOW" || true
secs=$(sed -n 's/^closed after \([0-9.]*\) s$/\1/p' "$NT_TMP/slowloris.out")
[ -n "$secs" ] || fail "slowloris: $(cat "$NT_TMP/slowloris.out")"
awk -v s="$secs" 'BEGIN { exit !(s >= 4 && s < 8) }' || fail "slowloris connection closed after $secs s, not at 5 s"
log "slowloris: 3 scrapes in $ms ms and the tunnel pinged meanwhile; cut after $secs s"

# Test that more connections than the cap (8) wait, and are served once the idle ones
# reach their deadline: nothing blocks for good.
ina python3 - "$MA" <<'EOF' || fail "the connection cap did not recover"
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
idle = [socket.create_connection((host, int(port))) for _ in range(12)]
t0 = time.monotonic()
s = socket.create_connection((host, int(port)), timeout=10)
s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
reply = s.recv(64)
assert reply.startswith(b"HTTP/1.1 200"), reply
print("served after %.1f s behind 12 idle connections" % (time.monotonic() - t0))
EOF

# ---- a real Prometheus

cat >"$NT_TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: noisetun
    static_configs:
      - targets: ['$MA']
EOF
mkdir "$NT_TMP/tsdb"
ina prometheus --config.file="$NT_TMP/prometheus.yml" --storage.tsdb.path="$NT_TMP/tsdb" \
	--web.listen-address=127.0.0.1:9090 --log.level=warn >"$NT_TMP/prometheus.log" 2>&1 </dev/null &
NT_PIDS+=("$!")
wait_for 20 "prometheus to be ready" ina curl -sf http://127.0.0.1:9090/-/ready

# query EXPR: the first result's value ("" while there is none).
query() {
	ina curl -s --max-time 5 -G --data-urlencode "query=$1" http://127.0.0.1:9090/api/v1/query |
		python3 -c 'import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if r else "")' 2>/dev/null || true
}
has_result() { [ -n "$(query "$1")" ]; }
Q="noisetun_peer_receive_bytes_total{interface=\"$IFA\",public_key=\"$PUBB\"}"
# (Prometheus applies its targets some 5 s after it is ready.)
wait_for 20 "prometheus to have scraped $IFA" has_result "$Q"
ping_ok "$NSA" 10.0.0.2 3
rx0=$(dump_field "$IFA" "$PUBB" 6)
sleep 2.5 # two scrapes after the figure was read
val=$(query "$Q")
rx1=$(dump_field "$IFA" "$PUBB" 6)
[ "$(query "up{job=\"noisetun\"}")" = 1 ] || fail "prometheus: the target is not up"
[ "$val" -gt 0 ] && [ "$val" -ge "$rx0" ] && [ "$val" -le "$rx1" ] ||
	fail "prometheus: $Q = $val, wg show dump says $rx0..$rx1"
log "prometheus: $Q = $val (wg show dump $rx0..$rx1)"

# ---- counters across a reload

# Test that a SIGHUP reload (here adding a peer) keeps every counter of B's peer.
before=$("$NT" metrics "$IFA")
conf_a v2
kill -HUP "$PIDA"
wait_for 10 "the reload (2 peers)" sh -c "'$NT' metrics '$IFA' | grep -qx 'noisetun_peers{interface=\"$IFA\"} 2'"
after=$("$NT" metrics "$IFA")
for f in receive_bytes transmit_bytes receive_packets transmit_packets handshakes handshake_attempts; do
	b=$(echo "$before" | metric "noisetun_peer_${f}_total" "$IFA" "$PUBB")
	a=$(echo "$after" | metric "noisetun_peer_${f}_total" "$IFA" "$PUBB")
	[ "$b" -gt 0 ] && [ "$a" -ge "$b" ] || fail "noisetun_peer_${f}_total went from $b to $a across the reload"
done
ping_ok "$NSA" 10.0.0.2 2
[ "$(http "$NSA" GET "http://$MA/metrics")" = 200 ] || fail "no metrics after the reload"
log "counters kept across the reload; metrics still served"

daemon_alive "$IFA" || fail "A died"
daemon_alive "$IFB" || fail "B died"
log "PASS"
