"""The in-flight memory budget: unit behaviour, cgroup limit discovery, and a real flood under a limit."""

from __future__ import annotations

import concurrent.futures
import json
import time
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from service.errors import InvalidArgument, MemoryExhausted, PayloadTooLarge
from service.memory import MemoryBudget, cgroup_limits
from tests.fixtures import ServerProcess
from tests.memory_cgroup import memory_cgroup


def test_reservations_share_the_budget_and_give_it_back() -> None:
    refusals: list[str] = []
    budget = MemoryBudget(1000, refusals.append)
    a, b = budget.reservation(), budget.reservation()
    a.take(600, "a")
    with pytest.raises(MemoryExhausted, match="in use"):
        b.take(500, "b")
    b.take(400, "b")
    assert budget.in_use == 1000
    a.release()
    a.release()  # idempotent
    assert budget.in_use == 400
    with pytest.raises(PayloadTooLarge, match="more than the server's memory budget"):
        b.take(700, "the body")
    with pytest.raises(InvalidArgument):
        b.take(2000, "input 'x'", InvalidArgument)
    assert refusals == ["busy", "too_large", "too_large"]
    del b  # a dropped reservation gives its bytes back
    assert budget.in_use == 0


def test_memory_exhausted_is_503_and_resource_exhausted() -> None:
    exc = MemoryExhausted("full")
    assert exc.http_status == 503
    assert exc.code.name == "RESOURCE_EXHAUSTED"


def _files(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_cgroup_v1_limits_of_the_group_and_its_parents(tmp_path: Path) -> None:
    _files(
        tmp_path,
        {
            "proc": "4:memory:/kubepods/pod1/c1\n3:cpu:/x\n0::/\n",
            "cg/memory/kubepods/pod1/c1/memory.limit_in_bytes": "2147483648\n",
            "cg/memory/kubepods/memory.limit_in_bytes": "9223372036854771712\n",
            "cg/memory/memory.limit_in_bytes": "9223372036854771712\n",
        },
    )
    assert cgroup_limits(tmp_path / "proc", tmp_path / "cg") == [2147483648]


def test_cgroup_inside_a_container_falls_back_to_its_own_root(tmp_path: Path) -> None:
    # Docker on cgroup v1 shows the host path in /proc/self/cgroup but mounts the group at the root.
    _files(tmp_path, {"proc": "4:memory:/docker/abc\n", "cg/memory/memory.limit_in_bytes": "536870912"})
    assert cgroup_limits(tmp_path / "proc", tmp_path / "cg") == [536870912]


def test_cgroup_v2_max_and_numbers(tmp_path: Path) -> None:
    _files(
        tmp_path,
        {
            "proc": "0::/kubepods.slice/pod.scope\n",
            "cg/kubepods.slice/pod.scope/memory.max": "1073741824\n",
            "cg/kubepods.slice/memory.max": "max\n",
        },
    )
    assert cgroup_limits(tmp_path / "proc", tmp_path / "cg") == [1073741824]
    assert cgroup_limits(tmp_path / "missing", tmp_path / "cg") == []


def _tensor(shape: list[int], content: bytes = b"") -> tensor_pb2.TensorProto:
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT,
        tensor_content=content,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape]
        ),
    )


@pytest.mark.slow
def test_a_flood_of_large_and_hostile_requests_under_a_2gib_limit_is_refused_never_oom_killed(
    tmp_path: Path, model_base: Path
) -> None:
    """The chart's default limit (2 GiB): large bodies, JSON bombs and huge claimed shapes at once."""
    large = json.dumps({"instances": [[1.2345, 2.5, -3.25]] * 2_000_000}).encode()  # ~38 MB < 64 MB limit
    bomb = b'{"instances": [' + b",".join([b"[]"] * (13 << 20)) + b"]}"  # ~40 MB of empty lists
    with memory_cgroup(2 << 30) as group:
        server = ServerProcess(
            [f"--model_base_path={model_base / 'linear'}", "--model_name=linear"],
            log=tmp_path / "server.log",
            prefix=group.prefix,
        )
        try:
            server.wait_ready(120)

            def post(body: bytes) -> str:
                try:
                    r = httpx.post(f"{server.url}/v1/models/linear:predict", content=body, timeout=120)
                except httpx.HTTPError as exc:
                    return f"transport:{type(exc).__name__}"
                assert set(r.json()) in ({"predictions"}, {"error"}), r.text[:200]
                return str(r.status_code)

            def claim(kind: int) -> str:
                with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
                    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                    req = predict_pb2.PredictRequest()
                    req.model_spec.name = "linear"
                    # a 40-byte claim of 10^12 floats, or 40 MB of real ones
                    req.inputs["x"].CopyFrom(
                        _tensor([10**6, 10**6])
                        if kind
                        else _tensor([3_333_333, 3], np.ones(9_999_999, np.float32).tobytes())
                    )
                    try:
                        stub.Predict(req, timeout=120)
                        return "OK"
                    except grpc.RpcError as exc:
                        return exc.code().name

            started = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                kinds = {
                    "large": [pool.submit(post, large) for _ in range(12)],
                    "bomb": [pool.submit(post, bomb) for _ in range(4)],
                    "claim": [pool.submit(claim, i % 2) for i in range(8)],
                }
                answers = {kind: [f.result() for f in futures] for kind, futures in kinds.items()}
            elapsed = time.monotonic() - started
            print(f"flood answered in {elapsed:.1f}s: {answers}; cgroup peak {group.peak_bytes() >> 20} MiB")
            assert server.proc.poll() is None, server.logs()
            assert group.oom_kills() == 0
            # Served or refused at once (busy); a bomb can never fit (413) unless refused busy first.
            assert set(answers["large"]) <= {"200", "503"}, answers
            assert set(answers["bomb"]) <= {"413", "503"}, answers
            assert set(answers["claim"]) <= {"OK", "RESOURCE_EXHAUSTED", "INVALID_ARGUMENT"}, answers
            assert "503" in answers["large"], answers  # the budget refused some
            assert "INVALID_ARGUMENT" in answers["claim"], answers  # 10^12-element claims never fit
            assert post(bomb) == "413"  # alone, a bomb is refused as too large, not as busy
            ok = httpx.post(f"{server.url}/v1/models/linear:predict", json={"instances": [[1.0, 2.0, 3.0]]})
            assert ok.status_code == 200, ok.text
            metrics = httpx.get(f"{server.url}/metrics").text
            assert 'modelship_memory_refusals_total{reason="busy"}' in metrics
            assert "modelship_memory_in_use_bytes 0.0" in metrics
        finally:
            assert server.terminate() == 0, server.logs()
