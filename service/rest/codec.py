"""TF Serving's JSON tensor encoding: request bodies to numpy, outputs back to JSON.

Rules follow TF Serving's ``json_tensor.cc``: the dtype comes from the signature, never from the
JSON; float inputs take any JSON number, integer inputs only integers; strings may be given as
``{"b64": ...}``; row format (``instances``) stacks rows, columnar (``inputs``) passes tensors.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import numpy as np
from tensorflow.core.example import example_pb2

from service import signature as sig
from service.errors import InvalidArgument, Unimplemented

_NUMERIC_KINDS = {"f": "fiu", "i": "iu", "u": "iu", "b": "b"}


def to_array(value: Any, tensor: sig.TensorInfo, what: str) -> np.ndarray:
    """Convert one JSON value to an array of the tensor's dtype, naming ``what`` on error."""
    want = tensor.numpy_dtype
    if want is None:
        raise Unimplemented(f"{what}: dtype {tensor.dtype_name} is not supported over JSON")
    if want == np.dtype(object):
        return _strings(value, what)
    # Checked before numpy sees it: one string among numbers would make numpy build a text array
    # of (elements x longest string) characters, a few kB of JSON asking for gigabytes.
    leaf = _non_number(value, _F32_MAX if want == np.float32 else math.inf)
    if type(leaf) is float:
        raise InvalidArgument(f"{what}: value {leaf} out of range for {tensor.dtype_name}")
    if leaf is not None:
        raise InvalidArgument(
            f"{what}: JSON value of type {_LEAF_KINDS.get(type(leaf), 'object')} is not "
            f"of expected type {tensor.dtype_name}"
        )
    try:
        arr = np.asarray(value)
    except ValueError:
        raise InvalidArgument(f"{what}: Encountered list at unexpected size (ragged nested lists)") from None
    if arr.dtype == np.dtype(object) or arr.dtype.kind not in _NUMERIC_KINDS[want.kind]:
        got = _json_kind(arr)
        raise InvalidArgument(f"{what}: JSON value of type {got} is not of expected type {tensor.dtype_name}")
    if arr.dtype.kind in "iu" and want.kind in "iu":
        info = np.iinfo(want)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise InvalidArgument(f"{what}: value out of range for {tensor.dtype_name}")
    return arr.astype(want, copy=False)


_LEAF_KINDS = {str: "string", dict: "object", type(None): "null"}


_F32_MAX = float(np.finfo(np.float32).max)


def _non_number(value: Any, limit: float) -> Any:
    """The first leaf of nested lists that is not a number or boolean, or a finite float beyond
    ``limit`` (a float32 input cannot hold it; infinities sent as such pass); else None."""
    stack = [value]
    while stack:
        items = stack.pop()
        for item in items if type(items) is list else (items,):
            kind = type(item)
            if kind is float:
                if -limit <= item <= limit or item != item or item in (math.inf, -math.inf):
                    continue
                return item
            if kind is list:
                stack.append(item)
            elif kind is not int and kind is not bool:
                return item
    return None


def _json_kind(arr: np.ndarray) -> str:
    return {"U": "string", "b": "bool", "f": "number", "i": "integer", "u": "integer"}.get(
        arr.dtype.kind, "mixed/object"
    )


def _strings(value: Any, what: str) -> np.ndarray:
    def convert(v: Any) -> Any:
        if isinstance(v, list):
            return [convert(x) for x in v]
        if isinstance(v, str):
            return utf8(v, what)
        if isinstance(v, dict):
            return decode_b64(v, what)
        raise InvalidArgument(f"{what}: JSON value is not of expected type DT_STRING")

    converted = convert(value)
    shape = []
    probe = converted
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    arr = np.empty(tuple(shape), dtype=object)
    try:
        arr[...] = converted
    except ValueError:
        raise InvalidArgument(f"{what}: Encountered list at unexpected size (ragged nested lists)") from None
    return arr


def utf8(text: str, what: str) -> bytes:
    """A JSON string as UTF-8; a lone surrogate (``"\\ud83d"``) is not text and is refused."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        raise InvalidArgument(f"{what}: string is not valid Unicode (lone surrogate escape)") from None


def decode_b64(value: dict[str, Any], what: str) -> bytes:
    """``{"b64": "<base64>"}`` to bytes: the one base64 decoder of every JSON verb."""
    if list(value) != ["b64"] or not isinstance(value["b64"], str):
        raise InvalidArgument(f'{what}: expected a string or {{"b64": <base64 string>}}')
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument(f"{what}: invalid base64 in 'b64'") from None


def decode_instances(instances: Any, info: sig.SignatureInfo) -> dict[str, np.ndarray]:
    """Row format: a non-empty list of rows; rows are objects keyed by input for multi-input."""
    if not isinstance(instances, list):
        raise InvalidArgument("Expecting 'instances' to be an list/array")
    if not instances:
        raise InvalidArgument("No values in 'instances' array")
    names = list(info.inputs)
    if len(names) == 1 and not isinstance(instances[0], dict):
        name = names[0]
        return {name: to_array(instances, info.inputs[name], f"input '{name}'")}
    columns: dict[str, list[Any]] = {n: [] for n in names}
    for i, row in enumerate(instances):
        if not isinstance(row, dict):
            raise InvalidArgument(
                f"instance {i}: expecting an object with keys {sorted(names)} "
                "(the signature has several inputs)"
            )
        if set(row) != set(names):
            raise InvalidArgument(
                f"instance {i}: keys {sorted(row)} do not match the signature inputs {sorted(names)}"
            )
        for n in names:
            columns[n].append(row[n])
    return {n: to_array(columns[n], info.inputs[n], f"input '{n}'") for n in names}


def decode_inputs(inputs: Any, info: sig.SignatureInfo) -> dict[str, np.ndarray]:
    """Columnar format: the tensor itself for one input, else an object of named tensors."""
    names = list(info.inputs)
    if len(names) == 1 and not (isinstance(inputs, dict) and names[0] in inputs and "b64" not in inputs):
        return {names[0]: to_array(inputs, info.inputs[names[0]], f"input '{names[0]}'")}
    if not isinstance(inputs, dict):
        raise InvalidArgument(f"'inputs' must be an object with keys {sorted(names)}")
    for n in names:
        if n not in inputs:
            raise InvalidArgument(f"Missing named input: {n} in 'inputs' object.")
    return {n: to_array(inputs[n], info.inputs[n], f"input '{n}'") for n in names}


def encode_value(name: str, arr: np.ndarray) -> Any:
    """An output as a JSON-ready value; bytes as text, or ``{"b64"}`` for aliases ending in _bytes."""
    if arr.dtype != np.dtype(object):
        return arr
    if name.endswith("_bytes"):
        return _map_nested(arr.tolist(), lambda b: {"b64": base64.b64encode(b).decode()})
    return _map_nested(arr.tolist(), lambda b: b.decode("utf-8", "replace") if isinstance(b, bytes) else b)


def _map_nested(value: Any, fn: Any) -> Any:
    if isinstance(value, list):
        return [_map_nested(v, fn) for v in value]
    return fn(value)


def encode_row(outputs: dict[str, np.ndarray]) -> Any:
    """``predictions``: the one output as a list per row, or a list of per-row objects."""
    if len(outputs) == 1:
        name, arr = next(iter(outputs.items()))
        if arr.ndim == 0:
            raise InvalidArgument(f"output '{name}' has no shape information")
        return encode_value(name, arr)
    batch = None
    for name, arr in outputs.items():
        if arr.ndim == 0:
            raise InvalidArgument(f"output '{name}' has no shape information")
        if batch is not None and arr.shape[0] != batch:
            raise InvalidArgument(f"output '{name}' has inconsistent batch size")
        batch = arr.shape[0]
    encoded = {k: encode_value(k, v) for k, v in outputs.items()}
    return [{k: v[i] for k, v in encoded.items()} for i in range(batch or 0)]


def encode_columnar(outputs: dict[str, np.ndarray]) -> Any:
    """``outputs``: the one output's value, or an object of named output values."""
    if len(outputs) == 1:
        name, arr = next(iter(outputs.items()))
        return encode_value(name, arr)
    return {k: encode_value(k, v) for k, v in outputs.items()}


def to_example(features: Any, what: str) -> example_pb2.Example:
    """A JSON object of feature values to a ``tf.train.Example`` (TF Serving's mapping)."""
    if not isinstance(features, dict):
        raise InvalidArgument(f"{what}: expected a JSON object of features")
    example = example_pb2.Example()
    for key, value in features.items():
        utf8(key, f"{what}: feature name")
        where = f"{what}: feature '{key}'"
        values = value if isinstance(value, list) else [value]
        feature = example.features.feature[key]
        kinds = {_feature_kind(v, where) for v in values}
        if len(kinds) > 1:
            raise InvalidArgument(f"{where} mixes value types")
        kind = kinds.pop() if kinds else "float"
        if kind == "bytes":
            feature.bytes_list.value.extend(
                decode_b64(v, where) if isinstance(v, dict) else utf8(v, where) for v in values
            )
        elif kind == "int":
            feature.int64_list.value.extend(values)
        else:
            feature.float_list.value.extend(float(v) for v in values)
    return example


def _feature_kind(v: Any, what: str) -> str:
    if isinstance(v, bool) or v is None or isinstance(v, list):
        raise InvalidArgument(f'{what}: values must be numbers, strings or {{"b64"}} (no nesting)')
    if isinstance(v, str | dict):
        return "bytes"  # a dict must be {"b64": ...}: decode_b64 says so if it is not
    if isinstance(v, int):
        if not -(2**63) <= v < 2**63:
            raise InvalidArgument(f"{what}: integer out of int64 range")
        return "int"
    if isinstance(v, float):
        return "float"
    raise InvalidArgument(f"{what}: unsupported value")
