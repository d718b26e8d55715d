#!/usr/bin/python3
"""Independent vectors for tests/unit/test_crypto.c, computed with Python's hashlib/hmac and
the `cryptography` package (Debian python3-cryptography). Run once at test-writing time; the
output is committed as constants in the C test. Not run by make check."""
import hashlib, hmac, struct
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

def h(b): return b.hex()
def HMAC(k, m): return hmac.new(k, m, hashlib.blake2s).digest()
def KDF(n, ck, x):
    t0 = HMAC(ck, x); out = []; prev = b""
    for i in range(1, n + 1):
        prev = HMAC(t0, prev + bytes([i])); out.append(prev)
    return out

def rotl(v, c): return ((v << c) & 0xffffffff) | (v >> (32 - c))
def qr(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & 0xffffffff; s[d] = rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & 0xffffffff; s[b] = rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & 0xffffffff; s[d] = rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & 0xffffffff; s[b] = rotl(s[b] ^ s[c], 7)
def hchacha20(key, nonce16):
    s = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574] + list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    for _ in range(10):
        qr(s, 0, 4, 8, 12); qr(s, 1, 5, 9, 13); qr(s, 2, 6, 10, 14); qr(s, 3, 7, 11, 15)
        qr(s, 0, 5, 10, 15); qr(s, 1, 6, 11, 12); qr(s, 2, 7, 8, 13); qr(s, 3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))
def XAEAD(key, nonce24, pt, ad):
    sub = hchacha20(key, nonce24[:16])
    return ChaCha20Poly1305(sub).encrypt(b"\0" * 4 + nonce24[16:], pt, ad)
def AEAD(key, counter, pt, ad):
    return ChaCha20Poly1305(key).encrypt(b"\0" * 4 + struct.pack("<Q", counter), pt, ad)

key = bytes(range(32)); ck = bytes(range(0x40, 0x60)); msg = b"noisetun test vector input"
print("hmac_key0_abc", h(HMAC(key, b"abc")))
print("hmac_longkey", h(HMAC(bytes(range(100)), msg)))
print("mac16", h(hashlib.blake2s(msg, key=key, digest_size=16).digest()))
for n in (1, 2, 3):
    print("kdf%d" % n, " ".join(h(t) for t in KDF(n, ck, msg)))
print("kdf_empty", " ".join(h(t) for t in KDF(2, ck, b"")))
print("aead_c0", h(AEAD(key, 0, msg, b"ad")))
print("aead_c123", h(AEAD(key, 0x0102030405060708, msg, b"")))
print("aead_empty", h(AEAD(key, 7, b"", ck)))
print("xaead", h(XAEAD(key, bytes(range(0x80, 0x98)), msg, b"ad")))
