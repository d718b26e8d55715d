#!/bin/bash
# SaveConfig against a compromised worker (issue 20, findings 3 and 8). The root monitor
# writes the config file at an orderly stop from what the unprivileged worker left it; a
# worker that lies must not get a hook (run as root at the next start) or anything else
# past the monitor, and the file must not follow a link or reuse a file someone planted.
#
#   ns A (lo only: no packet leaves it)
#   +-------------------------------------------------------------+
#   | noisetund -c DIR/sa.conf ntsa<id>a  (SaveConfig = true)      |
#   |   monitor (root) <- channel, memfd <- worker (nobody)        |
#   +-------------------------------------------------------------+
#
# The hostile worker is a test seam compiled only with -DNT_TEST_SEAMS into its own build
# directory (build/seams, or build/seams-asan for BUILD=*asan*), made here with make; the
# binary under test ($BUILD/noisetund) must not contain it. NOISETUN_TEST_HOSTILE_WORKER
# picks the lie:
#   hooks     PreUp/PostUp/PreDown/PostDown = touch PWNED-...   after the [Interface] line
#   section   a second [Interface] with PostUp at the end
#   wgquick   Address, Table, DNS, SaveConfig (keys of the file, not of the device)
#   nul       a NUL byte inside a line, then a PostUp
#   big       a 1 MiB line of garbage
#   mtu       "MTU = 70000"
#   names     peer names that are not valid (terminal escapes, 65 bytes): dropped, logged
#             once, no refusal (the rest of the save is good)
#   chan      after 'R': 12 messages the monitor must refuse (3 of them forged hook events; a 4th, for a key not in the file, runs no hook), then a normal save
#   chanstart 'E' with terminal escapes instead of 'R', exit 1
# Each SaveConfig lie: the monitor logs exactly one refusal naming the interface, the file
# stays byte for byte (sha256), no PWNED-* file appears (a changed file is started once
# more to show what it would run). Checks go on after a failure and are counted, so a run
# against the unfixed code reports every hole; the count is the last FAIL line.
set -eu
. "$(dirname "$0")/lib.sh"
nt_init savecfg
need_impl noisetund
for t in make cc strings nm sha256sum; do
	command -v "$t" >/dev/null || skip "$t is not installed"
done
NTD=$BUILD/noisetund
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
case $BUILD in
*asan*) SEAMS=$ROOT/build/seams-asan SAN=1;;
*) SEAMS=$ROOT/build/seams SAN=;;
esac
SEAM_VAR=NOISETUN_TEST_HOSTILE_WORKER

FAILS=()
bad() {
	FAILS+=("$*")
	echo "BAD: $*"
}

# Test that the daemon under test has no seam, and the seam build has it (so that the first
# check can fail).
log "building the test-seam daemon in $SEAMS"
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -C "$ROOT" -s -j2 SANITIZE="$SAN" BUILD="$SEAMS" \
	EXTRA_CFLAGS=-DNT_TEST_SEAMS "$SEAMS/noisetund" >"$NT_TMP/make.log" 2>&1 ||
	{ tail -n 30 "$NT_TMP/make.log"; fail "cannot build the seam daemon"; }
SEAMD=$SEAMS/noisetund
if strings "$NTD" | grep -q "$SEAM_VAR" || nm "$NTD" 2>/dev/null | grep -q nt_test_seam; then
	fail "$NTD contains the hostile-worker test seam"
fi
strings "$SEAMD" | grep -q "$SEAM_VAR" && nm "$SEAMD" | grep -q nt_test_seam_hostile_save ||
	fail "$SEAMD lacks the test seam: the check of $NTD proves nothing"
log "the daemon under test has no seam; $SEAMD has it"

NSA=$(ns_name a)
IFA=$(if_name a)
ns_create "$NSA"
NT_IFACES+=("$IFA")
key_new a
key_new b
key_new c
psk_new b
DIR=$NT_TMP/etc
mkdir "$DIR"
CONF=$DIR/sa.conf
PWNED=$NT_TMP/pwned
cat >"$CONF" <<EOF
[Interface]
PrivateKey = $(cat "$(key_file a)")
ListenPort = 51820
Address = 10.0.0.1/24
MTU = 1400
SaveConfig = true
PostUp = true %i
OnPeerUp = touch $PWNED-onpeerup

[Peer]
PublicKey = $(key_pub b)
PresharedKey = $(cat "$NT_TMP/b.psk")
AllowedIPs = 10.0.0.2/32, fd00::2/128
Endpoint = 192.0.2.2:51820
EOF
chmod 600 "$CONF"

# run BIN CASE: start `BIN -c CONF IFA` in A (the seam case in the environment; "" none),
# then stop it with SIGTERM; the daemon's output in $NT_TMP/run-CASE.log (and $IFA.log).
# Returns 1 if it did not start. A daemon that ignores SIGTERM is a failure: its worker
# is then stopped so that the run goes on.
run() {
	local bin=$1 c=$2 rc=0 pid w
	RUNLOG=$NT_TMP/run-${c:-none}.log
	: >"$RUNLOG"
	env ${c:+$SEAM_VAR=$c NOISETUN_TEST_PWNED=$PWNED} LOG_LEVEL=verbose \
		ip netns exec "$NSA" "$bin" -c "$CONF" "$IFA" >>"$RUNLOG" 2>&1 </dev/null || rc=$?
	if [ "$rc" -ne 0 ]; then
		cat "$RUNLOG" >>"$NT_TMP/$IFA.log"
		return 1
	fi
	pid=$(_find_daemon "$IFA" "$bin") || fail "no daemon for $IFA"
	NT_PIDS+=("$pid")
	echo "$pid" >"$NT_TMP/$IFA.pid"
	${RUN_HOOK:-true}
	w=$(daemon_worker_pid "$IFA")
	kill -TERM "$pid"
	if ! wait_gone "$pid" 5; then
		bad "$c: the monitor did not stop on SIGTERM (it stopped listening to signals)"
		kill -TERM "$w" 2>/dev/null || true
		wait_gone "$pid" 5 || { kill -KILL "$pid" "$w" 2>/dev/null || true; }
	fi
	wait_for 2 "$NT_SOCK_DIR/$IFA.sock to go" test ! -e "$NT_SOCK_DIR/$IFA.sock"
	cat "$RUNLOG" >>"$NT_TMP/$IFA.log"
}
wait_gone() {
	local i
	for i in $(seq $(($2 * 10))); do
		_pid_is "$1" "" || return 0
		sleep 0.1
	done
	return 1
}
# The reference file back in place (a run of the unfixed code may leave CONF a symlink).
reset_conf() { rm -f "$CONF"; cp -p "$NT_TMP/canonical.conf" "$CONF"; }
sum() { sha256sum "$CONF" | cut -d' ' -f1; }
refusals() { grep -c "^noisetund: $IFA: .*refused" "$RUNLOG" || true; }
pwned() { ls "$PWNED"-* 2>/dev/null; }

# A first orderly stop writes the file in the form SaveConfig gives it: the reference.
run "$NTD" "" || fail "the daemon does not start from $CONF"
grep -qxF "PostUp = true %i" "$CONF" && grep -qxF "OnPeerUp = touch $PWNED-onpeerup" "$CONF" && grep -qxF "MTU = 1400" "$CONF" &&
	grep -qxF "PresharedKey = $(cat "$NT_TMP/b.psk")" "$CONF" || { cat "$CONF"; fail "first save lost a line"; }
cp -p "$CONF" "$NT_TMP/canonical.conf"
CANON=$(sum)
run "$NTD" ""
[ "$(sum)" = "$CANON" ] || { diff "$NT_TMP/canonical.conf" "$CONF"; fail "a save of an unchanged device changed the file"; }
log "reference file saved; a second save gives the same bytes"

# hostile CASE REFUSALS [WHY]: one start and stop of the seam daemon, then the checks above;
# WHY (a grep -E pattern) must be in the refusal.
hostile() {
	local c=$1 want=$2 why=${3:-} n
	reset_conf
	rm -f "$PWNED"-*
	run "$SEAMD" "$c" || { bad "$c: the seam daemon did not start"; return 0; }
	n=$(refusals)
	[ "$n" = "$want" ] || bad "$c: $n refusal lines naming $IFA in the log, want $want"
	if [ -n "$why" ] && ! grep -qE "SaveConfig: refused .*$why.*; $CONF is unchanged" "$RUNLOG"; then
		bad "$c: no refusal saying '$why' and that $CONF is unchanged"
	fi
	if grep -q "worker left no configuration" "$RUNLOG"; then
		bad "$c: a second log line for the refusal"
	fi
	if [ "$(sum)" != "$CANON" ]; then
		bad "$c: $CONF changed: $(diff "$NT_TMP/canonical.conf" "$CONF" | grep -a '^>' | cut -c1-100 | head -n 3 | tr '\n' '|')"
		# What the changed file does at the next start, as root.
		run "$NTD" "" || bad "$c: the changed file no longer starts"
	fi
	if [ -n "$(pwned)" ]; then
		bad "$c: a forged hook ran: $(stat -c '%n (owner %U)' $(pwned) | tr '\n' ' ')"
	fi
	log "case $c: $n refusal(s), sha256 $(sum | cut -c1-12)"
}

hostile hooks 1 "line 3: PreUp: a key of the file, not of the device"
hostile section 1 "a second \[Interface\] section"
hostile wgquick 1 "line 3: Address: a key of the file"
hostile nul 1 "line 3: the line contains a NUL byte"
hostile big 1 "line 3: \"AAAA.*\.\.\.\" is not \"Key = value\""
hostile mtu 1 "line 1 is not \"MTU = N\" \(68-65535\)"
hostile names 0
grep -qF "SaveConfig: dropped 2 peer names the worker left that are not valid" "$RUNLOG" ||
	bad "names: no log line for the two names dropped"
[ "$(tr -d -c '\033\007' <"$RUNLOG" | wc -c)" = 0 ] || bad "names: the worker's escape sequences reached the log"
! grep -q "friendly_name\|^# Name" "$CONF" || bad "names: a name of the worker's reached $CONF"
hostile chan 12
for r in "a second 'R'" "'E' once ready" "'H' with a payload" "unknown type 0x58" "2048 bytes, more than 511" \
	"an empty message" "'V' of the wrong size" "'V' with an unknown event" "'V' with an unknown address family"; do
	grep -qF "refused a message from the worker: $r" "$NT_TMP/run-chan.log" || bad "chan: no refusal of $r"
done
n=$(grep -c "refused a message from the worker: a notify message other than" "$NT_TMP/run-chan.log" || true)
[ "$n" = 3 ] || bad "chan: $n refusals of notify messages, want 3 (READY=1, two lines, control characters)"

# chanstart: the launcher prints the worker's start error, without its control characters.
reset_conf
if run "$SEAMD" chanstart; then
	bad "chanstart: the start succeeded"
fi
[ "$(tr -d -c '\033\007' <"$RUNLOG" | wc -c)" = 0 ] || bad "chanstart: the launcher printed the worker's escape sequences"
grep -q "forged start error" "$RUNLOG" || bad "chanstart: the worker's message was not printed"
[ "$(sum)" = "$CANON" ] || bad "chanstart: $CONF changed"
[ -z "$(pwned)" ] || bad "chanstart: a hook ran"
log "case chanstart: the launcher said: $(tr -c '[:print:]\n' '?' <"$RUNLOG" | grep forged | head -n 1)"

# Test that a benign save still works: peers added at run time appear in the file, the
# file's hooks stay, and the file brings the same state back.
reset_conf
add_peers() {
	wgn "$NSA" set "$IFA" peer "$(key_pub c)" allowed-ips 10.0.0.3/32,fd00::3/128 \
		endpoint "[2001:db8::3]:51823" persistent-keepalive 0
	wgn "$NSA" set "$IFA" peer "$(key_pub b)" endpoint "192.0.2.22:51822"
	WANTED=$(wgn "$NSA" showconf "$IFA")
}
RUN_HOOK=add_peers run "$NTD" "" || fail "benign: no start"
for want in "PublicKey = $(key_pub c)" "AllowedIPs = 10.0.0.3/32, fd00::3/128" "Endpoint = [2001:db8::3]:51823" \
	"Endpoint = 192.0.2.22:51822" "PostUp = true %i" "MTU = 1400" "PrivateKey = $(cat "$(key_file a)")"; do
	grep -qxF "$want" "$CONF" || bad "benign: the saved file lacks '$want': $(grep Endpoint "$CONF" | tr "\n" " ")"
done
[ "$(refusals)" = 0 ] || bad "benign: a refusal: $(grep refused "$RUNLOG")"
check_back() { [ "$(wgn "$NSA" showconf "$IFA")" = "$WANTED" ] || bad "benign: the saved file brings back another state"; }
RUN_HOOK=check_back run "$NTD" "" || bad "benign: the saved file does not start"
log "benign save: the runtime peers are in the file and come back"

# Test that SaveConfig neither follows a link planted at FILE.tmp nor writes the key into a
# world-readable FILE.tmp planted (and held open) by another user of the directory.
reset_conf
chown nobody "$DIR"
echo precious >"$NT_TMP/victim"
ln -s "$NT_TMP/victim" "$CONF.tmp"
run "$NTD" "" || bad "symlink: no start"
[ "$(cat "$NT_TMP/victim")" = precious ] || bad "symlink: root wrote through $CONF.tmp into its target"
[ -L "$CONF.tmp" ] && [ "$(readlink "$CONF.tmp")" = "$NT_TMP/victim" ] || bad "symlink: the planted link was touched"
[ -f "$CONF" ] && [ ! -L "$CONF" ] || bad "symlink: $CONF is no longer a regular file"
grep -qxF "PrivateKey = $(cat "$(key_file a)")" "$CONF" || bad "symlink: the save did not happen"
rm -f "$CONF.tmp"
log "planted symlink: not followed"

reset_conf
: >"$CONF.tmp"
chown nobody:nogroup "$CONF.tmp"
chmod 666 "$CONF.tmp"
exec 7<"$CONF.tmp"
run "$NTD" "" || bad "planted file: no start"
[ -z "$(cat <&7)" ] || bad "planted file: the key landed in the file another user holds open"
exec 7<&-
[ "$(stat -c '%U %a' "$CONF")" = "root 600" ] || bad "planted file: $CONF is $(stat -c '%U %a' "$CONF")"
grep -qxF "PrivateKey = $(cat "$(key_file a)")" "$CONF" || bad "planted file: the save did not happen"
left=$(ls -A "$DIR" | grep -vxF -e sa.conf -e sa.conf.tmp || true)
[ -z "$left" ] || bad "temporary files left in $DIR: $left"
log "planted world-readable file: left alone, the key is not in it"

[ -z "$(pwned)" ] || bad "a forged hook ran: $(pwned)"
if [ ${#FAILS[@]} -gt 0 ]; then
	printf '  %s\n' "${FAILS[@]}"
	fail "${#FAILS[@]} check(s) failed"
fi
log "PASS"
