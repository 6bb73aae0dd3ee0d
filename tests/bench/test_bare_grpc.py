"""The bare gRPC ceilings (bench/servers/bare_grpc.py) and how the harness starts every gRPC target.

Both ceilings run as real processes on 127.0.0.1 and must give the official client the same fixed
PredictResponse and the same UNIMPLEMENTED for any other method, so their req/s compare one server
with the other and nothing else; the *-h2 targets must start Modelship with --grpc_server=modelship.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from bench.servers.bare_grpc import fixed_response
from bench.targets import BY_KEY, Context, command
from tests.fixtures import ROOT, free_port


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
@pytest.mark.parametrize("server", ["grpcio", "modelship"])
def test_both_ceilings_serve_the_same_fixed_answer(server: str, tmp_path: Path) -> None:
    from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

    port = free_port()
    argv = [sys.executable, "-m", "bench.servers.bare_grpc", f"--port={port}", f"--server={server}"]
    with (tmp_path / "server.log").open("wb") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not listening(port):
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "the ceiling never listened"
            time.sleep(0.1)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "linear"
            assert stub.Predict(request, timeout=10) == fixed_response("linear")
            with pytest.raises(grpc.RpcError) as caught:
                stub.GetModelMetadata(get_model_metadata_pb2.GetModelMetadataRequest(), timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_h2_targets_start_modelships_own_grpc_server(tmp_path: Path) -> None:
    ctx = Context("linear", tmp_path / "linear", tmp_path / "linear" / "1", tmp_path, None, tmp_path / "b")
    assert "--server=modelship" in command(BY_KEY["bare-grpc-h2"], ctx, 1, 2)
    assert "--server=grpcio" in command(BY_KEY["bare-grpc"], ctx, 1, 2)
    for key in ("modelship-grpc-h2", "modelship-grpc-h2-batching"):
        assert "--grpc_server=modelship" in command(BY_KEY[key], ctx, 1, 2)
    assert "--grpc_server=grpcio" in command(BY_KEY["modelship-grpc"], ctx, 1, 2)
    assert BY_KEY["bare-grpc-h2"].is_ceiling
