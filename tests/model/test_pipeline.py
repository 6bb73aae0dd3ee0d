"""Train -> gate -> export, end to end on real TensorFlow: layout, manifest, atomicity, versions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model import manifest
from model.errors import ExportError, QualityGateError
from model.export import existing_versions
from model.metrics import QualityGate
from model.pipeline import export_run, load_run
from tests.fixtures import ROOT, expected_linear


def test_training_recovers_the_true_weights(linear_run: Path) -> None:
    run = load_run(linear_run)
    assert run["metrics"]["r2"] > 0.99
    history = run["training"]["loss_history"]
    assert history[-1] < history[0] / 10, "loss must fall during training"
    # synthetic(seed=0) draws the true weights first, then the bias: the fit must recover them
    rng = np.random.default_rng(0)
    true_w, true_b = rng.uniform(-3.0, 3.0, size=3), rng.uniform(-1.0, 1.0)
    np.testing.assert_allclose(run["parameters"]["weights"], true_w, atol=0.05)
    assert run["parameters"]["bias"] == pytest.approx(true_b, abs=0.05)
    assert (linear_run / "test.csv").read_text().startswith("x0,x1,x2,y")


def test_export_layout_manifest_and_next_version(tmp_path: Path, linear_run: Path) -> None:
    first = export_run(linear_run, tmp_path, "linear", QualityGate(min_r2=0.9))
    second = export_run(linear_run, tmp_path, "linear", QualityGate())
    assert (first.name, second.name) == ("1", "2")
    assert existing_versions(tmp_path / "linear") == [1, 2]
    for path in (first, second):
        assert (path / "saved_model.pb").is_file()
        assert (path / "assets.extra" / "tf_serving_warmup_requests").is_file()
    info = manifest.verify(first)
    assert info is not None
    assert info["feature_names"] == ["x0", "x1", "x2"]
    assert info["input_schema"]["inputs"]["x"]["shape"] == [-1, 3]
    assert set(info["metrics"]) >= {"mse", "rmse", "mae", "r2"}
    assert len(info["training"]["data_sha256"]) == 64
    assert "saved_model.pb" in info["files"]
    assert any(name.startswith("variables/") for name in info["files"])
    assert not [p for p in (tmp_path / "linear").iterdir() if p.name.startswith(".tmp")]
    x = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    np.testing.assert_allclose(expected_linear(first, x), expected_linear(second, x))


def test_export_refuses_existing_version_and_leaves_no_staging(tmp_path: Path, linear_run: Path) -> None:
    export_run(linear_run, tmp_path, "linear", QualityGate(), version=5)
    with pytest.raises(ExportError, match="already exists"):
        export_run(linear_run, tmp_path, "linear", QualityGate(), version=5)
    assert sorted(p.name for p in (tmp_path / "linear").iterdir()) == ["5"]


def test_gate_blocks_export(tmp_path: Path, linear_run: Path) -> None:
    with pytest.raises(QualityGateError, match="refusing to export"):
        export_run(linear_run, tmp_path, "linear", QualityGate(min_r2=0.99999999))
    assert not (tmp_path / "linear").exists() or not any((tmp_path / "linear").iterdir())


def test_tampering_is_detected(tmp_path: Path, linear_run: Path) -> None:
    path = export_run(linear_run, tmp_path, "linear", QualityGate())
    data = next((path / "variables").glob("variables.data-*"))
    data.write_bytes(data.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(manifest.ManifestError, match="sha256 mismatch for variables/"):
        manifest.verify(path)
    data.unlink()
    with pytest.raises(manifest.ManifestError, match="missing"):
        manifest.verify(path)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


@pytest.mark.slow
def test_cli_train_export_evaluate_with_plot(tmp_path: Path) -> None:
    csv = tmp_path / "house.csv"
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(120, 2))
    price = rows @ np.array([2.0, -1.0]) + 0.5 + rng.normal(0, 0.01, 120)
    csv.write_text(
        "size,age,price\n" + "".join(f"{a},{b},{p}\n" for (a, b), p in zip(rows, price, strict=True))
    )
    run = tmp_path / "run"
    done = _cli(
        "train",
        "--run-dir",
        str(run),
        "--csv",
        str(csv),
        "--target",
        "price",
        "--epochs",
        "30",
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "run.json").read_text())["feature_names"] == ["size", "age"]
    refused = _cli("export", "--run-dir", str(run), "--base-path", str(tmp_path / "m"), "--max-mse", "0")
    assert refused.returncode == 3
    assert "quality gate failed" in refused.stderr
    done = _cli(
        "export",
        "--run-dir",
        str(run),
        "--base-path",
        str(tmp_path / "m"),
        "--name",
        "house",
        "--min-r2",
        "0.9",
    )
    assert done.returncode == 0, done.stderr
    plot = tmp_path / "fit.png"
    done = _cli(
        "evaluate",
        "--version-dir",
        str(tmp_path / "m" / "house" / "1"),
        "--csv",
        str(run / "test.csv"),
        "--plot",
        str(plot),
    )
    assert done.returncode == 0, done.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert '"r2": 0.9' in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--csv", "/nonexistent.csv"], "data file not found"),
        (["--samples", "2"], "--samples must be at least 4"),
    ],
)
def test_cli_reports_bad_input_without_traceback(tmp_path: Path, args: list[str], message: str) -> None:
    done = _cli("train", "--run-dir", str(tmp_path / "r"), *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_help_documents_every_flag() -> None:
    import argparse

    from model.__main__ import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {"train", "export", "evaluate"}
    for name, command in sub.choices.items():
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings} has no help"
    assert _cli("train", "--help").returncode == 0
