"""Modelship's own gRPC server on HTTP/2 (h2c, or h2 over TLS): method registry, listener, shutdown.

A drop-in for the part of ``grpc.aio.Server`` Modelship uses: servicers register with
``add_generic_rpc_handlers`` (and ``add_registered_method_handlers``) exactly as on grpc.aio, the
port is bound by ``add_insecure_port`` (or ``add_secure_port`` with an ``ssl.SSLContext``), and
``stop(grace)`` drains: every connection gets a graceful GOAWAY at once, calls in flight run up
to ``grace`` seconds, then whatever remains is cancelled and closed. ``max_connection_age``
(grpc's ``grpc.max_connection_age_ms``, ±10 % jitter) sends the same GOAWAY to a connection once
it is that old, so clients reconnect and spread over new pods; ``max_connection_age_grace``
closes it that much later.

Why it exists: a unary call costs about a fifth of grpc.aio's here (issue 13's benchmark).
"""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
from collections.abc import Iterable, Mapping

import grpc

from service.grpc.h2.calls import Call, Method
from service.grpc.h2.connection import H2Connection
from service.grpc.h2.limits import Limits
from service.grpc.h2.stream import Stream

MAX_CACHED_PATHS = 256


class _Details:
    __slots__ = ("invocation_metadata", "method")

    def __init__(self, method: str) -> None:
        self.method, self.invocation_metadata = method, ()


def bind(address: str, reuse_port: bool = True) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``[v6]:port`` too; port 0 picks a free one).

    ``reuse_port`` sets SO_REUSEPORT, as grpcio does by default (``grpc.so_reuseport``).
    """
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or None  # type: ignore[assignment]
    family, kind, proto, _, addr = socket.getaddrinfo(
        host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port and hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(addr)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class H2Server:
    """The gRPC server: what servicers register on, and the :class:`Dispatcher` of its connections."""

    def __init__(
        self,
        limits: Limits,
        max_connection_age: float | None = None,
        max_connection_age_grace: float | None = None,
        reuse_port: bool = True,
    ) -> None:
        self.limits = limits
        self.reuse_port = reuse_port
        self.max_connection_age = max_connection_age
        self.max_connection_age_grace = max_connection_age_grace
        self.generic: list[grpc.GenericRpcHandler] = []
        self.methods: dict[str, Method] = {}
        self.sockets: list[tuple[socket.socket, ssl.SSLContext | None]] = []
        self.listeners: list[asyncio.AbstractServer] = []
        self.connections: set[H2Connection] = set()
        self.closed = asyncio.Event()

    # -- what servicers register on (grpc.aio.Server's API) -----------------------------------
    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self.generic.extend(handlers)

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]
    ) -> None:
        for name, handler in handlers.items():
            self.methods[f"/{service}/{name}"] = Method.of(handler)

    def add_insecure_port(self, address: str) -> int:
        sock = bind(address, self.reuse_port)
        self.sockets.append((sock, None))
        return int(sock.getsockname()[1])

    def add_secure_port(self, address: str, context: ssl.SSLContext) -> int:
        """A TLS port; ``context`` must offer ALPN ``h2`` (gRPC clients insist on it)."""
        sock = bind(address, self.reuse_port)
        self.sockets.append((sock, context))
        return int(sock.getsockname()[1])

    # -- the dispatcher -----------------------------------------------------------------------
    def resolve(self, path: str) -> Method | None:
        method = self.methods.get(path)
        if method is not None:
            return method
        details = _Details(path)
        for generic in self.generic:
            handler = generic.service(details)
            if handler is not None:
                method = Method.of(handler)
                if len(self.methods) < MAX_CACHED_PATHS:
                    self.methods[path] = method
                return method
        return None

    def begin(self, conn: H2Connection, s: Stream, message: bytes | None) -> None:
        call = s.call = Call(conn, s, s.method)
        call.start(message)

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for sock, context in self.sockets:
            self.listeners.append(await loop.create_server(self._connection, sock=sock, ssl=context))

    def _connection(self) -> H2Connection:
        conn = H2Connection(self, self.limits, self.connections.discard)
        self.connections.add(conn)
        if self.max_connection_age:
            loop = asyncio.get_running_loop()
            age = self.max_connection_age * random.uniform(0.9, 1.1)
            loop.call_later(age, conn.shut_down)
            if self.max_connection_age_grace is not None:
                loop.call_later(age + self.max_connection_age_grace, conn.abort)
        return conn

    async def stop(self, grace: float | None) -> None:
        """Take no new connections or calls; let the calls in flight end within ``grace`` s."""
        for listener in self.listeners:
            listener.close()
        for conn in list(self.connections):
            conn.shut_down()
        deadline = asyncio.get_running_loop().time() + (grace or 0)
        while self.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.abort()
        for listener in self.listeners:
            await listener.wait_closed()
        self.closed.set()

    async def wait_for_termination(self) -> None:
        await self.closed.wait()
