"""gRPC calls on Modelship's own HTTP/2 server: each RPC's task and its ``ServicerContext``.

A :class:`Call` is what a servicer method gets as its ``context``: the part of
``grpc.aio.ServicerContext`` that servicers use (metadata, ``abort`` raising
``grpc.aio.AbortError``, ``set_code``/``set_details``, ``write``/``read`` for streams,
``time_remaining``, ``peer``, trailing metadata), so the very servicers registered on ``grpc.aio``
run here unchanged, with their own request deserializers and response serializers. The client's
``grpc-timeout`` becomes a deadline: past it the call is cancelled and ends DEADLINE_EXCEEDED.
A handler that raises anything else ends the call UNKNOWN (or the code it set first), as on
grpc.aio, and is logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import grpc

from service.grpc.h2 import status

if TYPE_CHECKING:
    from service.grpc.h2.connection import H2Connection
    from service.grpc.h2.stream import Stream

log = logging.getLogger(__name__)
HIGH_WATER = 1 << 20  # a streaming writer waits while this much output waits for window
# transport headers, never shown to handlers as metadata (grpc.aio leaves them out too)
_TRANSPORT = frozenset(("content-type", "te", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding"))
_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


@dataclass(frozen=True, slots=True)
class Method:
    """One registered RPC method, from the ``grpc.RpcMethodHandler`` servicers register."""

    request_streaming: bool
    response_streaming: bool
    deserialize: Callable[[bytes], Any]
    serialize: Callable[[Any], bytes]
    behavior: Callable[..., Any]

    @classmethod
    def of(cls, handler: grpc.RpcMethodHandler) -> Method:
        behavior = (
            handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
        )
        return cls(
            handler.request_streaming,
            handler.response_streaming,
            handler.request_deserializer or (lambda b: b),
            handler.response_serializer or (lambda m: m),
            behavior,
        )


def parse_timeout(value: str) -> float | None:
    """``grpc-timeout`` (1-8 digits and a unit) in seconds; None if it is malformed."""
    digits, unit = value[:-1], value[-1:]
    if not 1 <= len(digits) <= 8 or not digits.isdigit() or unit not in _UNITS:
        return None
    return int(digits) * _UNITS[unit]


def _metadata_value(key: str, value: str) -> str | bytes:
    if not key.endswith("-bin"):
        return value
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return value.encode("latin-1")


class Call:
    """One RPC in flight: its task, and the ``context`` its handler is given."""

    __slots__ = (
        "_code",
        "_details",
        "_metadata",
        "_trailing",
        "conn",
        "deadline",
        "expired",
        "inbox",
        "method",
        "stream",
        "task",
        "timer",
    )

    def __init__(self, conn: H2Connection, stream: Stream, method: Method) -> None:
        self.conn, self.stream, self.method = conn, stream, method
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self._trailing: tuple[tuple[str, str | bytes], ...] = ()
        self._metadata: tuple[tuple[str, str | bytes], ...] | None = None
        self.inbox: asyncio.Queue[tuple[bytes, int] | None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.deadline: float | None = None
        self.expired = False

    # -- the dispatcher's side ----------------------------------------------------------------
    def start(self, message: bytes | None) -> None:
        for name, value in self.stream.headers:
            if name == "grpc-timeout":
                timeout = parse_timeout(value)
                if timeout is not None:
                    loop = asyncio.get_running_loop()
                    self.deadline = time.monotonic() + timeout
                    self.timer = loop.call_at(loop.time() + timeout, self._expire)
                break
        if message is None:
            self.inbox = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run(message))

    def feed(self, message: bytes, size: int) -> None:
        if self.inbox is not None:
            self.inbox.put_nowait((message, size))

    def feed_end(self) -> None:
        if self.inbox is not None:
            self.inbox.put_nowait(None)

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.timer is not None:
            self.timer.cancel()

    def _expire(self) -> None:
        self.expired = True
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def _run(self, message: bytes | None) -> None:
        conn, s, m = self.conn, self.stream, self.method
        try:
            try:
                request: Any = self._requests() if message is None else m.deserialize(message)
            except Exception:  # noqa: BLE001 - a deserializer's failure is the request's fault
                conn.finish(s, status.INTERNAL, "Exception deserializing request!")
                return
            if m.response_streaming:
                result = m.behavior(request, self)
                if hasattr(result, "__aiter__"):
                    async for item in result:
                        await self.write(item)
                else:
                    await result
                self._end(status.OK)
                return
            response = await m.behavior(request, self)
            if self._code not in (None, grpc.StatusCode.OK):
                self._end(status.OK)
                return
            data = m.serialize(response)
            if len(data) > conn.limits.max_send_message:
                why = f"Sent message larger than max ({len(data)} vs. {conn.limits.max_send_message})"
                conn.finish(s, status.RESOURCE_EXHAUSTED, why)
            elif self._trailing or self._details:
                conn.send_message(s, data)
                self._end(status.OK)
            else:
                conn.answer(s, data)
        except grpc.aio.AbortError:
            self._end(status.UNKNOWN)
        except asyncio.CancelledError:
            if self.expired:
                conn.finish(s, status.DEADLINE_EXCEEDED, "Deadline Exceeded")
            # else: the peer reset the stream, or the connection is gone: nobody to answer
        except Exception as exc:
            # as grpc.aio: a code the handler set before raising stands (the generated base
            # servicer sets UNIMPLEMENTED, then raises NotImplementedError)
            log.exception("%s failed", s.path)
            code = status.UNKNOWN if self._code in (None, grpc.StatusCode.OK) else int(self._code.value[0])
            conn.finish(s, code, f"Unexpected {type(exc)}: {exc}")
        finally:
            if self.timer is not None:
                self.timer.cancel()

    def _end(self, default: int) -> None:
        code = default if self._code is None else int(self._code.value[0])
        self.conn.finish(self.stream, code, self._details, self._trailing)

    async def _requests(self) -> AsyncIterator[Any]:
        while (item := await self.read()) is not grpc.aio.EOF:
            yield item

    # -- grpc.aio.ServicerContext -------------------------------------------------------------
    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        if self._metadata is None:
            self._metadata = tuple(
                (name, _metadata_value(name, value))
                for name, value in self.stream.headers
                if name[0] != ":" and name not in _TRANSPORT
            )
        return self._metadata

    async def abort(
        self,
        code: grpc.StatusCode,
        details: str = "",
        trailing_metadata: tuple[tuple[str, str | bytes], ...] = (),
    ) -> NoReturn:
        if code == grpc.StatusCode.OK:
            raise ValueError("abort() needs a status other than OK")
        self._code, self._details = code, details
        if trailing_metadata:
            self._trailing = tuple(trailing_metadata)
        raise grpc.aio.AbortError()

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    def set_trailing_metadata(self, trailing_metadata: tuple[tuple[str, str | bytes], ...]) -> None:
        self._trailing = tuple(trailing_metadata)

    async def send_initial_metadata(self, initial_metadata: tuple[tuple[str, str | bytes], ...]) -> None:
        self.conn.send_headers(self.stream, initial_metadata)

    def peer(self) -> str:
        return self.conn.peer

    def time_remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def cancelled(self) -> bool:
        return self.task is not None and self.task.cancelled()

    def done(self) -> bool:
        return self.task is not None and self.task.done()

    async def write(self, message: Any) -> None:
        data = self.method.serialize(message)
        if len(data) > self.conn.limits.max_send_message:
            why = f"Sent message larger than max ({len(data)} vs. {self.conn.limits.max_send_message})"
            await self.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, why)
        self.conn.send_message(self.stream, data)
        await self.conn.writable.wait()
        await self.stream.wait_drained(HIGH_WATER)

    async def read(self) -> Any:
        if self.inbox is None:
            raise RuntimeError("read() on a call without a request stream")
        item = await self.inbox.get()
        if item is None:
            self.inbox.put_nowait(None)  # every later read is EOF too
            return grpc.aio.EOF
        message, size = item
        self.conn.give_back(self.stream, size)  # the peer may send that much again
        try:
            return self.method.deserialize(message)
        except Exception:  # noqa: BLE001
            await self.abort(grpc.StatusCode.INTERNAL, "Exception deserializing request!")
