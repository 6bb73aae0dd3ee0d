"""Bad input over gRPC: clean status codes, never INTERNAL/UNKNOWN, never an allocation from a claim."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from service import model_config
from service.auth import TokenAuth
from service.dataplane import DataPlane
from service.grpc.server import GrpcServer
from service.memory import MemoryBudget
from service.metrics import Metrics
from service.repository import ModelRepository
from tests.fixtures import ServerProcess, free_port

PREDICT = "/tensorflow.serving.PredictionService/Predict"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, model_base: Path, grpc_server_flag: str
) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("grpc-bad")
    with ServerProcess.running(
        [f"--model_base_path={model_base / 'linear'}", "--model_name=linear", grpc_server_flag],
        tmp / "server.log",
    ) as proc:
        yield proc


def _claim(shape: list[int], dtype: int = types_pb2.DT_FLOAT, **values: object) -> predict_pb2.PredictRequest:
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "linear"
    req.inputs["x"].CopyFrom(
        tensor_pb2.TensorProto(
            dtype=dtype,
            tensor_shape=tensor_shape_pb2.TensorShapeProto(
                dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape]
            ),
            **values,
        )
    )
    return req


def _peak_rss(server: ServerProcess) -> int:
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) << 10
    raise AssertionError("no VmHWM")


pytestmark = pytest.mark.slow


def test_a_predict_claiming_10e12_elements_with_no_values_is_invalid_argument(
    server: ServerProcess, channel: grpc.Channel
) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    before = _peak_rss(server)
    for request in (
        _claim([10**6, 10**6]),
        _claim([10**6, 10**6], float_val=[1.0]),
        _claim([10**12, 3], dtype=types_pb2.DT_STRING),
        _claim([2**40, 2**40, 2**40]),
    ):
        assert request.ByteSize() < 64
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(request, timeout=30)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
        assert "input 'x'" in (info.value.details() or "")
    assert _peak_rss(server) - before < 64 << 20  # nothing was allocated from the claims
    ok = predict_pb2.PredictRequest()
    ok.model_spec.name = "linear"
    ok.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones((1, 3), np.float32)))
    assert stub.Predict(ok, timeout=30).outputs["y"].float_val


@pytest.mark.parametrize(
    "method",
    [
        PREDICT,
        "/tensorflow.serving.PredictionService/Regress",
        "/tensorflow.serving.ModelService/GetModelStatus",
        "/grpc.health.v1.Health/Check",
    ],
)
def test_a_request_that_is_not_a_valid_message_is_invalid_argument(
    channel: grpc.Channel, method: str
) -> None:
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    for garbage in (b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x12\x80\x80\x80\x80\x10"):
        with pytest.raises(grpc.RpcError) as info:
            call(garbage, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (garbage, info.value.details())
        assert "is not a valid" in (info.value.details() or "")


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (_claim([1, 3], tensor_content=b"\x00" * 11), "tensor_content has 11 bytes"),
        (_claim([1, 3], float_val=[1.0, 2.0]), "2 values do not fill shape"),
        (_claim([1, -3]), "negative dimension"),
        (_claim([1] * 40), "dimensions"),
        (
            _claim([0, 10**6, 10**6, 10**6, 2], dtype=types_pb2.DT_INT64),
            "cannot hold shape",
        ),  # 0 elements, 16 EB
        (_claim([1, 3], dtype=types_pb2.DT_INT64, int64_val=[1, 2, 3]), "expects DT_FLOAT"),
        (_claim([1, 3], dtype=types_pb2.DT_HALF, half_val=[1, 2, 3]), "not supported"),
    ],
)
def test_tensors_whose_shape_or_dtype_disagree_with_their_contents_are_refused(
    channel: grpc.Channel, request_: predict_pb2.PredictRequest, message: str
) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request_, timeout=10)
    assert info.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED)
    assert message in (info.value.details() or "")


def test_an_unexpected_error_over_grpc_is_internal_logged_and_counted(
    model_base: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """In process, with a dataplane that fails in a way no ServingError describes."""

    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(DataPlane, "predict", broken)
    configs = model_config.single("linear", model_base / "linear")
    repo = ModelRepository(configs, poll_seconds=-1, settle_seconds=0)
    repo.poll_once()
    metrics, port = Metrics(), free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    grpc_server: list[GrpcServer] = []

    async def serve() -> None:
        server = GrpcServer(
            DataPlane(repo),
            metrics,
            TokenAuth(None),
            "127.0.0.1",
            port,
            1 << 20,
            1 << 20,
            MemoryBudget(64 << 20),
        )
        grpc_server.append(server)
        await server.start()
        started.set()

    thread = threading.Thread(
        target=lambda: (loop.run_until_complete(serve()), loop.run_forever()), daemon=True
    )
    thread.start()
    assert started.wait(30)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch, caplog.at_level(logging.ERROR):
            stub = prediction_service_pb2_grpc.PredictionServiceStub(ch)
            ok = _claim([1, 3], float_val=[1.0, 2.0, 3.0])
            with pytest.raises(grpc.RpcError) as info:
                stub.Predict(ok, timeout=10)
            assert info.value.code() == grpc.StatusCode.INTERNAL
            assert info.value.details() == "internal error"
            health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
        assert "RuntimeError: secret internals" in caplog.text
        assert 'modelship_internal_errors_total{transport="grpc"} 1.0' in metrics.render().decode()
    finally:
        asyncio.run_coroutine_threadsafe(grpc_server[0].stop(1), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


def test_the_server_still_serves_rest_after_all_of_it(server: ServerProcess) -> None:
    r = httpx.post(f"{server.url}/v1/models/linear:predict", json={"instances": [[1.0, 2.0, 3.0]]})
    assert r.status_code == 200, r.text
