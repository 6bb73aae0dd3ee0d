"""Hypothesis strategies for protobuf messages, built from their descriptors.

:func:`messages` walks any message descriptor: every field of every type, repeated fields, maps,
nested messages, enums (with values the enum does not define). Two types get extra care because
the server reads them most: ``ModelSpec`` names mostly the served models, and ``TensorProto``
takes a dtype, a shape (small, negative, huge, of any rank) and values that may or may not agree
with them (typed fields or ``tensor_content``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import model_pb2

FD = FieldDescriptor
MODELS = ["linear", "multi", "nope", ""]
SIGNATURES = ["", "serving_default", "classify", "regress", "nope"]
INPUT_NAMES = ["x", "a", "b", "s", "inputs", "zz", "x0", "x1", "x2", "f"]
# Fields always set, so that most requests get past the first checks to the deeper ones.
REQUIRED = {
    "tensorflow.serving.PredictRequest": {"model_spec", "inputs"},
    "tensorflow.serving.ClassificationRequest": {"model_spec", "input"},
    "tensorflow.serving.RegressionRequest": {"model_spec", "input"},
    "tensorflow.serving.MultiInferenceRequest": {"tasks", "input"},
    "tensorflow.serving.InferenceTask": {"model_spec", "method_name"},
    "tensorflow.serving.GetModelMetadataRequest": {"model_spec", "metadata_field"},
    "tensorflow.serving.GetModelStatusRequest": {"model_spec"},
    "tensorflow.serving.ExampleList": {"examples"},
    "tensorflow.serving.ExampleListWithContext": {"examples", "context"},
    "tensorflow.Example": {"features"},
    "tensorflow.Features": {"feature"},
}
METHODS = ["tensorflow/serving/classify", "tensorflow/serving/regress", "tensorflow/serving/predict"]

_INT_RANGES = {
    FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FD.TYPE_UINT32: (0, 2**32 - 1),
    FD.TYPE_FIXED32: (0, 2**32 - 1),
    FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1),
    FD.TYPE_FIXED64: (0, 2**64 - 1),
}


def _ints(low: int, high: int) -> st.SearchStrategy[int]:
    edges = [v for v in (0, 1, -1, 3, low, high) if low <= v <= high]
    return st.integers(low, high) | st.sampled_from(edges) | st.integers(max(low, -8), min(high, 8))


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.type in _INT_RANGES:
        return _ints(*_INT_RANGES[field.type])
    if field.type in (FD.TYPE_FLOAT, FD.TYPE_DOUBLE):
        return st.floats(allow_nan=True, allow_infinity=True, width=32 if field.type == FD.TYPE_FLOAT else 64)
    if field.type == FD.TYPE_BOOL:
        return st.booleans()
    if field.type == FD.TYPE_STRING:
        if field.name == "name" and field.containing_type.name == "ModelSpec":
            return st.sampled_from(MODELS) | st.text(max_size=8)
        if field.name == "signature_name":
            return st.sampled_from(SIGNATURES) | st.text(max_size=8)
        if field.name == "method_name":
            return st.sampled_from(METHODS) | st.text(max_size=8)
        if field.name == "metadata_field":
            return st.sampled_from(["signature_def"] * 3) | st.text(max_size=8)
        return st.text(max_size=12)
    if field.type == FD.TYPE_BYTES:
        return st.binary(max_size=24)
    if field.type == FD.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.sampled_from(known) | st.integers(-5, 200)  # open enums keep unknown numbers
    raise TypeError(f"unhandled field type {field.type} of {field.full_name}")


@st.composite
def _model_spec(draw: st.DrawFn) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(
        name=draw(st.sampled_from(["linear"] * 6 + ["multi"] * 3 + ["nope", "?"])),
        signature_name=draw(_mostly(st.just(""), st.sampled_from(SIGNATURES) | st.text(max_size=6))),
    )
    choice = draw(st.sampled_from(["none"] * 4 + ["version", "label"]))
    if choice == "version":
        spec.version.value = draw(st.sampled_from([1, 1, 2]) | _ints(-(2**63), 2**63 - 1))
    elif choice == "label":
        spec.version_label = draw(st.sampled_from(["stable", "nope", ""]) | st.text(max_size=6))
    return spec


@st.composite
def _plausible_tensor(draw: st.DrawFn) -> tensor_pb2.TensorProto:
    """What a client means to send, nearly: float rows of 3, by content or typed values."""
    rows = draw(st.integers(0, 5))
    width = draw(st.sampled_from([3, 3, 3, 2, 4]))
    count = rows * width + draw(st.sampled_from([0, 0, 0, 1, -1]))
    values = draw(
        st.lists(
            st.floats(allow_nan=True, allow_infinity=True, width=32),
            min_size=max(0, count),
            max_size=max(0, count),
        )
    )
    proto = tensor_pb2.TensorProto(
        dtype=draw(st.sampled_from([types_pb2.DT_FLOAT] * 4 + [types_pb2.DT_DOUBLE])),
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[
                tensor_shape_pb2.TensorShapeProto.Dim(size=rows),
                tensor_shape_pb2.TensorShapeProto.Dim(size=width),
            ]
        ),
    )
    if draw(st.booleans()):
        proto.tensor_content = np.asarray(values, np.float32).tobytes()
    else:
        proto.float_val.extend(values)
    return proto


def _mostly(likely: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``likely`` four times in five."""
    return st.sampled_from([True] * 4 + [False]).flatmap(lambda pick: likely if pick else rare)


def _tensor() -> st.SearchStrategy[tensor_pb2.TensorProto]:
    return _mostly(_plausible_tensor(), _any_tensor())


def _any_tensor() -> st.SearchStrategy[tensor_pb2.TensorProto]:
    dims = st.integers(0, 4) | st.sampled_from([-1, -(2**40), 10**6, 2**31, 2**40, 2**62, 2**63 - 1])
    typed = [
        "float_val",
        "double_val",
        "int_val",
        "int64_val",
        "bool_val",
        "string_val",
        "half_val",
        "uint32_val",
        "uint64_val",
    ]

    @st.composite
    def build(draw: st.DrawFn) -> tensor_pb2.TensorProto:
        dtype = draw(
            st.sampled_from(
                [
                    types_pb2.DT_FLOAT,
                    types_pb2.DT_INT64,
                    types_pb2.DT_STRING,
                    types_pb2.DT_DOUBLE,
                    types_pb2.DT_INT32,
                    types_pb2.DT_BOOL,
                    types_pb2.DT_HALF,
                    types_pb2.DT_UINT8,
                    types_pb2.DT_INVALID,
                ]
            )
            | st.integers(0, 130)
        )
        shape = draw(st.lists(dims, max_size=5) | st.lists(st.just(1), min_size=30, max_size=40))
        proto = tensor_pb2.TensorProto(
            dtype=dtype,
            tensor_shape=tensor_shape_pb2.TensorShapeProto(
                dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape],
                unknown_rank=draw(st.sampled_from([False] * 9 + [True])),
            ),
        )
        if draw(st.booleans()):
            proto.tensor_content = draw(st.binary(max_size=96))
        for name in draw(st.lists(st.sampled_from(typed), max_size=2, unique=True)):
            field = proto.DESCRIPTOR.fields_by_name[name]
            getattr(proto, name).extend(draw(st.lists(_scalar(field), max_size=8)))
        return proto

    return build()


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
    """Instances of ``descriptor``'s message class with any subset of its fields set."""
    if descriptor.full_name == "tensorflow.TensorProto":
        return _tensor()
    if descriptor.full_name == "tensorflow.serving.ModelSpec":
        return _mostly(_model_spec(), _generic(descriptor, depth))
    return _generic(descriptor, depth)


def _generic(descriptor: Descriptor, depth: int) -> st.SearchStrategy[Any]:
    cls = message_factory.GetMessageClass(descriptor)
    required = REQUIRED.get(descriptor.full_name, set())

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        message = cls()
        for field in descriptor.fields:
            if depth > 5 or not (field.name in required or draw(st.booleans())):
                continue
            _fill(draw, message, field, depth)
        if descriptor.full_name == "tensorflow.serving.MultiInferenceRequest" and draw(st.booleans()):
            for task in message.tasks:  # most clients ask one model for several signatures
                task.model_spec.name = message.tasks[0].model_spec.name
        return message

    return build()


def _fill(draw: st.DrawFn, message: Any, field: FieldDescriptor, depth: int) -> None:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key_field = field.message_type.fields_by_name["key"]
        value_field = field.message_type.fields_by_name["value"]
        keys = (
            _mostly(st.sampled_from(INPUT_NAMES), _scalar(key_field))
            if key_field.type == FD.TYPE_STRING
            else _scalar(key_field)
        )
        target = getattr(message, field.name)
        at_least = 1 if field.name in REQUIRED.get(field.containing_type.full_name, ()) else 0
        for key in draw(st.lists(keys, min_size=at_least, max_size=3, unique=True)):
            if value_field.message_type is not None:
                target[key].CopyFrom(draw(messages(value_field.message_type, depth + 1)))
            else:
                target[key] = draw(_scalar(value_field))
        return
    if field.is_repeated:
        target = getattr(message, field.name)
        if field.message_type is not None:
            at_least = 1 if field.name in REQUIRED.get(field.containing_type.full_name, ()) else 0
            for item in draw(
                st.lists(messages(field.message_type, depth + 1), min_size=at_least, max_size=3)
            ):
                target.add().CopyFrom(item)
        else:
            target.extend(draw(st.lists(_scalar(field), max_size=4)))
        return
    if field.message_type is not None:
        getattr(message, field.name).CopyFrom(draw(messages(field.message_type, depth + 1)))
    else:
        setattr(message, field.name, draw(_scalar(field)))
