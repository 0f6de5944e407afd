#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes provider/hot-text.ld: the provider's executed code first, in one place.

Every page fault on the provider's text maps a 64 KB window of it (the kernel's fault-around), and
the code a plan runs is spread over all 5.6 MB of it (gRPC core's and OpenSSL's start-up touch
objects everywhere), so the whole text was resident although only about 3 MB of its input
sections (1.4 MB of its functions) ever run. The linker script lists the input sections that ran
(archive:member(section), GNU ld syntax) in an output section `.text.hot` inserted before
`.text`; the rest stays in `.text` and is never faulted in by a plan.

Inputs:
  --map FILE         the GNU ld map of the linked provider (-Wl,-Map; any layout, with or
                     without an earlier hot-text.ld)
  --binary PATH      the provider binary the profiles were taken of (callgrind's ob= name)
  --callgrind FILE   callgrind outputs (--dump-instr=yes) of provider processes (repeatable)
  --faults FILE      `perf script --show-mmap-events` output of exceptions:page_fault_user of
                     native provider runs (repeatable): instruction fetches that fault in the cold
                     .text add their sections (valgrind's CPU lacks some features, so OpenSSL
                     takes other assembler paths there than natively)
  --keep FILE        an earlier hot-text.ld whose entries are kept (the list only grows)
  --out FILE         the linker script to write
"""
import argparse
import bisect
import re
import subprocess
import sys


def parse_map(path):
    """Input sections of the .text* output sections: (address, size, section, file)."""
    secs = []
    in_text = False
    pending = None
    for line in open(path, errors="replace"):
        if re.match(r"^\.text(\.hot)?\s", line):
            in_text = True
            continue
        if in_text and re.match(r"^\.\S", line):
            in_text = False
            continue
        if not in_text:
            continue
        m = re.match(r"^ (\.\S+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$", line)
        if m:
            secs.append((int(m.group(2), 16), int(m.group(3), 16), m.group(1), m.group(4).strip()))
            pending = None
            continue
        m = re.match(r"^ (\.\S+)\s*$", line)
        if m:
            pending = m.group(1)
            continue
        m = re.match(r"^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$", line)
        if m and pending:
            secs.append((int(m.group(1), 16), int(m.group(2), 16), pending, m.group(3).strip()))
            pending = None
    secs = [s for s in secs if s[1] > 0]
    secs.sort()
    return secs


def callgrind_addresses(path, binary, symbols):
    """Executed instruction addresses (file-relative) of `binary` in one callgrind output.

    valgrind names the part of a binary outside its `.text` section "???" (the cold `.text` once
    an earlier hot-text.ld has split it) and gives its addresses as loaded, not file-relative: the
    load base is found from the functions it names there, by their addresses in the symbol table.
    """
    names = {}
    target = None  # None, "named" or "unnamed"
    pos = 0
    named, unnamed, deltas = [], [], {}
    fn = None
    for line in open(path, errors="replace"):
        c = line[0]
        if c in "0123456789+-*":
            tok = line.split(None, 1)[0]
            if tok.startswith("0x"):
                pos = int(tok, 16)
            elif c == "+":
                pos += int(tok[1:])
            elif c == "-":
                pos -= int(tok[1:])
            if target == "named":
                named.append(pos)
            elif target == "unnamed":
                unnamed.append(pos)
                if fn is not None:
                    if fn in symbols:
                        d = pos - symbols[fn]
                        deltas[d] = deltas.get(d, 0) + 1
                    fn = None
            continue
        # An object's name is given once, at its first mention, which may be a call's cob=.
        m = re.match(r"^(c?)ob=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if m:
            if m.group(3):
                names[m.group(2)] = m.group(3)
            if not m.group(1):
                name = names.get(m.group(2))
                target = "named" if name == binary else ("unnamed" if name == "???" else None)
            continue
        m = re.match(r"^fn=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if m:
            if m.group(2):
                names["fn" + m.group(1)] = m.group(2)
            fn = names.get("fn" + m.group(1))
    if unnamed and deltas:
        base = max(deltas, key=deltas.get)
        named += [x - base for x in unnamed]
    return named


def symbol_table(binary):
    """Demangled function names (callgrind's fn=) to their addresses, unique names only."""
    out = subprocess.run(["nm", "-C", "--defined-only", binary], capture_output=True, text=True).stdout
    syms, dup = {}, set()
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTwW":
            if parts[2] in syms:
                dup.add(parts[2])
            syms[parts[2]] = int(parts[0], 16)
    for d in dup:
        del syms[d]
    return syms


def fault_addresses(path, binary):
    """Instruction-fetch fault addresses (file-relative) of `binary` in perf script output."""
    base = None
    for line in open(path, errors="replace"):
        m = re.search(r"PERF_RECORD_MMAP2? \d+/\d+: \[0x([0-9a-f]+)\(0x[0-9a-f]+\) @ 0x([0-9a-f]+|0) .*\]: \S+ (\S+)", line)
        if m:
            if m.group(3) == binary:
                b = int(m.group(1), 16) - int(m.group(2), 16)
                base = b if base is None else min(base, b)
            continue
        m = re.search(r"address=0x([0-9a-f]+) ip=0x[0-9a-f]+ error_code=0x([0-9a-f]+)", line)
        if m and base is not None and int(m.group(2), 16) & 0x10:
            yield int(m.group(1), 16) - base


def pattern(f):
    """The linker-script file pattern of a map file name."""
    m = re.match(r"^(.*)\((.*)\)$", f)
    if m:
        return "*" + m.group(1).rsplit("/", 1)[-1] + ":" + m.group(2)
    return "*" + f.rsplit("/", 1)[-1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--map", required=True)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--callgrind", action="append", default=[])
    ap.add_argument("--faults", action="append", default=[])
    ap.add_argument("--keep")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    secs = parse_map(a.map)
    starts = [s[0] for s in secs]
    hot = set()

    def add(addr):
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0 and secs[i][0] <= addr < secs[i][0] + secs[i][1]:
            hot.add(i)

    symbols = symbol_table(a.binary) if a.callgrind else {}
    for f in a.callgrind:
        for x in callgrind_addresses(f, a.binary, symbols):
            add(x)
    n_cg = len(hot)
    for f in a.faults:
        for x in fault_addresses(f, a.binary):
            add(x)
    entries = []
    seen = set()
    if a.keep:
        for line in open(a.keep):
            m = re.match(r"^    (\*\S+\(\S+\))$", line)
            if m and m.group(1) not in seen:
                seen.add(m.group(1))
                entries.append(m.group(1))
    n_kept = len(entries)
    for i in sorted(hot):
        e = f"{pattern(secs[i][3])}({secs[i][2]})"
        if e not in seen:
            seen.add(e)
            entries.append(e)
    size = sum(secs[i][1] for i in hot)
    print(f"hot-text: {len(secs)} input sections in .text; executed: {n_cg} (callgrind), "
          f"{len(hot) - n_cg} more (native faults), {size // 1024} KB; {n_kept} kept from --keep, "
          f"{len(entries)} entries written", file=sys.stderr)
    with open(a.out, "w") as out:
        out.write("/* Generated by bench/provider/gen-hot-text.sh (bench/provider/hot-text.py): the input\n"
                  " * sections a 50-read `terraform plan` executes in the provider, placed together before\n"
                  " * .text so that the kernel's 64 KB fault-around maps only them (README, Benchmarks).\n"
                  " * Debian 12's archives; a section that does not exist matches nothing. Do not edit. */\n")
        out.write("SECTIONS\n{\n  .text.hot :\n  {\n")
        for e in entries:
            out.write(f"    {e}\n")
        out.write("  }\n}\nINSERT BEFORE .text;\n")


if __name__ == "__main__":
    main()
