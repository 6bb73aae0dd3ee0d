"""TF Serving protocol pieces built at run time from the installed ``tensorflow_serving`` package.

No .proto files are kept in this repository: the descriptor set ghz needs is rebuilt from the
descriptors compiled into the official ``*_pb2`` modules and written to a temporary directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PREDICT_METHOD = "tensorflow.serving.PredictionService/Predict"
DT_FLOAT = 1


def rows(n: int) -> list[list[float]]:
    """The benchmark's input: ``n`` rows of the linear model's 3 float features."""
    return [[1.0, 2.0, 3.0] for _ in range(n)]


def rest_body(n: int) -> bytes:
    inner = ", ".join("[1.0, 2.0, 3.0]" for _ in range(n))
    return f'{{"instances": [{inner}]}}'.encode()


def predict_request(model_name: str, n: int, input_name: str = "x") -> Any:
    """PredictRequest for ``n`` rows, as the official client would build it (typed float_val)."""
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = "serving_default"
    tensor = request.inputs[input_name]
    tensor.dtype = DT_FLOAT
    tensor.tensor_shape.dim.add().size = n
    tensor.tensor_shape.dim.add().size = 3
    for row in rows(n):
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
