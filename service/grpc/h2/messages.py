"""gRPC's length-prefixed messages (the body of an HTTP/2 gRPC stream), both ways.

Each message is a 1-byte compressed flag, a 4-byte big-endian length and the bytes. A compressed
message is inflated with the stream's ``grpc-encoding`` (gzip or deflate, never past the size
limit); responses are never compressed. Every failure is a :class:`MessageError` carrying the gRPC
status the call ends with, so the connection never has to guess.
"""

from __future__ import annotations

import struct
import zlib

from service.grpc.h2.status import ACCEPT_ENCODING, INTERNAL, RESOURCE_EXHAUSTED, UNIMPLEMENTED

PREFIX = struct.Struct(">BI")
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class MessageError(Exception):
    """A request body that cannot be read as gRPC messages: the call's status and why."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def prefixed(message: bytes) -> bytes:
    """``message`` as one uncompressed length-prefixed gRPC message."""
    return PREFIX.pack(0, len(message)) + message


def too_large(size: int, limit: int) -> MessageError:
    return MessageError(RESOURCE_EXHAUSTED, f"Received message larger than max ({size} vs. {limit})")


def inflate(data: bytes, encoding: str, limit: int) -> bytes:
    """A compressed message's bytes, inflated with ``encoding``; at most ``limit`` bytes of them."""
    wbits = _WBITS.get(encoding)
    if wbits is None:
        why = (
            f"Compressed message with grpc-encoding {encoding or 'identity'!r} (supported: {ACCEPT_ENCODING})"
        )
        raise MessageError(UNIMPLEMENTED, why)
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise MessageError(INTERNAL, f"Cannot inflate the {encoding} message: {exc}") from None
    if len(out) > limit:
        raise too_large(len(out) + len(inflater.unconsumed_tail), limit)
    if not inflater.eof:
        raise MessageError(INTERNAL, f"The {encoding} message is truncated")
    return out


def split(buffer: bytearray, encoding: str, limit: int) -> list[bytes]:
    """Take every complete message off the front of ``buffer`` (the rest stays for later)."""
    out = []
    while len(buffer) >= 5:
        flag, size = PREFIX.unpack_from(buffer)
        if size > limit:
            raise too_large(size, limit)
        if len(buffer) < 5 + size:
            break
        data = bytes(buffer[5 : 5 + size])
        del buffer[: 5 + size]
        out.append(inflate(data, encoding, limit) if flag & 1 else data)
    return out


def only_message(body: bytes, encoding: str, limit: int) -> bytes:
    """The single message of a unary request's whole body."""
    if len(body) < 5:
        raise MessageError(INTERNAL, "The request has no message" if not body else "Truncated message")
    flag, size = PREFIX.unpack_from(body)
    if size > limit:
        raise too_large(size, limit)
    if len(body) != 5 + size:
        why = "Truncated message" if len(body) < 5 + size else "More than one message in a unary request"
        raise MessageError(INTERNAL, why)
    data = body[5:]
    return inflate(data, encoding, limit) if flag & 1 else data
