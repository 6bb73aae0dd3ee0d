"""Shared fixtures: real models trained and exported on the fly, once per session; ``report``
lines for the terminal summary (the figures the cluster tests measure, printed in CI logs)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tests.fixtures import export_linear, export_multi_io, train_linear
from tests.object_store import FakeGcs, MotoS3, fake_gcs, moto_s3

REPORT: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORT:
        terminalreporter.section("measured figures")
        for line in REPORT:
            terminalreporter.write_line(line)


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``report(line)``: keep ``line`` for the terminal summary (prefixed with the test name)."""

    def add(line: str) -> None:
        REPORT.append(f"[{request.node.name}] {line}")
        print(line)

    return add


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


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    """A real S3 server (moto, its own process) on 127.0.0.1 with bucket ``models``; tests use own prefixes."""
    with moto_s3(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture(scope="session")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGcs]:
    """fake-gcs-server (built and cached on first use) on 127.0.0.1 with bucket ``models``."""
    with fake_gcs(tmp_path_factory.mktemp("gcs") / "gcs.log") as server:
        yield server
