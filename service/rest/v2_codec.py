"""Open Inference Protocol (KServe V2) JSON: request bodies validated and decoded, outputs encoded.

Every field of an inference request is checked against the protocol's schema
(``open_inference_rest.yaml``) before anything is decoded, and a wrong one gets a 400 naming it
(``inputs[0].shape[1]: ...``). Unknown fields are ignored, as the schema allows extensions. The
tensor data itself is decoded by :mod:`service.rest.codec`, the one JSON tensor decoder.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from service import jsonio, shapes
from service import signature as sig
from service.errors import InvalidArgument
from service.rest import codec

DATATYPES = frozenset(
    {
        "BOOL",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "FP16",
        "FP32",
        "FP64",
        "BYTES",
        "BF16",
    }
)
MAX_DIM = 2**63 - 1


class InferRequest(NamedTuple):
    """A validated request: its id (echoed back), decoded inputs and requested output names."""

    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[str]


def decode_request(doc: Any, info: sig.SignatureInfo) -> InferRequest:
    """Validate ``doc`` against the protocol's schema and decode its inputs for ``info``."""
    if not isinstance(doc, dict):
        raise InvalidArgument("request body must be a JSON object")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidArgument("'id' must be a string")
    if (params := doc.get("parameters")) is not None:
        _parameters(params, "")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidArgument("'inputs' must be a non-empty list of tensors")
    decoded: dict[str, np.ndarray] = {}
    for i, item in enumerate(inputs):
        name, array = _input(item, i, info)
        if name in decoded:
            raise InvalidArgument(f"inputs[{i}]: input '{name}' is given more than once")
        decoded[name] = array
    outputs = doc.get("outputs")
    return InferRequest(request_id, decoded, [] if outputs is None else _requested_outputs(outputs))


def _input(item: Any, i: int, info: sig.SignatureInfo) -> tuple[str, np.ndarray]:
    """One ``inputs[i]``, checked field by field (messages built only on error: this is per request)."""
    if not isinstance(item, dict):
        raise InvalidArgument(f"inputs[{i}] must be an object")
    name, shape, datatype = item.get("name"), item.get("shape"), item.get("datatype")
    if not isinstance(name, str) or "data" not in item or shape is None or datatype is None:
        raise InvalidArgument(f"inputs[{i}] needs 'name', 'shape', 'datatype' and 'data'")
    if (params := item.get("parameters")) is not None:
        _parameters(params, f"inputs[{i}].")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise InvalidArgument(
            f"inputs[{i}].datatype: {datatype!r} is not an Open Inference Protocol "
            f"datatype ({', '.join(sorted(DATATYPES))})"
        )
    if not isinstance(shape, list):
        raise InvalidArgument(f"inputs[{i}].shape: 'shape' must be a list of non-negative integers")
    for dim in shape:
        if type(dim) is not int or not 0 <= dim <= MAX_DIM:  # type(True) is bool, not int
            _bad_dim(shape, i)
    tensor = info.inputs.get(name)
    if tensor is None:
        raise InvalidArgument(f"unexpected input '{name}'; the model takes {sorted(info.inputs)}")
    if datatype != tensor.v2_datatype:
        raise InvalidArgument(
            f"input '{name}' has datatype {datatype!r}, the model expects {tensor.v2_datatype!r}"
        )
    what = f"input '{name}'"
    count = shapes.element_count(shape, what)
    arr = codec.to_array(item["data"], tensor, what)
    if arr.size != count:
        raise InvalidArgument(f"{what}: shape {shape} needs {count} values, got {arr.size}")
    return name, shapes.reshape(arr, shape, what)


def _bad_dim(shape: list[Any], i: int) -> None:
    for j, dim in enumerate(shape):
        if type(dim) is not int or not 0 <= dim <= MAX_DIM:
            raise InvalidArgument(
                f"inputs[{i}].shape[{j}]: 'shape' must be a list of non-negative integers below 2^63, "
                f"got {dim!r}"
            )


def _parameters(params: Any, where: str) -> None:
    """``parameters``, when present (not null), is an object of string, number or boolean values."""
    if not isinstance(params, dict):
        raise InvalidArgument(f"{where}parameters: must be an object of string, number or boolean values")
    for key, value in params.items():
        if not isinstance(value, str | int | float | bool):
            raise InvalidArgument(
                f"{where}parameters.{key}: must be a string, number or boolean, got {type(value).__name__}"
            )


def _requested_outputs(outputs: Any) -> list[str]:
    if not isinstance(outputs, list):
        raise InvalidArgument("'outputs' must be a list of objects with a 'name'")
    names = []
    for i, item in enumerate(outputs):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidArgument(f"outputs[{i}]: 'outputs' must be a list of objects with a 'name'")
        if (params := item.get("parameters")) is not None:
            _parameters(params, f"outputs[{i}].")
        names.append(item["name"])
    return names


def encode_outputs(outputs: dict[str, np.ndarray], info: sig.SignatureInfo) -> list[dict[str, Any]]:
    """Output tensors as the protocol's flat, row-major ``data`` lists (the shape as a tuple: a
    JSON array to both encoders)."""
    return [
        {
            "name": k,
            "shape": v.shape,
            "datatype": info.outputs[k].v2_datatype,
            "data": codec.encode_value(k, v.ravel()),
        }
        for k, v in outputs.items()
    ]


def encode_reply(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: dict[str, np.ndarray],
    info: sig.SignatureInfo,
) -> bytes:
    """The inference response body; ``id`` echoes the request's when it had one."""
    reply: dict[str, Any] = {
        "model_name": model_name,
        "model_version": model_version,
        "outputs": encode_outputs(outputs, info),
    }
    if request_id is not None:
        reply["id"] = request_id
    return jsonio.dumps_arrays(reply, outputs.values())


def tensor_metadata(tensor: sig.TensorInfo) -> dict[str, Any]:
    """One input or output in model metadata (``-1`` for variable dimensions)."""
    return {
        "name": tensor.name,
        "datatype": tensor.v2_datatype,
        "shape": list(tensor.shape) if tensor.shape is not None else [-1],
    }
