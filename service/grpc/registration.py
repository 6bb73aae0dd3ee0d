"""gRPC method handlers built from service descriptors, with a request decoder that cannot fail.

grpc.aio answers ``UNKNOWN`` when a request deserializer raises, and a message is parsed before
any handler can look at it. Here every request is decoded by :class:`RequestDecoder`: it first takes
the message's bytes from the in-flight memory budget, then parses, and never raises; what went
wrong travels in :class:`Incoming` to the handler, which answers ``INVALID_ARGUMENT`` (not a
valid message) or ``RESOURCE_EXHAUSTED`` (over the budget) and releases the reservation when the
RPC ends. Modelship's servicers take :class:`Incoming` themselves (see ``servicer.rpc``); other
servicers (health checking) get the plain message through :func:`unwrapping`.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from service.errors import InvalidArgument, ServingError
from service.memory import MemoryBudget, Reservation

# A parsed message holds about as much again as its wire bytes (the bytes object grpc hands over
# plus the parsed message); decoded tensors are taken separately when they are built.
PARSE_FACTOR = 2


@dataclass(slots=True)
class Incoming:
    """A decoded request (or why it could not be), with its memory reservation."""

    message: Any
    memory: Reservation
    error: ServingError | None = None


class RequestDecoder:
    """``bytes -> Incoming`` for one request type; reserves first, never raises."""

    def __init__(self, message_class: Any, budget: MemoryBudget) -> None:
        self.message_class = message_class
        self.type_name = message_class.DESCRIPTOR.full_name
        self.budget = budget

    def __call__(self, data: bytes) -> Incoming:
        memory = self.budget.reservation()
        try:
            memory.take(PARSE_FACTOR * len(data), f"a {self.type_name} of {len(data)} bytes")
            return Incoming(self.message_class.FromString(data), memory)
        except ServingError as exc:
            return Incoming(None, memory, exc)
        except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError, RuntimeError, ...
            return Incoming(
                None, memory, InvalidArgument(f"the request is not a valid {self.type_name}: {exc}"[:500])
            )


def status_code(exc: ServingError) -> grpc.StatusCode:
    return grpc.StatusCode[exc.code.name]


def unwrapping(behavior: Callable[..., Any], streaming: bool) -> Callable[..., Any]:
    """Adapt a servicer method that takes plain messages to :class:`Incoming` requests."""
    if streaming and inspect.isasyncgenfunction(behavior):

        async def stream(incoming: Incoming, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                if incoming.error is not None:
                    await context.abort(status_code(incoming.error), incoming.error.message)
                async for item in behavior(incoming.message, context):
                    yield item
            finally:
                incoming.memory.release()

        return stream

    async def unary(incoming: Incoming, context: grpc.aio.ServicerContext) -> Any:
        try:
            if incoming.error is not None:
                await context.abort(status_code(incoming.error), incoming.error.message)
            return await behavior(incoming.message, context)
        finally:
            incoming.memory.release()

    return unary


class Registry(Protocol):
    """Where services are registered: a ``grpc.aio.Server`` or Modelship's own HTTP/2 server."""

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Any) -> None: ...


def add_service(
    server: Registry,
    service: ServiceDescriptor,
    servicer: Any,
    budget: MemoryBudget,
    takes_incoming: bool,
) -> None:
    """Register ``servicer``'s unary and server-streaming methods for ``service``."""
    handlers = {}
    for method in service.methods:
        handlers[method.name] = _handler(method, getattr(servicer, method.name), budget, takes_incoming)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


def _handler(
    method: MethodDescriptor, behavior: Callable[..., Any], budget: MemoryBudget, takes_incoming: bool
) -> grpc.RpcMethodHandler:
    if method.client_streaming:
        raise ValueError(f"{method.full_name}: client-streaming methods are not supported here")
    decoder = RequestDecoder(message_factory.GetMessageClass(method.input_type), budget)
    serializer = message_factory.GetMessageClass(method.output_type).SerializeToString
    if not takes_incoming:
        behavior = unwrapping(behavior, method.server_streaming)
    if method.server_streaming:
        return grpc.unary_stream_rpc_method_handler(
            behavior, request_deserializer=decoder, response_serializer=serializer
        )
    return grpc.unary_unary_rpc_method_handler(
        behavior, request_deserializer=decoder, response_serializer=serializer
    )
