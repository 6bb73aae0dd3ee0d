"""Fixtures for the rollout operator tests; the chart-rendering ones come from tests/charts."""

from __future__ import annotations

from tests.charts.conftest import helm, k8s_validator, render, schemas_dir

__all__ = ["helm", "k8s_validator", "render", "schemas_dir"]
