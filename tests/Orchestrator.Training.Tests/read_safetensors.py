#!/usr/bin/env python3
"""A safetensors reader written from the format's specification (stdlib only), used by the tests to
check that our files open outside .NET: prints {name: {dtype, shape, count, sum, first}} as JSON."""
import json, struct, sys

SIZES = {"F32": ("f", 4), "F64": ("d", 8), "I64": ("q", 8), "U8": ("B", 1)}

with open(sys.argv[1], "rb") as f:
    data = f.read()
(n,) = struct.unpack_from("<Q", data, 0)
header = json.loads(data[8:8 + n].decode("utf-8"))
body = data[8 + n:]
out = {}
for name, entry in header.items():
    if name == "__metadata__":
        continue
    begin, end = entry["data_offsets"]
    code, size = SIZES[entry["dtype"]]
    count = (end - begin) // size
    values = struct.unpack_from("<%d%s" % (count, code), body, begin)
    out[name] = {"dtype": entry["dtype"], "shape": entry["shape"], "count": count,
                 "sum": float(sum(values)), "first": float(values[0]) if values else None}
print(json.dumps({"metadata": header.get("__metadata__", {}), "tensors": out}))
