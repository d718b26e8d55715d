#!/bin/bash
# The unit under a real systemd: a minimal Debian bookworm root (tests/systemd/mkroot.sh,
# cached) booted with systemd-nspawn --boot --private-network, noisetun installed into it
# with `make install DESTDIR=ROOT PREFIX=/usr/local`, then what a user sees, checked from
# outside with nsenter: systemctl's state, the journal, the processes and their
# capabilities, the link, routes and rules, a ping to a peer in a network namespace inside
# the container. Every packet stays inside the container's private network.
#
#   make check-systemd                 (root; not part of make check)
#   NT_SRC=DIR    install from another tree (default: this one; its $BUILD must be built)
#   BUILD=DIR     the build to install (default build/release)
#   NT_KEEP=1     leave the container running and its root in place (debugging)
#   NT_CONF_DIR=/etc/noisetun  where wg0.conf goes (default /etc/wireguard, the harder
#                 case; the other directory lets an older unit get past the first check)
#
# Prints a PASS/FAIL table; exits 1 if a check failed. A check marked "pending" waits for
# another change (named in its line): it is reported but does not fail the run. Skips
# (exit 0, reason printed) where nspawn cannot run.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
NT_SRC=${NT_SRC:-$(cd "$HERE/../.." && pwd)}
BUILD=${BUILD:-build/release}
NT_ID=${NT_ID:-$$}
MACHINE=ntsd$NT_ID
WORK=${NT_WORK:-/var/tmp/noisetun-systemd.$NT_ID}
CONF_DIR=${NT_CONF_DIR:-/etc/wireguard}
T0=$(date +%s)

skip() {
	echo "SKIP: tests/systemd: $*"
	exit 0
}

[ "$(id -u)" -eq 0 ] || skip "needs root"
command -v systemd-nspawn >/dev/null || skip "systemd-nspawn is not installed (scripts/install-systemd-test-deps)"
command -v nsenter >/dev/null || skip "nsenter is not installed"
[ -c /dev/net/tun ] || skip "no /dev/net/tun"
[ -x "$NT_SRC/$BUILD/noisetund" ] || { echo "tests/systemd: build $NT_SRC/$BUILD first (make)" >&2; exit 1; }

NSPAWN_PID=""
cleanup() {
	if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
		if [ "${NT_KEEP:-0}" = 1 ]; then
			echo "NT_KEEP=1: container leader $LEADER, nspawn pid $NSPAWN_PID, root $ROOT"
			return
		fi
		# SIGTERM: nspawn asks the container's systemd to power off.
		kill -TERM "$NSPAWN_PID" 2>/dev/null
		for _ in $(seq 1 100); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$NSPAWN_PID" 2>/dev/null
		wait "$NSPAWN_PID" 2>/dev/null
	fi
	[ "${NT_KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the root ----
t=$(date +%s)
ROOT=$("$HERE/mkroot.sh" "$WORK")
case $? in
0) ;;
77) skip "no cached root and no debootstrap (scripts/install-systemd-test-deps)" ;;
*) echo "tests/systemd: cannot make the root" >&2; exit 1 ;;
esac
T_ROOT=$(($(date +%s) - t))
make -s -C "$NT_SRC" install DESTDIR="$ROOT" PREFIX=/usr/local BUILD="$BUILD" >"$WORK/install.log" 2>&1 || {
	cat "$WORK/install.log" >&2
	exit 1
}

# ---- boot ----
t=$(date +%s)
# --register=no --keep-unit: no machined, no D-Bus on the host needed.
systemd-nspawn -q -D "$ROOT" -M "$MACHINE" --boot --private-network --register=no --keep-unit \
	</dev/null >"$WORK/console.log" 2>&1 &
NSPAWN_PID=$!
LEADER=""
for _ in $(seq 1 200); do
	kill -0 "$NSPAWN_PID" 2>/dev/null || break
	# The container's init: a child of nspawn (or of its inner child), pid 1 inside.
	for p in $(pgrep -P "$NSPAWN_PID") $(pgrep -P "$(pgrep -P "$NSPAWN_PID" | head -1)" 2>/dev/null); do
		if grep -Eq '^NSpid:.*[[:space:]]1$' "/proc/$p/status" 2>/dev/null && [ "$(cat "/proc/$p/comm")" = systemd ]; then
			LEADER=$p
			break 2
		fi
	done
	sleep 0.1
done
if [ -z "$LEADER" ]; then
	tail -5 "$WORK/console.log"
	kill -0 "$NSPAWN_PID" 2>/dev/null || skip "systemd-nspawn cannot boot a container here: $(grep -v '^$' "$WORK/console.log" | tail -1)"
	echo "tests/systemd: no container init after 20 s" >&2
	exit 1
fi

# A command inside the container: its namespaces, a clean environment.
C() {
	nsenter -t "$LEADER" -a -- env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}
state=""
for _ in $(seq 1 120); do # systemctl fails at once until the manager listens
	state=$(C timeout 60 systemctl is-system-running --wait 2>/dev/null)
	[ -n "$state" ] && [ "$state" != offline ] && break
	sleep 0.5
done
T_BOOT=$(($(date +%s) - t))
case "$state" in
running | degraded) ;;
*)
	echo "tests/systemd: the container did not boot (state: ${state:-none})" >&2
	exit 1
	;;
esac

# ---- the table ----
declare -a RESULTS
FAILED=0
PENDING_FAILED=0
check() { # check NAME DETAIL STATUS(0=pass) [pending-reason]
	local name=$1 detail=$2 status=$3 pending=${4:-}
	local word=PASS
	if [ "$status" -ne 0 ]; then
		word=FAIL
		if [ -n "$pending" ]; then PENDING_FAILED=$((PENDING_FAILED + 1)); else FAILED=$((FAILED + 1)); fi
	fi
	[ -n "$pending" ] && word="$word (pending: $pending; not counted)"
	RESULTS+=("$(printf '%-38s %-4s  %s' "$name" "${word%% *}" "$detail${pending:+  [pending: $pending; not counted]}")")
	printf '  %-38s %s  %s\n' "$name" "$word" "$detail" >&2
}

prop() { C systemctl show -P "$2" "$1"; }
main_pid() { prop "noisetun@$1" MainPID; }
# the worker: noisetun-worker@NAME's main pid (the unit's own worker), else the monitor's child
worker_pid() {
	local p
	p=$(prop "noisetun-worker@$1" MainPID 2>/dev/null)
	if [ -n "$p" ] && [ "$p" != 0 ]; then echo "$p"; else C pgrep -P "$(main_pid "$1")" -x noisetund | head -1; fi
}
journal() { C journalctl -q -o cat -u "noisetun@$1" "${@:2}"; }
# noisetund processes but the peer's (its monitor and worker, in netns ntpeer)
procs() { C sh -c 'peer=" $(ip netns pids ntpeer | tr "\n" " ") "; for p in $(pgrep -x noisetund); do case "$peer" in *" $p "*) ;; *) printf "%s " "$p";; esac; done'; }
wait_active() {
	for _ in $(seq 1 100); do
		[ "$(prop "noisetun@$1" ActiveState)" = active ] && return 0
		sleep 0.1
	done
	return 1
}
ms() { date +%s%3N; }
cap_line() { C awk -v k="$2:" '$1==k {print $2}' "/proc/$1/status" 2>/dev/null; }

# ---- the setup inside the container: a peer in a network namespace over a veth ----
C sh -ec '
ip link add nt-host type veth peer name nt-peer
ip netns add ntpeer
ip link set nt-peer netns ntpeer
ip addr add 10.99.0.1/24 dev nt-host
ip link set nt-host up
ip -n ntpeer addr add 10.99.0.2/24 dev nt-peer
ip -n ntpeer link set nt-peer up
ip -n ntpeer link set lo up
mkdir -p /etc/wireguard /root/peer
noisetun genkey >/root/a.key; noisetun pubkey </root/a.key >/root/a.pub
noisetun genkey >/root/b.key; noisetun pubkey </root/b.key >/root/b.pub
# wg0, in /etc/wireguard only: a full tunnel (policy rules), PreDown shows the link.
mkdir -p "$1"
cat >"$1/wg0.conf" <<EOF
[Interface]
PrivateKey = $(cat /root/a.key)
ListenPort = 51820
Address = 10.77.0.1/24
DNS = 10.77.0.2, tunnel.example
SaveConfig = true
PreDown = ip -o link show dev wg0
[Peer]
PublicKey = $(cat /root/b.pub)
Endpoint = 10.99.0.2:51821
AllowedIPs = 0.0.0.0/0
EOF
chmod 600 "$1/wg0.conf"
cat >/root/peer/ntp0.conf <<EOF
[Interface]
PrivateKey = $(cat /root/b.key)
ListenPort = 51821
Address = 10.77.0.2/24
[Peer]
PublicKey = $(cat /root/a.pub)
AllowedIPs = 10.77.0.1/32
EOF
chmod 600 /root/peer/ntp0.conf
ip netns exec ntpeer noisetun up /root/peer/ntp0.conf
# bad0: broken at line 4 (a key that is not base64).
printf "[Interface]\nListenPort = 51830\n# line 3\nPrivateKey = not-a-key\n" >/etc/wireguard/bad0.conf
chmod 600 /etc/wireguard/bad0.conf
' sh "$CONF_DIR" >"$WORK/setup.log" 2>&1 || { cat "$WORK/setup.log" >&2; exit 1; }

echo "tests/systemd: container up (root ${T_ROOT}s, boot ${T_BOOT}s); checks:" >&2

# 1. start from /etc/wireguard only (or NT_CONF_DIR)
C systemctl start noisetun@wg0 >"$WORK/start.log" 2>&1
st=$?
wait_active wg0
MP=$(main_pid wg0)
cmd=$(C cat "/proc/$MP/cmdline" 2>/dev/null | tr '\0' ' ')
check "start from $CONF_DIR" "systemctl start rc=$st, $(prop noisetun@wg0 ActiveState), main: ${cmd:-none}" \
	$([ "$st" = 0 ] && [ "$(prop noisetun@wg0 ActiveState)" = active ] && [[ "$cmd" == *"$CONF_DIR/wg0.conf"* ]] && echo 0 || echo 1)

# 2. the tunnel works: ping the peer's tunnel address
C ping -c 3 -i 0.2 -W 2 -q 10.77.0.2 >"$WORK/ping1.log" 2>&1
rc=$?
check "ping the peer through wg0" "$(grep -o '[0-9]* received' "$WORK/ping1.log" || echo none)" $rc

# 2b. DNS: per link in systemd-resolved, ~. for this full tunnel
if C systemctl -q is-active systemd-resolved; then
	dns=$(C resolvectl dns wg0 2>&1 | sed 's/.*: //')
	dom=$(C resolvectl domain wg0 2>&1 | sed 's/.*: //')
	check "DNS per link in resolved" "servers: $dns; domains: $dom" \
		$([[ " $dns " == *" 10.77.0.2 "* ]] && [[ " $dom " == *" ~. "* ]] && [[ " $dom " == *" tunnel.example "* ]] && echo 0 || echo 1)
fi

# 3. processes: a root monitor, an unprivileged worker without capabilities under seccomp
WP=$(worker_pid wg0)
m_uid=$(C awk '/^Uid:/ {print $2}' "/proc/$MP/status" 2>/dev/null)
w_uid=$(C awk '/^Uid:/ {print $2 "/" $3 "/" $4}' "/proc/${WP:-0}/status" 2>/dev/null)
w_eff=$(cap_line "${WP:-0}" CapEff)
w_bnd=$(cap_line "${WP:-0}" CapBnd)
w_sec=$(cap_line "${WP:-0}" Seccomp)
w_nnp=$(cap_line "${WP:-0}" NoNewPrivs)
m_bnd=$(cap_line "$MP" CapBnd)
ok=1
# The worker: a uid of its own (not root, not nobody), no capability, seccomp, nnp.
[ "$m_uid" = 0 ] && [ -n "$WP" ] && [ "${w_uid%%/*}" != 0 ] && [ "${w_uid%%/*}" != 65534 ] &&
	[ "$w_eff" = 0000000000000000 ] && [ "$w_bnd" = 0000000000000000 ] && [ "$w_sec" = 2 ] &&
	[ "$w_nnp" = 1 ] && ok=0
check "monitor root, worker unprivileged" "monitor uid $m_uid CapBnd $m_bnd; worker uid ${w_uid:-none} CapEff ${w_eff:-?} CapBnd ${w_bnd:-?} seccomp ${w_sec:-?} nnp ${w_nnp:-?}" $ok

# 4. reload keeps the session: same pids, same handshake, the file's change applied
hs1=$(C wg show wg0 latest-handshakes | awk '{print $2}')
C sed -i 's/^AllowedIPs = 0.0.0.0\/0/AllowedIPs = 0.0.0.0\/0\nPersistentKeepalive = 17/' "$CONF_DIR/wg0.conf"
C systemctl reload noisetun@wg0
rrc=$?
sleep 1
hs2=$(C wg show wg0 latest-handshakes | awk '{print $2}')
ka=$(C wg show wg0 persistent-keepalive | awk '{print $2}')
WP2=$(worker_pid wg0)
C ping -c 2 -i 0.2 -W 2 -q 10.77.0.2 >/dev/null 2>&1
prc=$?
check "reload keeps the session" "reload rc=$rrc; pids $MP/$WP -> $(main_pid wg0)/$WP2; handshake $hs1 -> $hs2; keepalive ${ka:-?}; ping rc=$prc" \
	$([ "$rrc" = 0 ] && [ "$(main_pid wg0)" = "$MP" ] && [ "$WP2" = "$WP" ] && [ -n "$hs1" ] && [ "$hs1" != 0 ] &&
		[ "$hs1" = "$hs2" ] && [ "$ka" = 17 ] && [ "$prc" = 0 ] && echo 0 || echo 1)

rules_before=$(C ip rule show | grep -c -e 'lookup 51820' -e 'suppress_prefixlength')

# 5. systemctl stop: PreDown while the link exists, nothing left behind, SaveConfig wrote
# the file in $CONF_DIR (a peer added at run time is in it)
newpub=$(C sh -c 'noisetun genkey | noisetun pubkey')
C wg set wg0 peer "$newpub" allowed-ips 10.77.0.9/32
since=$(C date '+%Y-%m-%d %H:%M:%S')
t=$(ms)
C timeout 60 systemctl stop noisetun@wg0
src=$?
dt=$(($(ms) - t))
sleep 0.3
predown=$(journal wg0 --since "$since" | grep -c '^[0-9]*: wg0: <')
nosig=$(journal wg0 --since "$since" | grep -c 'cannot signal')
left=$(procs)
link=$(C ip -o link show dev wg0 2>/dev/null | wc -l)
astate=$(prop noisetun@wg0 ActiveState)
rules_after=$(C ip rule show | grep -c -e 'lookup 51820' -e 'suppress_prefixlength')
routes_after=$(C ip route show table 51820 2>/dev/null | wc -l)
saved=$(C grep -c "^PublicKey = $newpub" "$CONF_DIR/wg0.conf")
check "stop: SaveConfig writes $CONF_DIR" "runtime peer in the file: $saved$(journal wg0 --since "$since" | grep -m1 -i 'SaveConfig\|could not write' | sed 's/^/; /')" \
	$([ "$saved" = 1 ] && echo 0 || echo 1)
check "stop: PreDown sees the link" "PreDown output lines naming wg0: $predown; 'cannot signal' lines: $nosig" \
	$([ "$predown" -ge 1 ] && [ "$nosig" = 0 ] && echo 0 || echo 1)
ok=1
[ "$src" = 0 ] && [ "$dt" -lt 5000 ] && [ "$astate" = inactive ] && [ -z "$left" ] && [ "$link" = 0 ] &&
	[ "$rules_after" = 0 ] && [ "$routes_after" = 0 ] && ok=0
check "stop: quick, nothing left" "rc=$src in ${dt} ms, $astate; noisetund pids left: ${left:-none}; link $link; rules $rules_before -> $rules_after; table 51820 routes $routes_after" $ok

# 6. noisetun down (SIGTERM to the main pid) is quick and stops the unit
C systemctl start noisetun@wg0
wait_active wg0
MP=$(main_pid wg0)
t=$(ms)
C timeout 30 noisetun down wg0 >"$WORK/down.log" 2>&1
drc=$?
dt=$(($(ms) - t))
for _ in $(seq 1 50); do [ "$(prop noisetun@wg0 ActiveState)" = inactive ] && break; sleep 0.1; done
astate=$(prop noisetun@wg0 ActiveState)
sub=$(prop noisetun@wg0 SubState)
nleft=$(procs | wc -w)
check "noisetun down: quick, unit stopped" "rc=$drc in ${dt} ms; unit $astate/$sub; noisetund processes left: $nleft" \
	$([ "$drc" = 0 ] && [ "$dt" -lt 3000 ] && [ "$astate" = inactive ] && [ "$nleft" = 0 ] && echo 0 || echo 1)

# 7. kill -9 of the main pid: the unit restarts, the tunnel works again
C systemctl reset-failed noisetun@wg0 2>/dev/null
C systemctl start noisetun@wg0
wait_active wg0
MP=$(main_pid wg0)
n0=$(prop noisetun@wg0 NRestarts)
# (never `kill 0`: inside nsenter that would be this script's process group)
[ "${MP:-0}" -gt 1 ] && C kill -KILL "$MP"
restarted=1
for _ in $(seq 1 150); do
	mp=$(main_pid wg0)
	if [ "$(prop noisetun@wg0 ActiveState)" = active ] && [ "$mp" != 0 ] && [ "$mp" != "$MP" ]; then
		restarted=0
		break
	fi
	sleep 0.1
done
n1=$(prop noisetun@wg0 NRestarts)
C ping -c 3 -i 0.2 -W 2 -q 10.77.0.2 >/dev/null 2>&1
prc=$?
check "kill -9: Restart= brings it back" "NRestarts $n0 -> $n1, $(prop noisetun@wg0 ActiveState); pid $MP -> $(main_pid wg0); ping rc=$prc" \
	$([ "$restarted" = 0 ] && [ "$prc" = 0 ] && echo 0 || echo 1)
# ... and a killed worker: the monitor tears down and exits 137, Restart= again
MP=$(main_pid wg0)
WP=$(worker_pid wg0)
[ "${WP:-0}" -gt 1 ] && C kill -KILL "$WP"
restarted=1
for _ in $(seq 1 150); do
	mp=$(main_pid wg0)
	if [ "$(prop noisetun@wg0 ActiveState)" = active ] && [ "$mp" != 0 ] && [ "$mp" != "$MP" ]; then
		restarted=0
		break
	fi
	sleep 0.1
done
n2=$(prop noisetun@wg0 NRestarts)
C ping -c 3 -i 0.2 -W 2 -q 10.77.0.2 >/dev/null 2>&1
prc=$?
check "kill -9 worker: restarts" "worker ${WP:-none} killed; NRestarts $n1 -> $n2, $(prop noisetun@wg0 ActiveState); ping rc=$prc" \
	$([ "$restarted" = 0 ] && [ "$prc" = 0 ] && echo 0 || echo 1)
rules=$(C ip rule show | grep -c -e 'lookup 51820' -e 'suppress_prefixlength')
check "kill -9: no leaked policy rules" "rules after the restart: $rules (one instance: $rules_before)" \
	$([ "$rules" = "$rules_before" ] && echo 0 || echo 1)
C systemctl stop noisetun@wg0
rules=$(C ip rule show | grep -c -e 'lookup 51820' -e 'suppress_prefixlength')
check "kill -9, stop: no rules left" "rules after the stop: $rules" $([ "$rules" = 0 ] && echo 0 || echo 1)
C ip netns exec ntpeer noisetun down ntp0 >/dev/null 2>&1

# 8. a broken file fails once, FILE:LINE in the journal, no restart loop
C systemctl start noisetun@bad0 >/dev/null 2>&1
brc=$?
sleep 7 # past RestartSec=5s: a restart loop would show by now
bstate=$(prop noisetun@bad0 ActiveState)
bres=$(prop noisetun@bad0 NRestarts)
bstat=$(prop noisetun@bad0 ExecMainStatus)
line=$(journal bad0 | grep -m1 '/etc/wireguard/bad0.conf:4:')
check "broken file: final failure" "start rc=$brc; $bstate, status $bstat, NRestarts $bres" \
	$([ "$brc" != 0 ] && [ "$bstate" = failed ] && [ "$bres" = 0 ] && [ "$bstat" = 78 ] && echo 0 || echo 1)
check "broken file: FILE:LINE in journal" "${line:-no /etc/wireguard/bad0.conf:4: line}" $([ -n "$line" ] && echo 0 || echo 1)

# 9. a name without a file: the same, final
C systemctl start noisetun@nope0 >/dev/null 2>&1
sleep 0.5
nstate=$(prop noisetun@nope0 ActiveState)
nstat=$(prop noisetun@nope0 ExecMainStatus)
nline=$(journal nope0 | grep -m1 -o 'neither .*exists')
check "missing file: final failure" "$nstate, status $nstat: ${nline:-no message}" \
	$([ "$nstate" = failed ] && [ "$nstat" = 78 ] && [ -n "$nline" ] && echo 0 || echo 1)

# 10. the examples' hooks run under the unit: site-a.conf with its commented hooks enabled
C sh -c 'sed -E "s/^#(PreUp|PostUp|PreDown|PostDown) =/\1 =/" /usr/local/share/noisetun/examples/site-a.conf >/etc/wireguard/site-a.conf && chmod 600 /etc/wireguard/site-a.conf'
hooks=$(C grep -cE '^(PreUp|PostUp|PreDown|PostDown) =' /etc/wireguard/site-a.conf)
C systemctl start noisetun@site-a >/dev/null 2>&1
src=$?
sstate=$(prop noisetun@site-a ActiveState)
why=$(journal site-a | grep -m1 -i -e 'failed' -e 'error' -e 'denied')
C systemctl stop noisetun@site-a >/dev/null 2>&1
check "examples: site-a hooks work" "$hooks hook line(s) enabled; start rc=$src, $sstate${why:+; $why}" \
	$([ "$src" = 0 ] && [ "$sstate" = active ] && echo 0 || echo 1)

# 10b. a failing PostUp fails the start at once: the monitor (no CAP_KILL in the unit)
# must still stop the worker, not wait for TimeoutStartSec
C sh -c 'printf "[Interface]\nPrivateKey = %s\nListenPort = 51840\nPostUp = false\n" "$(cat /root/a.key)" >/etc/wireguard/pu0.conf && chmod 600 /etc/wireguard/pu0.conf'
since=$(C date '+%Y-%m-%d %H:%M:%S')
t=$(ms)
C timeout 30 systemctl start noisetun@pu0 >/dev/null 2>&1
prc=$?
dt=$(($(ms) - t))
pstate=$(prop noisetun@pu0 ActiveState)/$(prop noisetun@pu0 SubState)
C systemctl stop noisetun@pu0 >/dev/null 2>&1
nosig=$(journal pu0 --since "$since" | grep -c 'cannot signal')
plink=$(C ip -o link show dev pu0 2>/dev/null | wc -l)
check "PostUp fails: start fails at once" "start rc=$prc in ${dt} ms ($pstate); 'cannot signal' lines: $nosig; link after stop: $plink" \
	$([ "$prc" != 0 ] && [ "$prc" != 124 ] && [ "$dt" -lt 10000 ] && [ "$nosig" = 0 ] && [ "$plink" = 0 ] && echo 0 || echo 1)

# 10c. the watchdog (a drop-in opts in): the worker unit's loop feeds it through the monitor;
# a stopped worker trips it, and Restart= brings the tunnel back
C sh -c 'printf "[Interface]\nPrivateKey = %s\nListenPort = 51860\n" "$(cat /root/b.key)" >/etc/wireguard/wd0.conf && chmod 600 /etc/wireguard/wd0.conf &&
	mkdir -p /etc/systemd/system/noisetun@wd0.service.d && printf "[Service]\nWatchdogSec=3s\n" >/etc/systemd/system/noisetun@wd0.service.d/wd.conf &&
	systemctl daemon-reload'
C systemctl start noisetun@wd0 >/dev/null 2>&1
sleep 5
wstate=$(prop noisetun@wd0 ActiveState)
wres=$(prop noisetun@wd0 NRestarts)
WDP=$(worker_pid wd0)
[ "${WDP:-0}" -gt 1 ] && C kill -STOP "$WDP"
tripped=1
for _ in $(seq 1 100); do
	[ "$(prop noisetun@wd0 NRestarts)" != "$wres" ] && { tripped=0; break; }
	sleep 0.1
done
wtrip=$(journal wd0 | grep -c -i 'watchdog timeout')
C systemctl stop noisetun@wd0 >/dev/null 2>&1
[ "${WDP:-0}" -gt 1 ] && C kill -CONT "$WDP" 2>/dev/null
check "watchdog: fed by the worker" "after 5 s with WatchdogSec=3s: $wstate, NRestarts $wres; worker $WDP stopped: restarted=$((1 - tripped)), 'watchdog timeout' lines $wtrip" \
	$([ "$wstate" = active ] && [ "$wres" = 0 ] && [ "$tripped" = 0 ] && [ "$wtrip" -ge 1 ] && echo 0 || echo 1)

# 10d. a worker unit changed to run as root is refused, by the monitor and by the worker
C sh -c 'mkdir -p /etc/systemd/system/noisetun-worker@wd0.service.d && printf "[Service]\nDynamicUser=no\nUser=root\nPrivateUsers=no\n" >/etc/systemd/system/noisetun-worker@wd0.service.d/root.conf && systemctl daemon-reload'
since=$(C date '+%Y-%m-%d %H:%M:%S')
C timeout 30 systemctl start noisetun@wd0 >/dev/null 2>&1
rrc=$?
refused=$(journal wd0 --since "$since" | grep -c 'the worker runs as root')
C systemctl stop noisetun@wd0 >/dev/null 2>&1
C sh -c 'rm -r /etc/systemd/system/noisetun-worker@wd0.service.d && systemctl daemon-reload'
check "a root worker unit is refused" "start rc=$rrc; 'the worker runs as root' lines: $refused" \
	$([ "$rrc" != 0 ] && [ "$rrc" != 124 ] && [ "$refused" -ge 1 ] && echo 0 || echo 1)

# 10e. metrics and names through a worker unit: the --metrics-listen socket is handed over
# with the rest (NOISETUN_METRICS_LISTEN in a drop-in), and the CLI's noisetun=1 get works
C sh -c 'printf "[Service]\nEnvironment=NOISETUN_METRICS_LISTEN=127.0.0.1:9586\n" >/etc/systemd/system/noisetun@wd0.service.d/metrics.conf && systemctl daemon-reload'
C systemctl start noisetun@wd0 >/dev/null 2>&1
wait_active wd0
http=$(C timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/9586 && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3' 2>&1)
cli=$(C timeout 5 noisetun metrics wd0 2>&1)
holder=$(C ss -Hltnp 'sport = :9586' 2>/dev/null | grep -o 'pid=[0-9]*' | head -1)
mwp=$(worker_pid wd0)
C systemctl stop noisetun@wd0 >/dev/null 2>&1
C sh -c 'rm /etc/systemd/system/noisetun@wd0.service.d/metrics.conf && systemctl daemon-reload'
check "metrics: served by the worker unit" "HTTP: $(echo "$http" | head -1 | tr -d '\r'); up line: $(echo "$http" | grep -c '^noisetun_up{interface="wd0"} 1'); CLI up lines: $(echo "$cli" | grep -c '^noisetun_up{interface="wd0"} 1'); listener ${holder:-none} (worker ${mwp:-none})" \
	$([[ "$http" == "HTTP/1.1 200"* ]] && echo "$http" | grep -q '^noisetun_up{interface="wd0"} 1' &&
		echo "$cli" | grep -q '^noisetun_up{interface="wd0"} 1' && echo 0 || echo 1)

# 11. the exposure score, live, of both units: the monitor's and its worker's (issue 15:
# at most 2.0; docs/threat-model.md, "The systemd unit's exposure")
for unit in noisetun@wg0 noisetun-worker@wg0; do
	C systemd-analyze security --no-pager "$unit" >"$WORK/security-$unit.txt" 2>&1
	score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$WORK/security-$unit.txt")
	check "systemd-analyze security $unit <= 2.0" "exposure ${score:-?} (largest: $(grep '✗' "$WORK/security-$unit.txt" | awk '{print $NF, $2}' | sort -rn | head -4 | awk '{printf "%s %s; ", $2, $1}'))" \
		$(awk -v s="${score:-99}" 'BEGIN {exit !(s <= 2.0)}' && echo 0 || echo 1)
done

# ---- report ----
echo
printf '%-38s %-4s  %s\n' CHECK "" DETAIL
for r in "${RESULTS[@]}"; do echo "$r"; done
echo
echo "tests/systemd: $FAILED failed, $PENDING_FAILED pending failed; root ${T_ROOT}s, boot ${T_BOOT}s, total $(($(date +%s) - T0))s"
[ "$FAILED" = 0 ]
