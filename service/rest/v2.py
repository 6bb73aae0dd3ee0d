"""KServe V2 / Open Inference Protocol REST endpoints and health probes (FastAPI router).

Inference itself runs on the bare ASGI path of :mod:`service.rest.v2_infer`; its routes here
document it in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from service import jsonio
from service.auth import TokenAuth
from service.dataplane import DataPlane, ModelRef, State
from service.errors import Code, ServingError
from service.rest import v2_codec
from service.rest.v2_infer import V2InferHandler, model_ref
from service.servable import Servable

PLATFORM = "tensorflow_savedmodel"


def json_response(body: Any, status: int = 200) -> Response:
    return Response(jsonio.dumps(body), status_code=status, media_type="application/json")


class V2Endpoints:
    """The V2 protocol's handlers over one dataplane; :func:`build_router` routes them."""

    def __init__(
        self,
        dataplane: DataPlane,
        auth: TokenAuth,
        server_version: str,
        infer_handler: V2InferHandler,
    ) -> None:
        self.dataplane = dataplane
        self.auth = auth
        self.server_version = server_version
        self.infer_handler = infer_handler

    def _ref(self, request: Request, name: str, version: str | None) -> ModelRef:
        self.auth.check(request.headers.get("authorization", "").encode() or None)
        return model_ref(name, version)

    def _resolve(self, request: Request, name: str, version: str | None) -> Servable:
        return self.dataplane.resolve(self._ref(request, name, version))

    async def traffic(self, request: Request) -> Response:
        """``GET /v1/modelship/traffic``: the applied traffic config, its hash, generation, errors."""
        self.auth.check(request.headers.get("authorization", "").encode() or None)
        return json_response(self.dataplane.traffic.status())

    async def server_metadata(self) -> Response:
        return json_response({"name": "modelship", "version": self.server_version, "extensions": []})

    async def live(self) -> Response:
        return json_response({"live": True})

    async def ready(self) -> Response:
        ok = self.dataplane.ready()
        return json_response({"ready": ok}, 200 if ok else 503)

    async def list_models(self, request: Request) -> Response:
        self.auth.check(request.headers.get("authorization", "").encode() or None)
        return json_response({"models": self.dataplane.list_models()})

    async def model_ready(self, request: Request, name: str, version: str | None = None) -> Response:
        try:
            servable = self._resolve(request, name, version)
        except ServingError as exc:
            if exc.code not in (Code.NOT_FOUND, Code.UNAVAILABLE):
                raise
            return json_response({"name": name, "ready": False}, 503)
        ready = not self.dataplane.draining
        return json_response({"name": name, "version": str(servable.version), "ready": ready})

    async def model_metadata(self, request: Request, name: str, version: str | None = None) -> Response:
        servable = self._resolve(request, name, version)
        info = servable.signature(None)
        statuses = self.dataplane.model_status(ModelRef(name))
        return json_response(
            {
                "name": servable.name,
                "versions": [str(v.version) for v in statuses if v.state == State.AVAILABLE],
                "platform": PLATFORM,
                "inputs": [v2_codec.tensor_metadata(t) for t in info.inputs.values()],
                "outputs": [v2_codec.tensor_metadata(t) for t in info.outputs.values()],
            }
        )

    async def infer(self, request: Request, name: str, version: str | None = None) -> Response:
        """Documents ``/infer`` in the OpenAPI schema. Requests are answered by the bare handler
        (:class:`V2InferHandler`), which ``RestApp`` calls first; one that still gets here (Starlette's
        ``$`` also accepts a path ending in a newline) is answered by it too, the same way."""
        status, body = await self.infer_handler.answer(request.scope, request.receive, name, version)
        return Response(body, status_code=status, media_type="application/json")


def build_router(endpoints: V2Endpoints) -> APIRouter:
    """Routes of the V2 protocol; inference and metadata need the token, health does not."""
    router = APIRouter(prefix="/v2", tags=["v2"])
    get, post = ["GET"], ["POST"]
    router.add_api_route("", endpoints.server_metadata, methods=get, summary="Server metadata")
    router.add_api_route(
        "/health/live", endpoints.live, methods=get, summary="Liveness: the process serves HTTP"
    )
    router.add_api_route(
        "/health/ready",
        endpoints.ready,
        methods=get,
        summary="Readiness: every model has an AVAILABLE version",
    )
    router.add_api_route("/models", endpoints.list_models, methods=get, summary="List configured models")
    for suffix in ("", "/versions/{version}"):
        path = f"/models/{{name}}{suffix}"
        router.add_api_route(f"{path}/ready", endpoints.model_ready, methods=get, summary="Model readiness")
        router.add_api_route(path, endpoints.model_metadata, methods=get, summary="Model metadata")
        router.add_api_route(
            f"{path}/infer", endpoints.infer, methods=post, summary="Inference (Open Inference Protocol)"
        )
    return router


__all__ = ["V2Endpoints", "build_router"]
