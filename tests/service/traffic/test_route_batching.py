"""The dataplane's choice with dynamic batching on: each request queues on its chosen version."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import numpy as np

from service import model_config
from service.batching import BatchingParameters
from service.dataplane import DataPlane, ModelRef
from service.repository import ModelRepository
from service.traffic import Traffic, parse
from tests.fixtures import export_linear


def test_split_with_batching_uses_the_chosen_versions_batcher(fresh_base: Path, linear_run: Path) -> None:
    export_linear(linear_run, fresh_base, 2)
    configs = model_config.parse(
        f"model_config_list {{ config {{ name: 'linear' base_path: '{fresh_base / 'linear'}' "
        "model_version_policy { all {} } } }"
    )
    repo = ModelRepository(configs, poll_seconds=-1, settle_seconds=0, enable_warmup=False)
    while repo.poll_once():
        pass
    assert set(repo.available("linear")) == {1, 2}
    traffic = Traffic()
    traffic.apply(parse('{"models": {"linear": {"weights": {"1": 3, "2": 1}}}}'), "test")
    plane = DataPlane(
        repo, batching=BatchingParameters(max_batch_size=16, max_enqueued_batches=100), traffic=traffic
    )
    x = {"x": np.array([[1.0, 2.0, 3.0]], np.float32)}

    async def one() -> int:
        ref = ModelRef("linear")
        servable = plane.route(ref)
        result = await plane.predict(servable, servable.signature(None), dict(x), ref=ref)
        assert result.servable is servable
        return servable.version

    async def many() -> list[int]:
        return await asyncio.gather(*(one() for _ in range(400)))

    try:
        counts = Counter(asyncio.run(many()))
    finally:
        plane.close()
    assert counts == {1: 300, 2: 100}
    for version in (1, 2):
        assert repo.available("linear")[version].batchers, version  # its own batch queue served it
