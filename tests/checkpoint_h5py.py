"""Independent reader for tests/checkpoint.rs: check a Rankwise checkpoint with h5py and numpy.

usage: checkpoint_h5py.py FILE.h5 STEP RANKS
Recomputes every field's values and its checksum (the definition in io/src/checksum.rs) in numpy.
"""
import sys
import xml.etree.ElementTree as ET

import h5py
import numpy as np

FIELDS = {"a1": ((37,), "f8", 0), "b2": ((13, 11), "f4", 1), "c3": ((7, 5, 6), "f8", 2),
          "d3": ((4, 3, 5), "f4", 3), "tiny": ((2,), "f8", 4)}
M = np.uint64(0xFFFFFFFFFFFFFFFF)


def fmix64(h):
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def checksum(a):
    bits = a.reshape(-1)
    if a.dtype.kind == "f":
        bits = bits.view(np.uint32 if a.dtype == np.float32 else np.uint64)
    bits = bits.astype(np.uint64)
    k = np.arange(bits.size, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        return int(np.sum(fmix64(bits + k), dtype=np.uint64))


path, step, ranks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with h5py.File(path, "r") as f:
    a = f.attrs
    assert a["format"] == "rankwise-checkpoint" and a["format_version"] == 2, dict(a)
    # The check value beside the version (io/src/meta.rs), so that damage is not taken for a newer format.
    with np.errstate(over="ignore"):
        assert int(a["version_check"]) == int(fmix64(np.uint64(2) ^ np.uint64(0x72616E6B77697365))), dict(a)
    assert a["step"] == step and a["time"] == step * 0.1 and a["ranks"] == ranks, dict(a)
    p = f["parameters"].attrs
    assert (p["alpha"], p["n"], p["name"], bool(p["implicit"])) == (0.25, 64, "heat", True), dict(p)
    for name, (shape, dtype, salt) in FIELDS.items():
        d = f[name]
        assert d.shape == shape and d.dtype == np.dtype(dtype), (name, d.shape, d.dtype)
        k = np.arange(np.prod(shape), dtype=np.float64)
        want = (k * 0.5 + 1.0 / (k + 1.0) + 1000.0 * salt).astype(dtype).reshape(shape)
        got = d[...]
        assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), (name, got, want)
        assert int(d.attrs["checksum"]) == checksum(got), (name, hex(int(d.attrs["checksum"])), hex(checksum(got)))
        # The decomposition it was written with: each rank's (start, shape), covering the array.
        t = f["rankwise"][name]
        b = t[...].reshape(ranks, 2, len(shape))
        assert sum(int(np.prod(s)) for s in b[:, 1]) == np.prod(shape), (name, b)
        assert int(t.attrs["checksum"]) == checksum(t[...]), (name, "block table checksum")
        print(f"{name} ok {d.compression}")
# The XDMF beside it names every field with its shape.
x = ET.parse(path[:-3] + ".xmf")
items = {i.text.split(":/")[1]: i.get("Dimensions") for i in x.iter("DataItem") if i.get("Format") == "HDF"}
assert items == {n: " ".join(map(str, s if len(s) > 1 else (1,) + s)) for n, (s, _, _) in FIELDS.items()}, items
print("h5py ok")
