"""Independent reader for tests/heat.rs: open heat's final state the way ParaView does.

usage: heat_xdmf.py FILE.xmf
Parses the XDMF, opens the HDF5 dataset each attribute names with h5py, checks its shape against
the XDMF dimensions and prints `NAME shape=AxB checksum=...`: the checksum heat prints (the
definition in io/src/checksum.rs: fmix64 of each value's bits plus its global index times phi,
summed mod 2^64), recomputed here from the values alone.
"""
import os
import sys
import xml.etree.ElementTree as ET

import h5py
import numpy as np


def fmix64(h):
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def checksum(a):
    bits = a.reshape(-1).view(np.uint64)
    k = np.arange(bits.size, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        return int(np.sum(fmix64(bits + k), dtype=np.uint64))


xmf = sys.argv[1]
for attr in ET.parse(xmf).getroot().iter("Attribute"):
    item = attr.find("DataItem")
    assert item.get("Format") == "HDF" and item.get("NumberType") == "Float", item.attrib
    dims = tuple(int(d) for d in item.get("Dimensions").split())
    file, path = item.text.strip().split(":", 1)
    with h5py.File(os.path.join(os.path.dirname(xmf), file), "r") as f:
        data = f[path][...]
    assert data.shape == dims, (data.shape, dims)
    assert data.dtype == np.float64 and item.get("Precision") == "8", (data.dtype, item.attrib)
    h = checksum(data)
    print(f"{attr.get('Name')} shape={'x'.join(map(str, dims))} checksum={h:016x}")
