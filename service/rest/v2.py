"""KServe V2 / Open Inference Protocol REST endpoints and health probes (FastAPI router)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response

from service import jsonio
from service import signature as sig
from service.auth import TokenAuth
from service.dataplane import DataPlane, ModelSpec
from service.errors import Code, InvalidArgument, ServingError
from service.metrics import Metrics
from service.repository import State
from service.rest import codec
from service.rest.http import read_body
from service.servable import Servable

PLATFORM = "tensorflow_savedmodel"


def json_response(body: Any, status: int = 200) -> Response:
    return Response(jsonio.dumps(body), status_code=status, media_type="application/json")


def build_router(dataplane: DataPlane, metrics: Metrics, auth: TokenAuth, max_body: int,
                 server_version: str) -> APIRouter:
    """Routes of the V2 protocol; inference and metadata need the token, health does not."""
    router = APIRouter(prefix="/v2", tags=["v2"])

    def resolve(request: Request, name: str, version: str | None) -> Servable:
        auth.check(request.headers.get("authorization", "").encode() or None)
        if version is not None and not version.isdigit():
            raise InvalidArgument(f"version must be an integer, got {version!r}")
        return dataplane.resolve(ModelSpec(name, int(version) if version else None))

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
        return json_response({"models": dataplane.repository.model_names()})

    async def model_ready(request: Request, name: str, version: str | None = None) -> Response:
        try:
            servable = resolve(request, name, version)
        except ServingError as exc:
            if exc.code not in (Code.NOT_FOUND, Code.UNAVAILABLE):
                raise
            return json_response({"name": name, "ready": False}, 503)
        return json_response({"name": name, "version": str(servable.version),
                              "ready": not dataplane.draining})

    async def model_metadata(request: Request, name: str, version: str | None = None) -> Response:
        servable = resolve(request, name, version)
        info = servable.signature(None)
        return json_response({
            "name": servable.name,
            "versions": [str(v.version) for v in dataplane.repository.statuses(name)
                         if v.state == State.AVAILABLE],
            "platform": PLATFORM,
            "inputs": [_tensor_meta(t) for t in info.inputs.values()],
            "outputs": [_tensor_meta(t) for t in info.outputs.values()],
        })

    async def infer(request: Request, name: str, version: str | None = None) -> Response:
        started = time.perf_counter()
        code, model_version = Code.OK, ""
        try:
            servable = resolve(request, name, version)
            model_version = str(servable.version)
            body = await read_body(request.scope, request.receive, max_body)
            doc = jsonio.loads(body)
            if not isinstance(doc, dict):
                raise InvalidArgument("request body must be a JSON object")
            info = servable.signature(None)
            inputs = decode_v2_inputs(doc.get("inputs"), info)
            wanted = _requested_outputs(doc.get("outputs"))
            result = await dataplane.predict(servable, info, inputs, wanted)
            outputs = [{"name": k, "shape": list(v.shape), "datatype": info.outputs[k].v2_datatype,
                        "data": codec.encode_value(k, v.reshape(-1))} for k, v in result.outputs.items()]
            reply: dict[str, Any] = {"model_name": servable.name, "model_version": model_version,
                                     "outputs": outputs}
            if "id" in doc:
                reply["id"] = doc["id"]
            finite = jsonio.all_finite(result.outputs.values())
            return Response(jsonio.dumps(reply, finite), media_type="application/json")
        except ServingError as exc:
            code = exc.code
            raise
        finally:
            metrics.observe(name, model_version, "infer", code, "rest", time.perf_counter() - started)

    for suffix in ("", "/versions/{version}"):
        router.add_api_route(f"/models/{{name}}{suffix}/ready", model_ready, methods=["GET"],
                             summary="Model readiness")
        router.add_api_route(f"/models/{{name}}{suffix}", model_metadata, methods=["GET"],
                             summary="Model metadata")
        router.add_api_route(f"/models/{{name}}{suffix}/infer", infer, methods=["POST"],
                             summary="Inference (Open Inference Protocol)")
    return router


def _tensor_meta(tensor: sig.TensorInfo) -> dict[str, Any]:
    return {"name": tensor.name, "datatype": tensor.v2_datatype,
            "shape": list(tensor.shape) if tensor.shape is not None else [-1]}


def _requested_outputs(outputs: Any) -> list[str]:
    if outputs is None:
        return []
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                for o in outputs):
        raise InvalidArgument("'outputs' must be a list of objects with a 'name'")
    return [o["name"] for o in outputs]


def decode_v2_inputs(inputs: Any, info: sig.SignatureInfo) -> dict[str, np.ndarray]:
    """V2 ``inputs`` (name, shape, datatype, data) to arrays, checked against the signature."""
    if not isinstance(inputs, list) or not inputs:
        raise InvalidArgument("'inputs' must be a non-empty list of tensors")
    out: dict[str, np.ndarray] = {}
    for i, item in enumerate(inputs):
        if not isinstance(item, dict):
            raise InvalidArgument(f"inputs[{i}] must be an object")
        name, shape, datatype = item.get("name"), item.get("shape"), item.get("datatype")
        if not isinstance(name, str) or "data" not in item:
            raise InvalidArgument(f"inputs[{i}] needs 'name', 'shape', 'datatype' and 'data'")
        tensor = info.inputs.get(name)
        if tensor is None:
            raise InvalidArgument(f"unexpected input '{name}'; the model takes {sorted(info.inputs)}")
        if datatype != tensor.v2_datatype:
            raise InvalidArgument(f"input '{name}' has datatype {datatype!r}, the model expects "
                                  f"{tensor.v2_datatype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise InvalidArgument(f"input '{name}': 'shape' must be a list of non-negative integers")
        arr = codec.to_array(item["data"], tensor, f"input '{name}'")
        if arr.size != int(np.prod(shape)):
            raise InvalidArgument(f"input '{name}': shape {shape} needs {int(np.prod(shape))} values, "
                                  f"got {arr.size}")
        out[name] = arr.reshape(shape)
    return out


__all__ = ["build_router", "decode_v2_inputs"]
