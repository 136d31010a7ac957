#!/usr/bin/env python3
"""Checks every sx_log call: each string value goes through SX_LOGQ,
SX_LOGQN or SX_LOGT (common/sx_esc.h), which quote and escape it, so that
no file name or text from a peer is written raw into a log line.

Usage: log_values.py SOURCE_DIR...; prints each offending call and exits 1.
"""
import os
import re
import sys

SAFE = ("SX_LOGQ(", "SX_LOGQN(", "SX_LOGT(")
CONV = re.compile(r"%([-+ #0]*)(\*|\d+)?(?:\.(\*|\d+))?(hh|h|ll|l|j|z|t|L)?([a-zA-Z%])")


def call_text(src, start):
    """Text between the parentheses of the call whose '(' is at start."""
    depth, i, n = 0, start, len(src)
    while i < n:
        c = src[i]
        if c in "\"'":
            j = i + 1
            while src[j] != c:
                j += 2 if src[j] == "\\" else 1
            i = j
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return src[start + 1:i]
        i += 1
    raise ValueError("unbalanced call")


def split_args(text):
    args, depth, cur, i = [], 0, "", 0
    while i < len(text):
        c = text[i]
        if c in "\"'":
            j = i + 1
            while text[j] != c:
                j += 2 if text[j] == "\\" else 1
            cur += text[i:j + 1]
            i = j + 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            args.append(cur.strip())
            cur = ""
        else:
            cur += c
        i += 1
    args.append(cur.strip())
    return args


def literal(arg):
    """The text of a string literal (adjacent literals joined), or None."""
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', arg)
    rest = re.sub(r'"((?:[^"\\]|\\.)*)"', "", arg).strip()
    return "".join(parts) if parts and not rest else None


def check_call(args):
    """Problems of one call (its arguments), as sentences."""
    if len(args) < 3:
        return ["fewer than three arguments"]
    fmt = literal(args[2])
    if fmt is None:
        return ["the format is not a string literal"]
    values, problems = args[3:], []
    for m in CONV.finditer(fmt):
        flags, width, prec, _, conv = m.groups()
        if conv == "%":
            continue
        for star in (width, prec):
            if star == "*":
                values.pop(0) if values else None
        value = values.pop(0) if values else ""
        if conv != "s":
            continue
        if prec is not None:
            problems.append("%.*s: use %s with SX_LOGQN(p, n)")
        elif not value.startswith(SAFE):
            problems.append("%s value not through SX_LOGQ/SX_LOGQN/SX_LOGT: " + value)
        if fmt[m.start() - 1:m.start()] != "=":
            problems.append("%s not right after key=: SX_LOGQ writes the whole value")
    return problems


def main(dirs):
    bad = 0
    for top in dirs:
        for root, _, files in os.walk(top):
            for name in sorted(files):
                if not name.endswith((".c", ".h")):
                    continue
                path = os.path.join(root, name)
                src = open(path, encoding="utf-8").read()
                for m in re.finditer(r"\bsx_log\s*\(", src):
                    line_start = src.rfind("\n", 0, m.start()) + 1
                    head = src[line_start:m.start()]
                    if re.search(r"\b(void|define)\b", head) or head.lstrip().startswith(("*", "/")):
                        continue  # the declaration, the definition, comments
                    args = split_args(call_text(src, m.end() - 1))
                    for p in check_call(args):
                        line = src.count("\n", 0, m.start()) + 1
                        print(f"{path}:{line}: sx_log: {p}")
                        bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
