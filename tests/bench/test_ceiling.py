"""The compute ceiling (bench/ceiling.py), the heavy model's export (bench/heavy.py) and the report's
new columns, on tiny inputs: what is measured and how it is reported, never how fast."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import ceiling, report
from bench.load import tfs


def test_sweep_measures_rows_per_second_at_every_batch_size() -> None:
    seen: list[tuple[int, ...]] = []

    def call(x: np.ndarray) -> None:
        seen.append(x.shape)

    rates = ceiling.sweep(call, features=5, batches=(1, 8), seconds=0.01)
    assert list(rates) == [1, 8]
    assert all(r > 0 for r in rates.values())
    assert set(seen) == {(1, 5), (8, 5)}
    assert seen.count((8, 5)) >= 2 + 3  # warm-up calls, then at least three measured


def test_ceiling_round_trips_through_json_and_takes_the_median_round() -> None:
    rounds = [
        ceiling.Ceiling(rows_per_s=v, runtime="tensorflow", batch=8, sweeps={"tensorflow": {1: v / 2, 8: v}})
        for v in (300.0, 100.0, 200.0)
    ]
    back = ceiling.Ceiling.from_dict(json.loads(json.dumps(rounds[0].as_dict())))
    assert back == rounds[0]
    assert ceiling.median(rounds) is rounds[2]
    failed = ceiling.Ceiling(failure="boom")
    assert ceiling.median([failed, rounds[1]]) is rounds[1]
    assert ceiling.median([failed]) is failed
    assert "not measured (boom)" in failed.headline()
    assert "best 300 at batch 8" in rounds[0].summary()[0]


def test_compute_share_and_cpu_per_request_columns() -> None:
    model = report.Point("modelship-rest", "modelship", "REST", 64, rps=500.0, server_cpu=0.5)
    bare = report.Point("bare-asgi", "bare ASGI", "REST", 64, rps=5000.0, server_cpu=0.25)
    assert model.cpu_us_per_request == pytest.approx(1000.0)
    assert model.as_dict()["cpu_us_per_request"] == pytest.approx(1000.0)
    assert "x compute" not in report.text_table([model, bare])
    report.add_compute_share([model, bare], ceiling_rows_per_s=4000.0, rows=2, keys={"modelship-rest"})
    assert model.x_compute == pytest.approx(0.25)
    assert bare.x_compute is None
    table = report.text_table([model, bare])
    assert "x compute" in table
    assert "CPU µs/req" in table
    assert "0.25x" in report.markdown_table([model, bare])


@pytest.mark.slow
def test_tiny_mlp_exports_and_its_ceiling_is_measured(tmp_path: Path) -> None:
    from bench import heavy

    version_dir = heavy.export_heavy(tmp_path, "tiny", features=4, hidden=8)
    assert version_dir == tmp_path / "tiny" / "1"
    assert (version_dir / "manifest.json").is_file()
    assert tfs.signature_input(version_dir) == ("x", 4)

    measured = ceiling.measure(version_dir, batches=(1, 8), seconds=0.05)
    assert measured.failure == ""
    assert set(measured.sweeps["tensorflow"]) == {1, 8}
    assert measured.rows_per_s == max(v for s in measured.sweeps.values() for v in s.values())
    assert measured.batch in (1, 8)
    assert measured.threads >= 1
    assert measured.cores > 0
    # the server's LiteRT decision is reported either way: measured, or why not
    assert "litert" in measured.sweeps or "litert" in measured.notes
