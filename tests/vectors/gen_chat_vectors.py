#!/usr/bin/env python3
"""The chat vectors of docs/SIGNATURES.md section 11.6, computed without
sxfer: the statements with struct, the hash with hashlib, the Ed25519
signatures with `openssl pkeyutl -sign -rawin` from the seed of section 4.
tests/unit/test_chat.c holds the same values."""
import base64
import hashlib
import os
import struct
import subprocess
import tempfile

SEED = bytes.fromhex("202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f")


def b16(s):
    return struct.pack(">H", len(s)) + s


def sign(msg, key):
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(msg)
    try:
        return subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", key, "-rawin", "-in", f.name],
                              check=True, capture_output=True).stdout
    finally:
        os.unlink(f.name)


def main():
    text = b"camera 7 is back online"
    stmt = (b"sxfer chat message v1\0" + b16(b"#ops") + b16(b"alice") +
            struct.pack(">QQq", 3, 7, 1735689600000) + hashlib.sha256(text).digest() + bytes(range(32)))
    h = hashlib.sha256(stmt).digest()
    rstmt = (b"sxfer chat receipt v1\0" + b16(b"#ops") + b16(b"alice") + h +
             struct.pack(">QQq", 7, 5, 1735689660000))
    der = bytes.fromhex("302e020100300506032b657004220420") + SEED  # RFC 8410 PKCS#8
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as k:
        k.write("-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n" %
                base64.b64encode(der).decode())
    try:
        print("statement", stmt.hex())
        print("hash", h.hex())
        print("signature", sign(stmt, k.name).hex())
        print("receipt-statement", rstmt.hex())
        print("receipt-signature", sign(rstmt, k.name).hex())
    finally:
        os.unlink(k.name)


if __name__ == "__main__":
    main()
