"""A channel to the module's own ``server`` fixture (each gRPC test module serves what it needs)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from tests.fixtures import ServerProcess


@pytest.fixture(scope="module")
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
        yield ch
