#!/usr/bin/env python3
"""Differential test of set=1 requests: noisetund against wireguard-go.

uapi_diff.py SEED COUNT NT_SOCK GO_SOCK

Sends COUNT seeded random set requests (valid and invalid keys, peers, allowed IPs,
endpoints with link-local scopes, listen_port with 0, replace_peers, remove, update_only,
a peer repeated in one request) to both daemons, each starting from the same state, and
compares the errno and the get state that follows.

Normalised away: handshake times, counters, protocol_version; peer and allowed-IP order;
an endpoint's scope (wireguard-go drops it; noisetund keeps it, shown by name); the port
after listen_port=0 (random on both: only "a port" is compared); an unclamped private
key (compared clamped).

The deliberate difference: noisetund applies a request whole or not at all; wireguard-go
applies lines as it reads them. So when wireguard-go answers an error, only the errno is
compared, noisetund's state must be the one before the request, and wireguard-go is then
set back to noisetund's state. Prints one line per difference and a summary; exits 1 on
any difference.
"""
import random
import socket
import sys

seed, count, nt_sock, go_sock = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
rng = random.Random(seed)


def request(path, data):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    s.sendall(data)
    out = b""
    while not (out.endswith(b"\n\n") and b"errno=" in out):
        d = s.recv(65536)
        if not d:
            break
        out += d
    s.close()
    return out.decode()


def errno_of(reply):
    for line in reply.splitlines():
        if line.startswith("errno="):
            return int(line[6:])
    return None  # closed without a reply


def clamp(hexkey):
    k = bytearray(bytes.fromhex(hexkey))
    k[0] &= 248
    k[31] = (k[31] & 127) | 64
    return k.hex()


def get_state(path, port_random):
    reply = request(path, b"get=1\n\n")
    dev, peers, cur = {}, {}, None
    for line in reply.splitlines():
        if not line or "=" not in line:
            continue
        k, v = line.split("=", 1)
        if k == "public_key":
            cur = peers.setdefault(v, {"allowed_ip": set()})
        elif k in ("errno", "protocol_version", "last_handshake_time_sec", "last_handshake_time_nsec",
                   "tx_bytes", "rx_bytes"):
            continue
        elif cur is None:
            dev[k] = v
        elif k == "allowed_ip":
            cur["allowed_ip"].add(v)
        else:
            cur[k] = v
    raw = {"dev": dict(dev), "peers": {p: dict(v, allowed_ip=set(v["allowed_ip"])) for p, v in peers.items()}}
    if "private_key" in dev:
        dev["private_key"] = clamp(dev["private_key"])
    if port_random and "listen_port" in dev:
        dev["listen_port"] = "random"
    for p in peers.values():
        if "endpoint" in p and "%" in p["endpoint"]:
            host, port = p["endpoint"].rsplit(":", 1)
            p["endpoint"] = host.split("%")[0] + "]:" + port
        p["allowed_ip"] = sorted(p["allowed_ip"])
        if p.get("persistent_keepalive_interval") == "0":
            del p["persistent_keepalive_interval"]
    return {"dev": dev, "peers": peers}, raw


def hexkey():
    return bytes(rng.getrandbits(8) for _ in range(32)).hex()


PEERS = [hexkey() for _ in range(6)]
PORTS = [0, 0, 20001, 20002, 20003]
MARKS = ["0", "1", "4660", "51820"]
IPS = ["10.0.0.%d/32" % i for i in range(4)] + ["10.0.1.0/24", "10.1.0.0/16", "0.0.0.0/0",
       "fd00::%d/128" % 1, "fd00::2/128", "fd00:1::/64", "::/0", "10.0.2.7/24"]
ENDPOINTS = ["192.0.2.%d:%d" % (i, 51820 + i) for i in range(1, 4)] + [
    "[2001:db8::1]:51820", "[fe80::1%eth0]:51821", "[fe80::2%lo]:51822", "[fe80::3%1]:51823",
    "[2001:db8::2%eth0]:7"]
BAD = {  # a bad line and where it may go
    "dev": ["listen_port=65536", "fwmark=-1", "private_key=" + "g" * 64, "frobnicate=1",
            "replace_peers=false", "private_key=" + "a" * 63],
    "peer": ["allowed_ip=10.0.0.1/33", "allowed_ip=10.0.0.300/32", "endpoint=nohost",
             "endpoint=[::1]", "protocol_version=2", "remove=1", "update_only=yes",
             "persistent_keepalive_interval=65536", "preshared_key=xyz", "replace_allowed_ips=false",
             "listen_port=1", "bogus=1"],
}


def gen_peer_lines():
    lines = ["public_key=" + rng.choice(PEERS)]
    r = rng.random()
    if r < 0.12:
        lines.append("remove=true")
        return lines
    if r < 0.25:
        lines.append("update_only=true")
    if rng.random() < 0.3:
        lines.append("preshared_key=" + (rng.choice(["00" * 32]) if rng.random() < 0.3 else hexkey()))
    if rng.random() < 0.5:
        lines.append("endpoint=" + rng.choice(ENDPOINTS))
    if rng.random() < 0.3:
        lines.append("persistent_keepalive_interval=%d" % rng.choice([0, 1, 25, 65535]))
    if rng.random() < 0.4:
        lines.append("replace_allowed_ips=true")
    for _ in range(rng.randrange(4)):
        lines.append("allowed_ip=" + rng.choice(IPS))
    if rng.random() < 0.1:
        lines.append("protocol_version=1")
    return lines


def gen_request():
    lines = []
    if rng.random() < 0.2:
        lines.append("private_key=" + hexkey())
    port = None
    if rng.random() < 0.3:
        port = rng.choice(PORTS)
        lines.append("listen_port=%d" % port)
    if rng.random() < 0.2:
        lines.append("fwmark=" + rng.choice(MARKS))
    if rng.random() < 0.15:
        lines.append("replace_peers=true")
    for _ in range(rng.randrange(4)):
        lines += gen_peer_lines()
    if rng.random() < 0.08 and any(l.startswith("public_key=") for l in lines):
        # the same peer again later in the request
        first = next(l for l in lines if l.startswith("public_key="))
        lines += [first, "allowed_ip=" + rng.choice(IPS)]
    bad = False
    if rng.random() < 0.25:
        bad = True
        npeer = next((i for i, l in enumerate(lines) if l.startswith("public_key=")), len(lines))
        if npeer < len(lines) and rng.random() < 0.7:
            pos = rng.randrange(npeer + 1, len(lines) + 1)
            lines.insert(pos, rng.choice(BAD["peer"]))
        else:
            lines.insert(rng.randrange(npeer + 1), rng.choice(BAD["dev"]))
    return lines, port, bad


def sync_set(raw):
    """A set request that makes a daemon's state raw's (from noisetund's get)."""
    lines = ["private_key=" + raw["dev"].get("private_key", "00" * 32),
             "listen_port=" + raw["dev"].get("listen_port", "0"),
             "fwmark=" + raw["dev"].get("fwmark", "0"), "replace_peers=true"]
    for pub, p in raw["peers"].items():
        lines.append("public_key=" + pub)
        for k in ("preshared_key", "endpoint", "persistent_keepalive_interval"):
            if k in p:
                lines.append(k + "=" + p[k])
        lines.append("replace_allowed_ips=true")
        lines += ["allowed_ip=" + a for a in sorted(p["allowed_ip"])]
    return ("set=1\n" + "\n".join(lines) + "\n\n").encode()


def describe(a, b):
    out = []
    for k in sorted(set(a["dev"]) | set(b["dev"])):
        if a["dev"].get(k) != b["dev"].get(k):
            out.append(f"{k}: {a['dev'].get(k)} vs {b['dev'].get(k)}")
    for p in sorted(set(a["peers"]) | set(b["peers"])):
        if a["peers"].get(p) != b["peers"].get(p):
            out.append(f"peer {p[:8]}: {a['peers'].get(p)} vs {b['peers'].get(p)}")
    return "; ".join(out)[:600]


port_random = False
diffs = applied = refused = bothbad = 0
init = ("set=1\nprivate_key=" + hexkey() + "\nlisten_port=20000\nreplace_peers=true\n\n").encode()
for path in (nt_sock, go_sock):
    assert errno_of(request(path, init)) == 0
for i in range(count):
    lines, port, bad = gen_request()
    body = ("set=1\n" + "".join(l + "\n" for l in lines) + "\n").encode()
    before_nt, raw_before = get_state(nt_sock, port_random)
    _, raw_before_go = get_state(go_sock, port_random)
    e_nt, e_go = errno_of(request(nt_sock, body)), errno_of(request(go_sock, body))
    after_random = port_random or port == 0
    if e_go != 0 or e_nt != 0:
        # wireguard-go may have half-applied: compare the errno; noisetund must be unchanged
        now_nt, raw_nt = get_state(nt_sock, port_random if e_nt else after_random)
        if e_nt != e_go:
            diffs += 1
            print(f"#{i} errno: noisetund {e_nt}, wireguard-go {e_go}\n   request: {lines}")
        elif e_nt and now_nt != before_nt:
            diffs += 1
            print(f"#{i} noisetund changed state on errno {e_nt}: {describe(before_nt, now_nt)}\n   request: {lines}")
        if e_nt:
            refused += 1
            bothbad += e_go != 0
        else:
            port_random = after_random
        # set wireguard-go to noisetund's state
        r = errno_of(request(go_sock, sync_set(raw_nt)))
        if r != 0:
            print(f"#{i} resync of wireguard-go failed: errno {r}")
            diffs += 1
        continue
    applied += 1
    port_random = after_random
    s_nt, raw_nt = get_state(nt_sock, port_random)
    s_go, raw_go = get_state(go_sock, port_random)
    if port == 0:  # a new random port on both (the kernel's rule), not the one bound before
        for name, b, a in (("noisetund", raw_before, raw_nt), ("wireguard-go", raw_before_go, raw_go)):
            if a["dev"].get("listen_port") in (None, "0", b["dev"].get("listen_port")):
                diffs += 1
                print(f"#{i} listen_port=0 on {name}: port {b['dev'].get('listen_port')} -> {a['dev'].get('listen_port')}")
    if s_nt != s_go:
        diffs += 1
        print(f"#{i} state differs (noisetund vs wireguard-go): {describe(s_nt, s_go)}\n   request: {lines}")
final, _ = get_state(nt_sock, port_random)
print(f"{count} requests (seed {seed}): {applied} applied by both, {refused} refused by noisetund "
      f"({bothbad} by wireguard-go too), {diffs} difference(s); at the end {len(final['peers'])} peers, "
      f"{sum(len(p['allowed_ip']) for p in final['peers'].values())} allowed IPs")
sys.exit(1 if diffs else 0)
