"""Builds the ``grpc.aio`` server: TF Serving services, standard health checking, reflection."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection
from tensorflow_serving.apis.model_service_pb2 import DESCRIPTOR as MODEL_SERVICE
from tensorflow_serving.apis.prediction_service_pb2 import DESCRIPTOR as PREDICTION_SERVICE

from service.auth import TokenAuth
from service.dataplane import DataPlane
from service.errors import InvalidArgument
from service.grpc.registration import add_service
from service.grpc.servicer import ModelService, PredictionService
from service.memory import MemoryBudget
from service.metrics import Metrics

SERVICES = ("tensorflow.serving.PredictionService", "tensorflow.serving.ModelService")


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
    ) -> None:
        options: list[tuple[str, int | str]] = [
            ("grpc.max_receive_message_length", max_receive_bytes),
            ("grpc.max_send_message_length", max_send_bytes),
            ("grpc.so_reuseport", 0),
            *parse_channel_arguments(channel_arguments),
        ]
        self.server = grpc.aio.server(options=options)
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
        reflection.enable_server_reflection(names, self.server)
        self.address = f"{host}:{port}"
        self.port = self.server.add_insecure_port(self.address)
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
