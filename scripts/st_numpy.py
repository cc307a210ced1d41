"""Minimal safetensors read/write with numpy only (the `safetensors` package is not needed).

Format: 8-byte little-endian header length N, N bytes of JSON
{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then raw little-endian bytes.
"""
import json
import struct

import numpy as np

_DT = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I32": "<i4", "I64": "<i8", "U8": "u1"}
_NAME = {np.float32: "F32", np.float16: "F16", np.float64: "F64", np.int32: "I32", np.int64: "I64", np.uint8: "U8"}


def save(path, tensors, metadata=None):
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    bodies, off = [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dt = _NAME[arr.dtype.type]
        body = arr.astype(_DT[dt]).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(body)]}
        bodies.append(body)
        off += len(body)
    h = json.dumps(header, separators=(",", ":"))
    h += " " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h.encode("utf8"))
        for b in bodies:
            f.write(b)


def load(path):
    buf = open(path, "rb").read()
    n = struct.unpack("<Q", buf[:8])[0]
    header = json.loads(buf[8 : 8 + n])
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    # As safetensors' Metadata::validate: sorted by offsets, contiguous from 0, covering the data exactly.
    at = 0
    for name, v in sorted(tensors.items(), key=lambda kv: tuple(kv[1]["data_offsets"])):
        a, b = v["data_offsets"]
        if a != at or b < a:
            raise ValueError(f"{path}: tensor {name!r} has data_offsets {[a, b]}, expected to start at {at}")
        if b - a != int(np.prod(v["shape"], dtype=np.int64)) * np.dtype(_DT[v["dtype"]]).itemsize:
            raise ValueError(f"{path}: tensor {name!r}: data_offsets do not match shape and dtype")
        at = b
    if 8 + n + at != len(buf):
        raise ValueError(f"{path}: the tensors cover {at} bytes of data, the file has {len(buf) - 8 - n}")
    out = {}
    for name, v in tensors.items():
        a, b = v["data_offsets"]
        out[name] = np.frombuffer(buf[8 + n + a : 8 + n + b], dtype=_DT[v["dtype"]]).reshape(v["shape"]).copy()
    return out
