"""Fixtures for the rollout operator tests; the chart-rendering ones come from tests/charts, the
cluster ones (used only by the ``integration`` tests) from cluster.py."""

from __future__ import annotations

from tests.charts.conftest import helm, k8s_validator, render, schemas_dir
from tests.scripts.rollout_operator.cluster import env, images, models, release, traffic

__all__ = ["env", "helm", "images", "k8s_validator", "models", "release", "render", "schemas_dir", "traffic"]
