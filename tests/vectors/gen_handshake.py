#!/usr/bin/python3
"""An independent IKpsk2 handshake (protocol.md) with fixed static keys and a fixed
byte stream for the ephemerals, for the exact-bytes vector in tests/unit/test_noise.c.
Byte stream: byte n of a stream started at `base` is (base + n) * 37 + 11 mod 256."""
import hashlib, hmac, struct
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives import serialization as ser

HASH = lambda b: hashlib.blake2s(b).digest()
MAC = lambda k, b: hashlib.blake2s(b, key=k, digest_size=16).digest()
HMAC = lambda k, m: hmac.new(k, m, hashlib.blake2s).digest()
def KDF(n, ck, x):
    t0 = HMAC(ck, x); out = []; prev = b""
    for i in range(1, n + 1):
        prev = HMAC(t0, prev + bytes([i])); out.append(prev)
    return out
def AEAD(k, c, p, ad): return ChaCha20Poly1305(k).encrypt(b"\0" * 4 + struct.pack("<Q", c), p, ad)
def clamp(k): k = bytearray(k); k[0] &= 248; k[31] = (k[31] & 127) | 64; return bytes(k)
def pub(k): return X25519PrivateKey.from_private_bytes(k).public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
def DH(k, p): return X25519PrivateKey.from_private_bytes(k).exchange(X25519PublicKey.from_public_bytes(p))
def stream(base, n): return bytes(((base + i) * 37 + 11) & 0xff for i in range(n))

Si = clamp(bytes([0x11] * 32)); Sr = clamp(bytes([0x22] * 32)); Spi = pub(Si); Spr = pub(Sr)
psk = bytes(range(0xa0, 0xc0))
wall_ns = 1700000000 * 10**9 + 123456789
secs = 0x400000000000000a + wall_ns // 10**9
ts = struct.pack(">QI", secs, wall_ns % 10**9)

C = HASH(b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"); H = HASH(C + b"WireGuard v1 zx2c4 Jason@zx2c4.com"); H = HASH(H + Spr)
Ei = clamp(stream(0, 32)); Epi = pub(Ei)
C = KDF(1, C, Epi)[0]; H = HASH(H + Epi)
C, k = KDF(2, C, DH(Ei, Spr)); st = AEAD(k, 0, Spi, H); H = HASH(H + st)
C, k = KDF(2, C, DH(Si, Spr)); tt = AEAD(k, 0, ts, H); H = HASH(H + tt)
m1 = bytes([1, 0, 0, 0]) + struct.pack("<I", 0x01020304) + Epi + st + tt
m1 += MAC(HASH(b"mac1----" + Spr), m1) + bytes(16)

Er = clamp(stream(100, 32)); Epr = pub(Er)
C = KDF(1, C, Epr)[0]; H = HASH(H + Epr)
C = KDF(1, C, DH(Er, Epi))[0]; C = KDF(1, C, DH(Er, Spi))[0]
C, t, k = KDF(3, C, psk); H = HASH(H + t); e = AEAD(k, 0, b"", H); H = HASH(H + e)
m2 = bytes([2, 0, 0, 0]) + struct.pack("<II", 0x0a0b0c0d, 0x01020304) + Epr + e
m2 += MAC(HASH(b"mac1----" + Spi), m2) + bytes(16)
Ti, Tr = KDF(2, C, b"")
print("spub_i", Spi.hex()); print("spub_r", Spr.hex())
print("init", m1.hex()); print("resp", m2.hex()); print("t_send_i", Ti.hex()); print("t_send_r", Tr.hex())
print("data0", (bytes([4, 0, 0, 0]) + struct.pack("<IQ", 0x0a0b0c0d, 0) + AEAD(Ti, 0, bytes(16), b"")).hex())
