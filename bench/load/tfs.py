"""TF Serving protocol pieces built at run time from the installed ``tensorflow_serving`` package.

No .proto files are kept in this repository: the descriptor set ghz needs is rebuilt from the
descriptors compiled into the official ``*_pb2`` modules and written to a temporary directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PREDICT_METHOD = "tensorflow.serving.PredictionService/Predict"
DT_FLOAT = 1


def signature_input(version_dir: Path, signature: str = "serving_default") -> tuple[str, int]:
    """(input name, features) of the signature's one float input ``[batch, features]``.

    Read from ``saved_model.pb`` without loading the model; the benchmark's payload follows it.
    Raises ``ValueError`` for a signature the benchmark cannot drive (several inputs, another
    dtype or rank).
    """
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    meta = next((m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags), None)
    if meta is None or signature not in meta.signature_def:
        raise ValueError(f"{version_dir}: no {signature!r} signature in a 'serve' MetaGraph")
    inputs = meta.signature_def[signature].inputs
    dims = [[d.size for d in t.tensor_shape.dim] for t in inputs.values()]
    if (
        len(inputs) != 1
        or next(iter(inputs.values())).dtype != DT_FLOAT
        or len(dims[0]) != 2
        or dims[0][1] < 1
    ):
        raise ValueError(f"{version_dir}: {signature!r} must take one float input [batch, features]")
    return next(iter(inputs)), dims[0][1]


def rows(n: int, features: int) -> list[list[float]]:
    """The benchmark's input: ``n`` identical rows of ``features`` floats (1.0, 2.0, 3.0, 1.0, ...)."""
    return [[float(j % 3 + 1) for j in range(features)] for _ in range(n)]


def rest_body(n: int, features: int) -> bytes:
    """TF Serving's row format for :func:`rows`: ``{"instances": [[1.0, 2.0, 3.0], ...]}``."""
    row = "[" + ", ".join(f"{v:.1f}" for v in rows(1, features)[0]) + "]"
    return ('{"instances": [' + ", ".join(row for _ in range(n)) + "]}").encode()


def v2_body(n: int, features: int, input_name: str = "x") -> bytes:
    """The Open Inference (KServe V2) body for :func:`rows`: one FP32 tensor, flat, with its shape."""
    data = rows(n, features)
    tensor = {
        "name": input_name,
        "shape": [n, features],
        "datatype": "FP32",
        "data": [v for row in data for v in row],
    }
    return json.dumps({"inputs": [tensor]}).encode()


def predict_request(model_name: str, n: int, features: int, input_name: str = "x") -> Any:
    """PredictRequest for ``n`` rows, as the official client would build it (typed float_val)."""
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = "serving_default"
    tensor = request.inputs[input_name]
    tensor.dtype = DT_FLOAT
    tensor.tensor_shape.dim.add().size = n
    tensor.tensor_shape.dim.add().size = features
    for row in rows(n, features):
        tensor.float_val.extend(row)
    return request


def write_protoset(path: Path) -> Path:
    """A FileDescriptorSet holding PredictionService and all its imports, dependencies first."""
    from google.protobuf import descriptor_pb2
    from tensorflow_serving.apis import prediction_service_pb2

    out = descriptor_pb2.FileDescriptorSet()
    seen: set[str] = set()

    def add(fd: Any) -> None:
        if fd.name in seen:
            return
        seen.add(fd.name)
        for dep in fd.dependencies:
            add(dep)
        proto = descriptor_pb2.FileDescriptorProto()
        fd.CopyToProto(proto)
        out.file.append(proto)

    add(prediction_service_pb2.DESCRIPTOR)
    path.write_bytes(out.SerializeToString())
    return path


def predict_ok(address: str, request: Any, timeout: float = 2.0) -> bool:
    """One Predict call through the official stub; True when it returns OK with outputs."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=timeout)
    return bool(response.outputs)
