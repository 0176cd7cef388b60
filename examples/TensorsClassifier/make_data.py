#!/usr/bin/env python3
"""Writes blobs.safetensors: a 3-class, 8-feature classification set in the `tensors` format
(train.x, train.y, test.x, test.y), with numpy and the standard library only.
Usage: python3 make_data.py [out.safetensors]"""
import json, struct, sys
import numpy as np

rng = np.random.default_rng(7)
centers = rng.normal(0, 2.0, size=(3, 8)).astype(np.float32)

def split(n):
    y = rng.integers(0, 3, size=n).astype(np.int64)
    x = (centers[y] + rng.normal(0, 1.5, size=(n, 8))).astype(np.float32)
    return x, y

tensors = {}
for name, n in (("train", 2000), ("test", 500)):
    tensors[name + ".x"], tensors[name + ".y"] = split(n)

# safetensors: 8-byte little-endian header length, a JSON header (dtype, shape, byte offsets), the raw data.
header, blobs, offset = {}, [], 0
for name, array in tensors.items():
    data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
    header[name] = {"dtype": {"float32": "F32", "int64": "I64"}[str(array.dtype)],
                    "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
    blobs.append(data)
    offset += len(data)
text = json.dumps(header, separators=(",", ":")).encode()
text += b" " * (-len(text) % 8)
with open(sys.argv[1] if len(sys.argv) > 1 else "blobs.safetensors", "wb") as out:
    out.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
