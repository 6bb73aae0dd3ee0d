"""The real REST app, in process, over a repository holding real SavedModels."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from service import model_config
from service.auth import TokenAuth
from service.dataplane import DataPlane
from service.memory import MemoryBudget
from service.metrics import Metrics
from service.repository import ModelRepository
from service.rest.app import create_app


def make_client(
    base: Path,
    token: str | None = None,
    max_body: int = 1 << 20,
    memory: MemoryBudget | None = None,
    raise_server_exceptions: bool = True,
) -> TestClient:
    configs = model_config.parse(f"""
        model_config_list {{
          config {{ name: 'linear' base_path: '{base / "linear"}'
                   version_labels {{ key: 'stable' value: 1 }}
                   version_labels {{ key: 'canary' value: 2 }} }}
          config {{ name: 'multi' base_path: '{base / "multi"}' }}
        }}""")
    metrics = Metrics()
    repo = ModelRepository(configs, poll_seconds=-1, settle_seconds=0, listener=metrics.model_state)
    repo.poll_once()
    assert repo.ready()
    app = create_app(
        DataPlane(repo),
        metrics,
        TokenAuth(token),
        max_body,
        "test",
        memory or MemoryBudget(256 << 20, metrics.memory_refused),
    )
    return TestClient(app, raise_server_exceptions=raise_server_exceptions)


@pytest.fixture(scope="module")
def client(model_base: Path) -> Iterator[TestClient]:
    with make_client(model_base) as c:
        yield c
