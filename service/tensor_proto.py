"""``TensorProto`` <-> numpy, as TF Serving reads and writes them.

Inputs may carry ``tensor_content`` or typed repeated fields (``float_val``, ...), including the
single-value broadcast TF allows. A shape is checked against the values actually sent and its bytes
are taken from the request's memory reservation before anything is allocated from it: a 40-byte
message claiming 10^12 elements is refused, not expanded. Outputs use the typed fields by default,
as TF Serving does, so clients reading ``response.outputs["y"].float_val`` work unchanged.
"""

from __future__ import annotations

import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from service import shapes
from service.errors import InvalidArgument, Unimplemented
from service.memory import Reservation

_DTYPES: dict[int, tuple[np.dtype, str]] = {
    types_pb2.DT_FLOAT: (np.dtype(np.float32), "float_val"),
    types_pb2.DT_DOUBLE: (np.dtype(np.float64), "double_val"),
    types_pb2.DT_INT32: (np.dtype(np.int32), "int_val"),
    types_pb2.DT_INT16: (np.dtype(np.int16), "int_val"),
    types_pb2.DT_INT8: (np.dtype(np.int8), "int_val"),
    types_pb2.DT_UINT8: (np.dtype(np.uint8), "int_val"),
    types_pb2.DT_UINT16: (np.dtype(np.uint16), "int_val"),
    types_pb2.DT_INT64: (np.dtype(np.int64), "int64_val"),
    types_pb2.DT_UINT32: (np.dtype(np.uint32), "uint32_val"),
    types_pb2.DT_UINT64: (np.dtype(np.uint64), "uint64_val"),
    types_pb2.DT_BOOL: (np.dtype(np.bool_), "bool_val"),
    types_pb2.DT_STRING: (np.dtype(object), "string_val"),
}
_BY_NUMPY = {
    np.dtype(np.float32): types_pb2.DT_FLOAT,
    np.dtype(np.float64): types_pb2.DT_DOUBLE,
    np.dtype(np.int32): types_pb2.DT_INT32,
    np.dtype(np.int16): types_pb2.DT_INT16,
    np.dtype(np.int8): types_pb2.DT_INT8,
    np.dtype(np.uint8): types_pb2.DT_UINT8,
    np.dtype(np.uint16): types_pb2.DT_UINT16,
    np.dtype(np.int64): types_pb2.DT_INT64,
    np.dtype(np.uint32): types_pb2.DT_UINT32,
    np.dtype(np.uint64): types_pb2.DT_UINT64,
    np.dtype(np.bool_): types_pb2.DT_BOOL,
    np.dtype(object): types_pb2.DT_STRING,
}


def to_numpy(proto: tensor_pb2.TensorProto, name: str, memory: Reservation) -> np.ndarray:
    """Decode one input tensor, naming ``name`` in any error."""
    what = f"input '{name}'"
    entry = _DTYPES.get(proto.dtype)
    if entry is None:
        raise Unimplemented(f"{what}: dtype {_dtype_name(proto.dtype)} is not supported")
    dtype, field = entry
    if proto.tensor_shape.unknown_rank:
        raise InvalidArgument(f"{what}: tensor shape must be known")
    shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
    count = shapes.element_count(shape, what)
    if proto.tensor_content and dtype != np.dtype(object):
        if len(proto.tensor_content) != count * dtype.itemsize:
            raise InvalidArgument(
                f"{what}: tensor_content has {len(proto.tensor_content)} bytes, "
                f"shape {list(shape)} needs {count * dtype.itemsize}"
            )
        # A view of the message's bytes; the model runtime makes one copy.
        memory.take(count * dtype.itemsize, what, InvalidArgument)
        return shapes.reshape(np.frombuffer(proto.tensor_content, dtype=dtype), shape, what)
    values = getattr(proto, field)
    n = len(values)
    if n not in (count, 0, 1):
        raise InvalidArgument(f"{what}: {n} values do not fill shape {list(shape)} ({count} elements)")
    # The decoded array and the runtime's copy of it; strings are a Python object each.
    per_element = 2 * (dtype.itemsize if dtype != np.dtype(object) else 64)
    memory.take(
        count * per_element + (sum(map(len, values)) if dtype == np.dtype(object) else 0),
        what,
        InvalidArgument,
    )
    if dtype == np.dtype(object):
        arr = np.empty(n, dtype=object)
        arr[:] = list(values)
    else:
        arr = np.fromiter(values, dtype=dtype, count=n) if n else np.zeros(0, dtype=dtype)
    if n == count:
        return shapes.reshape(arr, shape, what)
    if n == 1:  # TF's broadcast of a single value
        return shapes.reshape(np.broadcast_to(arr, (count,)).copy(), shape, what)
    # no values at all: TF fills the shape with zeros / empty strings
    return np.full(shape, b"" if dtype == np.dtype(object) else 0, dtype=dtype)


def _dtype_name(number: int) -> str:
    """The DataType's name; a client may send a number the enum does not define."""
    try:
        return str(types_pb2.DataType.Name(number))
    except ValueError:
        return f"DataType({number}), which is not a TensorFlow dtype"


def from_numpy(arr: np.ndarray, as_content: bool = False) -> tensor_pb2.TensorProto:
    """Encode one output tensor in typed fields (or ``tensor_content`` when asked)."""
    dtype_enum = _BY_NUMPY.get(arr.dtype)
    if dtype_enum is None:
        raise Unimplemented(f"output dtype {arr.dtype} is not supported")
    proto = tensor_pb2.TensorProto(
        dtype=dtype_enum,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in arr.shape]
        ),
    )
    if as_content and dtype_enum != types_pb2.DT_STRING:
        proto.tensor_content = np.ascontiguousarray(arr).tobytes()
        return proto
    field = _DTYPES[dtype_enum][1]
    flat = arr.reshape(-1)
    getattr(proto, field).extend(flat.tolist())
    return proto
