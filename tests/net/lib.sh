# Shared harness for the tests/net scenarios. Sourced, never run: scripts/run-net runs
# every tests/net/*.sh, so run directly this file says what it is and exits 77 (skip).
#
# What it gives a scenario:
#   nt_init TAG               ids, temp dir, EXIT trap, tool checks (skip when missing)
#   ns_create NS              a namespace with lo up, deleted on exit
#   link_pair NS1 I1 NS2 I2   a veth between two namespaces, outer addresses
#                             192.0.2.I/24 and 2001:db8::I/64 (documentation ranges, inside
#                             the namespaces only)
#   lan_create NS...          a bridge in its own namespace, one veth per NS; the k-th NS
#                             (from 1) gets 192.0.2.k/24 and 2001:db8::k/64
#   start_wg IMPL NS IFACE    start noisetund, wireguard-go or an anchor the way wg-quick
#                             does (one argument, the daemon forks itself away); IMPL may be
#                             a path
#   impl_missing IMPL         prints why IMPL cannot run here (and succeeds), or fails
#   key_new NAME              $NT_TMP/NAME.key and NAME.pub via wg genkey / wg pubkey
#   tun_up NS IFACE V4 V6     inner addresses (10.x, fd00::) and link up
#   wgn NS ARGS...            the stock wg inside NS
#   wait_for SECS DESC CMD... poll CMD every 0.1 s, fail after SECS
#   handshake_time, transfer_total, assert_handshake, ping_ok, daemon_alive, ...
#   skip REASON (exit 77, last line is the reason), fail REASON (exit 1)
#
# Environment: NT_IMPL_A / NT_IMPL_B choose the implementations (default noisetund):
# noisetund, wireguard-go (Debian's), the anchors wireguard-go-modern and boringtun (built by
# scripts/anchors into its cache, never by a scenario), or a path;
# BUILD locates noisetund (default build/release); NT_KEEP_LOGS=1 keeps the temp dir.
#
# Every name carries NT_ID (the pid in hex) so two runs cannot collide: the socket
# directory /var/run/wireguard is shared by all namespaces, so interface names must be
# unique host-wide, and are at most 15 characters ("nt" + tag + id + role).

[ -n "${BASH_VERSION:-}" ] || { echo "lib.sh: needs bash" >&2; exit 1; }
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	echo "lib.sh is the shared harness of the scenarios, not a scenario"
	exit 77
fi

NT_SOCK_DIR=/var/run/wireguard
NT_NETNS=()          # namespaces to delete
NT_PIDS=()           # processes to stop (daemons, iperf3, ping, ...)
NT_IFACES=()         # userspace interfaces whose sockets we may have to remove
NT_WARNINGS=()
NT_T0=$(date +%s%N)

# Seconds since the harness was sourced, two decimals.
elapsed() {
	local ms=$(( ($(date +%s%N) - NT_T0) / 10000000 ))
	printf '%d.%02d' $((ms / 100)) $((ms % 100))
}

log() {
	printf '[%6s] %s\n' "$(elapsed)" "$*"
}

skip() {
	NT_SKIPPING=1
	echo "SKIP: $*"
	exit 77
}

fail() {
	echo "---- failure context"
	local i
	for i in "${NT_IFACES[@]}"; do
		if [ -s "$NT_TMP/$i.log" ]; then
			echo "---- last lines of the $i daemon log"
			tail -n 25 "$NT_TMP/$i.log"
		fi
	done
	echo "FAIL: $*"
	exit 1
}

warn() {
	NT_WARNINGS+=("$*")
	echo "WARN: $*"
}

# ---------------------------------------------------------------- setup and teardown

nt_init() {
	NT_TAG=$1
	[ "$(id -u)" -eq 0 ] || skip "not root: network namespaces need root"
	local t
	for t in ip wg python3; do
		command -v "$t" >/dev/null || skip "$t is not installed"
	done
	NT_ID=$(printf '%x' $$)
	NT_TMP=$(mktemp -d "/tmp/nt-$NT_TAG-$NT_ID.XXXXXX")
	chmod 700 "$NT_TMP"
	if [ -z "${BUILD:-}" ]; then
		BUILD=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/release
	fi
	case $BUILD in /*) ;; *) BUILD=$(pwd)/$BUILD;; esac
	NT_IMPL_A=${NT_IMPL_A:-noisetund}
	NT_IMPL_B=${NT_IMPL_B:-noisetund}
	trap nt_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	ip netns add "nt-probe-$NT_ID" 2>/dev/null || skip "cannot create a network namespace"
	ip netns del "nt-probe-$NT_ID"
	log "start $NT_TAG id=$NT_ID BUILD=$BUILD impl A=$NT_IMPL_A B=$NT_IMPL_B"
}

# A name unique to this run: ns_name a -> nt-pair-1f2e-a
ns_name() { echo "nt-$NT_TAG-$NT_ID-$1"; }

# An interface name unique host-wide, <= 15 chars: if_name a -> ntpr1f2ea
if_name() {
	local n="nt${NT_TAG:0:2}$NT_ID$1"
	[ ${#n} -le 15 ] || n="nt${NT_TAG:0:1}${NT_ID: -6}$1"
	echo "${n:0:15}"
}

ns_create() {
	ip netns add "$1"
	NT_NETNS+=("$1")
	ip -n "$1" link set lo up
}

# Outer addresses go inside the test namespaces only; nodad makes them usable at once.
_outer_addr() {
	local ns=$1 dev=$2 idx=$3
	ip -n "$ns" addr add "192.0.2.$idx/24" dev "$dev"
	ip -n "$ns" addr add "2001:db8::$idx/64" dev "$dev" nodad
	ip -n "$ns" link set "$dev" up
}

link_pair() {
	local ns1=$1 i1=$2 ns2=$3 i2=$4
	ip link add "ntv$NT_ID$i1" netns "$ns1" type veth peer name "ntv$NT_ID$i2" netns "$ns2"
	ip -n "$ns1" link set "ntv$NT_ID$i1" name eth0
	ip -n "$ns2" link set "ntv$NT_ID$i2" name eth0
	_outer_addr "$ns1" eth0 "$i1"
	_outer_addr "$ns2" eth0 "$i2"
}

lan_create() {
	local sw k=0 ns
	sw=$(ns_name sw)
	ns_create "$sw"
	ip -n "$sw" link add br0 type bridge
	ip -n "$sw" link set br0 up
	for ns in "$@"; do
		k=$((k + 1))
		ip link add "ntv$NT_ID$k" netns "$ns" type veth peer name "port$k" netns "$sw"
		ip -n "$ns" link set "ntv$NT_ID$k" name eth0
		ip -n "$sw" link set "port$k" master br0 up
		_outer_addr "$ns" eth0 "$k"
	done
}

# Is PID a live (not zombie) process whose command line ends with IFACE?
_pid_is() {
	local pid=$1 ifc=$2 st
	[ -r "/proc/$pid/stat" ] || return 1
	st=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ "$st" != Z ] || return 1
	[ -z "$ifc" ] && return 0
	# the process may be gone by now: the redirect's own error is silenced too
	{ tr '\0' '\n' <"/proc/$pid/cmdline"; } 2>/dev/null | tail -n 1 | grep -qx -- "$ifc"
}

pid_alive() { _pid_is "$1" ""; }

# The pid of the daemon serving IFACE: the live process whose last argument is IFACE and
# whose program is BIN. Interface names are unique to this run, so this is ours. A split
# noisetund is two such processes, a root monitor and its worker child: the monitor is the
# daemon (systemd's main pid; it forwards signals and tears down after the worker).
_is_daemon() {
	_pid_is "$1" "$2" && tr '\0' '\n' 2>/dev/null <"/proc/$1/cmdline" | head -n 1 | grep -q -- "$3"
}
_find_daemon() {
	local ifc=$1 bin=$2 p base
	base=$(basename "$bin")
	# One grep over every command line picks the few candidates; the checks below fork
	# several tools each, which for every process on a busy machine took half a minute.
	for p in $(grep -lsaF -- "$ifc" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
		_is_daemon "$p" "$ifc" "$base" || continue
		_is_daemon "$(awk '/^PPid:/ { print $2 }' "/proc/$p/status" 2>/dev/null)" "$ifc" "$base" && continue
		echo "$p"
		return 0
	done
	return 1
}

# daemon_worker_pid IFACE: the process that runs the data path (a split daemon's worker
# child), for tests that stop it or measure it; the daemon itself when it did not split.
daemon_worker_pid() {
	local main p
	main=$(daemon_pid "$1")
	# main's children: one pgrep, not an awk per process on the machine
	for p in $(pgrep -P "$main"); do
		_pid_is "$p" "$1" && { echo "$p"; return 0; }
	done
	echo "$main"
}

NT_ANCHORS=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/anchors

impl_bin() {
	case $1 in
	noisetund) echo "$BUILD/noisetund";;
	wireguard-go) command -v wireguard-go || echo /nonexistent/wireguard-go;;
	wireguard-go-modern|boringtun) "$NT_ANCHORS" path "$1" 2>/dev/null || echo "/nonexistent/$1";;
	*) echo "$1";;
	esac
}

# impl_missing IMPL: succeeds, printing why, when IMPL cannot run here; fails when it can.
impl_missing() {
	local b
	b=$(impl_bin "$1")
	[ -x "$b" ] && return 1
	case $1 in
	wireguard-go-modern|boringtun) "$NT_ANCHORS" path "$1" 2>&1 >/dev/null || true;;
	wireguard-go) echo "$b missing (apt-get install wireguard-go)";;
	*) echo "$1 not available ($b missing)";;
	esac
	return 0
}

# Skip (not fail) when an implementation the scenario needs is not there.
need_impl() {
	local why
	why=$(impl_missing "$1") && skip "$1 not available: $why"
	return 0
}

# The arguments IMPL takes before the interface name. boringtun: its privilege drop goes to
# getlogin()'s user, which fails with no login session (as here), so it keeps root.
_impl_args() {
	case $1 in
	boringtun) echo "--disable-drop-privileges --verbosity info";;
	esac
}

# IMPL is started in the foreground (-f) rather than as wg-quick does. boringtun: daemonized,
# it sends stderr to /dev/null, so a panic (e.g. 0.7.1 on "wg set" of an existing peer) would
# leave no trace; in the foreground it lands in IFACE.log, which the cleanup scans.
_impl_foreground() { [ "$1" = boringtun ]; }

# start_wg IMPL NS IFACE: run "IMPL IFACE" in NS exactly as wg-quick does; the launcher
# must exit 0 with the socket already in place and a daemon left behind. If the daemonizing start fails, warn (the contract is broken) and fall
# back to a foreground daemon so the scenario still tests the data path.
# The pid is kept in $NT_TMP/IFACE.pid (see daemon_pid).
start_wg() {
	local impl=$1 ns=$2 ifc=$3 bin launcher rc=running i pid="" args
	bin=$(impl_bin "$impl")
	[ -x "$bin" ] || skip "$impl not available ($bin missing)"
	args=$(_impl_args "$impl" "$ifc")
	NT_IFACES+=("$ifc")
	rm -f "$NT_SOCK_DIR/$ifc.sock"
	if _impl_foreground "$impl"; then
		rc=foreground
	else
		# shellcheck disable=SC2086 # args: words without spaces, by construction
		LOG_LEVEL=verbose ip netns exec "$ns" "$bin" $args "$ifc" >>"$NT_TMP/$ifc.log" 2>&1 </dev/null &
		launcher=$!
	fi
	[ "$rc" = foreground ] || for i in $(seq 100); do
		if ! kill -0 "$launcher" 2>/dev/null; then
			rc=0; wait "$launcher" || rc=$?
			break
		fi
		sleep 0.1
	done
	if [ "$rc" = foreground ]; then
		:
	elif [ "$rc" = running ]; then
		# Still attached after 10 s: it never forked away. Keep it as a foreground daemon.
		warn "start_wg $impl $ifc: launcher did not return within 10 s (did not daemonize)"
		NT_PIDS+=("$launcher")
		pid=$launcher
	elif [ "$rc" -ne 0 ]; then
		warn "start_wg $impl $ifc: '$bin $ifc' exited $rc; retrying in the foreground"
	elif [ ! -S "$NT_SOCK_DIR/$ifc.sock" ]; then
		warn "start_wg $impl $ifc: launcher exited before $NT_SOCK_DIR/$ifc.sock existed"
	fi
	if [ -z "$pid" ] && [ "$rc" != 0 ]; then
		# shellcheck disable=SC2086
		NO_COLOR=1 WG_PROCESS_FOREGROUND=1 LOG_LEVEL=verbose ip netns exec "$ns" "$bin" $args -f "$ifc" \
			>>"$NT_TMP/$ifc.log" 2>&1 </dev/null &
		pid=$!
		NT_PIDS+=("$pid")
	fi
	wait_for 5 "$NT_SOCK_DIR/$ifc.sock to appear" test -S "$NT_SOCK_DIR/$ifc.sock"
	if [ -z "$pid" ]; then
		pid=$(_find_daemon "$ifc" "$bin") || fail "start_wg: no $impl process for $ifc"
		NT_PIDS+=("$pid")
	fi
	wait_for 5 "$ifc to exist in $ns" ip -n "$ns" link show "$ifc"
	echo "$pid" >"$NT_TMP/$ifc.pid"
	echo "$impl" >"$NT_TMP/$ifc.impl"
	log "started $impl for $ifc in $ns (pid $pid)"
}

daemon_pid() { cat "$NT_TMP/$1.pid"; }

# daemon_alive IFACE: the process lives and answers a get over its socket.
daemon_alive() {
	local ifc=$1
	_pid_is "$(daemon_pid "$ifc")" "$ifc" && [ -S "$NT_SOCK_DIR/$ifc.sock" ] &&
		wg show "$ifc" >/dev/null 2>&1
}

# Stop pid politely, then firmly; only processes this run started.
_stop_pid() {
	local pid=$1 i
	pid_alive "$pid" || return 0
	kill -CONT "$pid" 2>/dev/null || true      # garbage-udp stops a daemon for a moment
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 50); do
		pid_alive "$pid" || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

nt_cleanup() {
	local rc=$? p ns i
	trap - EXIT INT TERM
	set +e
	for p in "${NT_PIDS[@]}"; do _stop_pid "$p"; done
	# A daemon started by someone else for us (wg-quick) and not yet registered when the
	# run was cut short: found by its interface name, unique to this run.
	for i in "${NT_IFACES[@]}"; do
		p=$(_find_daemon "$i" "") && _stop_pid "$p"
	done
	for ns in "${NT_NETNS[@]}"; do ip netns del "$ns" 2>/dev/null; done
	for i in "${NT_IFACES[@]}"; do
		[ -e "$NT_SOCK_DIR/$i.sock" ] && rm -f "$NT_SOCK_DIR/$i.sock"
	done
	wait 2>/dev/null
	# A sanitizer (make check SANITIZE=1) or Go runtime report in any daemon log fails
	# the scenario: the daemons were stopped with SIGTERM so LeakSanitizer had its say.
	if [ "$rc" -eq 0 ] && [ -d "$NT_TMP" ] &&
		grep -l -E 'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|^panic:|panicked at' \
			"$NT_TMP"/*.log >/dev/null 2>&1; then
		echo "---- sanitizer or runtime reports in the daemon logs"
		grep -h -E -A 12 'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|^panic:|panicked at' \
			"$NT_TMP"/*.log | head -n 60
		echo "FAIL: sanitizer/runtime report from a daemon (logs in $NT_TMP)"
		rc=1
	fi
	# Say so if anything of ours survived (after a skip the last line must stay the reason).
	local left=""
	for ns in "${NT_NETNS[@]}"; do
		ip netns list 2>/dev/null | grep -q "^$ns\b" && left="$left netns:$ns"
	done
	for i in "${NT_IFACES[@]}"; do
		[ -e "$NT_SOCK_DIR/$i.sock" ] && left="$left sock:$i"
	done
	if [ -n "$left" ] && [ -z "${NT_SKIPPING:-}" ]; then
		echo "cleanup: left behind:$left"
	fi
	if [ "${NT_KEEP_LOGS:-0}" = 1 ] || { [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; }; then
		[ -n "${NT_SKIPPING:-}" ] || echo "cleanup: logs kept in $NT_TMP"
	else
		rm -rf "$NT_TMP"
	fi
	if [ "$rc" -eq 0 ] && [ ${#NT_WARNINGS[@]} -gt 0 ]; then
		echo "passed with ${#NT_WARNINGS[@]} warning(s):"
		printf '  %s\n' "${NT_WARNINGS[@]}"
	fi
	exit "$rc"
}

# ---------------------------------------------------------------- keys and wg

key_new() {
	(umask 077; wg genkey >"$NT_TMP/$1.key")
	wg pubkey <"$NT_TMP/$1.key" >"$NT_TMP/$1.pub"
}
key_file() { echo "$NT_TMP/$1.key"; }
key_pub() { cat "$NT_TMP/$1.pub"; }
psk_new() { (umask 077; wg genpsk >"$NT_TMP/$1.psk"); }

wgn() {
	local ns=$1; shift
	ip netns exec "$ns" wg "$@"
}

tun_up() {
	local ns=$1 ifc=$2 v4=$3 v6=$4
	ip -n "$ns" addr add "$v4" dev "$ifc"
	ip -n "$ns" addr add "$v6" dev "$ifc" nodad
	ip -n "$ns" link set "$ifc" up
}

# The usual tunnel between namespaces $NSA and $NSB, already linked as 192.0.2.1 and .2
# (link_pair or lan_create): keys a and b; implementation $1 on $IFA and $2 on $IFB, each
# the other's peer at its endpoint (ports 51820 and 51821); the TUNs up as 10.0.0.1-2/24
# and fd00::1-2/64. Variables set on the call reach both daemons' environments.
tunnel_up() {
	local impl_a=$1 impl_b=$2
	key_new a
	key_new b
	start_wg "$impl_a" "$NSA" "$IFA"
	start_wg "$impl_b" "$NSB" "$IFB"
	wgn "$NSA" set "$IFA" private-key "$(key_file a)" listen-port 51820 \
		peer "$(key_pub b)" endpoint 192.0.2.2:51821 allowed-ips 10.0.0.2/32,fd00::2/128
	wgn "$NSB" set "$IFB" private-key "$(key_file b)" listen-port 51821 \
		peer "$(key_pub a)" endpoint 192.0.2.1:51820 allowed-ips 10.0.0.1/32,fd00::1/128
	tun_up "$NSA" "$IFA" 10.0.0.1/24 fd00::1/64
	tun_up "$NSB" "$IFB" 10.0.0.2/24 fd00::2/64
}

# wait_for SECS DESC CMD...: poll CMD every 0.1 s until it succeeds; fail after SECS.
wait_for() {
	local secs=$1 desc=$2 end
	shift 2
	end=$(( $(date +%s%N) + secs * 1000000000 ))
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s%N)" -lt "$end" ] || fail "timed out after ${secs}s waiting for $desc"
		sleep 0.1
	done
}

# handshake_time NS IFACE [PUB]: latest handshake (unix seconds, 0 = never) of PUB or the
# first peer.
handshake_time() {
	local ns=$1 ifc=$2 pub=${3:-}
	wgn "$ns" show "$ifc" latest-handshakes |
		awk -v k="$pub" 'k == "" || $1 == k { print $2; exit }'
}

has_handshake() { [ "$(handshake_time "$@")" -gt 0 ] 2>/dev/null; }

assert_handshake() {
	# boringtun (0.7.1) reports the seconds since the handshake where the UAPI has its UNIX
	# time, so "wg show" prints 0 for the whole first second after it: wait up to 3 s for
	# it to become positive (a peer with no handshake stays at 0).
	if [ "$(cat "$NT_TMP/$2.impl" 2>/dev/null)" = boringtun ]; then
		local end=$(( $(date +%s) + 3 ))
		until has_handshake "$@" || [ "$(date +%s)" -gt "$end" ]; do sleep 0.1; done
	fi
	has_handshake "$@" || fail "no handshake on $2 ($(wgn "$1" show "$2" latest-handshakes))"
	log "handshake on $2: $(handshake_time "$@")"
}

# transfer_total NS IFACE: received + sent bytes over all peers.
transfer_total() {
	wgn "$1" show "$2" transfer | awk '{ s += $2 + $3 } END { print s + 0 }'
}

endpoint_of() {
	local ns=$1 ifc=$2 pub=${3:-}
	wgn "$ns" show "$ifc" endpoints | awk -v k="$pub" 'k == "" || $1 == k { print $2; exit }'
}

# endpoint_is NS IFACE EXPECTED: the first peer's endpoint, for wait_for.
endpoint_is() { [ "$(endpoint_of "$1" "$2")" = "$3" ]; }

# ping_ok NS ADDR [COUNT]: COUNT replies within a 10 s deadline.
ping_ok() {
	local ns=$1 addr=$2 n=${3:-3} out
	if out=$(ip netns exec "$ns" ping -n -q -c "$n" -i 0.2 -w 10 "$addr" 2>&1); then
		log "ping $ns -> $addr: $(echo "$out" | grep -E 'packets transmitted')"
	else
		echo "$out"
		fail "ping from $ns to $addr failed"
	fi
}

# rawget IFACE REQUEST: the daemon's reply to REQUEST (printf escapes: 'get=1\n\n') on
# IFACE's control socket, byte for byte, up to the blank line that ends it: for what stock
# wg neither sends nor shows (noisetun=1, names). A daemon silent for 10 s fails it.
rawget() {
	python3 - "$NT_SOCK_DIR/$1.sock" "$2" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode())
data = b""
while not data.endswith(b"\n\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
sys.stdout.buffer.write(data)
EOF
}

# A snapshot of the configuration and the state a peer cannot change behind our back:
# showconf with its peer sections sorted (daemons promise no peer order), then sorted
# endpoints and handshakes (volatile transfer counters left out).
wg_state() {
	local ns=$1 ifc=$2 conf
	conf=$(wgn "$ns" showconf "$ifc") || return 1
	printf '%s\n' "$conf" | python3 -c '
import sys
blocks = sys.stdin.read().strip().split("\n\n")
print("\n\n".join(blocks[:1] + sorted(blocks[1:])))'
	wgn "$ns" show "$ifc" endpoints | sort
	wgn "$ns" show "$ifc" latest-handshakes | sort
}
