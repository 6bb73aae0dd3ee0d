"""The one error hierarchy of the server: every error carries a TF/gRPC canonical code.

Transports map codes once each: REST through :data:`HTTP_STATUS` (TF Serving's
``ToHTTPStatusCode`` table), gRPC through the same-numbered ``grpc.StatusCode``.
"""

from __future__ import annotations

import enum


class Code(enum.IntEnum):
    """``tensorflow.error.Code`` / gRPC canonical status codes (same numbers)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


HTTP_STATUS: dict[Code, int] = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}


class ServingError(Exception):
    """Base of every error a client may see; ``code`` decides the status on each transport."""

    code: Code = Code.INTERNAL

    def __init__(self, message: str, code: Code | None = None) -> None:
        # Messages quote client input; a lone surrogate there must not break the JSON or gRPC encoder.
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)


class InvalidArgument(ServingError):
    code = Code.INVALID_ARGUMENT


class NotFound(ServingError):
    code = Code.NOT_FOUND


class FailedPrecondition(ServingError):
    code = Code.FAILED_PRECONDITION


class Unavailable(ServingError):
    code = Code.UNAVAILABLE


class Unimplemented(ServingError):
    code = Code.UNIMPLEMENTED


class ResourceExhausted(ServingError):
    code = Code.RESOURCE_EXHAUSTED


class Unauthenticated(ServingError):
    code = Code.UNAUTHENTICATED


class DataLoss(ServingError):
    code = Code.DATA_LOSS


class PayloadTooLarge(ResourceExhausted):
    """A request body over the configured limit: HTTP 413, gRPC RESOURCE_EXHAUSTED."""

    @property
    def http_status(self) -> int:
        return 413


class MemoryExhausted(ResourceExhausted):
    """The in-flight memory budget is full right now: HTTP 503 (retry), gRPC RESOURCE_EXHAUSTED."""

    @property
    def http_status(self) -> int:
        return 503
