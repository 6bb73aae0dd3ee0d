"""Property-based over gRPC: messages for every RPC, built from the protobuf descriptors, never get
``INTERNAL`` or ``UNKNOWN`` from the real server process, and it keeps serving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow_serving.apis import (
    model_management_pb2,
    model_service_pb2,
    predict_pb2,
    prediction_service_pb2,
)

from tests.fixtures import ServerProcess
from tests.service.grpc.fuzz_messages import messages

pytestmark = pytest.mark.slow
SERVICES = [
    prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"],
    model_service_pb2.DESCRIPTOR.services_by_name["ModelService"],
    health_pb2.DESCRIPTOR.services_by_name["Health"],
]
RPCS = {
    f"/{s.full_name}/{m.name}": m
    for s in SERVICES
    for m in s.methods
    if not m.server_streaming and m.name != "HandleReloadConfigRequest"
}
BAD = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED}


def _config(model_base: Path) -> str:
    return f"""model_config_list {{
        config {{ name: 'linear' base_path: '{model_base / "linear"}' version_labels {{ key: 'stable' value: 1 }} }}
        config {{ name: 'multi' base_path: '{model_base / "multi"}' }} }}"""


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, model_base: Path, grpc_server_flag: str
) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("grpc-fuzz")
    (tmp / "models.config").write_text(_config(model_base))
    args = [f"--model_config_file={tmp / 'models.config'}", grpc_server_flag]
    with ServerProcess.running(args, tmp / "server.log") as proc:
        yield proc


def _code(call: grpc.UnaryUnaryMultiCallable, request: object, timeout: float) -> grpc.StatusCode:
    try:
        call(request, timeout=timeout)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def _still_serves(channel: grpc.Channel) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "linear"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones((2, 3), np.float32)))
    call = channel.unary_unary(
        "/tensorflow.serving.PredictionService/Predict",
        request_serializer=predict_pb2.PredictRequest.SerializeToString,
        response_deserializer=predict_pb2.PredictResponse.FromString,
    )
    assert len(call(request, timeout=20).outputs["y"].float_val) == 2


@pytest.mark.parametrize("rpc", sorted(RPCS))
def test_every_rpc_with_messages_from_its_descriptor(server: ServerProcess, rpc: str) -> None:
    method = RPCS[rpc]
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        call = channel.unary_unary(
            rpc, request_serializer=lambda m: m.SerializeToString(), response_deserializer=None
        )

        @settings(
            max_examples=250,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(request=messages(method.input_type))
        def run(request: object) -> None:
            assert _code(call, request, 20) not in BAD, request

        run()
        _still_serves(channel)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=64), rpc=st.sampled_from(sorted(RPCS)))
def test_bytes_that_are_not_messages(server: ServerProcess, data: bytes, rpc: str) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        assert _code(channel.unary_unary(rpc), data, 20) not in BAD, data


def test_reload_config_with_generated_configs(server: ServerProcess, model_base: Path) -> None:
    """ReloadConfig waits for the new models (bounded); the client's deadline may end that wait,
    but no config is answered with INTERNAL/UNKNOWN, and the real config serves again after."""
    rpc = "/tensorflow.serving.ModelService/HandleReloadConfigRequest"
    descriptor = model_management_pb2.ReloadConfigRequest.DESCRIPTOR
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        call = channel.unary_unary(
            rpc,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=model_management_pb2.ReloadConfigResponse.FromString,
        )

        @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(request=messages(descriptor))
        def run(request: model_management_pb2.ReloadConfigRequest) -> None:
            assert _code(call, request, 2) not in {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}, request

        run()
        from google.protobuf import text_format

        restore = model_management_pb2.ReloadConfigRequest()
        text_format.Parse(_config(model_base), restore.config)
        assert call(restore, timeout=120).status.error_code == 0
        _still_serves(channel)
