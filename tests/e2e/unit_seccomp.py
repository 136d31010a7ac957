#!/usr/bin/python3
"""Runs a command under the system-call filter of a systemd unit, as systemd
would: the allow list of its SystemCallFilter= lines (groups expanded with
`systemd-analyze syscall-filter`), every other call failing with the errno
of SystemCallErrorNumber= (EPERM when unset here). Needs python3-seccomp.

usage: unit_seccomp.py UNIT [--drop NAME]... -- COMMAND [ARG]...

--drop removes a call from the allow list after the expansion: a test of the
test (the command must then fail where it needs that call)."""
import errno
import os
import subprocess
import sys

import seccomp

# Allowed by systemd whatever the list says (systemd.exec(5)).
ALWAYS = ["execve", "exit", "exit_group", "getrlimit", "rt_sigreturn", "sigreturn"]


def unit_settings(path, key):
    vals = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith(key + "="):
                vals.append(line[len(key) + 1:])
    return vals


def expand(name, seen):
    """The system calls of a name: itself, or a group's members."""
    if not name.startswith("@"):
        return {name}
    if name in seen:
        return set()
    seen.add(name)
    out = subprocess.run(["systemd-analyze", "--no-pager", "syscall-filter", name],
                         check=True, capture_output=True, text=True).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        word = line.strip()
        if word and not word.startswith("#"):
            calls |= expand(word, seen)
    return calls


def main():
    args = sys.argv[1:]
    unit = args.pop(0)
    drop = set()
    while args and args[0] == "--drop":
        drop.add(args[1])
        args = args[2:]
    if not args or args[0] != "--":
        sys.exit(__doc__)
    cmd = args[1:]
    allowed = set(ALWAYS)
    for val in unit_settings(unit, "SystemCallFilter"):
        if val.startswith("~"):
            sys.exit("deny lists (~) are not handled: %s" % val)
        for name in val.split():
            allowed |= expand(name, set())
    allowed -= drop
    err = unit_settings(unit, "SystemCallErrorNumber")
    code = getattr(errno, err[-1]) if err else errno.EPERM
    f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(code))
    for name in sorted(allowed):
        try:
            f.add_rule(seccomp.ALLOW, name)
        except (RuntimeError, ValueError, OSError):
            pass  # not a call of this architecture, or unknown to libseccomp
    f.load()
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main()
