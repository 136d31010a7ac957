#!/usr/bin/env python3
"""Hostile connections against a server on loopback, for the end-to-end tests.

Each connection comes from one of --sources addresses 127.0.0.2, 127.0.0.3,
... (from 127.0.0.FIRST with --first; all of 127/8 is loopback on Linux) and
does one of:

  garbage    random bytes, then close
  drip       a real TLS ClientHello, one byte every --interval seconds, until
             the server closes the connection
  silent     a whole ClientHello, then nothing until the server closes
  auth-huge  a complete, authenticated TLS handshake (--cert/--key/--ca),
             then an sxfer record header announcing a 4 GiB body
  auth-idle  a complete, authenticated TLS handshake, then nothing

MIX is MODE=COUNT[,MODE=COUNT...]. At most --concurrency connections are
open at once. With --hold SECONDS every worker opens a new connection of its
mode as soon as the server closes the previous one, until the time is up.

Prints one JSON object: per mode, how many connections were made and how
long the server took, at most, to close one (seconds from connect).

Usage: swarm.py HOST PORT MIX [options]
"""
import argparse
import json
import os
import random
import resource
import socket
import ssl
import sys
import threading
import time


def client_hello():
    """The first flight of a TLS 1.3 client, as bytes."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(["sxfer/1"])
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def wait_closed(s, limit):
    """Reads until the peer closes; returns False at the time limit."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        s.settimeout(max(0.05, end - time.monotonic()))
        try:
            if not s.recv(65536):
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def tls_handshake(s, ctx):
    """A TLS handshake over s through memory BIOs; the bytes after it stay
    ours (sxfer records follow the handshake on the same socket)."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    while True:
        try:
            obj.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        data = out.read()
        if data:
            s.sendall(data)
        if done:
            return
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        inc.write(chunk)


class Swarm:
    def __init__(self, args):
        self.args = args
        self.hello = client_hello()
        self.lock = threading.Lock()
        self.stats = {}
        self.sem = threading.Semaphore(args.concurrency)
        self.tls = None
        if args.cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.load_verify_locations(args.ca)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
            ctx.set_alpn_protocols(["sxfer/1"])
            ctx.load_cert_chain(args.cert, args.key, password=os.environ.get("SXFER_PASSPHRASE"))
            self.tls = ctx

    def note(self, mode, secs, closed):
        with self.lock:
            st = self.stats.setdefault(mode, {"conns": 0, "max_close_s": 0.0, "not_closed": 0})
            st["conns"] += 1
            st["max_close_s"] = round(max(st["max_close_s"], secs), 3)
            if not closed:
                st["not_closed"] += 1

    def one(self, mode, n):
        a = self.args
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.bind(("127.0.0.%d" % (a.first + n % a.sources), 0))
        t0 = time.monotonic()
        closed = True
        try:
            s.connect((a.host, a.port))
            if mode == "garbage":
                s.sendall(os.urandom(random.randint(1, 4096)))
            elif mode == "drip":
                closed = False
                for b in self.hello:
                    s.sendall(bytes([b]))
                    s.settimeout(a.interval)
                    try:
                        if not s.recv(65536):
                            closed = True
                            break
                    except socket.timeout:
                        pass
                    if time.monotonic() - t0 > a.limit:
                        break
                if not closed:
                    closed = wait_closed(s, a.limit - (time.monotonic() - t0))
            elif mode == "silent":
                s.sendall(self.hello)
                closed = wait_closed(s, a.limit)
            elif mode in ("auth-huge", "auth-idle"):
                tls_handshake(s, self.tls)
                if mode == "auth-huge":
                    s.sendall(bytes([1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]))
                closed = wait_closed(s, a.limit)
        except (ConnectionResetError, BrokenPipeError):
            closed = True  # refused at once, or cut mid-send
        except (OSError, ssl.SSLError, ConnectionError):
            pass
        finally:
            s.close()
        self.note(mode, time.monotonic() - t0, closed)

    def worker(self, mode, n):
        end = time.monotonic() + self.args.hold
        with self.sem:
            while True:
                self.one(mode, n)
                if time.monotonic() >= end:
                    break


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("mix")
    p.add_argument("--sources", type=int, default=8)
    p.add_argument("--first", type=int, default=2, help="the first source is 127.0.0.FIRST")
    p.add_argument("--concurrency", type=int, default=200)
    p.add_argument("--interval", type=float, default=0.5)
    p.add_argument("--limit", type=float, default=30.0, help="give up waiting after this long")
    p.add_argument("--hold", type=float, default=0.0)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--ca")
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sw = Swarm(a)
    jobs = []
    n = 0
    for part in a.mix.split(","):
        mode, count = part.split("=")
        for _ in range(int(count)):
            jobs.append((mode, n))
            n += 1
    random.shuffle(jobs)
    threads = [threading.Thread(target=sw.worker, args=j, daemon=True) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    json.dump(sw.stats, sys.stdout, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
