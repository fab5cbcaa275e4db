"""A checkpoint's metadata checksum recomputed in Python (the definition in io/src/meta.rs and
io/src/checksum.rs), for the independent-reader tests.

usage: ckpt_meta.py digest FILE              print the stored and the recomputed meta_checksum
       ckpt_meta.py blocks FILE FIELD ROWS   give FIELD a block table of ROWS synthetic rows, with
                                             its checksum and the file's meta_checksum made anew
"""
import struct
import sys

import h5py
import numpy as np

MASK = (1 << 64) - 1
PHI = 0x9E3779B97F4A7C15


def fmix(h):
    h ^= h >> 33
    h = h * 0xFF51AFD7ED558CCD & MASK
    h ^= h >> 33
    h = h * 0xC4CEB9FE1A85EC53 & MASK
    return h ^ (h >> 33)


class Digest:
    def __init__(self):
        self.h, self.n = PHI, 0

    def word(self, w):
        self.n += 1
        self.h = fmix(self.h ^ fmix((w + self.n * PHI) & MASK))
        return self

    def str(self, s):
        b = s.encode()
        self.word(len(b))
        for i in range(0, len(b), 8):
            self.word(int.from_bytes(b[i:i + 8].ljust(8, b"\0"), "little"))
        return self

    def finish(self):
        return fmix(self.h ^ self.n)


def bits(x):
    return struct.unpack("<Q", struct.pack("<d", float(x)))[0]


def table_sum(t):
    """The position-keyed checksum of a u64 table (checksum::bits_sum from 0)."""
    s = 0
    for k, w in enumerate(np.asarray(t, dtype=np.uint64).reshape(-1).tolist()):
        s = (s + fmix((w + k * PHI) & MASK)) & MASK
    return s


def digest(f):
    a = f.attrs
    d = Digest().str("rankwise-checkpoint").word(int(a["format_version"])).str(a["rankwise_version"]).str(a["checksum_algorithm"])
    d.word(int(a["step"])).word(bits(a["time"])).word(int(a["ranks"]))
    p = f["parameters"].attrs
    d.word(len(p))
    for k in sorted(p):
        v = p[k]
        if isinstance(v, (bool, np.bool_)):
            d.str(k).word(2).word(int(v))
        elif isinstance(v, (int, np.integer)):
            d.str(k).word(0).word(int(v) & MASK)
        elif isinstance(v, (float, np.floating)):
            d.str(k).word(1).word(bits(v))
        else:
            d.str(k).word(3).str(v.decode() if isinstance(v, bytes) else v)
    names = sorted(n for n in f if n not in ("parameters", "rankwise"))
    d.word(len(names))
    for n in names:
        ds, t = f[n], f["rankwise"][n]
        d.str(n).str(ds.attrs["dtype"]).word(len(ds.shape))
        for x in ds.shape:
            d.word(x)
        d.word(int(ds.attrs["checksum"])).word(t.shape[0]).word(int(t.attrs["checksum"]))
    return d.finish()


if __name__ == "__main__":
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "digest":
        with h5py.File(path, "r") as f:
            print(int(f.attrs["meta_checksum"]), digest(f))
    elif cmd == "blocks":
        field, rows = sys.argv[3], int(sys.argv[4])
        with h5py.File(path, "r+") as f:
            width = 2 * len(f[field].shape)
            table = (np.arange(rows * width, dtype=np.uint64) % np.uint64(97)).reshape(rows, width)
            del f["rankwise"][field]
            t = f["rankwise"].create_dataset(field, data=table)
            t.attrs["checksum"] = np.uint64(table_sum(table))
            f.attrs["meta_checksum"] = np.uint64(digest(f))
        print("ok")
