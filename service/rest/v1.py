"""TF Serving REST API v1, wire-compatible: routing, parsing and encoding only.

Paths (case-insensitive, as TF Serving's regexes)::

    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]            model status
    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata   signature metadata
    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict|:classify|:regress

Every inference answer carries ``x-modelship-model-version``: the version that answered (with a
traffic split, the one the split chose for a name-only request). Every other ``/v1`` request gets
400 ``Malformed request``. This is a bare ASGI handler: the
predict path carries no framework routing or validation.
"""

from __future__ import annotations

import re
import time
from typing import Any

from google.protobuf import json_format

from service import jsonio
from service.dataplane import ModelRef, State
from service.errors import Code, InvalidArgument
from service.memory import Reservation
from service.rest import codec
from service.rest.handler import HandlerDeps, failure
from service.rest.http import JSON_HEADERS, Receive, Scope, Send, error_body, header, read_body, respond
from service.servable import Servable

POST_RE = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/([0-9]+))|(?:/labels/([^/:]+)))?"
    r":(classify|regress|predict)",
    re.IGNORECASE,
)
GET_RE = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/([0-9]+))|(?:/labels/([^/:]+)))?"
    r"(?:/(metadata))?",
    re.IGNORECASE,
)
VERSION_HEADER = b"x-modelship-model-version"
CORS_HEADERS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"POST, GET"),
    (b"access-control-allow-headers", b"Content-Type, Authorization"),
]


class V1Handler:
    """Handles every ``/v1`` request; one instance per server."""

    def __init__(self, deps: HandlerDeps, cors: bool = False) -> None:
        self.dataplane = deps.dataplane
        self.metrics = deps.metrics
        self.auth = deps.auth
        self.max_body = deps.max_body
        self.memory = deps.memory
        self.headers = [*JSON_HEADERS, *CORS_HEADERS] if cors else JSON_HEADERS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        memory = self.memory.reservation()
        try:
            await self._handle(scope, receive, send, memory)
        finally:
            memory.release()

    async def _handle(self, scope: Scope, receive: Receive, send: Send, memory: Reservation) -> None:
        started = time.perf_counter()
        method, path = scope["method"], scope["path"]
        model, version, api = "", "", "unknown"
        headers = self.headers
        try:
            if method == "OPTIONS":
                await self._preflight(scope, send)
                return
            self.auth.check(header(scope, b"authorization"))
            if method == "POST" and (m := POST_RE.fullmatch(path)):
                ref = _model_ref(m.group(1), m.group(2), m.group(3))
                model, api = ref.name, m.group(4).lower()
                body = await read_body(scope, receive, self.max_body, memory)
                servable = self.dataplane.route(ref, lambda key: header(scope, key.encode()))
                version = str(servable.version)
                headers = [*headers, (VERSION_HEADER, version.encode())]
                memory.take(jsonio.parse_cost(body), "parsing the JSON request body")
                status, payload = await self._post(api, servable, body, ref)
            elif method == "GET" and (m := GET_RE.fullmatch(path)):
                if m.group(1) is None:
                    raise InvalidArgument("Missing model name in request.")
                ref = _model_ref(m.group(1), m.group(2), m.group(3))
                model, api = ref.name, "metadata" if m.group(4) else "status"
                status, payload = self._get(api, ref)
            else:
                raise InvalidArgument(f"Malformed request: {method} {path}")
            code = Code.OK
        except Exception as exc:  # noqa: BLE001 - every failure is answered, see handler.failure
            code, status, payload = failure(exc, self.metrics, f"{method} {path}")
        await respond(send, status, payload, headers)
        if model:
            self.metrics.observe(
                self.dataplane.metrics_name(model), version, api, code, "rest", time.perf_counter() - started
            )

    async def _preflight(self, scope: Scope, send: Send) -> None:
        origin = header(scope, b"origin") or b""
        if not re.match(rb"https?://", origin):
            body = error_body("Origin header is missing in CORS preflight")
            await respond(send, 400, body, self.headers)
            return
        await respond(send, 200, b"", self.headers)

    async def _post(self, api: str, servable: Servable, body: bytes, ref: ModelRef) -> tuple[int, bytes]:
        doc = jsonio.loads(body)
        if not isinstance(doc, dict):
            raise InvalidArgument("JSON Value: request body Is not object")
        signature_name = doc.get("signature_name", "")
        if not isinstance(signature_name, str):
            raise InvalidArgument("'signature_name' key must be a string value.")
        if api == "predict":
            return 200, await self._predict(servable, signature_name, doc, ref)
        examples = doc.get("examples")
        if not isinstance(examples, list) or not examples:
            raise InvalidArgument(
                f"When method is {api}, key 'examples' is expected and was not "
                "found (a non-empty array of objects)"
            )
        example_list = [codec.to_example(e, f"example {i}") for i, e in enumerate(examples)]
        context = codec.to_example(doc["context"], "context") if "context" in doc else None
        if api == "regress":
            values = await self.dataplane.regress(servable, signature_name, example_list, context)
            return 200, jsonio.dumps({"results": values}, finite=jsonio.all_finite([values]))
        classes = await self.dataplane.classify(servable, signature_name, example_list, context)
        results = [[[label, score] for label, score in row] for row in classes]
        return 200, jsonio.dumps({"results": results}, finite=False)

    async def _predict(
        self, servable: Servable, signature_name: str, doc: dict[str, Any], ref: ModelRef
    ) -> bytes:
        has_instances, has_inputs = "instances" in doc, "inputs" in doc
        if has_instances == has_inputs:
            raise InvalidArgument(
                "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist"
                if has_instances
                else "Missing 'inputs' or 'instances' key"
            )
        info = servable.signature(signature_name or None)
        if has_instances:
            inputs = codec.decode_instances(doc["instances"], info)
        else:
            inputs = codec.decode_inputs(doc["inputs"], info)
        result = await self.dataplane.predict(servable, info, inputs, ref=ref)
        finite = jsonio.all_finite(result.outputs.values())
        if has_instances:
            return jsonio.dumps({"predictions": codec.encode_row(result.outputs)}, finite)
        return jsonio.dumps({"outputs": codec.encode_columnar(result.outputs)}, finite)

    def _get(self, api: str, ref: ModelRef) -> tuple[int, bytes]:
        if api == "metadata":
            servable = self.dataplane.resolve(ref)
            return 200, metadata_json(servable)
        body = {
            "model_version_status": [
                {
                    "version": str(s.version),
                    "state": State(s.state).name,
                    "status": {"error_code": s.error_code.name, "error_message": s.error_message},
                }
                for s in self.dataplane.model_status(ref)
            ]
        }
        return 200, jsonio.dumps(body)


def metadata_json(servable: Servable) -> bytes:
    """TF Serving's metadata body, with its double-nested ``signature_def``."""
    def_map = json_format.MessageToDict(
        servable.signature_def_map,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    return jsonio.dumps(
        {
            "model_spec": {"name": servable.name, "signature_name": "", "version": str(servable.version)},
            "metadata": {"signature_def": def_map},
        }
    )


def _model_ref(name: str, version: str | None, label: str | None) -> ModelRef:
    if version is not None:
        if len(version) > 18 and int(version) >= 2**63:
            raise InvalidArgument(f"Failed to convert version: {version}")
        return ModelRef(name, version=int(version))
    return ModelRef(name, label=label)
