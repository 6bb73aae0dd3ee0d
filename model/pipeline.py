"""The train and export steps as functions the CLI (and tests) call.

``train`` fits the model, evaluates it on a held-out split and writes a *run directory*
(``saved_model/``, ``run.json``, ``test.csv``); ``export_run`` applies the quality gate to that run
and exports it to a TF Serving model base path.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from model import export as exporter
from model.data import Dataset
from model.errors import ExportError
from model.linear import TrainConfig, train
from model.metrics import QualityGate, RegressionMetrics, regression_metrics
from model.storage import ObjectURL, is_object_url

RUN_FILE = "run.json"


def train_run(
    data: Dataset, config: TrainConfig, test_fraction: float, run_dir: Path, progress: bool = True
) -> dict[str, Any]:
    """Train on a split of ``data``, evaluate on the held-out part, and write ``run_dir``."""
    train_set, test_set = data.split(test_fraction, config.seed)
    result = train(train_set, config, progress=progress)
    module = result.module
    metrics = regression_metrics(test_set.y, module(test_set.x).numpy())
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "saved_model"
    if saved.exists():
        raise ExportError(f"{saved} exists: choose an empty --run-dir")
    exporter.save_saved_model(module, saved, module.signatures())
    weights, bias = module.weights()
    run = {
        "model_type": "linear_regression",
        "metrics": metrics.as_dict(),
        "feature_names": list(data.feature_names),
        "target_name": data.target_name,
        "input_schema": {
            "signature": "serving_default",
            "inputs": {
                "x": {
                    "dtype": "DT_FLOAT",
                    "shape": [-1, data.n_features],
                    "features": list(data.feature_names),
                }
            },
            "outputs": {"y": {"dtype": "DT_FLOAT", "shape": [-1]}},
            "allow_non_finite": False,
        },
        "training": {
            "data_source": data.source,
            "data_sha256": data.sha256,
            "n_train": len(train_set.y),
            "n_test": len(test_set.y),
            "test_fraction": test_fraction,
            "config": asdict(config),
            "loss_history": result.loss_history,
        },
        "parameters": {"weights": weights.tolist(), "bias": bias},
    }
    (run_dir / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n")
    _write_csv(run_dir / "test.csv", test_set)
    return run


def load_run(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise ExportError(f"{path} not found: run `python -m model train --run-dir {run_dir}` first")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def export_run(
    run_dir: Path,
    base_path: Path | str,
    name: str,
    gate: QualityGate,
    version: int | None = None,
    litert: bool = True,
) -> Path | str:
    """Refuse the run if it misses ``gate``; otherwise export it and return the version's path or URL."""
    run = load_run(run_dir)
    gate.check(
        RegressionMetrics(
            **{k: run["metrics"][k] for k in ("mse", "rmse", "mae", "r2")}, n=int(run["metrics"]["n"])
        )
    )
    n_features = len(run["feature_names"])
    example = np.zeros((1, n_features), dtype=np.float32)
    body = {
        k: run[k]
        for k in ("model_type", "metrics", "feature_names", "target_name", "input_schema", "training")
    }
    body["quality_gate"] = asdict(gate)
    warmup = ("x", example)
    if is_object_url(str(base_path)):
        return exporter.publish(
            run_dir / "saved_model", ObjectURL.parse(str(base_path)), name, body, version, warmup, litert
        )
    return exporter.export(run_dir / "saved_model", Path(base_path), name, body, version, warmup, litert)


def _write_csv(path: Path, data: Dataset) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*data.feature_names, data.target_name])
        for row, target in zip(data.x.tolist(), data.y.tolist(), strict=True):
            writer.writerow([*(f"{v:.9g}" for v in row), f"{target:.9g}"])
