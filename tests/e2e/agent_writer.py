#!/usr/bin/env python3
"""Writes files slowly into a watched folder, as a camera would, for the
agent's tests: N files over about SECONDS seconds, spread over a few
subfolders created on the way, of sizes from 1 KiB to about 1.5 MiB, a
copy of each in REF (same relative path). Some are written in place and
closed at once, some under a hidden temporary name and renamed into place
(moved in), and HELD of them are kept open for writing in pieces for
about two seconds each, while the others are written. Deterministic from
SEED. Prints the number of files written when done."""
import os
import random
import sys
import time


def main():
    watch, ref, n, secs, held, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
        float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    prefix = sys.argv[7] if len(sys.argv) > 7 else "clip"
    rnd = random.Random(seed)
    hold_every = max(1, n // held) if held else 0
    open_files = []  # (file, remaining pieces, ref file)
    for i in range(n):
        sub = ["", "day1", "day1/cam-a", "day2"][i % 4]
        rel = os.path.join(sub, f"{prefix}-{i:04d}.bin")
        size = rnd.choice([1024, 4096, 65536, 300000, 1 << 20]) + rnd.randrange(4096)
        data = rnd.randbytes(size)
        os.makedirs(os.path.join(watch, sub), exist_ok=True)
        os.makedirs(os.path.join(ref, sub), exist_ok=True)
        with open(os.path.join(ref, rel), "wb") as r:
            r.write(data)
        path = os.path.join(watch, rel)
        if hold_every and i % hold_every == 1 and len(open_files) < held:
            f = open(path, "wb")
            pieces = [data[k:k + (size // 8 + 1)] for k in range(0, size, size // 8 + 1)]
            f.write(pieces[0])
            f.flush()
            open_files.append([f, pieces[1:]])
        elif i % 3 == 2:
            tmp = os.path.join(watch, sub, f".{prefix}-{i:04d}.tmp")
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, path)
        else:
            with open(path, "wb") as f:
                f.write(data[: size // 2])
                f.flush()
                f.write(data[size // 2:])
        # the held files: one more piece every so often
        for h in open_files:
            if h[1] and rnd.random() < 0.15:
                h[0].write(h[1].pop(0))
                h[0].flush()
        for h in [h for h in open_files if not h[1]]:
            h[0].close()
            open_files.remove(h)
        time.sleep(secs / n)
    for h in open_files:
        while h[1]:
            time.sleep(0.1)
            h[0].write(h[1].pop(0))
            h[0].flush()
        h[0].close()
    print(n)


if __name__ == "__main__":
    main()
