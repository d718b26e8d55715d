#!/bin/bash
# A large configuration through the stock tool: 1,000 peers x 100 allowed IPs.
#
#   ns A
#   +----------------------------------------------+
#   | IMPL_A ntla<id>a  (link down, no traffic)    |
#   |   wg setconf  <- 1,000 peers, 100,000 prefixes|
#   |   wg showconf -> must say the same thing      |
#   +----------------------------------------------+
#
# Public keys are random 32-byte strings (a peer's public key needs no private key);
# allowed IPs are random canonical v4 and v6 prefixes of mixed lengths, unique across
# the whole config; some peers carry an endpoint, a preshared key and a keepalive.
# The comparison ignores order: the control protocol promises no order of peers, nor of
# a peer's allowed IPs (the kernel prints them in trie order), so both sides are parsed
# into {public key: {fields, set of prefixes}} with addresses in canonical text. Whether
# order happened to be kept is logged, not asserted. NT_SEED fixes the random config.
set -eu
# shellcheck source=tests/net/lib.sh
. "$(dirname "$0")/lib.sh"
nt_init lconfig
need_impl "$NT_IMPL_A"
NPEERS=${NT_LARGE_PEERS:-1000}
NIPS=${NT_LARGE_IPS:-100}
SEED=${NT_SEED:-$RANDOM$RANDOM}

NSA=$(ns_name a) IFA=$(if_name a)
ns_create "$NSA"
key_new a
start_wg "$NT_IMPL_A" "$NSA" "$IFA"

cat >"$NT_TMP/gen.py" <<'EOF'
# gen.py SEED NPEERS NIPS PRIVATE_KEY_FILE VARIANT > config
import base64, ipaddress, random, sys
seed, npeers, nips, keyfile, variant = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
rng = random.Random(seed)
keys = [base64.b64encode(rng.randbytes(32)).decode() for _ in range(npeers)]
rng = random.Random(f"{seed}/{variant}")
if variant == 1:   # keep the first half of the peers, replace the rest
    keys = keys[:npeers // 2] + [base64.b64encode(rng.randbytes(32)).decode()
                                 for _ in range(npeers - npeers // 2)]
seen = set()
def prefix():
    while True:
        if rng.random() < 0.5:
            plen = rng.choice([32] * 6 + list(range(8, 32)))
            net = ipaddress.ip_network((rng.getrandbits(32), plen), strict=False)
        else:
            plen = rng.choice([128] * 4 + [64] * 4 + list(range(16, 128)))
            net = ipaddress.ip_network((rng.getrandbits(128), plen), strict=False)
        if net not in seen:
            seen.add(net)
            return str(net)
out = ["[Interface]", "PrivateKey = " + open(keyfile).read().strip(), "ListenPort = 51820", ""]
for i, k in enumerate(keys):
    out += ["[Peer]", "PublicKey = " + k]
    if i % 7 == 0:
        out.append("PresharedKey = " + base64.b64encode(rng.randbytes(32)).decode())
    if i % 5 == 0:
        if i % 10 == 0:
            out.append(f"Endpoint = 192.0.2.{rng.randrange(1, 255)}:{rng.randrange(1, 65536)}")
        else:
            out.append(f"Endpoint = [2001:db8::{rng.randrange(1, 65536):x}]:{rng.randrange(1, 65536)}")
    if i % 3 == 0:
        out.append(f"PersistentKeepalive = {rng.randrange(1, 65536)}")
    out.append("AllowedIPs = " + ", ".join(prefix() for _ in range(nips)))
    out.append("")
print("\n".join(out))
EOF

cat >"$NT_TMP/cmp.py" <<'EOF'
# cmp.py WANT GOT: exit 0 when the two configs say the same, ignoring order.
import ipaddress, sys
def canon_ep(v):
    host, port = v.rsplit(":", 1)
    ip = ipaddress.ip_address(host.strip("[]"))
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
def parse(path):
    iface, peers, order, cur = {}, {}, [], None
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line in ("[Interface]", "[Peer]"):
            cur = iface if line == "[Interface]" else {}
            continue
        k, v = (s.strip() for s in line.split("=", 1))
        if cur is not iface and k == "PublicKey":
            assert v not in peers, f"{path}: peer {v} twice"
            peers[v] = cur
            order.append(v)
            cur["AllowedIPs"] = []
        elif k == "AllowedIPs":
            cur["AllowedIPs"] += [str(ipaddress.ip_network(a.strip())) for a in v.split(",") if a.strip()]
        elif k == "Endpoint":
            cur[k] = canon_ep(v)
        else:
            cur[k] = v
    return iface, peers, order
wi, wp, wo = parse(sys.argv[1])
gi, gp, go = parse(sys.argv[2])
bad = []
if wi != gi:
    bad.append(f"interface: want {sorted(wi)} got {sorted(gi)} (values differ)")
for k in sorted(set(wp) | set(gp)):
    if k not in gp: bad.append(f"peer {k}: missing"); continue
    if k not in wp: bad.append(f"peer {k}: unexpected"); continue
    w, g = dict(wp[k]), dict(gp[k])
    wa, ga = w.pop("AllowedIPs"), g.pop("AllowedIPs")
    if w != g:
        bad.append(f"peer {k}: want {w} got {g}")
    if sorted(wa) != sorted(ga) or len(set(ga)) != len(ga):
        bad.append(f"peer {k}: allowed IPs differ: missing {sorted(set(wa) - set(ga))[:5]} "
                   f"extra {sorted(set(ga) - set(wa))[:5]} (showing up to 5)")
nips = sum(len(p["AllowedIPs"]) for p in gp.values())
print(f"compared {len(wp)} peers / {sum(len(p['AllowedIPs']) for p in wp.values())} prefixes "
      f"with {len(gp)} / {nips}; peer order kept: {wo == go}; allowed-IP order kept: "
      f"{all(wp[k]['AllowedIPs'] == gp[k]['AllowedIPs'] for k in wp if k in gp)}")
for b in bad[:20]:
    print("DIFF", b)
sys.exit(1 if bad else 0)
EOF

# run_round VARIANT: setconf a generated config, showconf it back, compare.
run_round() {
	local v=$1 t0 t1 t2
	python3 "$NT_TMP/gen.py" "$SEED" "$NPEERS" "$NIPS" "$(key_file a)" "$v" >"$NT_TMP/want$v.conf"
	t0=$(date +%s%N)
	wgn "$NSA" setconf "$IFA" "$NT_TMP/want$v.conf" || fail "wg setconf (round $v) failed"
	t1=$(date +%s%N)
	wgn "$NSA" showconf "$IFA" >"$NT_TMP/got$v.conf" || fail "wg showconf (round $v) failed"
	t2=$(date +%s%N)
	log "round $v: setconf $(( (t1 - t0) / 1000000 )) ms, showconf $(( (t2 - t1) / 1000000 )) ms" \
		"($(wc -c <"$NT_TMP/want$v.conf") bytes of config)"
	python3 "$NT_TMP/cmp.py" "$NT_TMP/want$v.conf" "$NT_TMP/got$v.conf" ||
		fail "round $v: wg showconf differs from what wg setconf was given (seed $SEED)"
}

log "seed $SEED: $NPEERS peers x $NIPS allowed IPs"
# Test that setconf of the whole config reads back identical.
run_round 0
# Test that a second setconf replaces it exactly (replace_peers with half the peers kept,
# replace_allowed_ips on those), again read back identical.
run_round 1
# Test that the daemon is alive and its port is the configured one.
daemon_alive "$IFA" || fail "$IFA died"
[ "$(wgn "$NSA" show "$IFA" listen-port)" = 51820 ] || fail "listen port lost"
log "pass"
