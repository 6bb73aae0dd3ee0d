"""Dynamic batching: identical results, bounded queue, failure isolation, lossless shutdown."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from service.batching import Batcher, BatchingParameters
from service.dataplane import DataPlane
from service.errors import InvalidArgument, Unavailable
from service.model_config import ModelConfig
from service.repository import ModelRepository
from tests.fixtures import ServerProcess, export_slow


def test_parse_tf_serving_batching_parameters() -> None:
    p = BatchingParameters.parse(
        """
        max_batch_size { value: 128 }   # comment
        batch_timeout_micros { value: 500 }
        max_enqueued_batches { value: 7 }
        num_batch_threads { value: 3 }
        allowed_batch_sizes: 32 allowed_batch_sizes: 128
        thread_pool_name { value: "batch_threads" }""",
        default_threads=2,
    )
    assert p == BatchingParameters(128, 500, 7, 3, (32, 128))
    assert BatchingParameters.parse("max_batch_size: 8", default_threads=5).num_batch_threads == 5
    with pytest.raises(InvalidArgument, match="last entry must match max_batch_size"):
        BatchingParameters.parse("max_batch_size { value: 64 } allowed_batch_sizes: 32", 1)
    with pytest.raises(InvalidArgument, match="unknown batching parameter 'max_batch'"):
        BatchingParameters.parse("max_batch { value: 64 }", 1)


def _dataplane(base: Path, params: BatchingParameters | None, fast: bool) -> DataPlane:
    repo = ModelRepository(
        [ModelConfig("linear", str(base / "linear"))],
        poll_seconds=-1,
        settle_seconds=0,
        runtime="auto" if fast else "tensorflow",
    )
    repo.poll_once()
    return DataPlane(repo, batching=params)


@pytest.mark.parametrize("fast", [False, True], ids=["tensorflow", "litert"])
def test_batched_results_equal_unbatched_for_mixed_sizes(model_base: Path, fast: bool) -> None:
    rng = np.random.default_rng(0)
    requests = [rng.normal(size=(int(rng.integers(1, 6)), 3)).astype(np.float32) for _ in range(300)]
    sizes: list[int] = []
    plain = _dataplane(model_base, None, fast)
    batched = _dataplane(
        model_base,
        BatchingParameters(
            max_batch_size=32, batch_timeout_micros=2000, max_enqueued_batches=100, num_batch_threads=2
        ),
        fast,
    )
    batched._on_batch = sizes.append

    async def run_all(plane: DataPlane) -> list[np.ndarray]:
        servable = plane.resolve(__import__("service.dataplane").dataplane.ModelRef("linear"))
        info = servable.signature(None)
        results = await asyncio.gather(*(plane.predict(servable, info, {"x": x}) for x in requests))
        return [r.outputs["y"] for r in results]

    want = asyncio.run(run_all(plain))
    got = asyncio.run(run_all(batched))
    for w, g, x in zip(want, got, requests, strict=True):
        assert g.shape == (len(x),)
        np.testing.assert_allclose(g, w, rtol=1e-6)
    assert sum(sizes) == sum(len(x) for x in requests)
    assert max(sizes) > 5, f"requests were not merged: {sizes[:20]}"
    assert max(sizes) <= 32


def test_queue_bound_refuses_instead_of_growing() -> None:
    async def scenario() -> tuple[int, int, int]:
        gate = asyncio.Event()

        async def execute(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            await gate.wait()
            return {"y": inputs["x"][:, 0]}

        batcher = Batcher(
            BatchingParameters(max_batch_size=4, max_enqueued_batches=2, num_batch_threads=1), execute
        )
        x = np.ones((1, 3), np.float32)
        tasks = [asyncio.ensure_future(batcher.submit({"x": x}, 1)) for _ in range(30)]
        await asyncio.sleep(0.05)
        refused = [t for t in tasks if t.done() and isinstance(t.exception(), Unavailable)]
        queued = batcher.queued_rows
        gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        served = sum(1 for r in results if isinstance(r, dict))
        return len(refused), queued, served

    refused, queued, served = asyncio.run(scenario())
    assert queued <= 8, "never more than max_enqueued_batches x max_batch_size rows queued"
    assert refused > 0
    assert refused + served == 30
    assert "queue to which this task was submitted is full" in str(
        Unavailable("The batch scheduling queue to which this task was submitted is full")
    )


def test_a_failing_request_fails_only_itself() -> None:
    async def scenario() -> list[object]:
        async def execute(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            await asyncio.sleep(0.001)
            if (inputs["x"] < 0).any():
                raise InvalidArgument("negative input")
            return {"y": inputs["x"].sum(axis=1)}

        batcher = Batcher(
            BatchingParameters(max_batch_size=16, batch_timeout_micros=20000, num_batch_threads=1), execute
        )
        xs = [np.full((1, 2), -1.0 if i == 3 else float(i), np.float32) for i in range(8)]
        return await asyncio.gather(*(batcher.submit({"x": x}, 1) for x in xs), return_exceptions=True)

    results = asyncio.run(scenario())
    assert isinstance(results[3], InvalidArgument)
    for i, r in enumerate(results):
        if i != 3:
            assert isinstance(r, dict)
            assert r["y"].tolist() == [2.0 * i]


def test_oversize_task_is_invalid_argument() -> None:
    async def execute(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return inputs

    batcher = Batcher(BatchingParameters(max_batch_size=4), execute)
    with pytest.raises(InvalidArgument, match="Task size 5 is larger than maximum input batch size 4"):
        asyncio.run(batcher.submit({"x": np.zeros((5, 1))}, 5))


@pytest.mark.slow
def test_both_transports_share_batches_and_shutdown_loses_no_accepted_request(tmp_path: Path) -> None:
    export_slow(tmp_path)
    params = tmp_path / "batching.pbtxt"
    params.write_text(
        "max_batch_size { value: 16 } batch_timeout_micros { value: 50000 } "
        "max_enqueued_batches { value: 100 } num_batch_threads { value: 1 }"
    )
    server = ServerProcess(
        [
            f"--model_base_path={tmp_path / 'slow'}",
            "--model_name=slow",
            "--enable_batching",
            f"--batching_parameters_file={params}",
            "--shutdown_timeout_seconds=30",
            "--shutdown_delay_seconds=1",
        ],
        log=tmp_path / "server.log",
    )
    server.wait_ready()
    results: list[object] = []
    lock = threading.Lock()

    def rest_call() -> None:
        try:
            r = httpx.post(f"{server.url}/v1/models/slow:predict", json={"instances": [1500]}, timeout=60)
            out: object = r.status_code
        except httpx.HTTPError as exc:
            out = repr(exc)
        with lock:
            results.append(out)

    def grpc_call() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
            req = predict_pb2.PredictRequest()
            req.model_spec.name = "slow"
            req.inputs["n"].CopyFrom(tf.make_tensor_proto(np.array([1500], np.int32)))
            try:
                prediction_service_pb2_grpc.PredictionServiceStub(ch).Predict(req, timeout=60)
                out: object = 200
            except grpc.RpcError as exc:
                out = str(exc.code())
        with lock:
            results.append(out)

    def wave() -> list[threading.Thread]:
        threads = [threading.Thread(target=rest_call if i % 2 else grpc_call) for i in range(24)]
        for t in threads:
            t.start()
        return threads

    # 1: REST and gRPC requests are merged into shared model calls
    for t in wave():
        t.join()
    metrics = httpx.get(f"{server.url}/metrics").text
    calls = float(
        next(
            line.split()[-1] for line in metrics.splitlines() if line.startswith("modelship_batch_size_count")
        )
    )
    rows = float(
        next(line.split()[-1] for line in metrics.splitlines() if line.startswith("modelship_batch_size_sum"))
    )
    assert rows == 24
    assert calls < 24, "concurrent requests must share model calls"
    # 2: SIGTERM while requests are queued: every accepted one is answered
    results.clear()
    threads = wave()
    time.sleep(0.4)
    server.proc.send_signal(15)
    for t in threads:
        t.join()
    assert server.wait(60) == 0, server.logs()
    assert results == [200] * 24, results


def test_requests_arriving_over_several_loop_iterations_share_a_batch() -> None:
    """grpc.aio hands concurrent RPCs to the loop one iteration apart: they must still merge."""
    sizes: list[int] = []

    async def execute(merged: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": merged["x"] * 2}

    async def staggered(batcher: Batcher, i: int) -> np.ndarray:
        for _ in range(i):  # request i reaches the batcher i loop iterations after the first
            await asyncio.sleep(0)
        out = await batcher.submit({"x": np.full((1, 1), float(i))}, 1)
        return out["y"]

    async def scenario() -> tuple[list[np.ndarray], list[int]]:
        batcher = Batcher(BatchingParameters(max_batch_size=64, num_batch_threads=1), execute, sizes.append)
        burst = await asyncio.gather(*(staggered(batcher, i) for i in range(20)))
        sizes_after_burst = list(sizes)
        await staggered(batcher, 0)  # alone: answered after one idle iteration, in a batch of one
        return list(burst), sizes_after_burst

    results, burst_sizes = asyncio.run(scenario())
    assert [float(r[0, 0]) for r in results] == [2.0 * i for i in range(20)]
    assert burst_sizes == [20]
    assert sizes == [20, 1]
