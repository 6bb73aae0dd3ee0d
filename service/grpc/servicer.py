"""TF Serving's gRPC services over the dataplane: parse protos, call, encode. Nothing else.

``tensorflow.serving.PredictionService`` (Predict, Classify, Regress, MultiInference,
GetModelMetadata) and ``tensorflow.serving.ModelService`` (GetModelStatus,
HandleReloadConfigRequest), with the official ``tensorflow-serving-api`` messages, so clients built
on its stubs work unchanged. Errors become the gRPC status codes TF Serving uses, messages cut at
1024 characters.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2, text_format
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from service import model_config
from service import signature as sig
from service.auth import TokenAuth
from service.dataplane import DataPlane, ModelRef
from service.errors import Code, InvalidArgument, ServingError
from service.grpc.registration import Incoming, status_code
from service.memory import Reservation
from service.metrics import Metrics
from service.servable import Servable
from service.tensor_proto import from_numpy, to_numpy

log = logging.getLogger(__name__)
R = TypeVar("R")
MAX_MESSAGE = 1024


def _truncate(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 12] + "...TRUNCATED"


@dataclass(slots=True)
class Call:
    """What one RPC knows beside its message: metric labels and its memory reservation."""

    model: str
    memory: Reservation
    version: str = ""


def rpc(api: str) -> Callable[[Callable[..., Awaitable[R]]], Callable[..., Awaitable[R]]]:
    """Map :class:`ServingError` (and anything unexpected) to a gRPC status; record metrics.

    The wrapped method gets the decoded message and a :class:`Call`; a request that could not be
    decoded (see :mod:`service.grpc.registration`) is answered here without calling it.
    """

    def wrap(method: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        @functools.wraps(method)
        async def handler(self: _Base, incoming: Incoming, context: grpc.aio.ServicerContext) -> R:
            started = time.perf_counter()
            request = incoming.message
            call = Call(request.model_spec.name if hasattr(request, "model_spec") else "", incoming.memory)
            code = Code.OK
            try:
                self.auth.check(_authorization(context))
                if incoming.error is not None:
                    raise incoming.error
                return await method(self, request, context, call)
            except ServingError as exc:
                code = exc.code
                await context.abort(status_code(exc), _truncate(exc.message))
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception:  # the last line of defence: INTERNAL, the traceback only in the log
                code = Code.INTERNAL
                log.exception("%s failed", api)
                self.metrics.internal_errors.labels("grpc").inc()
                await context.abort(grpc.StatusCode.INTERNAL, "internal error")
            finally:
                incoming.memory.release()
                if call.model:
                    self.metrics.observe(
                        self.dataplane.metrics_name(call.model),
                        call.version,
                        api,
                        code,
                        "grpc",
                        time.perf_counter() - started,
                    )
            raise AssertionError("unreachable")  # context.abort always raises

        return handler

    return wrap


def _authorization(context: grpc.aio.ServicerContext) -> bytes | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value.encode() if isinstance(value, str) else bytes(value)
    return None


def _metadata(context: grpc.aio.ServicerContext, key: str) -> bytes | None:
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return value.encode() if isinstance(value, str) else bytes(value)
    return None


def ref_from_proto(spec: model_pb2.ModelSpec) -> ModelRef:
    if not spec.name:
        raise InvalidArgument("Missing ModelSpec")
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return ModelRef(spec.name, version=spec.version.value, signature_name=spec.signature_name)
    if choice == "version_label":
        return ModelRef(spec.name, label=spec.version_label, signature_name=spec.signature_name)
    return ModelRef(spec.name, signature_name=spec.signature_name)


def spec_to_proto(servable: Servable, signature_name: str) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=servable.name, signature_name=signature_name)
    spec.version.value = servable.version
    return spec


class _Base:
    def __init__(
        self, dataplane: DataPlane, metrics: Metrics, auth: TokenAuth, tensor_content: bool = False
    ) -> None:
        self.dataplane = dataplane
        self.metrics = metrics
        self.auth = auth
        self.tensor_content = tensor_content

    def _resolve(self, spec_proto: model_pb2.ModelSpec, call: Call) -> tuple[Servable, ModelRef]:
        """As TF Serving resolves it (metadata, MultiInference): no traffic split."""
        ref = ref_from_proto(spec_proto)
        servable = self.dataplane.resolve(ref)
        call.version = str(servable.version)
        return servable, ref

    def _route(self, spec_proto: model_pb2.ModelSpec, call: Call, context: Any) -> tuple[Servable, ModelRef]:
        """The version one inference request runs on (the traffic split, once per request)."""
        ref = ref_from_proto(spec_proto)
        servable = self.dataplane.route(ref, lambda key: _metadata(context, key))
        call.version = str(servable.version)
        return servable, ref


def _examples(input_proto: Any) -> tuple[list[Any], Any]:
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        return list(input_proto.example_list.examples), None
    if kind == "example_list_with_context":
        ctx = input_proto.example_list_with_context
        return list(ctx.examples), ctx.context
    raise InvalidArgument("Input is empty")


class PredictionService(_Base, prediction_service_pb2_grpc.PredictionServiceServicer):  # type: ignore[misc]
    """``tensorflow.serving.PredictionService``."""

    @rpc("Predict")
    async def Predict(
        self, request: predict_pb2.PredictRequest, context: Any, call: Call
    ) -> predict_pb2.PredictResponse:
        servable, ref = self._route(request.model_spec, call, context)
        info = servable.signature(ref.signature_name or None)
        inputs = {name: to_numpy(tensor, name, call.memory) for name, tensor in request.inputs.items()}
        result = await self.dataplane.predict(servable, info, inputs, list(request.output_filter), ref)
        response = predict_pb2.PredictResponse(model_spec=spec_to_proto(servable, info.name))
        for name, value in result.outputs.items():
            response.outputs[name].CopyFrom(from_numpy(value, self.tensor_content))
        return response

    @rpc("Classify")
    async def Classify(
        self, request: classification_pb2.ClassificationRequest, context: Any, call: Call
    ) -> classification_pb2.ClassificationResponse:
        servable, ref = self._route(request.model_spec, call, context)
        examples, ctx = _examples(request.input)
        info = servable.signature(ref.signature_name or None, sig.CLASSIFY_METHOD)
        rows = await self.dataplane.classify(servable, info.name, examples, ctx)
        response = classification_pb2.ClassificationResponse(model_spec=spec_to_proto(servable, info.name))
        _fill_classes(response.result, rows)
        return response

    @rpc("Regress")
    async def Regress(
        self, request: regression_pb2.RegressionRequest, context: Any, call: Call
    ) -> regression_pb2.RegressionResponse:
        servable, ref = self._route(request.model_spec, call, context)
        examples, ctx = _examples(request.input)
        info = servable.signature(ref.signature_name or None, sig.REGRESS_METHOD)
        values = await self.dataplane.regress(servable, info.name, examples, ctx)
        response = regression_pb2.RegressionResponse(model_spec=spec_to_proto(servable, info.name))
        for value in values:
            response.result.regressions.add(value=value)
        return response

    @rpc("MultiInference")
    async def MultiInference(
        self, request: inference_pb2.MultiInferenceRequest, context: Any, call: Call
    ) -> inference_pb2.MultiInferenceResponse:
        if not request.tasks:
            raise InvalidArgument("Tasks is empty")
        names = {t.model_spec.name for t in request.tasks}
        if len(names) != 1:
            raise InvalidArgument(
                "All ModelSpecs in a MultiInferenceRequest must access the same model name."
            )
        call.model = next(iter(names))
        signatures = [t.model_spec.signature_name for t in request.tasks]
        if len(set(signatures)) != len(signatures):
            raise InvalidArgument("Duplicate evaluation of signature")
        examples, ctx = _examples(request.input)
        response = inference_pb2.MultiInferenceResponse()
        for task in request.tasks:
            servable, ref = self._resolve(task.model_spec, call)
            result = response.results.add()
            if task.method_name == sig.CLASSIFY_METHOD:
                info = servable.signature(ref.signature_name or None, sig.CLASSIFY_METHOD)
                rows = await self.dataplane.classify(servable, info.name, examples, ctx)
                _fill_classes(result.classification_result, rows)
            elif task.method_name == sig.REGRESS_METHOD:
                info = servable.signature(ref.signature_name or None, sig.REGRESS_METHOD)
                for value in await self.dataplane.regress(servable, info.name, examples, ctx):
                    result.regression_result.regressions.add(value=value)
            else:
                raise InvalidArgument(f"Unsupported signature method_name: {task.method_name}")
            result.model_spec.CopyFrom(spec_to_proto(servable, info.name))
        return response

    @rpc("GetModelMetadata")
    async def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: Any, call: Call
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        if not request.metadata_field:
            raise InvalidArgument("GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != "signature_def":
                raise InvalidArgument(f"Metadata field {field} is not supported")
        servable, _ = self._resolve(request.model_spec, call)
        response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=spec_to_proto(servable, ""))
        packed = any_pb2.Any()
        packed.Pack(servable.signature_def_map)
        response.metadata["signature_def"].CopyFrom(packed)
        return response


def _fill_classes(result: Any, rows: list[list[tuple[str, float]]]) -> None:
    for row in rows:
        classifications = result.classifications.add()
        for label, score in row:
            classifications.classes.add(label=label, score=score)


class ModelService(_Base, model_service_pb2_grpc.ModelServiceServicer):  # type: ignore[misc]
    """``tensorflow.serving.ModelService``."""

    def __init__(self, *args: Any, reload_timeout: float = 300, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reload_timeout = reload_timeout

    @rpc("GetModelStatus")
    async def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: Any, call: Call
    ) -> get_model_status_pb2.GetModelStatusResponse:
        response = get_model_status_pb2.GetModelStatusResponse()
        for status in self.dataplane.model_status(ref_from_proto(request.model_spec)):
            entry = response.model_version_status.add(version=status.version, state=int(status.state))
            entry.status.error_code = int(status.error_code)
            entry.status.error_message = status.error_message
        return response

    @rpc("HandleReloadConfigRequest")
    async def HandleReloadConfigRequest(
        self, request: model_management_pb2.ReloadConfigRequest, context: Any, call: Call
    ) -> model_management_pb2.ReloadConfigResponse:
        configs = model_config.parse(text_format.MessageToString(request.config), "ReloadConfigRequest")
        response = model_management_pb2.ReloadConfigResponse()
        if not await self.dataplane.reload_config(configs, self.reload_timeout):
            response.status.error_code = error_codes_pb2.UNAVAILABLE
            response.status.error_message = "not every configured model has an AVAILABLE version yet"
        return response
