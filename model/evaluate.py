"""Evaluate an exported version on a CSV and draw fit, residuals and loss curve to a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from model import manifest
from model.data import load_csv
from model.errors import DataError
from model.metrics import RegressionMetrics, regression_metrics


def evaluate_version(
    version_dir: Path, csv_path: Path, target: str | None, plot: Path | None
) -> RegressionMetrics:
    """Run the version's ``serving_default`` on ``csv_path`` and return held-out metrics."""
    info = manifest.verify(version_dir) or {}
    features = info.get("feature_names")
    target_name = target or info.get("target_name") or "y"
    data = load_csv(csv_path, features, target_name)
    loaded = tf.saved_model.load(str(version_dir))
    fn = loaded.signatures["serving_default"]
    (input_name,) = fn.structured_input_signature[1].keys()
    width = fn.structured_input_signature[1][input_name].shape[-1]
    if width is not None and width != data.n_features:
        raise DataError(f"model takes {width} features, {csv_path} gives {data.n_features}")
    outputs = fn(**{input_name: tf.constant(data.x)})
    pred = next(iter(outputs.values())).numpy().reshape(-1)
    metrics = regression_metrics(data.y, pred)
    if plot is not None:
        draw(plot, data.y, pred, info.get("training", {}).get("loss_history", []), info)
    return metrics


def draw(path: Path, y: np.ndarray, pred: np.ndarray, loss: list[float], info: dict[str, Any]) -> None:
    """Three panels: predicted vs actual, residuals vs predicted, training loss per epoch."""
    try:
        import matplotlib
    except ImportError:
        raise DataError("--plot needs matplotlib: pip install 'modelship[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    axes[0].scatter(y, pred, s=8, alpha=0.6)
    axes[0].plot([lo, hi], [lo, hi], color="black", linewidth=1, label="perfect fit")
    axes[0].set(xlabel="actual", ylabel="predicted", title="Fit")
    axes[0].legend()
    axes[1].scatter(pred, pred - y, s=8, alpha=0.6, color="tab:orange")
    axes[1].axhline(0.0, color="black", linewidth=1)
    axes[1].set(xlabel="predicted", ylabel="residual (predicted - actual)", title="Residuals")
    if loss:
        axes[2].plot(range(len(loss)), loss, color="tab:green")
        axes[2].set_yscale("log")
        axes[2].set(xlabel="epoch (0 = untrained)", ylabel="training MSE (log)", title="Loss curve")
    else:
        axes[2].text(0.5, 0.5, "no training history in manifest", ha="center", va="center")
        axes[2].set_axis_off()
    name = f"{info.get('name', 'model')} v{info.get('version', '?')}"
    fig.suptitle(f"{name}: R²={regression_metrics(y, pred).r2:.4f}, n={len(y)}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
