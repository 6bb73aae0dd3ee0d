"""The gRPC tests' shared fixtures: the server implementation under test, and a channel to it.

Every gRPC test module serves what it needs from its own ``server`` fixture, once per
implementation (``--grpc_server``): grpcio (grpc.aio) and modelship (Modelship's own HTTP/2
server), so the official stubs must pass against both.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from tests.fixtures import ServerProcess

IMPLEMENTATIONS = ("grpcio", "modelship")


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def grpc_server_flag(request: pytest.FixtureRequest) -> str:
    """``--grpc_server=...`` for the module's server: each module runs once per implementation."""
    return f"--grpc_server={request.param}"


@pytest.fixture(scope="module")
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
        yield ch
