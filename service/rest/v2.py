"""KServe V2 / Open Inference Protocol REST endpoints and health probes (FastAPI router)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response

from service import jsonio
from service.auth import TokenAuth
from service.dataplane import DataPlane, ModelRef, State
from service.errors import Code, InvalidArgument, ServingError
from service.memory import MemoryBudget
from service.metrics import Metrics
from service.rest import v2_codec
from service.rest.http import read_body
from service.servable import Servable

PLATFORM = "tensorflow_savedmodel"


def json_response(body: Any, status: int = 200) -> Response:
    return Response(jsonio.dumps(body), status_code=status, media_type="application/json")


def build_router(
    dataplane: DataPlane,
    metrics: Metrics,
    auth: TokenAuth,
    max_body: int,
    server_version: str,
    memory: MemoryBudget,
) -> APIRouter:
    """Routes of the V2 protocol; inference and metadata need the token, health does not."""
    router = APIRouter(prefix="/v2", tags=["v2"])

    def resolve(request: Request, name: str, version: str | None) -> Servable:
        auth.check(request.headers.get("authorization", "").encode() or None)
        if version is not None and not version.isdigit():
            raise InvalidArgument(f"version must be an integer, got {version!r}")
        return dataplane.resolve(ModelRef(name, int(version) if version else None))

    @router.get("", summary="Server metadata")
    async def server_metadata() -> Response:
        return json_response({"name": "modelship", "version": server_version, "extensions": []})

    @router.get("/health/live", summary="Liveness: the process serves HTTP")
    async def live() -> Response:
        return json_response({"live": True})

    @router.get("/health/ready", summary="Readiness: every model has an AVAILABLE version")
    async def ready() -> Response:
        ok = dataplane.ready()
        return json_response({"ready": ok}, 200 if ok else 503)

    @router.get("/models", summary="List configured models")
    async def list_models(request: Request) -> Response:
        auth.check(request.headers.get("authorization", "").encode() or None)
        return json_response({"models": dataplane.list_models()})

    async def model_ready(request: Request, name: str, version: str | None = None) -> Response:
        try:
            servable = resolve(request, name, version)
        except ServingError as exc:
            if exc.code not in (Code.NOT_FOUND, Code.UNAVAILABLE):
                raise
            return json_response({"name": name, "ready": False}, 503)
        return json_response(
            {"name": name, "version": str(servable.version), "ready": not dataplane.draining}
        )

    async def model_metadata(request: Request, name: str, version: str | None = None) -> Response:
        servable = resolve(request, name, version)
        info = servable.signature(None)
        return json_response(
            {
                "name": servable.name,
                "versions": [
                    str(v.version)
                    for v in dataplane.model_status(ModelRef(name))
                    if v.state == State.AVAILABLE
                ],
                "platform": PLATFORM,
                "inputs": [v2_codec.tensor_metadata(t) for t in info.inputs.values()],
                "outputs": [v2_codec.tensor_metadata(t) for t in info.outputs.values()],
            }
        )

    async def infer(request: Request, name: str, version: str | None = None) -> Response:
        started = time.perf_counter()
        code, model_version = Code.OK, ""
        reservation = memory.reservation()
        try:
            servable = resolve(request, name, version)
            model_version = str(servable.version)
            body = await read_body(request.scope, request.receive, max_body, reservation)
            reservation.take(jsonio.parse_cost(body), "parsing the JSON request body")
            info = servable.signature(None)
            decoded = v2_codec.decode_request(jsonio.loads(body), info)
            result = await dataplane.predict(servable, info, decoded.inputs, decoded.outputs)
            reply: dict[str, Any] = {
                "model_name": servable.name,
                "model_version": model_version,
                "outputs": v2_codec.encode_outputs(result.outputs, info),
            }
            if decoded.id is not None:
                reply["id"] = decoded.id
            finite = jsonio.all_finite(result.outputs.values())
            return Response(jsonio.dumps(reply, finite), media_type="application/json")
        except ServingError as exc:
            code = exc.code
            raise
        finally:
            reservation.release()
            metrics.observe(
                dataplane.metrics_name(name),
                model_version,
                "infer",
                code,
                "rest",
                time.perf_counter() - started,
            )

    for suffix in ("", "/versions/{version}"):
        router.add_api_route(
            f"/models/{{name}}{suffix}/ready", model_ready, methods=["GET"], summary="Model readiness"
        )
        router.add_api_route(
            f"/models/{{name}}{suffix}", model_metadata, methods=["GET"], summary="Model metadata"
        )
        router.add_api_route(
            f"/models/{{name}}{suffix}/infer",
            infer,
            methods=["POST"],
            summary="Inference (Open Inference Protocol)",
        )
    return router


__all__ = ["build_router"]
