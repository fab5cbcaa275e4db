"""Independent reader for tests/heat.rs: open heat's final state the way ParaView does.

usage: heat_xdmf.py FILE.xmf
Parses the XDMF, opens the HDF5 dataset each attribute names with h5py, checks its shape against
the XDMF dimensions and prints `NAME shape=AxB checksum=...` (heat's FNV-1a over the bits, C order).
"""
import os
import sys
import xml.etree.ElementTree as ET

import h5py
import numpy as np

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
    h = 0xCBF29CE484222325
    for bits in data.reshape(-1).view(np.uint64).tolist():
        h = ((h ^ bits) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    print(f"{attr.get('Name')} shape={'x'.join(map(str, dims))} checksum={h:016x}")
