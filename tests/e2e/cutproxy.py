#!/usr/bin/env python3
"""A TCP proxy on loopback that breaks connections, for the resume tests.

Each accepted connection is forwarded to 127.0.0.1:UPSTREAM. Once EVERY
bytes have gone from the client to the server on that connection, the
proxy breaks it:

  cut    both sockets are reset (SO_LINGER 0), as when a link drops
  stall  nothing more is forwarded either way, the sockets stay open (a
         connection that makes no progress)

MODE may end in ":s2c" (cut:s2c, stall:s2c) to count the bytes from the
server to the client instead (a pull, where the server sends the data);
":c2s" is the default.

A connection never carries more than EVERY bytes in the counted direction,
so a transfer of S bytes needs at least S / EVERY connections. LIMIT (optional)
is the number of connections to break; later ones are forwarded untouched.
The proxy writes its port to PORT_FILE and, after each connection, one line
"conn N c2s BYTES s2c BYTES broken 0|1" to standard output.

Usage: cutproxy.py MODE EVERY UPSTREAM_PORT PORT_FILE [LIMIT]
"""
import socket
import struct
import sys
import threading

mode, every, upstream, port_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
mode, _, counted = mode.partition(":")
counted = counted or "c2s"
if mode not in ("cut", "stall") or counted not in ("c2s", "s2c"):
    sys.exit(f"cutproxy.py: unknown mode {sys.argv[1]!r}")
limit = int(sys.argv[5]) if len(sys.argv) > 5 else -1
lock = threading.Lock()
count = [0]


def reset(s):
    # SO_LINGER 0 makes the close send RST; shutting the read side first
    # wakes a thread blocked in recv on it (a close alone would wait for it).
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.shutdown(socket.SHUT_RD)
    except OSError:
        pass


def serve(cli, n):
    srv = socket.create_connection(("127.0.0.1", upstream))
    breaks = limit < 0 or n <= limit
    budget = [every if breaks else -1]
    moved = {"c2s": 0, "s2c": 0}
    broken = threading.Event()
    done = threading.Event()

    def pump(src, dst, name):
        try:
            while not broken.is_set():
                data = src.recv(1 << 16)
                if not data:
                    break
                if name == counted and budget[0] >= 0:
                    take = min(len(data), budget[0])
                    dst.sendall(data[:take])
                    moved[name] += take
                    budget[0] -= take
                    if budget[0] == 0:
                        broken.set()
                        break
                    continue
                dst.sendall(data)
                moved[name] += len(data)
        except OSError:
            pass
        if not broken.is_set():
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        done.set()

    t1 = threading.Thread(target=pump, args=(cli, srv, "c2s"), daemon=True)
    t2 = threading.Thread(target=pump, args=(srv, cli, "s2c"), daemon=True)
    t1.start()
    t2.start()
    while not broken.is_set() and (t1.is_alive() or t2.is_alive()):
        broken.wait(0.05)
    if broken.is_set() and mode == "cut":
        reset(cli)
        reset(srv)
    elif broken.is_set():
        # stall: hold both ends open until the peers give up
        t1.join()
        t2.join(timeout=3600)
    t1.join()
    t2.join()
    cli.close()  # with SO_LINGER 0 after a cut: a reset
    srv.close()
    with lock:
        print(f"conn {n} c2s {moved['c2s']} s2c {moved['s2c']} broken {int(broken.is_set())}",
              flush=True)


def main():
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(ls.getsockname()[1]))
    import os
    os.rename(port_file + ".tmp", port_file)
    while True:
        cli, _ = ls.accept()
        with lock:
            count[0] += 1
            n = count[0]
        threading.Thread(target=serve, args=(cli, n), daemon=True).start()


if __name__ == "__main__":
    main()
