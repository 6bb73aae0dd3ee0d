"""gRPC load with ghz, built from source through the Go module proxy (``bench/tools/build-ghz``).

The request is the serialized PredictRequest (``-B``), so ghz does no JSON-to-proto work per call;
the method comes from a descriptor set generated at run time (``bench.load.tfs.write_protoset``).
``GOMAXPROCS`` is set to the number of CPUs the load generator gets, like wrk's one thread.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from bench import procs
from bench.load import LoadResult
from bench.load.tfs import PREDICT_METHOD

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "bench" / "tools" / "build-ghz"


def find_ghz() -> str:
    """Path of the pinned ghz, building it on first use; raises if it cannot be had."""
    out = subprocess.run([str(BUILD)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"cannot build ghz: {out.stderr.strip()[-500:]}")
    return out.stdout.strip().splitlines()[-1]


def version(ghz: str) -> str:
    out = subprocess.run([ghz, "--version"], capture_output=True, text=True, check=False)
    return f"ghz {(out.stdout or out.stderr).strip()}"


def run(
    ghz: str,
    address: str,
    protoset: Path,
    request_file: Path,
    concurrency: int,
    connections: int,
    seconds: int,
    timeout_s: float = 5.0,
    cpus: Sequence[int] | None = None,
) -> LoadResult:
    """``concurrency`` calls in flight over ``connections`` HTTP/2 connections for ``seconds``."""
    argv = [
        ghz,
        "--insecure",
        f"--protoset={protoset}",
        f"--call={PREDICT_METHOD}",
        f"--binary-file={request_file}",
        f"--concurrency={concurrency}",
        f"--connections={max(1, min(connections, concurrency))}",
        f"--duration={seconds}s",
        "--duration-stop=ignore",
        f"--timeout={timeout_s:g}s",
        "--format=json",
        address,
    ]
    env = {**os.environ, "GOMAXPROCS": str(len(cpus) if cpus else os.cpu_count() or 1)}
    rc, out, err, cpu = procs.run_bounded(argv, timeout=seconds + timeout_s + 30, env=env, cpus=cpus)
    if not out.strip().startswith("{"):
        raise RuntimeError(f"ghz failed (rc={rc}): {err.strip() or out.strip()}")
    r = json.loads(out)
    codes: dict[str, int] = dict(r.get("statusCodeDistribution") or {})
    ok = int(codes.pop("OK", 0))
    pct = {int(p["percentage"]): p["latency"] / 1e6 for p in r.get("latencyDistribution") or []}
    return LoadResult(
        ok=ok,
        errors={k: int(v) for k, v in codes.items() if v},
        duration_s=r["total"] / 1e9,
        p50_ms=pct.get(50, 0.0),
        p90_ms=pct.get(90, 0.0),
        p99_ms=pct.get(99, 0.0),
        mean_ms=r.get("average", 0) / 1e6,
        max_ms=r.get("slowest", 0) / 1e6,
        loadgen_cpu_s=cpu,
    )
