#!/usr/bin/env python3
"""A man in the middle on loopback, for the end-to-end tests.

It forwards one or more connections from a listening port to the server and
understands just enough of the stream to find record boundaries: TLS records
(5-byte header, type 20..23) during the handshake, sxfer records (8-byte
header, body length in bytes 4..7) after it. In the client-to-server
direction (or server-to-client with DIRECTION s2c, as for sxfer get, where
the server sends; its record 0 is CONFIRM) it can tamper with the Nth sxfer
record:

  pass     forward everything unchanged
  flip     flip one byte in the middle of record N
  drop     leave record N out
  replay   send record N twice
  huge     replace record N's header with one announcing a 4 GiB body
  stall    forward half of record N, then nothing more (the socket stays open)

Usage: mitm.py MODE N UPSTREAM_PORT PORT_FILE [DIRECTION]  (c2s or s2c; c2s)
Also: mitm.py random HOST PORT  (a client that sends random bytes)
"""
import os
import socket
import sys
import threading


def pump_plain(src, dst):
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def pump_records(src, dst, mode, n):
    buf = b""
    index = 0  # sxfer records seen
    stalled = False
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            if stalled:
                continue
            buf += data
            while True:
                if len(buf) < 1:
                    break
                tls = 20 <= buf[0] <= 23
                hlen = 5 if tls else 8
                if len(buf) < hlen:
                    break
                blen = int.from_bytes(buf[3:5], "big") if tls else int.from_bytes(buf[4:8], "big")
                if not tls and mode == "huge" and index == n:
                    dst.sendall(buf[:4] + (0xFFFFFFF0).to_bytes(4, "big") + b"\0" * 64)
                    stalled = True
                    break
                if len(buf) < hlen + blen:
                    break
                rec, buf = buf[: hlen + blen], buf[hlen + blen:]
                if tls:
                    dst.sendall(rec)
                    continue
                if index == n and mode == "flip":
                    mid = hlen + blen // 2
                    rec = rec[:mid] + bytes([rec[mid] ^ 0x01]) + rec[mid + 1:]
                    dst.sendall(rec)
                elif index == n and mode == "drop":
                    pass
                elif index == n and mode == "replay":
                    dst.sendall(rec)
                    dst.sendall(rec)
                elif index == n and mode == "stall":
                    dst.sendall(rec[: len(rec) // 2])
                    stalled = True
                    break
                else:
                    dst.sendall(rec)
                index += 1
    except OSError:
        pass
    if not stalled:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def serve(mode, n, upstream, port_file, direction="c2s"):
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(lsock.getsockname()[1]))
    os.rename(tmp, port_file)
    while True:
        client, _ = lsock.accept()
        server = socket.create_connection(("127.0.0.1", upstream))
        src, dst = (client, server) if direction == "c2s" else (server, client)
        threading.Thread(target=pump_records, args=(src, dst, mode, n), daemon=True).start()
        threading.Thread(target=pump_plain, args=(dst, src), daemon=True).start()


def random_client(host, port):
    s = socket.create_connection((host, port))
    try:
        s.sendall(os.urandom(1 << 16))
        s.settimeout(10)
        while s.recv(4096):
            pass
    except OSError:
        pass
    s.close()


if __name__ == "__main__":
    if sys.argv[1] == "random":
        random_client(sys.argv[2], int(sys.argv[3]))
    else:
        serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], *sys.argv[5:6])
