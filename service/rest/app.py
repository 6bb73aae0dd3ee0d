"""The REST application factory: TF Serving ``/v1`` and V2 infer on bare ASGI paths, the rest on FastAPI."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message

from service.auth import TokenAuth
from service.dataplane import DataPlane
from service.errors import ServingError
from service.memory import MemoryBudget
from service.metrics import CONTENT_TYPE, Metrics
from service.rest import v2_infer
from service.rest.client_cert import RequireClientCert
from service.rest.handler import HandlerDeps
from service.rest.http import JSON_HEADERS, Receive, Scope, Send, error_body, respond
from service.rest.v1 import V1Handler
from service.rest.v2 import V2Endpoints, build_router
from service.rest.v2_infer import V2InferHandler

log = logging.getLogger(__name__)
TRAFFIC_PATH = "/v1/modelship/traffic"  # Modelship's own status of the traffic config (FastAPI side)


class RestApp:
    """ASGI entry: ``/v1/...`` goes straight to :class:`V1Handler`, ``POST .../infer`` on ``/v2`` to
    :class:`V2InferHandler`, everything else to FastAPI."""

    def __init__(self, v1: V1Handler, v2_infer: V2InferHandler, api: FastAPI) -> None:
        self.v1 = v1
        self.v2_infer = v2_infer
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if (path[:4].lower() == "/v1/" or path.lower() == "/v1") and path != TRAFFIC_PATH:
                await self.v1(scope, receive, send)
                return
            if scope["method"] == "POST" and (target := v2_infer.match(path)) is not None:
                await self.v2_infer(scope, receive, send, *target)
                return
        await self.api(scope, receive, send)


class LastResort:
    """The FastAPI side's last line of defence: an unexpected error becomes a clean JSON 500.

    It sits inside Starlette's own error middleware, so the client never sees a plain-text 500;
    the traceback goes to the log (never the payload) and the error is counted.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("%s %s failed", scope.get("method", ""), scope.get("path", ""))
            self.metrics.internal_errors.labels("rest").inc()
            if scope["type"] == "http" and not started:
                await respond(send, 500, error_body("internal error"), JSON_HEADERS)


def _error(status: int, message: str) -> Response:
    return Response(error_body(message), status_code=status, media_type="application/json")


def create_app(
    dataplane: DataPlane,
    metrics: Metrics,
    auth: TokenAuth,
    max_body: int,
    version: str,
    memory: MemoryBudget,
    cors: bool = False,
    lifespan: Any = None,
    require_client_cert: bool = False,
) -> RestApp | RequireClientCert:
    """Build the REST application over ``dataplane``; nothing here reads configuration itself."""
    api = FastAPI(
        title="Modelship",
        version=version,
        lifespan=lifespan,
        description="TensorFlow Serving-compatible model server (REST v1 and KServe V2).",
    )
    api.add_middleware(LastResort, metrics=metrics)

    @api.exception_handler(ServingError)
    async def serving_error(_: Request, exc: ServingError) -> Response:
        return _error(exc.http_status, exc.message)

    @api.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail))

    @api.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        return _error(400, f"invalid request: {exc.errors()}")

    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    for path in ("/metrics", "/monitoring/prometheus/metrics"):
        api.add_api_route(
            path,
            prometheus,
            methods=["GET"],
            include_in_schema=path == "/metrics",
            summary="Prometheus metrics",
        )
    deps = HandlerDeps(dataplane, metrics, auth, max_body, memory)
    infer = V2InferHandler(deps)
    v2 = V2Endpoints(dataplane, auth, version, infer)
    api.include_router(build_router(v2))
    api.add_api_route(TRAFFIC_PATH, v2.traffic, methods=["GET"], summary="Applied traffic config (Modelship)")
    app = RestApp(V1Handler(deps, cors), infer, api)
    return RequireClientCert(app) if require_client_cert else app
