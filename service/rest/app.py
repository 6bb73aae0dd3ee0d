"""The REST application factory: TF Serving ``/v1`` on a bare ASGI path, the rest on FastAPI."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from service import jsonio
from service.auth import TokenAuth
from service.dataplane import DataPlane
from service.errors import ServingError
from service.metrics import CONTENT_TYPE, Metrics
from service.rest.http import Receive, Scope, Send
from service.rest.v1 import V1Handler
from service.rest.v2 import build_router


class RestApp:
    """ASGI entry: ``/v1/...`` goes straight to :class:`V1Handler`, everything else to FastAPI."""

    def __init__(self, v1: V1Handler, api: FastAPI) -> None:
        self.v1 = v1
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path[:4].lower() == "/v1/" or path.lower() == "/v1":
                await self.v1(scope, receive, send)
                return
        await self.api(scope, receive, send)


def _error(status: int, message: str) -> Response:
    return Response(jsonio.dumps({"error": message}), status_code=status, media_type="application/json")


def create_app(dataplane: DataPlane, metrics: Metrics, auth: TokenAuth, max_body: int,
               version: str, cors: bool = False, lifespan: Any = None) -> RestApp:
    """Build the REST application over ``dataplane``; nothing here reads configuration itself."""
    api = FastAPI(title="Modelship", version=version, lifespan=lifespan,
                  description="TensorFlow Serving-compatible model server (REST v1 and KServe V2).")

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
        api.add_api_route(path, prometheus, methods=["GET"], include_in_schema=path == "/metrics",
                          summary="Prometheus metrics")
    api.include_router(build_router(dataplane, metrics, auth, max_body, version))
    return RestApp(V1Handler(dataplane, metrics, auth, max_body, cors), api)
