"""What a SavedModel signature takes and returns, read from its ``SignatureDef`` proto."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
DEFAULT_SIGNATURE = "serving_default"

_NUMPY_DTYPES: dict[int, np.dtype] = {
    types_pb2.DT_FLOAT: np.dtype(np.float32),
    types_pb2.DT_DOUBLE: np.dtype(np.float64),
    types_pb2.DT_INT8: np.dtype(np.int8),
    types_pb2.DT_INT16: np.dtype(np.int16),
    types_pb2.DT_INT32: np.dtype(np.int32),
    types_pb2.DT_INT64: np.dtype(np.int64),
    types_pb2.DT_UINT8: np.dtype(np.uint8),
    types_pb2.DT_UINT16: np.dtype(np.uint16),
    types_pb2.DT_UINT32: np.dtype(np.uint32),
    types_pb2.DT_UINT64: np.dtype(np.uint64),
    types_pb2.DT_BOOL: np.dtype(np.bool_),
    types_pb2.DT_STRING: np.dtype(object),
}

# KServe V2 / Open Inference Protocol datatype names.
V2_DATATYPES: dict[int, str] = {
    types_pb2.DT_FLOAT: "FP32",
    types_pb2.DT_DOUBLE: "FP64",
    types_pb2.DT_HALF: "FP16",
    types_pb2.DT_BFLOAT16: "BF16",
    types_pb2.DT_INT8: "INT8",
    types_pb2.DT_INT16: "INT16",
    types_pb2.DT_INT32: "INT32",
    types_pb2.DT_INT64: "INT64",
    types_pb2.DT_UINT8: "UINT8",
    types_pb2.DT_UINT16: "UINT16",
    types_pb2.DT_UINT32: "UINT32",
    types_pb2.DT_UINT64: "UINT64",
    types_pb2.DT_BOOL: "BOOL",
    types_pb2.DT_STRING: "BYTES",
}


@dataclass(frozen=True)
class TensorInfo:
    """One named input or output: TF dtype enum, numpy dtype (None if unsupported), shape.

    ``shape`` is ``None`` for unknown rank; ``-1`` marks a variable dimension.
    """

    name: str
    dtype: int
    shape: tuple[int, ...] | None

    @property
    def dtype_name(self) -> str:
        return str(types_pb2.DataType.Name(self.dtype))

    @property
    def numpy_dtype(self) -> np.dtype | None:
        return _NUMPY_DTYPES.get(self.dtype)

    @property
    def v2_datatype(self) -> str:
        return V2_DATATYPES.get(self.dtype) or self.dtype_name  # the enum's name only if needed

    def shape_text(self) -> str:
        return "unknown" if self.shape is None else "[" + ",".join(str(d) for d in self.shape) + "]"


@dataclass(frozen=True)
class SignatureInfo:
    """A signature's method name and its inputs and outputs, keyed by alias."""

    name: str
    method_name: str
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]


def _tensor_info(alias: str, proto: meta_graph_pb2.TensorInfo) -> TensorInfo:
    shape_proto = proto.tensor_shape
    shape = None if shape_proto.unknown_rank else tuple(int(d.size) for d in shape_proto.dim)
    return TensorInfo(name=alias, dtype=int(proto.dtype), shape=shape)


def from_proto(name: str, proto: meta_graph_pb2.SignatureDef) -> SignatureInfo:
    return SignatureInfo(
        name=name,
        method_name=proto.method_name,
        inputs={k: _tensor_info(k, v) for k, v in sorted(proto.inputs.items())},
        outputs={k: _tensor_info(k, v) for k, v in sorted(proto.outputs.items())},
    )
