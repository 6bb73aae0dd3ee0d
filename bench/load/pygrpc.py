"""Fallback gRPC load generator when ghz cannot be built: several processes of ``grpc.aio`` clients.

Each worker process opens its share of the channels, keeps its share of the calls in flight in a
closed loop, and reports every latency; the parent merges them. Started by the harness as one
process (so it is bounded and accounted like wrk and ghz)::

    python -m bench.load.pygrpc --address 127.0.0.1:8500 --request-file req.bin --concurrency 32 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import multiprocessing
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import procs
from bench.load import LoadResult


async def _worker(
    address: str,
    payload: bytes,
    concurrency: int,
    connections: int,
    start_at: float,
    seconds: float,
    timeout: float,
) -> dict[str, Any]:
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest.FromString(payload)
    channels = [
        grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(max(1, min(connections, concurrency)))
    ]
    stubs = [prediction_service_pb2_grpc.PredictionServiceStub(ch) for ch in channels]
    for ch in channels:
        await ch.channel_ready()
    latencies: list[int] = []
    codes: Counter[str] = Counter()
    await asyncio.sleep(max(0.0, start_at - time.time()))
    end = time.perf_counter() + seconds

    async def loop(stub: Any) -> None:
        while (t0 := time.perf_counter()) < end:
            try:
                await stub.Predict(request, timeout=timeout)
                latencies.append(int((time.perf_counter() - t0) * 1e6))
                codes["OK"] += 1
            except grpc.aio.AioRpcError as exc:
                codes[exc.code().name] += 1

    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(loop(stubs[i % len(stubs)]) for i in range(concurrency)))
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    for ch in channels:
        await ch.close()
    return {"latencies_us": latencies, "codes": dict(codes), "elapsed": elapsed, "cpu": cpu}


def _run_worker(args: tuple[str, bytes, int, int, float, float, float]) -> dict[str, Any]:
    return asyncio.run(_worker(*args))


def drive(
    address: str,
    payload: bytes,
    concurrency: int,
    connections: int,
    seconds: float,
    processes: int,
    timeout: float = 5.0,
) -> LoadResult:
    workers = max(1, min(processes, concurrency))
    shares = [concurrency // workers + (1 if i < concurrency % workers else 0) for i in range(workers)]
    conns = [max(1, connections * s // concurrency) for s in shares]
    start_at = time.time() + 2.0  # every worker connected before the clock starts
    jobs = [(address, payload, s, c, start_at, seconds, timeout) for s, c in zip(shares, conns, strict=True)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        parts = pool.map(_run_worker, jobs)
    latencies = sorted(x for p in parts for x in p["latencies_us"])
    codes: Counter[str] = Counter()
    for p in parts:
        codes.update(p["codes"])
    ok = codes.pop("OK", 0)

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1e3 if latencies else 0.0

    return LoadResult(
        ok=ok,
        errors={k: v for k, v in codes.items() if v},
        duration_s=max(p["elapsed"] for p in parts),
        p50_ms=pct(0.50),
        p90_ms=pct(0.90),
        p99_ms=pct(0.99),
        mean_ms=(sum(latencies) / len(latencies) / 1e3) if latencies else 0.0,
        max_ms=(latencies[-1] / 1e3) if latencies else 0.0,
        loadgen_cpu_s=sum(p["cpu"] for p in parts),
    )


def run(
    address: str,
    request_file: Path,
    concurrency: int,
    connections: int,
    seconds: int,
    processes: int,
    timeout_s: float = 5.0,
    cpus: Sequence[int] | None = None,
) -> LoadResult:
    """Run the client as a separate, bounded process (like wrk and ghz) and read its summary."""
    argv = [
        sys.executable,
        "-m",
        "bench.load.pygrpc",
        f"--address={address}",
        f"--request-file={request_file}",
        f"--concurrency={concurrency}",
        f"--connections={connections}",
        f"--seconds={seconds}",
        f"--processes={processes}",
        f"--timeout={timeout_s}",
    ]
    rc, out, err, _ = procs.run_bounded(
        argv, timeout=seconds + timeout_s + 60, env=dict(os.environ), cpus=cpus
    )
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if rc != 0 or line is None:
        raise RuntimeError(f"python gRPC client failed (rc={rc}): {err.strip()[-1500:]}")
    data = json.loads(line.split(" ", 1)[1])
    names = {f.name for f in dataclasses.fields(LoadResult)}
    # CPU is the workers' own, measured over the load only (their start-up imports TensorFlow).
    return LoadResult(**{k: v for k, v in data.items() if k in names})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load.pygrpc",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--address", required=True, help="host:port of the gRPC server")
    parser.add_argument("--request-file", type=Path, required=True, help="serialized PredictRequest")
    parser.add_argument("--concurrency", type=int, required=True, help="calls in flight")
    parser.add_argument("--connections", type=int, default=0, help="channels (default: = concurrency)")
    parser.add_argument("--seconds", type=float, required=True, help="measured duration")
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--timeout", type=float, default=5.0, help="per-call deadline in seconds")
    args = parser.parse_args(argv)
    result = drive(
        args.address,
        args.request_file.read_bytes(),
        args.concurrency,
        args.connections or args.concurrency,
        args.seconds,
        args.processes,
        args.timeout,
    )
    print("BENCH_RESULT " + json.dumps(result.as_dict()))


if __name__ == "__main__":
    main()
