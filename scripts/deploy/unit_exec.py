#!/usr/bin/env python3
"""Prints a command line of a systemd unit as systemd would run it, one
argument per line (NUL-separated with -0).

  unit_exec.py UNIT KEY [VAR=VALUE ...]     KEY: ExecStart, ExecStartPre, ...

Continuation lines are joined; words are split with systemd's quoting rules as
far as the shipped units use them ('...', "...", backslash); ${VAR} and a word
that is exactly $VAR become VALUE; $$ becomes $ (what the process sees).
The last KEY= line wins, and an empty KEY= resets, as in a drop-in.
"""
import re
import shlex
import sys


def command_line(unit, key):
    value = None
    lines = open(unit).read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(key + "="):
            v = line[len(key) + 1:]
            while v.endswith("\\") and i + 1 < len(lines):
                i += 1
                v = v[:-1] + " " + lines[i]
            value = v if v.strip() else None
        i += 1
    if value is None:
        sys.exit(f"{unit}: no {key}=")
    return value


def main():
    args = sys.argv[1:]
    nul = False
    if args and args[0] == "-0":
        nul, args = True, args[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    unit, key, env = args[0], args[1], dict(a.split("=", 1) for a in args[2:])
    words = shlex.split(command_line(unit, key).replace("$$", "\0"))
    out = []
    for w in words:
        if re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*", w):
            w = env.get(w[1:], "")
        w = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), w)
        out.append(w.replace("\0", "$"))
    if out and out[0][:1] in "-@:+!":
        out[0] = out[0].lstrip("-@:+!")
    sys.stdout.write(("\0" if nul else "\n").join(out) + ("\0" if nul else "\n"))


main()
