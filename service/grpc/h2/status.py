"""gRPC status codes as integers, and the HPACK blocks this server sends for responses.

Response header blocks are stateless literals (see :func:`service.grpc.h2.hpack.encode`), so the
fixed ones are built once and sent on every connection.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from service.grpc.h2 import hpack

OK, CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED = 0, 1, 2, 3, 4
RESOURCE_EXHAUSTED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE = 8, 12, 13, 14

CONTENT_TYPE = "application/grpc"
ACCEPT_ENCODING = "identity,deflate,gzip"  # what requests may be compressed with
RESPONSE_HEADERS = hpack.encode(
    [(":status", "200"), ("content-type", CONTENT_TYPE), ("grpc-accept-encoding", ACCEPT_ENCODING)]
)
OK_TRAILERS = hpack.encode([("grpc-status", "0")])

Metadata = Sequence[tuple[str, str | bytes]]


def _metadata(pairs: Metadata) -> list[tuple[str, str]]:
    out = []
    for key, value in pairs:
        key = key.lower()
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode().rstrip("=") if key.endswith("-bin") else value.decode()
        out.append((key, value))
    return out


def response_headers(metadata: Metadata = ()) -> bytes:
    return RESPONSE_HEADERS + hpack.encode(_metadata(metadata)) if metadata else RESPONSE_HEADERS


def trailers(code: int, message: str = "", metadata: Metadata = ()) -> bytes:
    """The trailing header block ending a call with ``code``."""
    if code == OK and not message and not metadata:
        return OK_TRAILERS
    fields = [("grpc-status", str(code))]
    if message:
        fields.append(("grpc-message", hpack.percent_encode(message)))
    return hpack.encode(fields + _metadata(metadata))


def trailers_only(code: int, message: str, metadata: Metadata = ()) -> bytes:
    """A whole error response in one header block (gRPC's Trailers-Only)."""
    return response_headers() + trailers(code, message, metadata)


def http_error(status: int, text: str) -> bytes:
    """A plain HTTP response for a request that is not gRPC at all (wrong method or content type)."""
    block = hpack.encode([(":status", str(status)), ("content-type", "text/plain")])
    return block + hpack.encode([("grpc-status", str(UNKNOWN)), ("grpc-message", hpack.percent_encode(text))])
