#!/usr/bin/env python3
"""Checks that includes point down the layers (docs/ARCHITECTURE.md):
tools -> engine -> pki -> common, and inside engine/ the folders below.
Prints each include that points up or sideways and exits 1 if any does."""
import os
import re
import sys

# What each folder may include, besides itself.
ALLOWED = {
    "common": set(),
    "pki": {"common"},
    "engine/record": {"common", "pki"},
    "engine/io": {"common"},
    "engine/wire": {"common", "pki", "engine/record"},
    "engine/sign": {"common", "pki", "engine/wire", "engine/record"},
    "engine/channel": {"common", "pki", "engine/wire", "engine/record"},
    "engine/ledger": {"common", "pki"},
    "engine/enroll": {"common", "pki", "engine/wire", "engine/record", "engine/channel"},
    "engine/chat": {"common", "pki", "engine/wire", "engine/record", "engine/io",
                    "engine/sign", "engine/channel"},
    "engine/transfer": {"common", "pki", "engine/wire", "engine/record", "engine/io",
                        "engine/sign", "engine/channel", "engine/ledger", "engine/chat"},
    "engine/agent": {"common", "pki", "engine/wire", "engine/record", "engine/io",
                     "engine/sign", "engine/channel", "engine/ledger", "engine/transfer"},
    "tools": {"common", "pki", "engine/wire", "engine/record", "engine/io", "engine/sign",
              "engine/channel", "engine/transfer", "engine/ledger", "engine/enroll",
              "engine/agent", "engine/chat"},
}
INC = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer(path):
    parts = path.split("/")
    if parts[0] == "engine" and len(parts) > 2:
        return "engine/" + parts[1]
    return parts[0]


def main():
    bad = 0
    for top in ("common", "pki", "engine", "tools"):
        for root, _, files in os.walk(top):
            for f in sorted(files):
                if not f.endswith((".c", ".h", ".in")):
                    continue
                path = os.path.join(root, f)
                me = layer(path)
                if me not in ALLOWED:
                    print(f"{path}: not in a known layer")
                    bad += 1
                    continue
                with open(path, encoding="utf-8", errors="replace") as fh:
                    for n, line in enumerate(fh, 1):
                        m = INC.match(line)
                        if not m or "/" not in m.group(1):
                            continue
                        to = layer(m.group(1))
                        if to != me and to not in ALLOWED[me]:
                            print(f"{path}:{n}: {me} includes {m.group(1)} ({to})")
                            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
