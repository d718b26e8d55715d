#!/bin/bash
# Differential test of the control socket: the same seeded random set requests to
# noisetund and to Debian's wireguard-go, compared request by request (errno and the get
# state after it). tests/net/tools/uapi_diff.py says what is normalised and how the one
# deliberate difference (noisetund is atomic, wireguard-go may half-apply) is handled.
#
#   ns A                                   ns B
#   +-------------------------------+      +--------------------------------+
#   | noisetund ntud<id>a (link down)|      | wireguard-go ntud<id>b (down)  |
#   | eth0 (veth), lo               |------| eth0 (veth), lo                |
#   +-------------------------------+      +--------------------------------+
#        ^ /var/run/wireguard/*.sock <- python3 tests/net/tools/uapi_diff.py
#
# NT_DIFF_SEED (default 1) and NT_DIFF_COUNT (default 300) choose the requests.
set -eu
# shellcheck source=tests/net/lib.sh
. "$(dirname "$0")/lib.sh"
nt_init uapidiff
need_impl noisetund
need_impl wireguard-go

NSA=$(ns_name a) NSB=$(ns_name b) IFA=$(if_name a) IFB=$(if_name b)
ns_create "$NSA"
ns_create "$NSB"
link_pair "$NSA" 1 "$NSB" 2
start_wg noisetund "$NSA" "$IFA"
start_wg wireguard-go "$NSB" "$IFB"

# Test that every request gets the same answer and leaves the same state on both.
python3 "$(dirname "$0")/tools/uapi_diff.py" "${NT_DIFF_SEED:-1}" "${NT_DIFF_COUNT:-300}" \
	"$NT_SOCK_DIR/$IFA.sock" "$NT_SOCK_DIR/$IFB.sock" >"$NT_TMP/diff.out" 2>&1 && rc=0 || rc=$?
head -c 20000 "$NT_TMP/diff.out"
[ "$rc" = 0 ] || fail "noisetund and wireguard-go differ (see above)"
log "pass"
