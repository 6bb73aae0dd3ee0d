"""KServe V2 inference, ``POST /v2/models/{name}[/versions/{v}]/infer``, on a bare ASGI path.

:class:`~service.rest.app.RestApp` sends a ``POST`` whose path :func:`match` accepts straight here,
as it sends ``/v1`` to :class:`~service.rest.v1.V1Handler`: no framework routing, validation or
middleware on the way. Every other V2 request (and any other method on an ``/infer`` path, which
gets FastAPI's 405) stays on the FastAPI router of :mod:`service.rest.v2`, whose ``/infer`` routes
document this endpoint in the OpenAPI schema and answer through :meth:`V2InferHandler.answer` too.

Order of the checks, as the FastAPI route had it: the token, the version (from the path, else the
``version`` query parameter the route also took), the model (an unknown one is a 404 before its
body is read), the body (413 past the limit, gzip), then
the JSON and the Open Inference Protocol schema (:mod:`service.rest.v2_codec`). Errors are
``{"error": "..."}`` with the status of their code; anything unexpected is a clean JSON 500, logged
and counted in ``modelship_internal_errors_total``.
"""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qsl

from service import jsonio
from service.dataplane import ModelRef
from service.errors import Code, InvalidArgument
from service.memory import Reservation
from service.rest import v2_codec
from service.rest.handler import HandlerDeps, failure
from service.rest.http import Receive, Scope, Send, header, read_body, respond
from service.servable import Servable

__all__ = ["INFER_RE", "V2InferHandler", "match", "model_ref", "query_version"]

# Starlette's ``{name}`` and ``{version}``: one path segment each, case-sensitive.
INFER_RE = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")


def match(path: str) -> tuple[str, str | None] | None:
    """The model name and version (None when the path has none) of an infer path, else None."""
    m = INFER_RE.fullmatch(path)
    return (m.group(1), m.group(2)) if m is not None else None


def query_version(query_string: bytes) -> str | None:
    """The last ``version`` query parameter, decoded as Starlette does, or None.

    FastAPI took it as the optional ``version`` of ``/v2/models/{name}/infer`` (the OpenAPI schema
    lists it); a version in the path wins over it.
    """
    version = None
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if key == "version":
            version = value
    return version


def model_ref(name: str, version: str | None) -> ModelRef:
    """What a V2 path addresses; the version must be ASCII digits (``²`` is a digit to Python)."""
    if version is None:
        return ModelRef(name)
    if not (version.isascii() and version.isdigit()):
        raise InvalidArgument(f"version must be an integer, got {version!r}")
    return ModelRef(name, int(version))


class V2InferHandler:
    """Answers V2 infer requests; one instance per server."""

    def __init__(self, deps: HandlerDeps) -> None:
        self.dataplane = deps.dataplane
        self.metrics = deps.metrics
        self.auth = deps.auth
        self.max_body = deps.max_body
        self.memory = deps.memory

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, name: str, version: str | None
    ) -> None:
        if version is None and scope.get("query_string"):
            version = query_version(scope["query_string"])
        status, payload = await self.answer(scope, receive, name, version)
        await respond(send, status, payload)

    async def answer(
        self, scope: Scope, receive: Receive, name: str, version: str | None
    ) -> tuple[int, bytes]:
        """The status and JSON body for one request; never raises (its metrics are recorded)."""
        started = time.perf_counter()
        code, model_version = Code.OK, ""
        reservation = self.memory.reservation()
        try:
            self.auth.check(header(scope, b"authorization"))
            ref = model_ref(name, version)
            servable = self.dataplane.route(ref, lambda key: header(scope, key.encode()))
            model_version = str(servable.version)
            status, payload = 200, await self._infer(scope, receive, reservation, ref, servable)
        except Exception as exc:  # noqa: BLE001 - every failure is answered, see handler.failure
            what = f"{scope.get('method', '')} {scope.get('path', '')}"
            code, status, payload = failure(exc, self.metrics, what)
        finally:
            reservation.release()
        seconds = time.perf_counter() - started
        self.metrics.observe(self.dataplane.metrics_name(name), model_version, "infer", code, "rest", seconds)
        return status, payload

    async def _infer(
        self, scope: Scope, receive: Receive, reservation: Reservation, ref: ModelRef, servable: Servable
    ) -> bytes:
        body = await read_body(scope, receive, self.max_body, reservation)
        reservation.take(jsonio.parse_cost(body), "parsing the JSON request body")
        info = servable.signature(None)
        decoded = v2_codec.decode_request(jsonio.loads(body), info)
        result = await self.dataplane.predict(servable, info, decoded.inputs, decoded.outputs, ref)
        return v2_codec.encode_reply(servable.name, str(servable.version), decoded.id, result.outputs, info)
