"""Regression metrics against hand-computed values, and the quality gate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model.errors import QualityGateError
from model.metrics import QualityGate, regression_metrics


def test_metrics_match_hand_computation() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.5, 2.0, 2.0, 4.0])
    m = regression_metrics(y, p)
    assert m.mse == pytest.approx((0.25 + 0 + 1 + 0) / 4)
    assert m.rmse == pytest.approx(math.sqrt(m.mse))
    assert m.mae == pytest.approx(1.5 / 4)
    assert m.r2 == pytest.approx(1 - 1.25 / 5.0)


def test_perfect_and_constant_predictions() -> None:
    y = np.array([1.0, 2.0, 3.0])
    assert regression_metrics(y, y).r2 == 1.0
    assert regression_metrics(y, np.full(3, 2.0)).r2 == pytest.approx(0.0)


def test_gate_names_every_missed_threshold() -> None:
    m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([3.0, 1.0, 2.0]))
    gate = QualityGate(min_r2=0.5, max_mse=0.1)
    with pytest.raises(QualityGateError) as info:
        gate.check(m)
    assert "R²" in str(info.value)
    assert "MSE" in str(info.value)
    QualityGate().check(m)  # no thresholds: passes


def test_gate_refuses_nan_metrics() -> None:
    m = regression_metrics(np.array([1.0, 2.0]), np.array([np.nan, 1.0]))
    assert QualityGate(min_r2=0.0).failures(m)
