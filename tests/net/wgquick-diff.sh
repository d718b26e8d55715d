#!/bin/bash
# slow: about 25 s; make check-slow keeps make check under its 10 minutes
# Differential test (issue 21): each wg-quick config below is brought up, inspected,
# brought down and inspected again, once in each of two twin fresh namespaces:
#
#   twin W: stock `wg-quick up FILE` with wireguard-go as its userspace implementation
#   twin N: the build's `noisetun up FILE` (noisetund -c FILE, which does wg-quick's work)
#
# and the host state the two leave is compared aspect by aspect, after normalising what
# is different by construction (the interface names: dw<id><cfg><k> vs dn<id><cfg><k>;
# random IPv6 link-local addresses; the random listen port of a file without ListenPort;
# the order of allowed IPs and of peers, which no daemon promises).
#
# Each twin is a network namespace with an eth0 (a veth whose other end stays there;
# 192.0.2.1/24, 2001:db8::1/64, MTU 1400, default routes through it: what the automatic
# MTU is computed from) and, by `ip netns exec`, a private /etc/hosts and
# /etc/resolv.conf (/etc/netns/NS/): the host names of the endpoints resolve there. A stand-in `resolvconf` first in PATH records what
# each twin was given (stock resolvconf may be absent: wg-quick would then fail on DNS).
# Hooks write to $NT_TMP/hooks/%i.log and print "HOOKOUT ..." lines.
#
# Aspects: exit (up/down succeed, or both refuse), addr, link (MTU and flags), route
# (ip -d route show table all, v4 and v6), rule, nft (nft list ruleset), sysctl
# (net.ipv4.conf.all.src_valid_mark before up / up / after down), wg (the config fields
# of wg show dump), dns (resolvconf calls and records, /etc/resolv.conf), hooks (their
# effects and their output as up/down show it), file (the config file after down:
# SaveConfig), left (what differs after down from before up: links, routes, rules, nft
# tables, sockets in /var/run/wireguard, processes in the namespace).
#
# Each cell is: same; deliberate (equal once the DELIB normalisations below are applied,
# or a DELIB_UP config: noisetun differs on purpose, the reason is printed); known (the
# very difference listed in KNOWN below: a noisetun bug, reported and open, that does not
# fail the run); DIFFERENT (anything else: fails the scenario, with the two sides shown).
# The run ends with the table of configs by aspect and the reasons.
#
# The twins run NT_WQDIFF_JOBS (8) at a time; everything is in namespaces of this run,
# named with NT_ID, and a trap stops what runs there and removes them.
#
# wg-quick uses the kernel's WireGuard when it can create one; when it can here, the run
# uses a copy of wg-quick patched to skip that test beside an `ip` that refuses exactly
# `ip link add IFACE type wireguard` (as tests/net/wg-quick.sh does).
set -eu
. "$(dirname "$0")/lib.sh"
nt_init wqdiff
for t in wg-quick wireguard-go nft bash sysctl; do
	command -v "$t" >/dev/null || skip "$t is not installed"
done
need_impl noisetund
NT=$BUILD/noisetun
[ -x "$NT" ] || skip "noisetun not built ($NT)"
WGGO=$(command -v wireguard-go)
WG_QUICK=$(command -v wg-quick)
JOBS=${NT_WQDIFF_JOBS:-8}

# ---------------------------------------------------------------- differences by design

# DELIBERATE: per aspect, a sed -E script applied to both sides, with the reason. A cell
# that is equal only after it is "deliberate".
declare -A DELIB DELIB_WHY
DELIB[route]='s/proto 78( |$)/proto boot\1/g'
DELIB_WHY[route]="noisetund adds its routes with protocol 78 (RTPROT_NOISETUN), wg-quick's ip with 'boot': a new start recognises, and removes, what a killed instance left"
DELIB[rule]='s/proto 78( |$)/proto unspec\1/g'
DELIB_WHY[rule]="noisetund adds its policy rules with protocol 78, wg-quick's ip rule leaves it unspec: for the same reason as its routes"
DELIB[nft]='s/table (ip6?|inet) noisetun-IF/table \1 wg-quick-IF/g'
DELIB_WHY[nft]="the firewall table is noisetun-IFACE, wg-quick's is wg-quick-IFACE (same chains and rules): the name says who owns it, and a leftover of one is never taken for the other's"
DELIB[hooks]='s/hash-(IF[0-9])-#tail/hash-\1-/'
DELIB_WHY[hooks]="a hook keeps a '#' in its command (bash sees it: 'echo a-#b' prints a-#b), wg-quick cuts the line there as a comment (lib/config.c)"

DELIB[file]='/^Address = fe80::LL\/64$/d; /^DNS = corp\.test$/d'
DELIB_WHY[file]="SaveConfig writes the link's addresses but not the kernel's own link-local one (daemon/rtnl.c: rtnl_addr_list skips link scope); wg-quick writes 'Address = fe80::.../64', which the next up would add by hand. And SaveConfig keeps the file's DNS search domains (DNS = corp.test), where wg-quick's save writes only the name servers resolvconf -l lists and loses them"

# DELIB_UP[config]: a config where noisetun deliberately comes up and wg-quick refuses:
# wg-quick's output must match DELIB_UP_W[config], noisetun's DELIB_UP_N[config]; then
# every aspect but left (both must leave nothing) is "deliberate".
declare -A DELIB_UP DELIB_UP_W DELIB_UP_N
DELIB_UP[dnsnone]="without resolvconf, a DNS line fails wg-quick's up (resolvconf: command not found, undone); noisetund says 'DNS: resolvconf is not installed' and brings the tunnel up without DNS (daemon/setup.c dns_up: an explicit choice)"
DELIB_UP_W[dnsnone]='resolvconf: (command )?not found'
DELIB_UP_N[dnsnone]='resolvconf is not installed'

# KNOWN: differences that are noisetun bugs (or open questions for the owner), reported and
# open. Such a cell shows "known" and does not fail the run; any other difference does.
#   KNOWN_SED[config:aspect]  a sed -E script applied to both sides (after DELIB): they must
#                             then be equal, so only this very difference is let through;
#   KNOWN_UPFAIL[config]      a regex: noisetun up must have failed, saying so, and left
#                             nothing; then every aspect but exit and left is "known" (the
#                             consequences of that one failure);
#   KNOWN_WHY[config:aspect or config]  the reason, printed.
# A listed item that turns out equal is reported so the entry can be removed.
declare -A KNOWN_SED=() KNOWN_UPFAIL=() KNOWN_WHY=()
# (none open: hookport and savetable were fixed, save's search domain became deliberate)

# ---------------------------------------------------------------- the configs

# Each config: NAME:KIND:COUNT. KIND ok (up and down must work) or bad (both must refuse
# and leave nothing); COUNT interfaces brought up in order (and down in reverse).
CONFIGS=(
	split4:ok:1 split6:ok:1 full46:ok:1 full4tab:ok:1 full6:ok:1 tableoff:ok:1
	tablemain:ok:1 hooks:ok:1 hookport:ok:1 save:ok:1 savetable:ok:1 crlf:ok:1 hostname:ok:1 two:ok:2
	fwmark:ok:1 noendpoint:ok:1 dnsnone:ok:1
	bad-key:bad:1 bad-addr:bad:1 bad-unknown:bad:1 bad-table:bad:1 bad-name:bad:1
)
# dnsnone needs a host without resolvconf: a real one would change the host's DNS.
if command -v resolvconf >/dev/null; then
	kept=()
	for c in "${CONFIGS[@]}"; do [ "$c" = dnsnone:ok:1 ] || kept+=("$c"); done
	CONFIGS=("${kept[@]}")
	log "resolvconf is installed here: config dnsnone (DNS without resolvconf) left out"
fi

key_new a
key_new p1
key_new p2
psk_new p1
mkdir -p "$NT_TMP/hooks"
chmod 777 "$NT_TMP/hooks"

# conf_body NAME [K]: the text of config NAME (interface K of it); @A@ the private key,
# @P1@ @P2@ peers' public keys, @PSK@ a preshared key, @HOOKS@ the hook directory.
conf_body() {
	case $1 in
	split4) cat <<'EOF'
[Interface]
PrivateKey = @A@
ListenPort = 51820
Address = 10.0.0.1/24

[Peer]
PublicKey = @P1@
PresharedKey = @PSK@
Endpoint = 192.0.2.2:51820
AllowedIPs = 10.9.0.0/16, 10.0.0.2/32
EOF
	;;
	split6) cat <<'EOF'
[Interface]
PrivateKey = @A@
ListenPort = 51820
Address = fd00::1/64
MTU = 1380

[Peer]
PublicKey = @P1@
Endpoint = [2001:db8::2]:51820
AllowedIPs = fd09::/32, fd00::2/128
PersistentKeepalive = 15
EOF
	;;
	full46) cat <<'EOF'
[Interface]
PrivateKey = @A@
ListenPort = 51820
Address = 10.0.0.1/24, fd00::1/64
DNS = 10.0.0.53, fd00::53, corp.test, lab.test

[Peer]
PublicKey = @P1@
Endpoint = 192.0.2.2:51820
AllowedIPs = 0.0.0.0/0, ::/0
EOF
	;;
	full4tab) cat <<'EOF'
[Interface]
PrivateKey = @A@
ListenPort = 51820
Address = 10.0.0.1/24
Table = 1234
MTU = 1300

[Peer]
PublicKey = @P1@
Endpoint = 192.0.2.2:51820
AllowedIPs = 0.0.0.0/0
EOF
	;;
	full6) cat <<'EOF'
[Interface]
PrivateKey = @A@
ListenPort = 51820
Address = fd00::1/64
DNS = fd00::53

[Peer]
PublicKey = @P1@
Endpoint = [2001:db8::2]:51820
AllowedIPs = ::/0
EOF
	;;
	tableoff) cat <<'EOF'
[Interface]
PrivateKey = @A@
ListenPort = 51820
Address = 10.0.0.1/24, fd00::1/64
Table = off

[Peer]
PublicKey = @P1@
Endpoint = 192.0.2.2:51820
AllowedIPs = 0.0.0.0/0, ::/0, 10.9.0.0/16
EOF
	;;
	tablemain) cat <<'EOF'
[Interface]
PrivateKey = @A@
ListenPort = 51820
Address = 10.0.0.1/24, fd00::1/64
Table = main

[Peer]
PublicKey = @P1@
Endpoint = 192.0.2.2:51820
AllowedIPs = 10.9.0.0/16, fd09::/32, 10.0.0.0/25
EOF
	;;
	hooks) cat <<'EOF'
[Interface]
PrivateKey = @A@
ListenPort = 51820
Address = 10.0.0.1/24
PreUp = echo "preup %i $(ip link show %i >/dev/null 2>&1 && echo link-present || echo link-absent)" >>@HOOKS@/%i.log; echo HOOKOUT preup %i
PostUp = [[ %i == d* ]] && cat <(echo "postup %i port $(wg show %i listen-port)") >>@HOOKS@/%i.log
PostUp = wg set %i peer @P1@ persistent-keepalive 25
PostUp = a=(x y z); echo "HOOKOUT postup ${a[2]} %i" >&2
PostUp = echo HOOKOUT hash-%i-#tail
PreDown = echo "predown %i keepalive $(wg show %i persistent-keepalive | awk '{ print $2 }')" >>@HOOKS@/%i.log; echo HOOKOUT predown %i
PostDown = echo "postdown %i $(ip link show %i >/dev/null 2>&1 && echo link-present || echo link-absent)" >>@HOOKS@/%i.log; echo HOOKOUT postdown %i

[Peer]
PublicKey = @P1@
Endpoint = 192.0.2.2:51820
AllowedIPs = 10.9.0.0/16
EOF
	;;
	save) cat <<'EOF'
[Interface]
PrivateKey = @A@
ListenPort = 51820
Address = 10.0.0.1/24, fd00::1/64
DNS = 10.0.0.53, corp.test
MTU = 1380
SaveConfig = true
PostUp = wg set %i peer @P2@ allowed-ips 10.8.0.0/16 endpoint 192.0.2.3:51820 persistent-keepalive 21

[Peer]
PublicKey = @P1@
Endpoint = 192.0.2.2:51820
AllowedIPs = 10.9.0.0/16
EOF
	;;
	savetable) cat <<'EOF'
[Interface]
PrivateKey = @A@
ListenPort = 51820
Address = 10.0.0.1/24
Table = main
SaveConfig = true

[Peer]
PublicKey = @P1@
Endpoint = 192.0.2.2:51820
AllowedIPs = 10.9.0.0/16
EOF
	;;
	dnsnone) cat <<'EOF'
[Interface]
PrivateKey = @A@
ListenPort = 51820
Address = 10.0.0.1/24
DNS = 10.0.0.53, corp.test

[Peer]
PublicKey = @P1@
Endpoint = 192.0.2.2:51820
AllowedIPs = 10.9.0.0/16
EOF
	;;
	crlf) printf '%s\r\n' \
		'# a comment line' \
		'[Interface]   # the interface' \
		'PrivateKey = @A@' \
		'listenport=51820' \
		'' \
		'address = 10.0.0.1/24 # inline comment' \
		'  Address =   fd00::1/64  ' \
		'[Peer]' \
		'# another' \
		'PublicKey = @P1@' \
		'AllowedIPs = 10.9.0.0/16,fd09::/32' \
		'Endpoint = 192.0.2.2:51820'
	;;
	hookport) cat <<'EOF'
[Interface]
PrivateKey = @A@
ListenPort = 51820
Address = 10.0.0.1/24
PostUp = wg set %i listen-port 51821

[Peer]
PublicKey = @P1@
Endpoint = 192.0.2.2:51820
AllowedIPs = 10.9.0.0/16
EOF
	;;
	fwmark) cat <<'EOF'
[Interface]
PrivateKey = @A@
ListenPort = 51820
FwMark = 0x1234
Address = 10.0.0.1/24

[Peer]
PublicKey = @P1@
Endpoint = 192.0.2.2:51820
AllowedIPs = 0.0.0.0/0
EOF
	;;
	noendpoint) cat <<'EOF'
[Interface]
PrivateKey = @A@
ListenPort = 51820
Address = 10.0.0.1/24, fd00::1/64

[Peer]
PublicKey = @P1@
AllowedIPs = 10.9.0.0/16, fd09::/32
EOF
	;;
	hostname) cat <<'EOF'
[Interface]
PrivateKey = @A@
Address = 10.0.0.1/24

[Peer]
PublicKey = @P1@
Endpoint = wqdiff-peer4:51820
AllowedIPs = 10.9.0.0/16

[Peer]
PublicKey = @P2@
Endpoint = wqdiff-peer6:51820
AllowedIPs = fd09::/32
EOF
	;;
	two) if [ "$2" = 0 ]; then cat <<'EOF'
[Interface]
PrivateKey = @A@
ListenPort = 51820
Address = 10.0.0.1/24, fd00::1/64

[Peer]
PublicKey = @P1@
Endpoint = 192.0.2.2:51820
AllowedIPs = 0.0.0.0/0, ::/0
EOF
	else cat <<'EOF'
[Interface]
PrivateKey = @A@
ListenPort = 51830
Address = 10.1.0.1/24

[Peer]
PublicKey = @P2@
Endpoint = 192.0.2.3:51820
AllowedIPs = 0.0.0.0/0, 10.7.0.0/16
EOF
	fi
	;;
	bad-key) cat <<'EOF'
[Interface]
PrivateKey = not-a-key
Address = 10.0.0.1/24

[Peer]
PublicKey = @P1@
AllowedIPs = 10.9.0.0/16
EOF
	;;
	bad-addr) cat <<'EOF'
[Interface]
PrivateKey = @A@
Address = 10.0.0.300/24

[Peer]
PublicKey = @P1@
AllowedIPs = 10.9.0.0/16
EOF
	;;
	bad-unknown) cat <<'EOF'
[Interface]
PrivateKey = @A@
Address = 10.0.0.1/24
NoSuchKey = 1

[Peer]
PublicKey = @P1@
AllowedIPs = 10.9.0.0/16
EOF
	;;
	bad-table) cat <<'EOF'
[Interface]
PrivateKey = @A@
Address = 10.0.0.1/24
Table = nosuchtable

[Peer]
PublicKey = @P1@
AllowedIPs = 10.9.0.0/16
EOF
	;;
	bad-name) conf_body split4;;
	*) fail "no config $1";;
	esac
}

# ---------------------------------------------------------------- twins

# The kernel WireGuard, when it is usable, would be taken by wg-quick: shim it away.
probe_ns=$(ns_name probe)
ns_create "$probe_ns"
if ip -n "$probe_ns" link add wqprobe type wireguard 2>/dev/null; then
	mkdir "$NT_TMP/wqbin"
	sed 's|\[\[ -e /sys/module/wireguard \]\] \|\| ||' "$WG_QUICK" >"$NT_TMP/wqbin/wg-quick"
	grep -q '/sys/module/wireguard' "$NT_TMP/wqbin/wg-quick" && fail "could not patch wg-quick"
	chmod 755 "$NT_TMP/wqbin/wg-quick"
	cat >"$NT_TMP/wqbin/ip" <<EOF
#!/bin/sh
[ "\$1 \$2 \$4 \$5" = "link add type wireguard" ] && { echo "test shim: no kernel wireguard" >&2; exit 2; }
exec $(command -v ip) "\$@"
EOF
	chmod 755 "$NT_TMP/wqbin/ip"
	WG_QUICK=$NT_TMP/wqbin/wg-quick
	log "kernel WireGuard usable here: wg-quick runs patched to take wireguard-go"
fi

# Letters for the configs in interface names.
LETTERS=abcdefghijklmnopqrstuvwxyz
cfg_name() { echo "${1%%:*}"; }
cfg_kind() { local x=${1#*:}; echo "${x%%:*}"; }
cfg_count() { echo "${1##*:}"; }

# twin_if KIND IDX K: the interface K of config IDX in twin KIND (w or n).
twin_if() { echo "d$1$NT_ID${LETTERS:$2:1}$3"; }

# Our daemons are the processes in our namespaces (lib.sh's search of /proc by interface
# name, once per interface, would take most of a minute for these 46): stopped by pid.
ETC_DIRS=()
WQD_IFACES=()
wqd_cleanup() {
	local ns p d i
	for ns in "${NT_NETNS[@]}"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do _stop_pid "$p"; done
	done
	for i in "${WQD_IFACES[@]}"; do
		[ ! -e "$NT_SOCK_DIR/$i.sock" ] || { echo "cleanup: removing $NT_SOCK_DIR/$i.sock"; rm -f "$NT_SOCK_DIR/$i.sock"; }
	done
	for d in "${ETC_DIRS[@]}"; do rm -rf "$d"; done
}
trap 'rc=$?; set +e; wqd_cleanup; (exit $rc); nt_cleanup' EXIT

# prepare IDX: namespaces, config files, stand-in resolvconf of both twins of config IDX.
prepare() {
	local idx=$1 c kind count k name ns dir file
	c=$(cfg_name "${CONFIGS[$idx]}") count=$(cfg_count "${CONFIGS[$idx]}")
	for kind in w n; do
		ns=$(ns_name "$c-$kind") dir=$NT_TMP/$c/$kind
		mkdir -p "$dir/bin" "$dir/conf"
		chmod 700 "$dir/conf"
		ns_create "$ns"
		# No duplicate address detection: the kernel's link-local addresses (eth0's, and
		# the tunnel's) exist at once, not some time after a snapshot.
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
		ip -n "$ns" link add eth0 type veth peer name eth0p
		ip -n "$ns" link set eth0p up
		ip -n "$ns" link set eth0 mtu 1400 up
		ip -n "$ns" addr add 192.0.2.1/24 dev eth0
		ip -n "$ns" addr add 2001:db8::1/64 dev eth0 nodad
		ip -n "$ns" route add default via 192.0.2.254 dev eth0
		ip -n "$ns" -6 route add default via 2001:db8::fe dev eth0
		mkdir -p "/etc/netns/$ns"
		ETC_DIRS+=("/etc/netns/$ns")
		printf '127.0.0.1 localhost\n::1 localhost\n192.0.2.2 wqdiff-peer4\n2001:db8::2 wqdiff-peer6\n' \
			>"/etc/netns/$ns/hosts"
		echo '# a wgquick-diff twin: no name server' >"/etc/netns/$ns/resolv.conf"
		cat >"$dir/bin/resolvconf" <<EOF
#!/bin/sh
# A stand-in for resolvconf: records calls and what -a was given; -l lists it.
case "\$1" in
-l) cat "$dir/resolv.\$2" 2>/dev/null; exit 0;;
-a) echo "resolvconf \$*" >>"$dir/resolvconf.log"; cat >"$dir/resolv.\$2"; sed 's/^/  /' "$dir/resolv.\$2" >>"$dir/resolvconf.log";;
-d) echo "resolvconf \$*" >>"$dir/resolvconf.log"; rm -f "$dir/resolv.\$2";;
*) echo "resolvconf \$*" >>"$dir/resolvconf.log";;
esac
EOF
		chmod 755 "$dir/bin/resolvconf"
		[ "$c" != dnsnone ] || rm "$dir/bin/resolvconf"
		: >"$dir/ifaces"
		for ((k = 0; k < count; k++)); do
			name=$(twin_if "$kind" "$idx" "$k")
			[ "$c" = bad-name ] && name=${name}toolongforanifname
			WQD_IFACES+=("$name")
			echo "$name" >>"$dir/ifaces"
			file=$dir/conf/$name.conf
			conf_body "$c" "$k" | sed -e "s|@A@|$(cat "$(key_file a)")|g" -e "s|@P1@|$(key_pub p1)|g" \
				-e "s|@P2@|$(key_pub p2)|g" -e "s|@PSK@|$(cat "$NT_TMP/p1.psk")|g" \
				-e "s|@HOOKS@|$NT_TMP/hooks|g" >"$file"
			chmod 600 "$file"
		done
	done
}

# snap NS DIR PHASE: the state of the twin, raw, in DIR/PHASE.ASPECT.
snap() {
	local ns=$1 dir=$2 ph=$3 i p port conf
	{
		ip -n "$ns" -d -4 route show table all
		ip -n "$ns" -d -6 route show table all
	} 2>&1 | sed -E 's/ expires [0-9]+sec//' | sort >"$dir/$ph.route"
	{ ip -n "$ns" -d -4 rule show; ip -n "$ns" -d -6 rule show; } >"$dir/$ph.rule" 2>&1
	ip netns exec "$ns" nft list ruleset >"$dir/$ph.nft" 2>&1
	ip netns exec "$ns" sysctl -n net.ipv4.conf.all.src_valid_mark >"$dir/$ph.sysctl" 2>&1
	: >"$dir/$ph.addr"; : >"$dir/$ph.link"; : >"$dir/$ph.wg"
	while read -r i; do
		ip -n "$ns" -o addr show dev "$i" 2>/dev/null | sed -E 's/^[0-9]+: +[^ ]+ +//; s/\\ +valid_lft.*//' |
			sort >>"$dir/$ph.addr"
		ip -n "$ns" -o link show dev "$i" 2>/dev/null |
			sed -E 's/^[0-9]+: ([^:]+): (<[^>]*>) mtu ([0-9]+).* state ([A-Z]+).*/\1 \2 mtu \3 state \4/' >>"$dir/$ph.link"
		conf=$dir/conf/$i.conf
		timeout -k 2 5 ip netns exec "$ns" wg show "$i" dump 2>/dev/null | awk -F'\t' -v ifc="$i" -v fixed="$(grep -ci '^ *listenport' "$conf")" '
			NR == 1 { port = $3; if (fixed == 0 && port != 0) port = "random"
				print ifc ": " $1 " " $2 " port " port " fwmark " $4; next }
			{ n = split($4, a, ","); for (j = 1; j <= n; j++) for (k = j + 1; k <= n; k++) if (a[k] < a[j]) { t = a[j]; a[j] = a[k]; a[k] = t }
				s = ""; for (j = 1; j <= n; j++) s = s (j > 1 ? "," : "") a[j]
				print "peer " $1 " psk " $2 " endpoint " $3 " allowed " s " keepalive " $8 }' |
			sort >>"$dir/$ph.wg"
	done <"$dir/ifaces"
	{
		ip -n "$ns" -o link show | awk -F': ' '{ print "link " $2 }' | sed 's/@.*//'
		while read -r i; do
			[ -e "$NT_SOCK_DIR/$i.sock" ] && echo "socket $i.sock"
			[ -e "$NT_SOCK_DIR/$i.down" ] && echo "socket $i.down"
		done <"$dir/ifaces"
		for p in $(ip netns pids "$ns" 2>/dev/null); do
			echo "process $(cat "/proc/$p/comm" 2>/dev/null) $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | awk '{ print $NF }')"
		done
		sed 's/^/route /' "$dir/$ph.route"
		sed 's/^/rule /' "$dir/$ph.rule"
		sed 's/^/nft /' "$dir/$ph.nft"
		ls "$dir" | grep '^resolv\.' | sed 's/^/resolvconf record /'
	} | sort >"$dir/$ph.state"
	ip netns exec "$ns" cat /etc/resolv.conf >"$dir/$ph.resolv" 2>&1
}

# gone NS DIR: no process in NS, no socket and no link of the twin's interfaces.
gone() {
	local i
	[ -z "$(ip netns pids "$1" 2>/dev/null)" ] || return 1
	while read -r i; do
		[ ! -e "$NT_SOCK_DIR/$i.sock" ] || return 1
		! ip -n "$1" link show dev "$i" >/dev/null 2>&1 || return 1
	done <"$2/ifaces"
}

# twin KIND IDX: up, snapshot, down, snapshot, in the twin's namespace.
twin() {
	local kind=$1 idx=$2 c ns dir i rc n=0 k env
	set +e
	c=$(cfg_name "${CONFIGS[$idx]}")
	ns=$(ns_name "$c-$kind") dir=$NT_TMP/$c/$kind
	env=(env "PATH=$dir/bin:$PATH" LOG_LEVEL=verbose)
	[ "$kind" = w ] && env+=(WG_QUICK_USERSPACE_IMPLEMENTATION="$WGGO")
	[ "$kind" = w ] && [ -d "$NT_TMP/wqbin" ] && env[1]="PATH=$dir/bin:$NT_TMP/wqbin:$PATH"
	snap "$ns" "$dir" pre
	: >"$dir/up.out"; : >"$dir/down.out"; : >"$dir/exit"
	while read -r i; do
		if [ "$kind" = w ]; then
			timeout -k 5 30 ip netns exec "$ns" "${env[@]}" "$WG_QUICK" up "$dir/conf/$i.conf" >>"$dir/up.out" 2>&1 </dev/null
		else
			timeout -k 5 30 ip netns exec "$ns" "${env[@]}" "$NT" up "$dir/conf/$i.conf" >>"$dir/up.out" 2>&1 </dev/null
		fi
		rc=$?
		echo "up $([ $rc = 0 ] && echo ok || echo refused)" >>"$dir/exit"
		echo "[up $i: exit $rc]" >>"$dir/up.out"
		[ $rc = 0 ] || break
		n=$((n + 1))
	done <"$dir/ifaces"
	# Both return once all is in place: wg-quick after its PostUp, noisetun up once the
	# daemon reports ready, PostUp run.
	snap "$ns" "$dir" up
	for ((k = n - 1; k >= 0; k--)); do
		i=$(sed -n "$((k + 1))p" "$dir/ifaces")
		if [ "$kind" = w ]; then
			timeout -k 5 30 ip netns exec "$ns" "${env[@]}" "$WG_QUICK" down "$dir/conf/$i.conf" >>"$dir/down.out" 2>&1 </dev/null
		else
			timeout -k 5 30 ip netns exec "$ns" "${env[@]}" "$NT" down "$dir/conf/$i.conf" >>"$dir/down.out" 2>&1 </dev/null
		fi
		rc=$?
		echo "down $([ $rc = 0 ] && echo ok || echo failed)" >>"$dir/exit"
		echo "[down $i: exit $rc]" >>"$dir/down.out"
	done
	for k in $(seq 100); do
		gone "$ns" "$dir" && break
		sleep 0.1
	done
	snap "$ns" "$dir" down
	{ grep -h '^HOOKOUT' "$dir/up.out" "$dir/down.out"; cat "$NT_TMP/hooks/"d"$kind$NT_ID${LETTERS:$idx:1}"*.log 2>/dev/null; } >"$dir/hooks"
	cat "$dir/resolvconf.log" 2>/dev/null >"$dir/dns"
	echo "--- /etc/resolv.conf up" >>"$dir/dns"; cat "$dir/up.resolv" >>"$dir/dns"
	echo "--- /etc/resolv.conf down" >>"$dir/dns"; cat "$dir/down.resolv" >>"$dir/dns"
	echo "$(cat "$dir/pre.sysctl") $(cat "$dir/up.sysctl") $(cat "$dir/down.sysctl")" >"$dir/sysctl"
	diff "$dir/pre.state" "$dir/down.state" | grep '^[<>]' >"$dir/left"
	# The file after down, peers sorted (no daemon promises an order).
	for i in $(cat "$dir/ifaces"); do
		[ -e "$dir/conf/$i.conf" ] || continue
		tr -d '\r' <"$dir/conf/$i.conf" | python3 -c '
import sys
blocks = sys.stdin.read().strip().split("\n\n")
print("\n\n".join(blocks[:1] + sorted(blocks[1:])))'
	done >"$dir/file"
	for k in addr link route rule nft wg; do cp "$dir/up.$k" "$dir/$k"; done
	echo done >"$dir/finished"
}

# ---------------------------------------------------------------- comparing

# norm IDX ASPECT: the names of both twins' interfaces become IF0, IF1; link-local
# addresses fe80::LL; then lines sorted (nft: tables sorted, each kept whole) where their
# order means nothing.
norm() {
	sed -E -e "s/\\bd[wn]$NT_ID${LETTERS:$1:1}([0-9])/IF\\1/g" -e 's/fe80::[0-9a-f]+[0-9a-f:]*/fe80::LL/g' |
	case $2 in
	addr|link|route|rule|wg|left) sort;;
	nft) python3 -c '
import re, sys
print("".join(sorted(re.split(r"(?m)^(?=table )", sys.stdin.read()))), end="")';;
	*) cat;;
	esac
}

ASPECTS_OK=(exit addr link route rule nft sysctl wg dns hooks file left)
ASPECTS_BAD=(exit left)
UNEXPECTED=0
declare -A KNOWN_SEEN=()
declare -A CELL DELIB_SEEN

compare() {
	local idx=$1 a=$2 c w n key
	c=$(cfg_name "${CONFIGS[$idx]}")
	w=$(norm "$idx" "$a" <"$NT_TMP/$c/w/$a") n=$(norm "$idx" "$a" <"$NT_TMP/$c/n/$a")
	key="$c:$a"
	if [ "$w" = "$n" ]; then
		CELL[$key]=same
		[ -z "${KNOWN_SED[$key]:-}" ] || echo "NOTE: $key is listed as known but is the same now: remove it from KNOWN"
		[ "$a" != exit ] || [ -z "${KNOWN_UPFAIL[$c]:-}" ] ||
			echo "NOTE: $c is listed as known (noisetun up fails) but both worked: remove it from KNOWN"
		return 0
	fi
	if [ -n "${DELIB_UP[$c]:-}" ] && [ "$a" != left ] && grep -q 'up refused' "$NT_TMP/$c/w/exit" &&
		grep -qE "${DELIB_UP_W[$c]}" "$NT_TMP/$c/w/up.out" && ! grep -qv ' ok$' "$NT_TMP/$c/n/exit" &&
		grep -qE "${DELIB_UP_N[$c]}" "$NT_TMP/$c/n/up.out"; then
		CELL[$key]=deliberate
		DELIB_SEEN[$c]=1
		return 0
	fi
	local w2 n2
	w2=$(sed -E "${DELIB[$a]:-}" <<<"$w") n2=$(sed -E "${DELIB[$a]:-}" <<<"$n")
	[ "$w2$n2" = "$w$n" ] || DELIB_SEEN[$a]=1
	w=$w2 n=$n2
	if [ "$w" = "$n" ]; then
		CELL[$key]=deliberate
		return 0
	fi
	if [ -n "${KNOWN_SED[$key]:-}" ] &&
		[ "$(sed -E "${KNOWN_SED[$key]}" <<<"$w")" = "$(sed -E "${KNOWN_SED[$key]}" <<<"$n")" ]; then
		CELL[$key]=known
		KNOWN_SEEN[$key]=$key
		echo "---- known, open: $key (< wg-quick, > noisetun): ${KNOWN_WHY[$key]}"
		diff <(echo "$w") <(echo "$n") | sed 's/^/    /'
		return 0
	fi
	if [ -n "${KNOWN_UPFAIL[$c]:-}" ] && [ "$a" != left ] && grep -q 'up refused' "$NT_TMP/$c/n/exit" &&
		grep -qE "${KNOWN_UPFAIL[$c]}" "$NT_TMP/$c/n/up.out"; then
		CELL[$key]=known
		KNOWN_SEEN[$c]="${KNOWN_SEEN[$c]:+${KNOWN_SEEN[$c]} }$a"
		[ "$a" != exit ] || echo "---- known, open: $c: ${KNOWN_WHY[$c]}"
		return 0
	fi
	CELL[$key]=DIFFERENT
	UNEXPECTED=$((UNEXPECTED + 1))
	echo "---- DIFFERENT: $key (< wg-quick, > noisetun)"
	diff <(echo "$w") <(echo "$n") | sed 's/^/    /'
}

# ---------------------------------------------------------------- run

for idx in "${!CONFIGS[@]}"; do prepare "$idx"; done
log "prepared ${#CONFIGS[@]} configs, $((2 * ${#CONFIGS[@]})) twins; running $JOBS at a time"
running=0
for idx in "${!CONFIGS[@]}"; do
	for kind in w n; do
		twin "$kind" "$idx" &
		running=$((running + 1))
		if [ "$running" -ge "$JOBS" ]; then
			wait -n || true
			running=$((running - 1))
		fi
	done
done
wait || true
log "all twins done"
# A sanitizer report (BUILD=build/asan) in what noisetun up/down showed fails the run.
if grep -l -E 'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:' "$NT_TMP"/*/n/*.out >/dev/null 2>&1; then
	grep -h -E -A 12 'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:' "$NT_TMP"/*/n/*.out | head -n 60
	fail "sanitizer report from noisetun (outputs in $NT_TMP/CONFIG/n/)"
fi

for idx in "${!CONFIGS[@]}"; do
	c=$(cfg_name "${CONFIGS[$idx]}")
	for kind in w n; do
		[ -e "$NT_TMP/$c/$kind/finished" ] || fail "twin $kind of $c did not finish"
	done
	if [ "$(cfg_kind "${CONFIGS[$idx]}")" = ok ]; then
		aspects=("${ASPECTS_OK[@]}")
		# Both sides must have worked, or the comparison says little.
		[ -z "${DELIB_UP[$c]:-}" ] && grep -qv ' ok$' "$NT_TMP/$c/w/exit" && fail "wg-quick failed on $c (harness or config broken): $(tail -n 20 "$NT_TMP/$c/w/up.out" "$NT_TMP/$c/w/down.out")"
	else
		aspects=("${ASPECTS_BAD[@]}")
		grep -q 'up refused' "$NT_TMP/$c/w/exit" || fail "wg-quick accepted the bad config $c"
	fi
	# Nothing of the twin's may be left after down, in either twin.
	for kind in w n; do
		if grep -qE '^> (link|socket|process|nft|rule)' "$NT_TMP/$c/$kind/left"; then
			[ "$kind" = w ] && fail "wg-quick left state after down on $c: $(cat "$NT_TMP/$c/w/left")"
		fi
	done
	for a in "${aspects[@]}"; do compare "$idx" "$a"; done
done

# The table: configs by aspect.
echo
printf '%-12s' config
for a in "${ASPECTS_OK[@]}"; do printf ' %-10s' "$a"; done
echo
for idx in "${!CONFIGS[@]}"; do
	c=$(cfg_name "${CONFIGS[$idx]}")
	printf '%-12s' "$c"
	for a in "${ASPECTS_OK[@]}"; do printf ' %-10s' "${CELL[$c:$a]:--}"; done
	echo
done
echo
echo "deliberate differences (equal once normalised so):"
for a in "${!DELIB_SEEN[@]}"; do echo "  - $a: ${DELIB_WHY[$a]:-${DELIB_UP[$a]:-}}"; done
if [ ${#KNOWN_SEEN[@]} -gt 0 ]; then
	echo "known, open differences (noisetun bugs, reported; not failing this run):"
	for k in "${!KNOWN_SEEN[@]}"; do
		if [ "$k" = "${KNOWN_SEEN[$k]}" ]; then echo "  - $k: ${KNOWN_WHY[$k]}"
		else echo "  - $k (${KNOWN_SEEN[$k]}): ${KNOWN_WHY[$k]}"; fi
	done
fi
[ "$UNEXPECTED" = 0 ] || fail "$UNEXPECTED unexpected difference(s) between wg-quick and noisetun (see DIFFERENT above)"
log "pass: ${#CONFIGS[@]} configs, wg-quick and noisetun agree but for the deliberate and known differences listed"
