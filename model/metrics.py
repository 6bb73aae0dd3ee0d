"""Regression metrics and the quality gate that guards export."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from model.errors import QualityGateError


@dataclass(frozen=True)
class RegressionMetrics:
    """Held-out quality of a regression model."""

    mse: float
    rmse: float
    mae: float
    r2: float
    n: int

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> RegressionMetrics:
    """MSE, RMSE, MAE and R² of ``y_pred`` against ``y_true`` (flattened)."""
    t = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if t.shape != p.shape or t.size == 0:
        raise ValueError(f"shape mismatch: {t.shape} vs {p.shape}")
    err = p - t
    mse = float(np.mean(err**2))
    total = float(np.sum((t - t.mean()) ** 2))
    r2 = 1.0 - float(np.sum(err**2)) / total if total > 0 else (1.0 if mse == 0 else 0.0)
    return RegressionMetrics(mse=mse, rmse=mse**0.5, mae=float(np.mean(np.abs(err))), r2=r2, n=t.size)


@dataclass(frozen=True)
class QualityGate:
    """Thresholds a model must meet before it may be exported; ``None`` disables a check."""

    min_r2: float | None = None
    max_mse: float | None = None

    def failures(self, metrics: RegressionMetrics) -> list[str]:
        out = []
        if self.min_r2 is not None and not metrics.r2 >= self.min_r2:
            out.append(f"R² {metrics.r2:.4f} is below the minimum {self.min_r2}")
        if self.max_mse is not None and not metrics.mse <= self.max_mse:
            out.append(f"MSE {metrics.mse:.6g} is above the maximum {self.max_mse}")
        return out

    def check(self, metrics: RegressionMetrics) -> None:
        """Raise :class:`QualityGateError` naming every threshold that was missed."""
        failures = self.failures(metrics)
        if failures:
            raise QualityGateError("quality gate failed, refusing to export: " + "; ".join(failures))
