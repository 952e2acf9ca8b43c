"""The `#[metadata]` section of Relay text: the constants `meta[relay.Constant][i]` names.

TVM prints any model with bound weights this way: the program refers to `meta[relay.Constant][i]`
and, after `#[metadata]`, the file holds TVM's object graph as JSON (`tvm.ir.save_json`,
src/node/serialization.cc): `root` is a Map from type keys to Arrays of nodes, a `relay.Constant`
node's `data` attribute indexes `b64ndarrays`, and each of those is a base64 NDArray as
`runtime::NDArray::Save` writes it (include/tvm/runtime/ndarray.h, all little-endian):

    u64 magic 0xDD5E40F096B4A13F, u64 reserved, i32 device type, i32 device id, i32 ndim,
    u8 type code (0 int, 1 uint, 2 float), u8 bits, u16 lanes, i64 shape[ndim],
    i64 byte size, the bytes (bool is uint1, one byte per element).
"""

from __future__ import annotations

import base64
import binascii
import json
import struct

import numpy as np

from lathe.dialects import dtypes

NDARRAY_MAGIC = 0xDD5E40F096B4A13F
_HEADER = struct.Struct("<QQiii BBH")
_CPU = 1


def _type_code(d: dtypes.DType) -> tuple[int, int]:
    """DLPack's (type code, bits) of a dtype: bool is uint1."""
    if d.name == "bool":
        return 1, 1
    return {"i": 0, "u": 1, "f": 2}[d.numpy.kind], d.numpy.itemsize * 8


_BY_CODE = {_type_code(d): d for d in dtypes.TABLE}
CONSTANT_KEY = "relay.Constant"


class MetadataError(Exception):
    """What is wrong with a metadata section, and where in it (an offset); the parser locates it."""

    def __init__(self, message: str, at: int = 0):
        super().__init__(message)
        self.at = at


def read_constants(text: str) -> list[tuple[str, np.ndarray]]:
    """The `relay.Constant` entries of a metadata section, in index order, as (dtype, array)."""
    try:
        graph = json.loads(text)
    except json.JSONDecodeError as e:
        raise MetadataError(f"the metadata section is not JSON: {e.msg}", e.pos) from None
    except RecursionError:
        raise MetadataError("the metadata section nests too deeply to be TVM's object graph") from None
    try:
        nodes = graph["nodes"]
        root = nodes[int(graph["root"])]
        keys = root.get("keys", [])
        if CONSTANT_KEY not in keys:
            return []
        array = nodes[int(root["data"][keys.index(CONSTANT_KEY)])]
        blobs = graph.get("b64ndarrays", [])
        return [_ndarray(blobs[int(nodes[int(i)]["attrs"]["data"])]) for i in array.get("data", [])]
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
        raise MetadataError(f"the metadata section is not TVM's object graph ({type(e).__name__}: {e})") from None


def _ndarray(blob: str) -> tuple[str, np.ndarray]:
    try:
        data = base64.b64decode(blob, validate=True)
    except (binascii.Error, TypeError):
        raise MetadataError("a b64ndarrays entry is not base64") from None
    if len(data) < _HEADER.size:
        raise MetadataError("a b64ndarrays entry is shorter than an NDArray header")
    magic, _, _, _, ndim, code, bits, lanes = _HEADER.unpack_from(data)
    if magic != NDARRAY_MAGIC:
        raise MetadataError(f"a b64ndarrays entry has magic 0x{magic:X}, not TVM's NDArray magic")
    d = _BY_CODE.get((code, bits))
    if d is None or lanes != 1:
        raise MetadataError(f"a constant has type code {code}, {bits} bits, {lanes} lanes: a dtype Lathe lacks")
    at = _HEADER.size
    if not 0 <= ndim <= 64 or len(data) < at + 8 * ndim + 8:
        raise MetadataError("a b64ndarrays entry is cut short")
    shape = struct.unpack_from(f"<{ndim}q", data, at)
    (size,) = struct.unpack_from("<q", data, at + 8 * ndim)
    at += 8 * ndim + 8
    dtype, storage = d.name, d.numpy  # numpy's bool is one byte, as TVM stores uint1
    if any(d < 0 for d in shape) or size != int(np.prod(shape)) * storage.itemsize or len(data) != at + size:
        raise MetadataError(f"a constant of shape {list(shape)} and dtype {dtype} holds {len(data) - at} bytes")
    return dtype, np.frombuffer(data, storage, offset=at).reshape(shape).copy()


def write_constants(arrays: list[tuple[str, np.ndarray]]) -> str:
    """A metadata section (without its `#[metadata]` line) holding `arrays` as relay.Constants,
    in the form TVM writes (its 0.8 layout: each constant's data, span and checked type)."""
    n = len(arrays)
    nodes: list[dict] = [
        {"type_key": ""},
        {"type_key": "Map", "keys": [CONSTANT_KEY], "data": [2]},
        {"type_key": "Array", "data": list(range(3, 3 + n))},
    ]
    nodes += [
        {"type_key": CONSTANT_KEY, "attrs": {"_checked_type_": "0", "data": str(i), "span": "0"}} for i in range(n)
    ]
    graph = {
        "root": 1,
        "nodes": nodes,
        "b64ndarrays": [_b64(dtype, a) for dtype, a in arrays],
        "attrs": {"tvm_version": "0.8.0"},
    }
    return json.dumps(graph, indent=2) + "\n"


def _b64(dtype: str, a: np.ndarray) -> str:
    d = dtypes.BY_NAME[dtype]
    code, bits = _type_code(d)
    data = np.ascontiguousarray(a, dtype=d.numpy).tobytes()
    head = _HEADER.pack(NDARRAY_MAGIC, 0, _CPU, 0, a.ndim, code, bits, 1)
    head += struct.pack(f"<{a.ndim}q", *a.shape) + struct.pack("<q", len(data))
    return base64.b64encode(head + data).decode()
