"""Builds the gRPC server: TF Serving services, standard health checking, reflection.

Two implementations serve the same servicers: ``grpcio`` (``grpc.aio``, the reference) and
``modelship`` (:mod:`service.grpc.h2`, Modelship's own HTTP/2 server, a fraction of grpc.aio's
cost per call). Both take the same registrations; channel arguments apply to grpcio, and the
modelship server honours the subset in :data:`H2_ARGUMENTS`.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from tensorflow_serving.apis.model_service_pb2 import DESCRIPTOR as MODEL_SERVICE
from tensorflow_serving.apis.prediction_service_pb2 import DESCRIPTOR as PREDICTION_SERVICE

from service.auth import TokenAuth
from service.dataplane import DataPlane
from service.errors import InvalidArgument
from service.grpc.h2.limits import Limits
from service.grpc.h2.server import H2Server
from service.grpc.registration import add_service
from service.grpc.servicer import ModelService, PredictionService
from service.memory import MemoryBudget
from service.metrics import Metrics
from service.tls import TlsManager

SERVICES = ("tensorflow.serving.PredictionService", "tensorflow.serving.ModelService")
IMPLEMENTATIONS = ("grpcio", "modelship")
# the channel arguments the modelship server honours (the rest only mean something to grpcio)
H2_ARGUMENTS = (
    "grpc.max_connection_age_ms",
    "grpc.max_connection_age_grace_ms",
    "grpc.max_concurrent_streams",
    "grpc.max_receive_message_length",
    "grpc.max_send_message_length",
    "grpc.so_reuseport",
)


def parse_channel_arguments(text: str) -> list[tuple[str, int | str]]:
    """TF Serving's ``--grpc_channel_arguments``: ``key=value,key=value``; integers stay integers."""
    out: list[tuple[str, int | str]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidArgument(f"grpc_channel_arguments: expected key=value, got {item!r}")
        value = value.strip()
        out.append((key.strip(), int(value) if value.lstrip("-").isdigit() else value))
    return out


def h2_server(options: list[tuple[str, int | str]]) -> H2Server:
    """The modelship server for grpcio-style ``options``; any it cannot honour is refused."""
    values: dict[str, int] = {}
    for key, value in options:
        if key not in H2_ARGUMENTS:
            raise InvalidArgument(
                f"grpc_channel_arguments: {key} is not supported by grpc_server=modelship "
                f"(supported: {', '.join(H2_ARGUMENTS)})"
            )
        if not isinstance(value, int) or value < 0:
            raise InvalidArgument(
                f"grpc_channel_arguments: {key} needs a non-negative integer, got {value!r}"
            )
        values[key] = value
    default = Limits()
    limits = Limits(
        max_concurrent_streams=values.get("grpc.max_concurrent_streams", default.max_concurrent_streams),
        max_receive_message=values.get("grpc.max_receive_message_length", default.max_receive_message),
        max_send_message=values.get("grpc.max_send_message_length", default.max_send_message),
    )
    age = values.get("grpc.max_connection_age_ms")
    grace = values.get("grpc.max_connection_age_grace_ms")
    return H2Server(
        limits,
        age / 1000 if age else None,
        grace / 1000 if grace is not None else None,
        reuse_port=bool(values.get("grpc.so_reuseport", 1)),
    )


class GrpcServer:
    """The gRPC side of the model server; health follows the dataplane's readiness."""

    def __init__(
        self,
        dataplane: DataPlane,
        metrics: Metrics,
        auth: TokenAuth,
        host: str,
        port: int,
        max_receive_bytes: int,
        max_send_bytes: int,
        memory: MemoryBudget,
        tensor_content: bool = False,
        channel_arguments: str = "",
        implementation: str = "grpcio",
        tls: TlsManager | None = None,
    ) -> None:
        options: list[tuple[str, int | str]] = [
            ("grpc.max_receive_message_length", max_receive_bytes),
            ("grpc.max_send_message_length", max_send_bytes),
            ("grpc.so_reuseport", 0),
            *parse_channel_arguments(channel_arguments),
        ]
        if implementation not in IMPLEMENTATIONS:
            raise InvalidArgument(f"grpc_server: {implementation!r} is not one of {IMPLEMENTATIONS}")
        self.implementation = implementation
        self.server: grpc.aio.Server | H2Server = (
            grpc.aio.server(options=options) if implementation == "grpcio" else h2_server(options)
        )
        self.dataplane = dataplane
        prediction = PREDICTION_SERVICE.services_by_name["PredictionService"]
        model = MODEL_SERVICE.services_by_name["ModelService"]
        health = health_pb2.DESCRIPTOR.services_by_name["Health"]
        add_service(
            self.server,
            prediction,
            PredictionService(dataplane, metrics, auth, tensor_content),
            memory,
            takes_incoming=True,
        )
        add_service(
            self.server,
            model,
            ModelService(dataplane, metrics, auth, tensor_content),
            memory,
            takes_incoming=True,
        )
        self.health = health_aio.HealthServicer()
        add_service(self.server, health, self.health, memory, takes_incoming=False)
        names = (prediction.full_name, model.full_name, health.full_name, reflection.SERVICE_NAME)
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
            reflection.aio.ReflectionServicer(names), self.server
        )
        self.address = f"{host}:{port}"
        if tls is None:
            self.port = self.server.add_insecure_port(self.address)
        elif isinstance(self.server, H2Server):
            self.port = self.server.add_secure_port(self.address, tls.listener_context("grpc"))
        else:
            self.port = self.server.add_secure_port(self.address, tls.grpcio_credentials())
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.server.start()
        self._watch = asyncio.create_task(self._follow_readiness())

    async def _follow_readiness(self) -> None:
        last: bool | None = None
        while True:
            ready = self.dataplane.ready()
            if ready != last:
                status = (
                    health_pb2.HealthCheckResponse.SERVING
                    if ready
                    else health_pb2.HealthCheckResponse.NOT_SERVING
                )
                for name in ("", *SERVICES):
                    await self.health.set(name, status)
                last = ready
            await asyncio.sleep(0.2)

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING, stop taking RPCs, let in-flight ones finish within ``grace``."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
