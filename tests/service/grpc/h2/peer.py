"""A raw HTTP/2 client for driving one :class:`H2Connection` in process, frame by frame.

The connection under test is the real one, with the real :class:`H2Server` as its dispatcher and
real grpc method handlers (raw bytes in, raw bytes out); only the socket is replaced, by a
transport that records what is written. Tests send frames with :meth:`RawPeer.send` and read back
what the server wrote, parsed, with :meth:`RawPeer.frames`.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
import hpack

from service.grpc.h2.connection import H2Connection
from service.grpc.h2.frames import (
    DATA,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    PREFACE,
    SETTINGS,
    frame,
)
from service.grpc.h2.limits import Limits
from service.grpc.h2.server import H2Server

PEERNAME = ("127.0.0.1", 40000)


@dataclass(frozen=True)
class Frame:
    kind: int
    flags: int
    stream: int
    payload: bytes


class RecordingTransport:
    """Stands in for the socket: keeps every write, notes the close."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.is_closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.is_closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return PEERNAME if name == "peername" else default


def parse(data: bytes) -> list[Frame]:
    """The frames in ``data`` (which must hold whole frames only)."""
    out, i = [], 0
    while i < len(data):
        length = int.from_bytes(data[i : i + 3], "big")
        kind, flags = data[i + 3], data[i + 4]
        (sid,) = struct.unpack_from(">I", data, i + 5)
        end = i + 9 + length
        assert end <= len(data), "a frame cut short"
        out.append(Frame(kind, flags, sid & 0x7FFFFFFF, data[i + 9 : end]))
        i = end
    return out


def grpc_body(message: bytes, compressed: bool = False) -> bytes:
    return bytes([int(compressed)]) + len(message).to_bytes(4, "big") + message


def server_with(
    unary: dict[str, Callable[..., Any]] | None = None,
    handlers: dict[str, grpc.RpcMethodHandler] | None = None,
    limits: Limits | None = None,
) -> H2Server:
    """An H2Server serving service ``p``: ``unary`` async functions, plus any ``handlers``."""
    table = {name: grpc.unary_unary_rpc_method_handler(fn) for name, fn in (unary or {}).items()}
    table.update(handlers or {})
    server = H2Server(limits or Limits())
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("p", table)])
    return server


class RawPeer:
    """The client side of one in-process connection."""

    def __init__(self, server: H2Server, limits: Limits | None = None, handshake: bool = True) -> None:
        self.server = server
        self.conn = H2Connection(server, limits or server.limits, server.connections.discard)
        self.transport = RecordingTransport()
        self.conn.connection_made(self.transport)  # type: ignore[arg-type]
        self.encoder, self.decoder = hpack.Encoder(), hpack.Decoder()
        self._read = 0
        if handshake:
            self.send(PREFACE + frame(SETTINGS, 0, 0))
            self.frames()  # our SETTINGS (+ window), the ACK of the peer's

    def send(self, *data: bytes) -> None:
        self.conn.data_received(b"".join(data))

    def frames(self) -> list[Frame]:
        """Everything the server wrote since the last call."""
        new = b"".join(self.transport.writes[self._read :])
        self._read = len(self.transport.writes)
        return parse(new)

    def headers(
        self,
        sid: int,
        path: str = "/p/M",
        end_stream: bool = False,
        extra: Iterable[tuple[str, str]] = (),
        method: str = "POST",
        content_type: str = "application/grpc",
    ) -> bytes:
        fields = [
            (":method", method),
            (":scheme", "http"),
            (":path", path),
            (":authority", "test"),
            ("content-type", content_type),
            ("te", "trailers"),
            *extra,
        ]
        flags = END_HEADERS | (END_STREAM if end_stream else 0)
        return frame(HEADERS, flags, sid, self.encoder.encode(fields))

    def call(self, sid: int, message: bytes, path: str = "/p/M", **kw: Any) -> bytes:
        """A whole unary request: HEADERS, then one DATA with the message and END_STREAM."""
        return self.headers(sid, path, **kw) + frame(DATA, END_STREAM, sid, grpc_body(message))

    def fields(self, block: bytes) -> dict[str, str]:
        return dict(self.decoder.decode(block))

    def response(self, sid: int, frames: list[Frame]) -> tuple[bytes, dict[str, str]]:
        """(DATA bytes, trailers) of stream ``sid`` among ``frames``, headers merged into trailers."""
        body = b"".join(f.payload for f in frames if f.stream == sid and f.kind == DATA)
        fields: dict[str, str] = {}
        for f in frames:
            if f.stream == sid and f.kind == HEADERS:
                fields.update(self.fields(f.payload))
        return body, fields


async def settle(rounds: int = 10) -> None:
    """Let the calls' tasks run until they are idle."""
    for _ in range(rounds):
        await asyncio.sleep(0)
