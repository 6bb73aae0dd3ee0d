"""What the bare ASGI handlers (``/v1``, V2 infer) share: their dependencies and their last resort.

Both handlers answer every failure the same way: a :class:`ServingError` becomes its own status
and message; anything else is a bug, logged with its traceback, counted in
``modelship_internal_errors_total{transport="rest"}`` and answered 500 ``internal error`` (never
the exception's text). Both bodies have the one REST error shape of :func:`~service.rest.http.error_body`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from service.auth import TokenAuth
from service.dataplane import DataPlane
from service.errors import Code, ServingError
from service.memory import MemoryBudget
from service.metrics import Metrics
from service.rest.http import error_body

__all__ = ["HandlerDeps", "failure"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HandlerDeps:
    """The server-wide objects a bare REST handler needs."""

    dataplane: DataPlane
    metrics: Metrics
    auth: TokenAuth
    max_body: int  # request body bytes (after gunzip) past which the answer is 413
    memory: MemoryBudget  # in-flight request memory, shared with gRPC


def failure(exc: Exception, metrics: Metrics, what: str) -> tuple[Code, int, bytes]:
    """The status code, HTTP status and body answering ``exc``, raised while handling ``what``."""
    if isinstance(exc, ServingError):
        return exc.code, exc.http_status, error_body(exc.message)
    log.error("%s failed", what, exc_info=exc)
    metrics.internal_errors.labels("rest").inc()
    return Code.INTERNAL, 500, error_body("internal error")
