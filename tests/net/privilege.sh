#!/bin/bash
# Least privilege: started the way wg-quick starts it, noisetund ends up as a root monitor
# that holds no TUN fd and a worker that runs as a uid of its own with no capability,
# no_new_privs and a seccomp filter (the monitor opens and marks its UDP sockets); only
# root and the -g group
# may `set` over the control socket. A's daemon has NOISETUN_GROUP=users.
#
#   ns A                                     ns B
#   +----------------------------------+     +----------------------------------+
#   | noisetund ntpr<id>a (split)      |     | noisetund ntpr<id>b (split)      |
#   |   10.0.0.1/24 fd00::1/64         |     |   10.0.0.2/24 fd00::2/64         |
#   | eth0 192.0.2.1                   |-----| eth0 192.0.2.2                   |
#   +----------------------------------+     +----------------------------------+
#   then ntpr<id>c in A with NOISETUN_USER=root: one root process, as before the split,
#   and ntpr<id>d in A with NOISETUN_USER=nobody; ntpr<id>e in A in config mode (-c).
set -eu
. "$(dirname "$0")/lib.sh"
nt_init privilege
need_impl noisetund
command -v setpriv >/dev/null || skip "setpriv (util-linux) is not installed"
getent group users >/dev/null || skip "no group \`users' to configure as the control group"
NTD=$BUILD/noisetund
NT_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
command -v cc >/dev/null || skip "cc is not installed (needed for tests/net/tools/sandbox_probe.c)"

NSA=$(ns_name a) NSB=$(ns_name b)
IFA=$(if_name a) IFB=$(if_name b) IFC=$(if_name c) IFD=$(if_name d) IFE=$(if_name e)
ns_create "$NSA"
ns_create "$NSB"
link_pair "$NSA" 1 "$NSB" 2
key_new a
key_new b
key_new x

# field PID KEY: the value of KEY in /proc/PID/status, fields joined by one space.
field() { awk -v k="$2:" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }' "/proc/$1/status"; }
tun_fds() { ls -l "/proc/$1/fd" 2>/dev/null | grep -c '/dev/net/tun' || true; }
# as_user GROUPS_ARGS... -- CMD: run CMD in A as nobody with the given group arguments.
as_nobody() { ip netns exec "$NSA" setpriv --reuid=nobody "$@"; }
conf_a() { wgn "$NSA" showconf "$IFA"; }

# A's launcher inherits fd 251 without O_CLOEXEC, as from a shell's `exec 251>FILE`.
export NOISETUN_GROUP=users
exec 251>"$NT_TMP/inherited"
start_wg noisetund "$NSA" "$IFA"
exec 251>&-
unset NOISETUN_GROUP
start_wg noisetund "$NSB" "$IFB"
MON=$(daemon_pid "$IFA")
WRK=$(daemon_worker_pid "$IFA")
[ "$WRK" != "$MON" ] || fail "noisetund did not split into a monitor and a worker"
log "A: monitor $MON, worker $WRK"

# Test that the worker runs as one uid, the same gid, with no supplementary group, exactly
# no capability at all (not even in the bounding set), no_new_privs, and in seccomp
# filter mode (2); a sanitizer build says it skips the filter, and only then is it 0.
NOBODY=$(id -u nobody)
WUID=$(field "$WRK" Uid | cut -d' ' -f1)
[ "$(field "$WRK" Uid)" = "$WUID $WUID $WUID $WUID" ] || fail "worker Uid: $(field "$WRK" Uid)"
[ "$(field "$WRK" Gid)" = "$WUID $WUID $WUID $WUID" ] || fail "worker Gid: $(field "$WRK" Gid)"
[ -z "$(field "$WRK" Groups)" ] || fail "worker supplementary groups: $(field "$WRK" Groups)"
for c in CapEff CapPrm CapBnd; do
	[ "$(field "$WRK" $c)" = 0000000000000000 ] || fail "worker $c: $(field "$WRK" $c), want 0000000000000000"
done
for c in CapInh CapAmb; do
	[ "$(field "$WRK" $c)" = 0000000000000000 ] || fail "worker $c: $(field "$WRK" $c)"
done
[ "$(field "$WRK" NoNewPrivs)" = 1 ] || fail "worker NoNewPrivs: $(field "$WRK" NoNewPrivs)"
want_seccomp=2
if grep -q 'sanitizer build: the worker stays dumpable' "$NT_TMP/$IFA.log"; then
	want_seccomp=0
	log "sanitizer build: no seccomp filter expected"
fi
[ "$(field "$WRK" Seccomp)" = "$want_seccomp" ] || fail "worker Seccomp: $(field "$WRK" Seccomp), want $want_seccomp"
log "worker: uid/gid $WUID, CapEff $(field "$WRK" CapEff), NoNewPrivs 1, Seccomp $(field "$WRK" Seccomp)"

# Test the sandbox itself, not just its /proc summary: tools/sandbox_probe links the
# daemon's daemon/sandbox.c, opens what the worker holds when it drops (an rtnetlink socket
# on the link group, a UDP socket), enters the same sandbox as the worker's uid and tries,
# in A, one operation per child. A subverted worker must not open any socket (netfilter,
# xfrm or new rtnetlink; raw, packet, TCP, UNIX, even UDP: the monitor opens those); must
# not add an address to an unrelated interface (lo) over the kept rtnetlink socket, a dup
# of it, or its number with bits above 32 set; must not set a socket option (an iptables
# table replacement, SO_MARK). Without the filter (caps-*), the kernel must still refuse
# the address, the table and the mark: the worker holds no capability. It must still read
# link events.
cc -std=gnu11 -O2 -Wall -Wextra -D_GNU_SOURCE -I"$NT_ROOT/daemon" -o "$NT_TMP/sandbox_probe" \
	"$NT_ROOT/tests/net/tools/sandbox_probe.c" "$NT_ROOT/daemon/sandbox.c" -lseccomp ||
	fail "cannot build tests/net/tools/sandbox_probe.c"
denied="netfilter xfrm rtnl raw packet tcp unix udp addr addr-dup addr-hi ipt mark caps-addr caps-ipt caps-mark"
allowed="nlrecv"
# shellcheck disable=SC2086
ip netns exec "$NSA" "$NT_TMP/sandbox_probe" "$(field "$WRK" Uid | cut -d' ' -f1)" \
	"$(field "$WRK" Gid | cut -d' ' -f1)" 1 $denied $allowed >"$NT_TMP/probe.out" ||
	fail "sandbox_probe failed: $(cat "$NT_TMP/probe.out")"
sed 's/^/  probe: /' "$NT_TMP/probe.out"
bad=""
for op in $denied; do
	# caps-ipt: ENOPROTOOPT where netfilter has no setsockopt handler (no ip_tables)
	grep -Eqx "$op: (killed SIGSYS|errno EPERM)" "$NT_TMP/probe.out" ||
		{ [ "$op" = caps-ipt ] && grep -qx "$op: errno ENOPROTOOPT" "$NT_TMP/probe.out"; } ||
		bad="$bad $(grep "^$op:" "$NT_TMP/probe.out")"
done
for op in $allowed; do
	grep -qx "$op: ok" "$NT_TMP/probe.out" || bad="$bad $(grep "^$op:" "$NT_TMP/probe.out")"
done
! ip -n "$NSA" addr show dev lo | grep -q 10.254.0.1 || bad="$bad; 10.254.0.1 was added to lo"
[ -z "$bad" ] || fail "the worker's sandbox lets through (or refuses):$bad"
log "sandbox: $(echo $denied | wc -w) operations refused, link events still read"
# Test that the daemon's worker holds its rtnetlink socket where the filter expects it:
# on its highest fd, RLIMIT_NOFILE one above.
top=$(ls "/proc/$WRK/fd" | sort -n | tail -n 1)
lim=$(awk '/^Max open files/ { print $4 }' "/proc/$WRK/limits")
inode=$(readlink "/proc/$WRK/fd/$top" | tr -dc 0-9)
[ $((top + 1)) = "$lim" ] || fail "worker: highest fd $top, RLIMIT_NOFILE $lim"
awk -v i="$inode" '$NF == i && $2 == 0 { f = 1 } END { exit !f }' "/proc/$WRK/net/netlink" ||
	fail "worker: fd $top is not its rtnetlink socket: $(readlink "/proc/$WRK/fd/$top")"

# Test that neither process kept the inherited fd 251: the daemon closes all but 0-2.
for p in "$MON" "$WRK"; do
	[ ! -e "/proc/$p/fd/251" ] || fail "pid $p holds the inherited fd 251: $(ls -l "/proc/$p/fd")"
done
log "inherited fd 251: closed in the monitor and the worker"

# Test that the monitor is root and holds no TUN fd (the link must go with the worker),
# while the worker holds it.
[ "$(field "$MON" Uid | cut -d' ' -f1)" = 0 ] || fail "monitor Uid: $(field "$MON" Uid)"
[ "$(tun_fds "$MON")" = 0 ] || fail "the monitor holds a TUN fd: $(ls -l "/proc/$MON/fd")"
[ "$(tun_fds "$WRK")" = 1 ] || fail "the worker holds $(tun_fds "$WRK") TUN fds"
[ "$(ls "/proc/$MON/fd" | wc -l)" -le 8 ] || fail "the monitor holds many fds: $(ls -l "/proc/$MON/fd")"
log "monitor: root, no TUN fd, $(ls "/proc/$MON/fd" | wc -l) fds"

# Test that traffic flows through the workers, configured by root with wg set.
wgn "$NSA" set "$IFA" private-key "$(key_file a)" listen-port 51820 \
	peer "$(key_pub b)" allowed-ips 10.0.0.2/32,fd00::2/128 endpoint 192.0.2.2:51821
wgn "$NSB" set "$IFB" private-key "$(key_file b)" listen-port 51821 \
	peer "$(key_pub a)" allowed-ips 10.0.0.1/32,fd00::1/128 endpoint 192.0.2.1:51820
tun_up "$NSA" "$IFA" 10.0.0.1/24 fd00::1/64
tun_up "$NSB" "$IFB" 10.0.0.2/24 fd00::2/64
ping_ok "$NSA" 10.0.0.2
ping_ok "$NSB" fd00::1
assert_handshake "$NSA" "$IFA"

# Test that the worker's uid is its own (issue 20, finding 6): nobody, whom many services
# run as, cannot kill it (nor stop it: the same permission check); traffic still flows.
# Its uid is not nobody's, has no passwd entry, lies in the documented range, and differs
# from B's worker running at the same time.
rc=0
setpriv --reuid="$NOBODY" --regid="$NOBODY" --clear-groups kill -KILL "$WRK" 2>"$NT_TMP/kill.err" || rc=$?
sleep 0.2
pid_alive "$WRK" || fail "uid $NOBODY killed A's worker (uid $WUID)"
[ "$rc" -ne 0 ] || fail "kill as uid $NOBODY succeeded"
ping_ok "$NSA" 10.0.0.2
WUIDB=$(field "$(daemon_worker_pid "$IFB")" Uid | cut -d' ' -f1)
[ "$WUID" != "$NOBODY" ] && [ "$WUIDB" != "$NOBODY" ] || fail "a worker runs as nobody: $WUID, $WUIDB"
[ "$WUID" -ge 2119041024 ] && [ "$WUID" -le 2119042047 ] || fail "A's worker uid $WUID is outside the range"
[ "$WUIDB" -ge 2119041024 ] && [ "$WUIDB" -le 2119042047 ] || fail "B's worker uid $WUIDB is outside the range"
[ "$WUID" != "$WUIDB" ] || fail "A's and B's workers share uid $WUID"
! getent passwd "$WUID" >/dev/null || fail "uid $WUID has a passwd entry"
[ -e "/run/noisetun/uid-$WUID.lock" ] || fail "no lock file for uid $WUID"
log "workers: uids $WUID and $WUIDB; uid $NOBODY cannot kill them ($(head -n 1 "$NT_TMP/kill.err"))"

# Test that a listen-port change after the drop works, to a port below 1024, and that an
# fwmark takes (SO_MARK): the monitor opens and marks the sockets for the capability-less
# worker, with the forced 7 MiB buffers (SO_RCVBUFFORCE: more than rmem_max); B follows A
# to the new port and traffic still flows.
wgn "$NSA" set "$IFA" listen-port 600 || fail "listen-port 600 refused"
[ "$(wgn "$NSA" show "$IFA" listen-port)" = 600 ] || fail "listen port is $(wgn "$NSA" show "$IFA" listen-port)"
ip netns exec "$NSA" ss -uln | grep -q ':600 ' || fail "nothing bound to UDP 600: $(ip netns exec "$NSA" ss -uln)"
wgn "$NSA" set "$IFA" fwmark 0x1234 || fail "fwmark refused"
[ "$(wgn "$NSA" show "$IFA" fwmark)" = 0x1234 ] || fail "fwmark is $(wgn "$NSA" show "$IFA" fwmark)"
wgn "$NSA" set "$IFA" listen-port 51830 || fail "listen-port 51830 refused"
wgn "$NSB" set "$IFB" peer "$(key_pub a)" endpoint 192.0.2.1:51830
rb=$(ip netns exec "$NSA" ss -ulnm 'sport = :51830' 2>/dev/null | grep -o 'rb[0-9]*' | head -n 1 | tr -d rb)
[ "${rb:-0}" -ge $((7 << 20)) ] || fail "the socket on 51830 has a receive buffer of ${rb:-?} bytes"
ip netns exec "$NSA" ss -ulne 'sport = :51830' 2>/dev/null | grep -q 'fwmark:0x1234' ||
	fail "the socket on 51830 is not marked: $(ip netns exec "$NSA" ss -ulne 'sport = :51830' 2>/dev/null)"
ping_ok "$NSB" 10.0.0.1
pid_alive "$WRK" || fail "the worker died"
log "listen port 600 then 51830, fwmark 0x1234: all taken after the drop"

# Test that the socket file is root:users 0770, that a member of users may set (as its
# primary group, and as a supplementary one) and that a non-member cannot even connect.
[ "$(stat -c '%a %U %G' "$NT_SOCK_DIR/$IFA.sock")" = "770 root users" ] ||
	fail "socket: $(stat -c '%a %U %G' "$NT_SOCK_DIR/$IFA.sock")"
as_nobody --regid=users --clear-groups wg set "$IFA" peer "$(key_pub x)" allowed-ips 10.9.0.1/32 ||
	fail "a member of users (primary group) could not set"
wgn "$NSA" show "$IFA" peers | grep -qx "$(key_pub x)" || fail "the member's set did not take"
as_nobody --regid=nogroup --groups=users wg set "$IFA" peer "$(key_pub x)" remove ||
	fail "a member of users (supplementary group) could not set"
! wgn "$NSA" show "$IFA" peers | grep -qx "$(key_pub x)" || fail "the member's remove did not take"
before=$(conf_a)
! as_nobody --regid=nogroup --clear-groups wg set "$IFA" peer "$(key_pub x)" allowed-ips 10.9.0.2/32 \
	2>"$NT_TMP/nonmember.err" || fail "a non-member could set"
[ "$(conf_a)" = "$before" ] || fail "a refused set changed the state"
log "group users: members set, non-member refused ($(head -n 1 "$NT_TMP/nonmember.err"))"

# Test that the daemon's own check holds when the file mode does not: with the socket
# opened to all, an outsider may get, but its set is refused (EPERM), changes nothing, and
# is logged naming its uid.
chmod 0777 "$NT_SOCK_DIR/$IFA.sock"
as_nobody --regid=nogroup --clear-groups wg show "$IFA" >/dev/null || fail "an outsider could not get"
rc=0
as_nobody --regid=nogroup --clear-groups wg set "$IFA" peer "$(key_pub x)" allowed-ips 10.9.0.3/32 \
	2>"$NT_TMP/outsider.err" || rc=$?
chmod 0770 "$NT_SOCK_DIR/$IFA.sock"
[ "$rc" -ne 0 ] || fail "an outsider's set was accepted"
grep -q 'Operation not permitted' "$NT_TMP/outsider.err" || fail "outsider's set: $(cat "$NT_TMP/outsider.err")"
[ "$(conf_a)" = "$before" ] || fail "an outsider's refused set changed the state"
wait_for 2 "the refusal in the log" grep -q "set refused for uid $NOBODY" "$NT_TMP/$IFA.log"
log "outsider: get allowed, set refused with EPERM and logged"

# Test that root still sets (uid 0 passes the check) after all that.
wgn "$NSA" set "$IFA" peer "$(key_pub x)" allowed-ips 10.9.0.4/32 || fail "root could not set"
wgn "$NSA" set "$IFA" peer "$(key_pub x)" remove

# Test that SIGTERM to the daemon stops both processes, removes the socket file and the
# link (the TUN fd was the worker's alone).
kill -TERM "$MON"
wait_for 5 "A's monitor and worker to exit" sh -c "! kill -0 $MON 2>/dev/null && ! kill -0 $WRK 2>/dev/null"
[ ! -e "$NT_SOCK_DIR/$IFA.sock" ] || fail "the socket file outlived the daemon"
wait_for 2 "$IFA to go" sh -c "! ip -n $NSA link show $IFA"
log "SIGTERM: both processes gone, socket file and link removed"

# Test that a worker killed by a signal (here SIGSYS, what a seccomp violation does) is
# reported by the monitor, which then removes the socket file and exits non-zero.
MONB=$(daemon_pid "$IFB") WRKB=$(daemon_worker_pid "$IFB")
kill -SYS "$WRKB"
wait_for 5 "B's monitor to exit" sh -c "! kill -0 $MONB 2>/dev/null"
grep -q 'worker killed by signal 31 (SIGSYS): seccomp' "$NT_TMP/$IFB.log" || fail "no report of the worker's death"
[ ! -e "$NT_SOCK_DIR/$IFB.sock" ] || fail "B's socket file outlived its worker"
wait_for 2 "$IFB to go" sh -c "! ip -n $NSB link show $IFB"
log "a worker killed by SIGSYS: reported, cleaned up"

# Test that NOISETUN_USER=root keeps today's single root process.
export NOISETUN_USER=root
start_wg noisetund "$NSA" "$IFC"
unset NOISETUN_USER
PC=$(daemon_pid "$IFC")
[ "$(daemon_worker_pid "$IFC")" = "$PC" ] || fail "NOISETUN_USER=root still split"
[ "$(field "$PC" Uid | cut -d' ' -f1)" = 0 ] || fail "NOISETUN_USER=root: Uid $(field "$PC" Uid)"
[ "$(field "$PC" Seccomp)" = 0 ] || fail "NOISETUN_USER=root: Seccomp $(field "$PC" Seccomp)"
[ "$(tun_fds "$PC")" = 1 ] || fail "NOISETUN_USER=root: no TUN fd"
wgn "$NSA" set "$IFC" listen-port 700 fwmark 7 || fail "root daemon: set refused"
[ "$(stat -c '%a %U' "$NT_SOCK_DIR/$IFC.sock")" = "700 root" ] || fail "socket: $(stat -c '%a %U' "$NT_SOCK_DIR/$IFC.sock")"
log "NOISETUN_USER=root: one root process, no filter"

# Test that a reload in config mode may change ListenPort and FwMark: the monitor, which
# sends the worker the new settings, must meanwhile open and mark the sockets the worker
# asks it for, or each waits for the other (UAPI_TIMEOUT_SEC, 5 s) and the reload fails.
conf_e() {
	printf '[Interface]\nPrivateKey = %s\nListenPort = %s\nFwMark = %s\n' "$(cat "$(key_file x)")" "$1" "$2" \
		>"$NT_TMP/e.conf"
	chmod 600 "$NT_TMP/e.conf"
}
conf_e 51900 0x55
NT_IFACES+=("$IFE")
LOG_LEVEL=verbose ip netns exec "$NSA" "$NTD" -c "$NT_TMP/e.conf" "$IFE" >>"$NT_TMP/$IFE.log" 2>&1 </dev/null ||
	fail "noisetund -c e.conf failed: $(cat "$NT_TMP/$IFE.log")"
PE=$(_find_daemon "$IFE" "$NTD") || fail "no daemon for $IFE"
NT_PIDS+=("$PE")
[ "$(wgn "$NSA" show "$IFE" listen-port)" = 51900 ] || fail "$IFE: listen port $(wgn "$NSA" show "$IFE" listen-port)"
conf_e 51901 0x66
t0=$(date +%s%N)
kill -HUP "$PE"
wait_for 4 "$IFE to listen on 51901 with fwmark 0x66" \
	sh -c "[ \"\$(ip netns exec $NSA wg show $IFE listen-port)\" = 51901 ]"
[ "$(wgn "$NSA" show "$IFE" fwmark)" = 0x66 ] || fail "$IFE: fwmark $(wgn "$NSA" show "$IFE" fwmark) after the reload"
ip netns exec "$NSA" ss -ulne 'sport = :51901' 2>/dev/null | grep -q 'fwmark:0x66' || fail "$IFE: the socket on 51901 is not marked"
log "config mode: a reload moved $IFE to port 51901, fwmark 0x66 in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
kill -TERM "$PE"
wait_for 5 "$IFE's daemon to exit" sh -c "! kill -0 $PE 2>/dev/null"

# Test that an explicit user still works, and that nobody is warned about as shared.
ip netns exec "$NSA" ip link del "$IFC"
wait_for 5 "$IFC's daemon to exit" sh -c "! kill -0 $PC 2>/dev/null"
export NOISETUN_USER=nobody
start_wg noisetund "$NSA" "$IFD"
unset NOISETUN_USER
WD=$(daemon_worker_pid "$IFD")
[ "$(field "$WD" Uid | cut -d' ' -f1)" = "$NOBODY" ] || fail "NOISETUN_USER=nobody: Uid $(field "$WD" Uid)"
grep -q "user nobody: uid $NOBODY is shared" "$NT_TMP/$IFD.log" || fail "no warning about nobody: $(cat "$NT_TMP/$IFD.log")"
log "NOISETUN_USER=nobody: taken, with a warning that the uid is shared"
log "pass"
