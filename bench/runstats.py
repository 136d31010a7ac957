#!/usr/bin/env python3
"""Summaries of the benchmark scripts, from their file of every single run.

bench/compare.sh and bench/cpu.sh write one CSV row per run (tool or
variant, input, run number, position in that run's order, wall seconds, user
and system CPU seconds of each side) and call this to print min and median
per row; the same file is what --csv keeps, so a summary can be recomputed
later from it:

  runstats.py compare RUNS.csv [--ref TOOL] [--prims FILE] [--store FILE]
  runstats.py cpu RUNS.csv
  runstats.py twice RUNS-1.csv RUNS-2.csv       (two compare.sh invocations)
  runstats.py json RUNS.csv META.tsv OUT.json   (meta: KEY<TAB>VALUE lines)

min: the fastest run (the least disturbed by the rest of the machine);
median: the middle run (the mean of the two middle ones for an even count).
"""
import argparse
import csv
import json
import statistics
import sys

GIB_MIB = 1024.0


def label(tool):
    names = {
        "sxfer": "sxfer",
        "sxfer-nosign": "sxfer --no-sign",
        "scp": "scp (sftp, aes256-gcm)",
        "https": "nginx HTTPS + curl",
        "rsync": "rsync over ssh",
        "tar": "tar over ssh",
    }
    if tool.startswith("sxfer-compress-"):
        return "sxfer --compress " + tool[len("sxfer-compress-"):]
    return names.get(tool, tool)


def read_runs(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def ordered(rows, key):
    """The distinct values of KEY in the order they first appear."""
    seen = []
    for r in rows:
        if r[key] not in seen:
            seen.append(r[key])
    return seen


def mm(values):
    """(min, median) of a list of floats, or (None, None)."""
    if not values:
        return None, None
    return min(values), statistics.median(values)


def fmt(x, spec=".3f"):
    return "-" if x is None else format(x, spec)


def pair(a, b, spec=".2f"):
    return f"{fmt(a, spec)}/{fmt(b, spec)}"


def ratio(peer, ref):
    if peer is None or ref is None or ref <= 0:
        return None
    return peer / ref


# --- compare.sh -------------------------------------------------------------


class Cell:
    """The runs of one tool on one input."""

    def __init__(self, rows):
        ok = [r for r in rows if r["status"] == "ok"]
        self.n = len(rows)
        self.ok = len(ok)
        self.mib = float(rows[0]["mib"])
        self.files = int(rows[0]["files"])
        self.server_side = rows[0]["server_side"]
        self.walls = [float(r["wall_s"]) for r in ok]
        self.wall = mm(self.walls)
        # sender and receiver: the server is one of them, the client the other
        srv = "send" if self.server_side == "sender" else "recv"
        cli = "recv" if srv == "send" else "send"
        self.cpu = {}
        for side, who in ((srv, "server"), (cli, "client")):
            for kind in ("user", "sys"):
                v = [float(r[f"{who}_{kind}_s"]) for r in ok]
                self.cpu[f"{side}_{kind}"] = mm(v)
        self.order = [(int(r["run"]), r["wall_s"] if r["status"] == "ok" else r["status"])
                      for r in rows]


def cells_of(rows):
    cells = {}
    for tool in ordered(rows, "tool"):
        for inp in ordered(rows, "input"):
            sel = [r for r in rows if r["tool"] == tool and r["input"] == inp]
            if sel:
                cells[(tool, inp)] = Cell(sel)
    return cells


def input_title(inp, c, runs):
    if inp == "tree":
        what = f"{c.files} random files of {c.mib * 1024 / c.files:g} KiB ({c.mib:g} MiB)"
    elif inp == "log":
        what = f"a compressible log of {c.mib:g} MiB"
    else:
        what = f"one random file of {c.mib:g} MiB"
    return f"{inp}: {what}; {runs} run{'s' if runs != 1 else ''} per tool"


def print_compare(rows, ref):
    cells = cells_of(rows)
    tools = ordered(rows, "tool")
    if ref not in tools:
        ref = tools[0]
    runs = max(int(r["run"]) for r in rows)
    for inp in ordered(rows, "input"):
        first = next(c for (t, i), c in cells.items() if i == inp)
        many = first.files > 1
        unit = "files/s" if many else "MiB/s"
        print()
        print(input_title(inp, first, runs))
        print(f"  {'tool':<26} {'min s':>7} {'median s':>8} {unit + ' @min':>13} "
              f"{unit + ' @med':>13} {'sxfer x @min':>12} {'sxfer x @med':>12}")
        rc = cells.get((ref, inp))
        for tool in tools:
            c = cells.get((tool, inp))
            if c is None:
                continue
            name = label(tool)
            if not c.ok:
                print(f"  {name:<26} {'failed':>7}")
                continue
            amount = c.files if many else c.mib
            rates = [amount / t if t > 0 else None for t in c.wall]
            xs = ["-", "-"]
            if rc is not None and rc.ok and tool != ref:
                xs = [fmt(ratio(c.wall[i], rc.wall[i]), ".2f") for i in (0, 1)]
            note = "" if c.ok == c.n else f"  ({c.n - c.ok} of {c.n} runs failed)"
            print(f"  {name:<26} {c.wall[0]:7.3f} {c.wall[1]:8.3f} {fmt(rates[0], '.1f'):>13} "
                  f"{fmt(rates[1], '.1f'):>13} {xs[0]:>12} {xs[1]:>12}{note}")
        print("  CPU seconds per GiB moved, min/median:")
        print(f"  {'tool':<26} {'server is':>9} {'send user':>11} {'send sys':>11} "
              f"{'recv user':>11} {'recv sys':>11}")
        for tool in tools:
            c = cells.get((tool, inp))
            if c is None or not c.ok:
                continue
            per = GIB_MIB / c.mib
            cols = []
            for k in ("send_user", "send_sys", "recv_user", "recv_sys"):
                lo, med = c.cpu[k]
                cols.append(pair(lo * per, med * per))
            print(f"  {label(tool):<26} {c.server_side:>9} " +
                  " ".join(f"{x:>11}" for x in cols))
        print("  every run, wall s (in run order):")
        for tool in tools:
            c = cells.get((tool, inp))
            if c is not None:
                print(f"  {label(tool):<26} " + " ".join(str(v) for _, v in sorted(c.order)))
    print()
    print(f"sxfer x: the peer's wall time / {label(ref)}'s, from the minima and from the "
          "medians (above 1: sxfer is faster).")
    print("CPU: user and system seconds of each side separately. The client side is "
          "getrusage of the client command")
    print("and its children (/usr/bin/time); the server side is the difference in "
          "/proc/PID/stat utime + cutime and")
    print("stime + cstime of the server and its live children. Resolution: 10 ms per run.")


def read_prims(path):
    prims = {}
    if path:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    prims[parts[0]] = float(parts[1])
    return prims


def print_prims(prims):
    if not prims:
        return
    print()
    print("Primitives on this CPU, one core, 1 MiB buffers (sxfer_micro, this invocation):")
    print(f"  {'primitive':<32} {'s/GiB':>10}")
    for k, v in prims.items():
        print(f"  {k:<32} {v:10.3f}")


def print_floor(rows, prims, store_path):
    """The receiver's floor (AES-256-GCM open + SHA-256 when signing + two
    memcpy, one core) beside what sxfer's receiver used per GiB of big."""
    need = ("BM_open/aes256gcm/1048576", "BM_prim_sha256", "BM_prim_memcpy")
    if not all(k in prims for k in need):
        return
    opn, sha, mem = (prims[k] for k in need)
    store = None
    if store_path:
        with open(store_path) as f:
            v = [float(x) for x in f.read().split()]
        store = statistics.median(v) if v else None
    print()
    print("Receiver CPU (user + system) per GiB of the big file against its floor, median:")
    print(f"  {'floor --no-sign (open + 2 memcpy)':<44} {opn + 2 * mem:8.3f}")
    print(f"  {'floor signed (open + SHA-256 + 2 memcpy)':<44} {opn + sha + 2 * mem:8.3f}")
    print(f"  {'storing into warmed pages (dd, no transfer)':<44} {fmt(store):>8}")
    for tool in ("sxfer", "sxfer-nosign"):
        ok = [r for r in rows if r["tool"] == tool and r["input"] == "big" and r["status"] == "ok"]
        if not ok:
            continue
        who = "server" if ok[0]["server_side"] == "receiver" else "client"
        per = GIB_MIB / float(ok[0]["mib"])
        r = statistics.median(
            (float(x[f"{who}_user_s"]) + float(x[f"{who}_sys_s"])) * per for x in ok)
        fl = opn + 2 * mem + (sha if tool == "sxfer" else 0)
        print(f"  {label(tool) + ' receiver':<44} {r:8.3f}  = {r / fl:.2f} x floor; "
              f"{r / (fl + (store or 0)):.2f} x (floor + storing)")


# --- two invocations ----------------------------------------------------------


def print_twice(rows1, rows2, ref):
    c1, c2 = cells_of(rows1), cells_of(rows2)
    tools = ordered(rows1 + rows2, "tool")
    if ref not in tools:
        ref = tools[0]
    print()
    print("Two invocations side by side: wall min and median (s), sxfer x from the minima "
          "and from the medians,")
    print("and how much the second invocation's sxfer x differs from the first's "
          "(* where more than 10 %).")
    print(f"  {'tool':<22} {'input':<5} {'#1 min':>7} {'#1 med':>7} {'#2 min':>7} {'#2 med':>7} "
          f"{'x@min #1':>8} {'#2':>5} {'diff':>6}  {'x@med #1':>8} {'#2':>5} {'diff':>6}")
    worst = 0.0
    for inp in ordered(rows1 + rows2, "input"):
        for tool in tools:
            a, b = c1.get((tool, inp)), c2.get((tool, inp))
            if a is None or b is None or not a.ok or not b.ok:
                continue
            cols = [f"  {label(tool)[:22]:<22} {inp:<5}",
                    f"{a.wall[0]:7.3f} {a.wall[1]:7.3f} {b.wall[0]:7.3f} {b.wall[1]:7.3f}"]
            ra, rb = c1.get((ref, inp)), c2.get((ref, inp))
            for i in (0, 1):
                if tool == ref or ra is None or rb is None or not ra.ok or not rb.ok:
                    cols.append(f"{'-':>8} {'-':>5} {'':>7}" if i == 0 else f" {'-':>8} {'-':>5}")
                    continue
                xa = ratio(a.wall[i], ra.wall[i])
                xb = ratio(b.wall[i], rb.wall[i])
                d = (xb / xa - 1) * 100 if xa and xb else None
                if d is not None:
                    worst = max(worst, abs(d))
                mark = "*" if d is not None and abs(d) > 10 else " "
                s = f"{fmt(xa, '.2f'):>8} {fmt(xb, '.2f'):>5} {fmt(d, '+.0f') + '%':>6}{mark}"
                cols.append(s if i == 0 else " " + s)
            print(" ".join(cols))
    print()
    print(f"largest difference of sxfer x between the two invocations: {worst:.0f} %")


# --- cpu.sh ---------------------------------------------------------------------


def print_cpu(rows):
    variants = ordered(rows, "variant")
    runs = max(int(r["run"]) for r in rows)
    print()
    print(f"min/median per variant over {runs} run{'s' if runs != 1 else ''}: wall s (the client "
          "command), then CPU seconds, user and system of each side")
    print(f"  {'variant':<34} {'wall min':>8} {'wall med':>8} {'/1st min':>8} {'/1st med':>8} "
          f"{'recv user':>11} {'recv sys':>11} {'send user':>11} {'send sys':>11}")
    ref = None
    for v in variants:
        ok = [r for r in rows if r["variant"] == v and r["status"] == "ok"]
        if not ok:
            print(f"  {v:<34} {'failed':>8}")
            continue
        wall = mm([float(r["wall_s"]) for r in ok])
        if ref is None:
            ref = wall
        cols = [pair(*mm([float(r[k]) for r in ok]))
                for k in ("recv_user_s", "recv_sys_s", "send_user_s", "send_sys_s")]
        xs = [fmt(ratio(wall[i], ref[i]), ".2f") for i in (0, 1)]
        print(f"  {v:<34} {wall[0]:8.3f} {wall[1]:8.3f} {xs[0]:>8} {xs[1]:>8} " +
              " ".join(f"{c:>11}" for c in cols))
    print("/1st: this variant's wall time / the first variant's, from the minima and from the "
          "medians (below 1: faster).")


# --- json -----------------------------------------------------------------------------


def to_json(runs_path, meta_path, out_path):
    meta = {}
    with open(meta_path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            meta[k] = v
    runs = []
    for r in read_runs(runs_path):
        d = {}
        for k, v in r.items():
            try:
                d[k] = int(v) if k in ("run", "position", "files", "recv_max_kib", "send_max_kib") else float(v)
            except ValueError:
                d[k] = v if v != "" else None
        runs.append(d)
    with open(out_path, "w") as f:
        json.dump({"meta": meta, "runs": runs}, f, indent=1)
        f.write("\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare")
    c.add_argument("runs")
    c.add_argument("--ref", default="sxfer")
    c.add_argument("--prims")
    c.add_argument("--store")
    t = sub.add_parser("twice")
    t.add_argument("runs1")
    t.add_argument("runs2")
    t.add_argument("--ref", default="sxfer")
    u = sub.add_parser("cpu")
    u.add_argument("runs")
    j = sub.add_parser("json")
    j.add_argument("runs")
    j.add_argument("meta")
    j.add_argument("out")
    a = p.parse_args()
    if a.cmd == "compare":
        rows = read_runs(a.runs)
        if not rows:
            print("no runs", file=sys.stderr)
            return 1
        print_compare(rows, a.ref)
        prims = read_prims(a.prims)
        print_prims(prims)
        print_floor(rows, prims, a.store)
    elif a.cmd == "twice":
        print_twice(read_runs(a.runs1), read_runs(a.runs2), a.ref)
    elif a.cmd == "cpu":
        rows = read_runs(a.runs)
        if not rows:
            print("no runs", file=sys.stderr)
            return 1
        print_cpu(rows)
    else:
        to_json(a.runs, a.meta, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
