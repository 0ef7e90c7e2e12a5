"""List (and optionally blank) the CUDA cubins/PTX inside a shared object's fat binaries.

usage: python fatbin.py FILE.so            # arch -> bytes table
       python fatbin.py FILE.so --keep 90  # zero every ELF/PTX payload whose arch is not sm_90
The file keeps its size and layout; only payload bytes of the dropped entries become zeros, so
it compresses to almost nothing. The CUDA runtime picks the entry matching the GPU by its header
(left intact), so an sm_90 GPU never reads the blanked ones.
"""

import mmap
import struct
import sys
from collections import Counter

MAGIC = struct.pack("<I", 0xBA55ED50)


def entries(buf):
    pos = 0
    while True:
        pos = buf.find(MAGIC, pos)
        if pos < 0:
            return
        _magic, _ver, hsize, size = struct.unpack_from("<IHHQ", buf, pos)
        if hsize != 16 or size == 0 or pos + 16 + size > len(buf):
            pos += 4
            continue
        p, end = pos + 16, pos + 16 + size
        while p < end:
            kind, _u, ehs, psize = struct.unpack_from("<HHIQ", buf, p)
            if kind not in (1, 2) or ehs < 64 or ehs > 4096:
                break
            arch = struct.unpack_from("<I", buf, p + 28)[0]
            flags = struct.unpack_from("<Q", buf, p + 40)[0]
            yield kind, arch, p + ehs, psize, flags
            p += ehs + psize
        pos = end


def main():
    path = sys.argv[1]
    keep = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--keep" else None
    with open(path, "r+b" if keep else "rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_WRITE if keep else mmap.ACCESS_READ)
        sizes, blanked = Counter(), 0
        for kind, arch, off, size, _flags in list(entries(buf)):
            sizes[("ptx" if kind == 1 else "elf", arch)] += size
            if keep is not None and arch != keep:
                buf[off : off + size] = b"\0" * size
                blanked += size
        if keep is not None:
            buf.flush()
        for (k, a), s in sorted(sizes.items(), key=lambda kv: -kv[1]):
            print(f"{path.split('/')[-1]:32s} {k} sm_{a:<4d} {s / 2**20:8.1f} MiB")
        if keep is not None:
            print(f"blanked {blanked / 2**20:.1f} MiB (kept sm_{keep})")


if __name__ == "__main__":
    main()
