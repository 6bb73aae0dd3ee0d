"""Smoke test of the benchmark harness (bench/): it runs, measures, reports and cleans up.

Only the seed-style baseline and the bare ASGI ceiling, at one connection for about two seconds
each; the first run also measures the model's compute ceiling at two small batch sizes. Nothing
here depends on how fast anything is (the machines are shared and noisy): the assertions are that
every output exists, every point served real responses without errors, and no server outlives the
harness. Needs wrk (``bench/tools/setup --wrk-only``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures import ROOT

pytestmark = pytest.mark.slow


def harness(model_base: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.run",
        "--quick",
        "--targets=seed,bare-asgi",
        "--connections=1",
        f"--model-base-path={model_base / 'linear'}",
        f"--out-dir={out}",
        *extra,
    ]


def servers_serving(model_base: Path) -> list[str]:
    """Command lines of seed-baseline servers still serving this session's model."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "bench.servers.seed_baseline" in cmdline and str(model_base) in cmdline:
                found.append(cmdline)
    return found


def test_quick_run_prints_table_and_writes_results(tmp_path: Path, model_base: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        harness(
            model_base,
            out,
            "--duration=2",
            "--warmup=1",
            "--compute-ceiling",
            "--ceiling-batches=1,8",
            "--ceiling-seconds=0.2",
        ),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = proc.stdout
    assert "req/s" in table
    assert "p99 ms" in table
    assert "peak RSS MiB" in table
    assert "CPU µs/req" in table
    assert "x compute" in table
    assert "Compute ceiling (" in table
    assert "seed baseline" in table
    assert "bare ASGI" in table
    assert "[ 1/2]" in proc.stderr
    assert "[ 2/2]" in proc.stderr

    data = json.loads((out / "latest.json").read_text())
    points = {p["target"]: p for p in data["points"]}
    assert set(points) == {"seed", "bare-asgi"}
    for point in points.values():
        assert point["connections"] == 1
        assert point["ok"] > 0, point
        assert point["rps"] > 0, point
        assert point["error_count"] == 0, point
        assert not point["flagged"], point
        assert point["peak_rss_mib"] > 0
        assert point["cpu_us_per_request"] > 0, point
        assert point["cpu_us_per_request"] == pytest.approx(point["server_cpu"] / point["rps"] * 1e6)
        assert point["p50_ms"] > 0
        assert point["p99_ms"] >= point["p50_ms"]
    assert points["seed"]["x_seed"] == pytest.approx(1.0)
    assert points["bare-asgi"]["x_ceiling"] == pytest.approx(1.0)
    assert points["seed"]["x_ceiling"] > 0
    compute = data["meta"]["compute_ceiling"]
    assert compute["failure"] == "", compute
    assert set(compute["sweeps"]["tensorflow"]) == {"1", "8"}
    assert compute["rows_per_s"] > 0
    assert points["seed"]["x_compute"] == pytest.approx(points["seed"]["rps"] / compute["rows_per_s"])
    assert points["bare-asgi"]["x_compute"] is None  # the bare ceiling never runs the model
    assert points["bare-asgi"]["x_seed"] > 0
    assert data["meta"]["duration_s"] == 2
    assert data["meta"]["rest_loadgen"].startswith("wrk")

    markdown = (out / "latest.md").read_text()
    assert "| CPU µs/req |" in markdown
    assert "| x compute |" in markdown
    assert "Compute ceiling (" in markdown
    assert "| seed baseline | REST | 1 |" in markdown
    assert "| bare ASGI | REST | 1 |" in markdown
    assert (out / "latest.png").read_bytes().startswith(b"\x89PNG")
    assert servers_serving(model_base) == []


def test_interrupt_stops_servers_and_keeps_partial_results(tmp_path: Path, model_base: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.Popen(
        harness(model_base, out, "--duration=60", "--warmup=0", "--no-plot"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 240
        for line in proc.stderr:  # wait until the first point's load is running
            if line.startswith("[ 1/2]") or time.monotonic() > deadline:
                break
        time.sleep(1.0)
        assert servers_serving(model_base), "the seed baseline should be serving now"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stdout + stderr
    assert servers_serving(model_base) == []
    data = json.loads((out / "latest.json").read_text())
    assert data["meta"]["interrupted"] is True
    assert "compute_ceiling" not in data["meta"]  # off by default for the linear model
