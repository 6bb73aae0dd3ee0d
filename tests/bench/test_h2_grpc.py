"""The prototype HTTP/2 gRPC server (bench/servers/h2_grpc.py): correct for the official client.

The server runs as a real subprocess on 127.0.0.1 and is called through the official grpcio
PredictionService stubs: the fixed answer, 50 concurrent calls on one channel, a request larger
than the 64 KiB stream window (flow control), an unknown method, deadlines and cancels on a slow
server; and Modelship's real Predict on the same server (bench/servers/h2_modelship.py): a real
prediction, Modelship's own errors, its batch queue with REST /metrics beside it. In-process tests feed raw frames to one connection: PING and SETTINGS are acknowledged,
a response larger than the peer's window waits for WINDOW_UPDATE, a compressed message and a
bad preface are refused, responses queue while the connection window is shut; and the HPACK helpers' cache stays correct.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import hpack
import pytest

from bench.servers import h2_conn, h2_hpack
from bench.servers.h2_conn import H2Connection
from tests.fixtures import ROOT, free_port


def start_server(log: Path, *extra: str, module: str = "h2_grpc") -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    argv = [sys.executable, "-m", f"bench.servers.{module}", f"--port={port}", *extra]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"h2_grpc exited: {log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"127.0.0.1:{port}"
        time.sleep(0.2)
    proc.kill()
    raise TimeoutError("h2_grpc did not listen within 120 s")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, address = start_server(tmp_path_factory.mktemp("h2") / "server.log", "--model-name=linear")
    yield address
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, address = start_server(
        tmp_path_factory.mktemp("h2") / "slow.log", "--model-name=linear", "--delay-ms=300"
    )
    yield address
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def modelship_server(tmp_path_factory: pytest.TempPathFactory, model_base: Path) -> Iterator[str]:
    flags = ("--model_name=linear", f"--model_base_path={model_base / 'linear'}")
    proc, address = start_server(
        tmp_path_factory.mktemp("h2") / "modelship.log", *flags, module="h2_modelship"
    )
    yield address
    proc.terminate()
    proc.wait(10)


def stub(address: str) -> tuple[grpc.Channel, Any]:
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channel = grpc.insecure_channel(address)
    return channel, prediction_service_pb2_grpc.PredictionServiceStub(channel)


def request(floats: int = 3) -> Any:
    from tensorflow_serving.apis import predict_pb2

    req = predict_pb2.PredictRequest()
    req.model_spec.name = "linear"
    x = req.inputs["x"]
    x.dtype = 1
    x.tensor_shape.dim.add().size = 1
    x.tensor_shape.dim.add().size = floats
    x.float_val.extend(float(i) for i in range(floats))
    return req


@pytest.mark.slow
def test_official_client_gets_the_fixed_answer(server: str) -> None:
    from bench.servers.bare_grpc import fixed_response

    channel, client = stub(server)
    with channel:
        assert client.Predict(request(), timeout=10) == fixed_response("linear")


@pytest.mark.slow
def test_fifty_concurrent_calls_on_one_channel(server: str) -> None:
    channel, client = stub(server)
    with channel:
        calls = [client.Predict.future(request(), timeout=20) for _ in range(50)]
        names = [call.result().model_spec.name for call in calls]
    assert names == ["linear"] * 50


@pytest.mark.slow
def test_request_larger_than_the_stream_window(server: str) -> None:
    big = request(100_000)
    assert big.ByteSize() > 6 * 65_535  # several stream and connection windows' worth
    channel, client = stub(server)
    with channel:
        for _ in range(3):  # the windows keep being given back, call after call
            assert client.Predict(big, timeout=20).model_spec.name == "linear"


@pytest.mark.slow
def test_unknown_method_is_unimplemented(server: str) -> None:
    from tensorflow_serving.apis import get_model_metadata_pb2

    channel, client = stub(server)
    with channel:
        with pytest.raises(grpc.RpcError) as caught:
            client.GetModelMetadata(get_model_metadata_pb2.GetModelMetadataRequest(), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "GetModelMetadata" in caught.value.details()
        assert client.Predict(request(), timeout=10).model_spec.name == "linear"  # channel still fine


@pytest.mark.slow
def test_deadline_and_cancel_leave_the_connection_usable(slow_server: str) -> None:
    channel, client = stub(slow_server)
    with channel:
        assert client.Predict(request(), timeout=10).model_spec.name == "linear"  # connected
        with pytest.raises(grpc.RpcError) as caught:
            client.Predict(request(), timeout=0.05)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        call = client.Predict.future(request(), timeout=10)
        time.sleep(0.05)
        assert call.cancel()
        with pytest.raises(grpc.FutureCancelledError):
            call.result()
        time.sleep(0.4)  # the server's tasks for both would have answered by now
        calls = [client.Predict.future(request(), timeout=10) for _ in range(5)]
        assert [c.result().model_spec.name for c in calls] == ["linear"] * 5


@pytest.mark.slow
def test_modelship_predict_on_the_prototype(modelship_server: str) -> None:
    channel, client = stub(modelship_server)
    with channel:
        deadline = time.monotonic() + 120
        while True:  # the listener is up before the model has loaded
            try:
                response = client.Predict(request(), timeout=10)
                break
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        assert response.model_spec.name == "linear"
        assert response.model_spec.version.value == 1
        (output,) = response.outputs.values()
        assert len(output.float_val) == 1  # one row in, one prediction out
        bad = request()
        bad.inputs["x"].dtype = 0  # DT_INVALID: Modelship's own error, through the context's abort
        with pytest.raises(grpc.RpcError) as caught:
            client.Predict(bad, timeout=10)
        assert caught.value.code() != grpc.StatusCode.OK
        assert "dtype" in caught.value.details()
        missing = request()
        missing.model_spec.name = "nope"
        with pytest.raises(grpc.RpcError) as caught:
            client.Predict(missing, timeout=10)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


# -- one connection in process, raw frames ---------------------------------------------------------


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.is_closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.is_closed = True

    def frames(self) -> list[tuple[int, int, int, bytes]]:
        """(type, flags, stream, payload) of everything written so far, which is then forgotten."""
        out, data, i = [], bytes(self.written), 0
        while i < len(data):
            length = int.from_bytes(data[i : i + 3], "big")
            kind, flags, sid = data[i + 3], data[i + 4], struct.unpack_from(">I", data, i + 5)[0]
            out.append((kind, flags, sid, data[i + 9 : i + 9 + length]))
            i += 9 + length
        self.written.clear()
        return out


def connect(methods: dict[str, h2_conn.Unary]) -> tuple[H2Connection, FakeTransport]:
    conn, transport = H2Connection(methods), FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(h2_conn.PREFACE + h2_conn.frame(h2_conn.SETTINGS, 0, 0))
    assert [(k, f) for k, f, _, _ in transport.frames()] == [(h2_conn.SETTINGS, 0), (h2_conn.SETTINGS, 1)]
    return conn, transport


def call_frames(encoder: hpack.Encoder, sid: int, message: bytes, flag: int = 0) -> bytes:
    block = encoder.encode(
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/p/M"),
            (":authority", "x"),
            ("content-type", "application/grpc"),
        ]
    )
    body = bytes([flag]) + len(message).to_bytes(4, "big") + message
    return h2_conn.frame(h2_conn.HEADERS, h2_conn.END_HEADERS, sid, block) + h2_conn.frame(
        h2_conn.DATA, h2_conn.END_STREAM, sid, body
    )


def grpc_status(block: bytes, decoder: hpack.Decoder) -> str:
    return dict(decoder.decode(block))["grpc-status"]


def test_ping_is_acknowledged_with_its_payload() -> None:
    conn, transport = connect({})
    conn.data_received(h2_conn.frame(h2_conn.PING, 0, 0, b"12345678"))
    assert transport.frames() == [(h2_conn.PING, h2_conn.ACK, 0, b"12345678")]


def test_response_waits_for_the_peers_window() -> None:
    answer = b"a" * 100_000
    conn, transport = connect({"/p/M": lambda message: answer})
    encoder, decoder = hpack.Encoder(), hpack.Decoder()
    conn.data_received(call_frames(encoder, 1, b"hi"))
    sent = transport.frames()
    kinds = [k for k, _, _, _ in sent]
    assert kinds[0] == h2_conn.HEADERS
    assert h2_conn.HEADERS not in kinds[1:]
    assert sum(len(p) for k, _, _, p in sent if k == h2_conn.DATA) == 65_535  # one window's worth
    assert all(len(p) <= 16_384 for k, _, _, p in sent if k == h2_conn.DATA)
    more = 100_005 - 65_535
    conn.data_received(h2_conn.frame(h2_conn.WINDOW_UPDATE, 0, 0, struct.pack(">I", more)))
    assert transport.frames() == []  # the stream's window is still shut
    conn.data_received(h2_conn.frame(h2_conn.WINDOW_UPDATE, 0, 1, struct.pack(">I", more)))
    sent = transport.frames()
    assert sum(len(p) for k, _, _, p in sent if k == h2_conn.DATA) == more
    kind, flags, _, block = sent[-1]
    assert kind == h2_conn.HEADERS
    assert flags & h2_conn.END_STREAM
    decoder.decode(b"\x88")  # (the response headers block: static, nothing to track)
    assert grpc_status(block, decoder) == "0"


def test_compressed_message_and_handler_error_are_trailers_only() -> None:
    def refuse(message: bytes) -> bytes:
        raise h2_conn.GrpcError(3, "bad 100% ünicode")

    conn, transport = connect({"/p/M": refuse})
    encoder, decoder = hpack.Encoder(), hpack.Decoder()
    conn.data_received(call_frames(encoder, 1, b"hi", flag=1) + call_frames(encoder, 3, b"hi"))
    (k1, f1, s1, b1), (k2, f2, s2, b2) = transport.frames()
    assert (k1, s1, k2, s2) == (h2_conn.HEADERS, 1, h2_conn.HEADERS, 3)
    assert f1 & h2_conn.END_STREAM
    assert f2 & h2_conn.END_STREAM
    first, second = dict(decoder.decode(b1)), dict(decoder.decode(b2))
    assert first["grpc-status"] == "12"
    assert "compressed" in first["grpc-message"]
    assert second["grpc-status"] == "3"
    assert second["grpc-message"] == "bad 100%25 %C3%BCnicode"


def test_bad_preface_is_a_connection_error() -> None:
    conn, transport = H2Connection({}), FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    transport.frames()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert [k for k, _, _, _ in transport.frames()] == [h2_conn.GOAWAY]
    assert transport.is_closed


def test_async_handler_reset_by_the_peer_never_answers() -> None:
    async def scenario() -> list[int]:
        started = asyncio.Event()

        async def slow() -> bytes:
            started.set()
            await asyncio.sleep(10)
            return b"late"

        conn, transport = connect({"/p/M": lambda message: slow()})
        conn.data_received(call_frames(hpack.Encoder(), 1, b"hi"))
        await started.wait()
        conn.data_received(h2_conn.frame(h2_conn.RST_STREAM, 0, 1, struct.pack(">I", 8)))
        await asyncio.sleep(0)
        assert not conn.streams
        return [k for k, _, _, _ in transport.frames()]

    assert asyncio.run(scenario()) == []


def test_hpack_cache_only_keeps_blocks_that_leave_the_table_alone() -> None:
    encoder = hpack.Encoder()
    first = encoder.encode([(":path", "/a"), ("x-k", "v1")])  # incremental indexing: never cached
    again = encoder.encode([(":path", "/a"), ("x-k", "v1")])  # all indexed now: cached
    insert = encoder.encode([("x-k", "v2")])  # a new entry shifts every dynamic index
    assert not h2_hpack.leaves_table_alone(first)
    assert h2_hpack.leaves_table_alone(again)
    assert not h2_hpack.leaves_table_alone(insert)
    cached, plain = h2_hpack.Decoder(), hpack.Decoder()
    for block in (first, again, again, insert, again, again):  # the same bytes, other meanings
        assert cached.decode(block) == plain.decode(block)
    assert cached.decode(again) != [(":path", "/a"), ("x-k", "v1")]  # after the shift


def test_encoded_blocks_decode_with_hpack() -> None:
    fields = [(":status", "200"), ("content-type", "application/grpc"), ("grpc-message", "x" * 300)]
    assert hpack.Decoder().decode(h2_hpack.encode(fields)) == fields
    assert h2_hpack.leaves_table_alone(h2_hpack.encode(fields))


def test_responses_queue_while_the_connection_window_is_shut() -> None:
    conn, transport = connect({"/p/M": lambda message: b"b" * 70_000})
    encoder = hpack.Encoder()
    conn.data_received(b"".join(call_frames(encoder, sid, b"hi") for sid in (1, 3, 5)))
    transport.frames()
    assert list(conn.blocked) == [1, 3, 5]  # the first has used the whole connection window
    grant = b"".join(
        h2_conn.frame(h2_conn.WINDOW_UPDATE, 0, sid, struct.pack(">I", 200_000)) for sid in (1, 3, 5)
    )
    conn.data_received(grant + h2_conn.frame(h2_conn.WINDOW_UPDATE, 0, 0, struct.pack(">I", 300_000)))
    ends = [
        sid
        for kind, flags, sid, _ in transport.frames()
        if kind == h2_conn.HEADERS and flags & h2_conn.END_STREAM
    ]
    assert ends == [1, 3, 5]  # answered in order
    assert not conn.blocked
    assert not conn.streams


def test_modelship_batching_on_the_prototype_merges_and_reports_on_its_rest_metrics(
    tmp_path: Path, model_base: Path
) -> None:
    """h2-modelship-batching: the batch queue serves the prototype's calls; /metrics on REST shows it."""
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    rest = free_port()
    batching = tmp_path / "batching.pbtxt"
    batching.write_text("max_batch_size { value: 64 } batch_timeout_micros { value: 20000 }\n")
    flags = (
        "--model_name=linear",
        f"--model_base_path={model_base / 'linear'}",
        f"--rest_api_port={rest}",
        "--enable_batching=true",
        f"--batching_parameters_file={batching}",
    )
    proc, address = start_server(tmp_path / "batching.log", *flags, module="h2_modelship")
    try:
        channel, client = stub(address)
        with channel:
            deadline = time.monotonic() + 120
            while True:  # the listener is up before the model has loaded
                try:
                    client.Predict(request(), timeout=10)
                    break
                except grpc.RpcError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)
            with ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(lambda _: client.Predict(request(), timeout=10), range(16)))
        assert all(len(a.outputs["y"].float_val) == 1 for a in answers)
        url = f"http://127.0.0.1:{rest}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        values = {
            line.split()[0]: float(line.split()[1])
            for line in text.splitlines()
            if line.startswith(("modelship_batch_size_sum", "modelship_batch_size_count"))
        }
        assert values["modelship_batch_size_sum"] == 17  # every row went through the batch queue
        assert values["modelship_batch_size_count"] < 17  # the 20 ms timeout merged concurrent calls
    finally:
        proc.terminate()
        proc.wait(10)
