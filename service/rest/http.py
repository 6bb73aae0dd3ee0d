"""Bare ASGI helpers for the REST hot path: bounded body reading, JSON responses, error bodies.

Every REST error body has one shape, ``{"error": "<message>"}``, rendered by :func:`error_body`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from starlette.types import Receive, Scope, Send

from service import jsonio
from service.errors import InvalidArgument, PayloadTooLarge
from service.memory import Reservation

__all__ = ["JSON_HEADERS", "Receive", "Scope", "Send", "error_body", "header", "read_body", "respond"]

JSON_HEADERS = [(b"content-type", b"application/json")]


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def error_body(message: str) -> bytes:
    """The one shape of every REST error body."""
    return jsonio.dumps({"error": message})


async def read_body(scope: Scope, receive: Receive, limit: int, memory: Reservation) -> bytes:
    """The request body, gunzipped if ``Content-Encoding: gzip``; 413 past ``limit`` bytes.

    Bytes are taken from ``memory`` as they arrive (twice when chunks are joined), so a flood of
    large bodies is refused before it is buffered.
    """
    length = header(scope, b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"request body of {int(length)} bytes exceeds the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidArgument("client disconnected before the request body was complete")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        memory.take(len(chunk), "the request body")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if len(chunks) == 1:
        body = chunks[0]
    else:
        memory.take(size, "the request body")
        body = b"".join(chunks)
    encoding = header(scope, b"content-encoding")
    if encoding and encoding.lower() == b"gzip":
        body = _gunzip(body, limit, memory)
    return body


_GUNZIP_STEP = 1 << 20


def _gunzip(body: bytes, limit: int, memory: Reservation) -> bytes:
    """Inflate at most a MiB at a time, taking each piece from ``memory`` as it is produced."""
    inflater = zlib.decompressobj(wbits=31)
    parts: list[bytes] = []
    size = 0
    pending = body
    try:
        while not inflater.eof:
            part = inflater.decompress(pending, min(_GUNZIP_STEP, limit + 1 - size))
            pending = inflater.unconsumed_tail
            if not part and not pending:
                raise InvalidArgument("invalid gzip request body: the stream is truncated")
            size += len(part)
            if size > limit:
                raise PayloadTooLarge(f"decompressed request body exceeds the limit of {limit} bytes")
            memory.take(len(part), "the decompressed request body")
            parts.append(part)
    except zlib.error as exc:
        raise InvalidArgument(f"invalid gzip request body: {exc}") from None
    if len(parts) == 1:
        return parts[0]
    memory.take(size, "the decompressed request body")
    return b"".join(parts)


async def respond(
    send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]] = JSON_HEADERS
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
