"""One HTTP/2 stream's state on Modelship's gRPC server: windows, request bytes, pending output.

The connection (``service.grpc.h2.connection``) owns streams and changes them; a call holds its
stream to answer on it, and may wait here for its queued output to drain (write back-pressure).
"""

from __future__ import annotations

import asyncio
from typing import Any


class Stream:
    __slots__ = (
        "call",
        "chunks",
        "encoding",
        "headers",
        "headers_sent",
        "id",
        "inbox",
        "method",
        "path",
        "pending",
        "recv_window",
        "remote_closed",
        "send_window",
        "size",
        "trailers",
        "unacked",
        "waiter",
    )

    def __init__(self, stream_id: int, send_window: int, recv_window: int) -> None:
        self.id = stream_id
        self.send_window = send_window  # what the peer lets us send on this stream
        self.recv_window = recv_window  # what the peer may still send us on it
        self.unacked = 0  # received (and consumed) bytes not yet given back
        self.path = self.encoding = ""
        self.headers: list[tuple[str, str]] = []
        self.method: Any = None  # the dispatcher's method, once resolved
        self.call: Any = None  # the running call of a request-streaming method
        self.chunks: list[bytes] = []  # a unary request's body so far
        self.size = 0
        self.inbox = bytearray()  # a request stream's bytes not yet split into messages
        self.pending = bytearray()  # response DATA waiting for window
        self.trailers: bytes | None = None  # the trailers, once the call has ended
        self.headers_sent = False
        self.remote_closed = False  # the client sent END_STREAM
        self.waiter: asyncio.Future[None] | None = None

    def cancel(self) -> None:
        """The stream was reset or its connection lost: stop the call and any writer waiting."""
        if self.call is not None:
            self.call.cancel()
        self.drained()

    def drained(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)
        self.waiter = None

    async def wait_drained(self, high_water: int) -> None:
        """Return once less than ``high_water`` bytes of output wait for flow-control window."""
        if len(self.pending) >= high_water:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
