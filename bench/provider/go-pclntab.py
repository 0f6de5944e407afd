#!/usr/bin/env python3
"""Function names for addresses in a stripped Go (1.20 and later) ELF executable, read from its
.gopclntab (which `go build -ldflags=-s` keeps: the runtime needs it). /usr/local/bin/terraform is
such a binary, so perf shows only addresses for it.

As a module: load(path) -> (entries, names), sorted by entry address; name(entries, names, addr).
As a program: go-pclntab.py BINARY ADDR... prints each address with its function."""
import bisect
import struct
import sys


def load(path):
    with open(path, 'rb') as f:
        data = f.read()
    if data[:4] != b'\x7fELF' or data[4] != 2:
        raise ValueError(f'{path}: not a 64-bit ELF file')
    shoff, = struct.unpack_from('<Q', data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from('<HHH', data, 0x3a)

    def section(i):  # name offset, file offset, size
        s = struct.unpack_from('<IIQQQQIIQQ', data, shoff + i * shentsize)
        return s[0], s[4], s[5]

    strtab_off = section(shstrndx)[1]
    tab = None
    for i in range(shnum):
        name_off, off, size = section(i)
        name = data[strtab_off + name_off:data.index(b'\0', strtab_off + name_off)]
        if name == b'.gopclntab':
            tab = data[off:off + size]
    if tab is None:
        raise ValueError(f'{path}: no .gopclntab section')
    # runtime/symtab.go pcHeader (Go 1.20+): magic, pad, pad, minLC, ptrSize, nfunc, nfiles,
    # textStart, funcnameOffset, cuOffset, filetabOffset, pctabOffset, pclnOffset.
    magic, = struct.unpack_from('<I', tab, 0)
    if magic != 0xfffffff1 or tab[7] != 8:
        raise ValueError(f'{path}: pclntab magic {magic:#x}: not Go 1.20+ on a 64-bit target')
    nfunc, _, text_start, funcname_off, _, _, _, pcln_off = struct.unpack_from('<8Q', tab, 8)
    entries, names = [], []
    for i in range(nfunc):  # functab: (entryoff, funcoff) pairs; _func starts entryOff, nameOff
        entry_off, func_off = struct.unpack_from('<II', tab, pcln_off + 8 * i)
        _, name_off = struct.unpack_from('<Ii', tab, pcln_off + func_off)
        a = funcname_off + name_off
        names.append(tab[a:tab.index(b'\0', a)].decode(errors='replace'))
        entries.append(text_start + entry_off)
    return entries, names


def name(entries, names, addr):
    i = bisect.bisect_right(entries, addr) - 1
    return names[i] if i >= 0 else f'{addr:#x}'


if __name__ == '__main__':
    if len(sys.argv) < 3:
        sys.exit('usage: go-pclntab.py BINARY ADDR...')
    e, n = load(sys.argv[1])
    for a in sys.argv[2:]:
        print(a, name(e, n, int(a, 16)))
