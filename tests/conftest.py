"""Shared fixtures: real models trained and exported on the fly, once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tests.fixtures import export_linear, export_multi_io, train_linear


@pytest.fixture(scope="session")
def linear_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained linear-regression run directory (train once per session)."""
    return train_linear(tmp_path_factory.mktemp("run") / "linear")


@pytest.fixture(scope="session")
def model_base(tmp_path_factory: pytest.TempPathFactory, linear_run: Path) -> Path:
    """A base path with linear/1 (Modelship export, with manifest) and multi/1 (no manifest)."""
    base = tmp_path_factory.mktemp("models")
    export_linear(linear_run, base, 1)
    export_multi_io(base, 1)
    return base


@pytest.fixture
def fresh_base(tmp_path: Path, linear_run: Path) -> Path:
    """A writable base path holding linear/1 only, for tests that add or tamper with versions."""
    export_linear(linear_run, tmp_path, 1)
    return tmp_path
