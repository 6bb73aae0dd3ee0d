"""REST load with Debian's ``wrk``: closed loop, N connections each with one request in flight."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from bench import procs
from bench.load import LoadResult

SCRIPT = Path(__file__).with_name("post.lua")


def find_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk not found: install it with `apt-get install -y wrk` (or bench/tools/setup)")
    return path


def version(wrk: str) -> str:
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).splitlines()[0].split(" Copyright")[0].strip()


def run(
    wrk: str,
    url: str,
    body: bytes,
    connections: int,
    seconds: int,
    threads: int = 1,
    timeout_s: float = 5.0,
    cpus: Sequence[int] | None = None,
) -> LoadResult:
    """Drive ``url`` for ``seconds`` (integer: wrk's unit) and return the summary."""
    threads = max(1, min(threads, connections))
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={timeout_s:g}s",
        "-s",
        str(SCRIPT),
        url,
    ]
    env = {**os.environ, "BENCH_BODY": body.decode()}
    rc, out, err, cpu = procs.run_bounded(argv, timeout=seconds + timeout_s + 30, env=env, cpus=cpus)
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if rc != 0 or line is None:
        raise RuntimeError(f"wrk failed (rc={rc}): {err.strip() or out.strip()}")
    r = json.loads(line.split(" ", 1)[1])
    errors = {k: int(r[k]) for k in ("status", "connect", "read", "write", "timeout") if r[k]}
    if "status" in errors:
        errors["http_4xx_5xx"] = errors.pop("status")
    return LoadResult(
        ok=int(r["requests"]) - int(r["status"]),
        errors=errors,
        duration_s=r["duration_us"] / 1e6,
        p50_ms=r["p50_us"] / 1e3,
        p90_ms=r["p90_us"] / 1e3,
        p99_ms=r["p99_us"] / 1e3,
        mean_ms=r["mean_us"] / 1e3,
        max_ms=r["max_us"] / 1e3,
        loadgen_cpu_s=cpu,
    )
