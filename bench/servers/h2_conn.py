"""One HTTP/2 connection (RFC 9113) serving unary gRPC calls: the prototype's ``asyncio.Protocol``.

Cleartext, prior knowledge (h2c): the client preface, then frames. Handled: SETTINGS (+ACK;
INITIAL_WINDOW_SIZE and MAX_FRAME_SIZE are honoured), PING (+ACK), WINDOW_UPDATE (both ways: the
peer's windows bound what is sent, and received DATA is given back once half a window is used),
HEADERS + CONTINUATION, DATA (padding included), RST_STREAM (drops the stream, cancels its
handler), GOAWAY (sent on a connection error; received: ignored, the peer closes), PRIORITY and
unknown frame types (ignored), PUSH_PROMISE (a connection error: clients never send it).

A request is dispatched once its stream is half-closed by the client (END_STREAM): the body must
be exactly one uncompressed length-prefixed gRPC message. Its handler (one per ``:path``) returns
the response message, or an awaitable of it (then it runs as a task, cancelled by RST_STREAM or
the connection closing), or raises :class:`GrpcError`. A response is HEADERS, DATA, trailers;
errors are Trailers-Only. Everything a batch of incoming bytes produces goes out in one write.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import struct
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Union, cast

from bench.servers import h2_hpack

log = logging.getLogger("h2_grpc")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING = range(7)
GOAWAY, WINDOW_UPDATE, CONTINUATION = range(7, 10)
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
FRAME_SIZE_ERROR, COMPRESSION_ERROR = 0x6, 0x9
SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE = 0x4, 0x5
DEFAULT_WINDOW = 65_535  # RFC 9113 6.9.2, and this server's receive windows (never raised)
MAX_WINDOW = 2**31 - 1
MAX_FRAME = 16_384  # the largest frame accepted (SETTINGS_MAX_FRAME_SIZE left at its default)
MAX_MESSAGE = 4 * 2**20  # the largest request body (grpc's default receive limit)

# gRPC status codes used here
OK, INTERNAL, UNIMPLEMENTED, RESOURCE_EXHAUSTED = 0, 13, 12, 8

Reply = Union[bytes, Awaitable[bytes]]  # noqa: UP007 (a runtime alias: the | form needs 3.10 types)
Unary = Callable[[bytes], Reply]

_HEAD = struct.Struct(">BHBBI")  # 24-bit length as (high 8, low 16 bits), type, flags, stream id
_U32 = struct.Struct(">I")
RESPONSE_HEADERS = h2_hpack.encode([(":status", "200"), ("content-type", "application/grpc")])
OK_TRAILERS = h2_hpack.encode([("grpc-status", "0")])


class GrpcError(Exception):
    """A call's failure: its gRPC status code and message, sent as Trailers-Only."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def run(main: Coroutine[object, object, None]) -> None:
    """Run a prototype server's ``main`` on uvloop when it is installed, else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return _HEAD.pack(n >> 16, n & 0xFFFF, kind, flags, stream_id) + payload


def trailers_only(code: int, message: str) -> bytes:
    """The header block of a Trailers-Only response with ``code`` and a percent-encoded message."""
    fields = [(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", str(code))]
    return h2_hpack.encode([*fields, ("grpc-message", h2_hpack.percent_encode(message))])


class Stream:
    __slots__ = (
        "chunks",
        "content_type",
        "encoding",
        "id",
        "path",
        "pending",
        "send_window",
        "size",
        "task",
        "unacked",
    )

    def __init__(self, stream_id: int, send_window: int) -> None:
        self.id = stream_id
        self.send_window = send_window  # what the peer lets us send on this stream
        self.path = self.content_type = self.encoding = ""
        self.chunks: list[bytes] = []
        self.size = 0  # request body bytes received
        self.unacked = 0  # received bytes not yet given back with a stream WINDOW_UPDATE
        self.pending = b""  # response DATA waiting for window
        self.task: asyncio.Task[bytes] | None = None


class H2Connection(asyncio.Protocol):
    def __init__(self, methods: Mapping[str, Unary]) -> None:
        self.methods = methods
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.preface_seen = False
        self.closed = False
        self.decoder = h2_hpack.Decoder()
        self.streams: dict[int, Stream] = {}  # open (request received or being received, or answering)
        self.blocked: dict[int, Stream] = {}  # responses waiting for flow-control window, in order
        self.last_stream = 0
        self.send_window = DEFAULT_WINDOW  # connection window the peer gives us
        self.peer_initial_window = DEFAULT_WINDOW
        self.peer_max_frame = 16_384
        self.unacked = 0  # connection-level received bytes not yet given back
        self.cont_id = 0  # stream whose header block continues in CONTINUATION frames
        self.cont_block = bytearray()
        self.cont_end_stream = False
        self.out: list[bytes] = []

    # -- transport callbacks ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass
        self.transport.write(frame(SETTINGS, 0, 0))  # all defaults: nothing to announce

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for s in self.streams.values():
            if s.task is not None:
                s.task.cancel()
        self.streams.clear()
        self.blocked.clear()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        buf = self.buf + data if self.buf else data
        if not self.preface_seen:
            if len(buf) < len(PREFACE):
                self.buf = buf
                if not PREFACE.startswith(buf):
                    self.fail(PROTOCOL_ERROR)
                return
            if not buf.startswith(PREFACE):
                self.fail(PROTOCOL_ERROR)
                return
            buf, self.preface_seen = buf[len(PREFACE) :], True
        pos, n = 0, len(buf)
        while n - pos >= 9 and not self.closed:
            hi, lo, kind, flags, sid = _HEAD.unpack_from(buf, pos)
            length = hi << 16 | lo
            if length > MAX_FRAME:
                self.fail(FRAME_SIZE_ERROR)
                return
            end = pos + 9 + length
            if end > n:
                break
            payload = buf[pos + 9 : end]
            pos = end
            sid &= 0x7FFFFFFF
            if self.cont_id and kind != CONTINUATION:
                self.fail(PROTOCOL_ERROR)
                return
            if kind == DATA:
                self.on_data(sid, flags, payload)
            elif kind == HEADERS:
                self.on_headers_frame(sid, flags, payload)
            elif kind == CONTINUATION:
                self.on_continuation(sid, flags, payload)
            elif kind == SETTINGS:
                self.on_settings(sid, flags, payload)
            elif kind == WINDOW_UPDATE:
                self.on_window_update(sid, payload)
            elif kind == PING:
                if sid or length != 8:
                    self.fail(PROTOCOL_ERROR if sid else FRAME_SIZE_ERROR)
                elif not flags & ACK:
                    self.out.append(frame(PING, ACK, 0, payload))
            elif kind == RST_STREAM:
                self.drop(sid)
            elif kind == PUSH_PROMISE:
                self.fail(PROTOCOL_ERROR)
            # PRIORITY, GOAWAY and unknown types: nothing to do
        self.buf = buf[pos:] if pos < n else b""
        self.flush()

    # -- frames -------------------------------------------------------------------------------
    def on_data(self, sid: int, flags: int, payload: bytes) -> None:
        self.unacked += len(payload)  # flow control counts the padding too
        if flags & PADDED:
            pad = payload[0] if payload else 0
            if pad >= len(payload):
                self.fail(PROTOCOL_ERROR)
                return
            payload = payload[1 : len(payload) - pad]
        s = self.streams.get(sid)
        if s is None or s.task is not None or s.pending:  # unknown, reset or already answering
            return
        s.chunks.append(payload)
        s.size += len(payload)
        if s.size > MAX_MESSAGE + 5:
            self.answer_error(s, RESOURCE_EXHAUSTED, f"request larger than {MAX_MESSAGE} bytes")
            self.out.append(frame(RST_STREAM, 0, sid, _U32.pack(NO_ERROR)))  # stop the rest of it
        elif flags & END_STREAM:
            self.dispatch(s)
        else:
            s.unacked += len(payload)
            if s.unacked >= DEFAULT_WINDOW // 2:
                self.out.append(frame(WINDOW_UPDATE, 0, sid, _U32.pack(s.unacked)))
                s.unacked = 0

    def on_headers_frame(self, sid: int, flags: int, payload: bytes) -> None:
        start, end = 0, len(payload)
        if flags & PADDED:
            start, end = 1, end - (payload[0] if payload else 0)
        if flags & PRIORITY_FLAG:
            start += 5
        if sid == 0 or start > end:
            self.fail(PROTOCOL_ERROR)
            return
        block = payload[start:end]
        if flags & END_HEADERS:
            self.on_header_block(sid, block, bool(flags & END_STREAM))
        else:
            self.cont_id, self.cont_block = sid, bytearray(block)
            self.cont_end_stream = bool(flags & END_STREAM)

    def on_continuation(self, sid: int, flags: int, payload: bytes) -> None:
        if sid != self.cont_id or not sid:
            self.fail(PROTOCOL_ERROR)
            return
        self.cont_block += payload
        if flags & END_HEADERS:
            self.cont_id = 0
            self.on_header_block(sid, bytes(self.cont_block), self.cont_end_stream)

    def on_header_block(self, sid: int, block: bytes, end_stream: bool) -> None:
        try:
            headers = self.decoder.decode(block)  # always, in order: the dynamic table is shared
        except h2_hpack.DECODE_ERRORS:
            self.fail(COMPRESSION_ERROR)
            return
        s = self.streams.get(sid)
        if s is not None:  # the request's trailers
            if end_stream:
                self.dispatch(s)
            else:
                self.fail(PROTOCOL_ERROR)
            return
        if sid % 2 == 0 or sid <= self.last_stream:  # not a new client stream
            if sid > self.last_stream:
                self.fail(PROTOCOL_ERROR)
            return  # a closed stream's trailers: ignored
        self.last_stream = sid
        s = self.streams[sid] = Stream(sid, self.peer_initial_window)
        for name, value in headers:
            if name == ":path":
                s.path = value
            elif name == "content-type":
                s.content_type = value
            elif name == "grpc-encoding":
                s.encoding = value
        if end_stream:
            self.dispatch(s)

    def on_settings(self, sid: int, flags: int, payload: bytes) -> None:
        if sid:
            self.fail(PROTOCOL_ERROR)
            return
        if flags & ACK:
            return
        if len(payload) % 6:
            self.fail(FRAME_SIZE_ERROR)
            return
        for i in range(0, len(payload), 6):
            key, value = struct.unpack_from(">HI", payload, i)
            if key == SETTINGS_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    self.fail(FLOW_CONTROL_ERROR)
                    return
                delta, self.peer_initial_window = value - self.peer_initial_window, value
                for s in self.streams.values():
                    s.send_window += delta
            elif key == SETTINGS_MAX_FRAME_SIZE:
                if not MAX_FRAME <= value <= 2**24 - 1:
                    self.fail(PROTOCOL_ERROR)
                    return
                self.peer_max_frame = value
            # HEADER_TABLE_SIZE: our encoder never uses its dynamic table; the rest do not apply
        self.out.append(frame(SETTINGS, ACK, 0))
        self.pump()

    def on_window_update(self, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            self.fail(FRAME_SIZE_ERROR)
            return
        increment = _U32.unpack(payload)[0] & 0x7FFFFFFF
        if sid == 0:
            self.send_window += increment
            if not increment or self.send_window > MAX_WINDOW:
                self.fail(PROTOCOL_ERROR if not increment else FLOW_CONTROL_ERROR)
                return
        elif (s := self.streams.get(sid)) is not None:
            s.send_window += increment
            if not increment or s.send_window > MAX_WINDOW:
                code = PROTOCOL_ERROR if not increment else FLOW_CONTROL_ERROR
                self.drop(sid)
                self.out.append(frame(RST_STREAM, 0, sid, _U32.pack(code)))
                return
        self.pump()

    # -- calls --------------------------------------------------------------------------------
    def dispatch(self, s: Stream) -> None:
        """The request is complete: check it, run its handler, answer (now or when it finishes)."""
        if not s.content_type.startswith("application/grpc"):
            block = h2_hpack.encode([(":status", "415"), ("content-type", "text/plain")])
            self.out.append(frame(HEADERS, END_HEADERS | END_STREAM, s.id, block))
            del self.streams[s.id]
            return
        method = self.methods.get(s.path)
        if method is None:
            self.answer_error(s, UNIMPLEMENTED, f"Method not found: {s.path}")
            return
        body = b"".join(s.chunks)
        s.chunks = []
        if len(body) < 5 or _U32.unpack_from(body, 1)[0] != len(body) - 5:
            self.answer_error(s, INTERNAL, "the request is not exactly one length-prefixed gRPC message")
            return
        if body[0] & 1:
            why = f"compressed requests are not supported (grpc-encoding: {s.encoding or 'none'})"
            self.answer_error(s, UNIMPLEMENTED, why)
            return
        try:
            reply = method(body[5:])
        except GrpcError as exc:
            self.answer_error(s, exc.code, exc.message)
            return
        except Exception as exc:  # a handler's bug is the call's INTERNAL, not the connection's
            log.exception("handler for %s failed", s.path)
            self.answer_error(s, INTERNAL, f"{type(exc).__name__}: {exc}")
            return
        if isinstance(reply, bytes):
            self.answer(s, reply)
        else:
            task = s.task = asyncio.ensure_future(reply)
            task.add_done_callback(functools.partial(self.finished, s))

    def finished(self, s: Stream, task: asyncio.Task[bytes]) -> None:
        if self.closed or self.streams.get(s.id) is not s or task.cancelled():
            return  # reset by the peer, or the connection is gone
        exc = task.exception()
        if exc is None:
            self.answer(s, task.result())
        elif isinstance(exc, GrpcError):
            self.answer_error(s, exc.code, exc.message)
        else:
            log.error("handler for %s failed", s.path, exc_info=exc)
            self.answer_error(s, INTERNAL, f"{type(exc).__name__}: {exc}")
        self.flush()

    def answer(self, s: Stream, message: bytes) -> None:
        data = b"\x00" + _U32.pack(len(message)) + message
        n, sid = len(data), s.id
        out = self.out
        out.append(frame(HEADERS, END_HEADERS, sid, RESPONSE_HEADERS))
        if not self.blocked and n <= self.send_window and n <= s.send_window and n <= self.peer_max_frame:
            self.send_window -= n
            out.append(_HEAD.pack(n >> 16, n & 0xFFFF, DATA, 0, sid) + data)
            out.append(frame(HEADERS, END_HEADERS | END_STREAM, sid, OK_TRAILERS))
            del self.streams[sid]
        else:  # wait for window (pump sends DATA as far as the windows allow, then the trailers)
            s.pending = data
            self.blocked[sid] = s
            self.pump()

    def answer_error(self, s: Stream, code: int, message: str) -> None:
        self.out.append(frame(HEADERS, END_HEADERS | END_STREAM, s.id, trailers_only(code, message)))
        self.drop(s.id)

    def pump(self) -> None:
        """Send waiting response DATA within the connection's and each stream's window."""
        if self.send_window <= 0 or not self.blocked:
            return  # cheap while the connection window is shut, however many responses wait
        for sid, s in list(self.blocked.items()):
            while s.pending:
                n = min(len(s.pending), self.send_window, s.send_window, self.peer_max_frame)
                if n <= 0:
                    break
                self.out.append(frame(DATA, 0, sid, s.pending[:n]))
                s.pending = s.pending[n:]
                self.send_window -= n
                s.send_window -= n
            if s.pending:
                if self.send_window <= 0:
                    return  # the connection window is shut: later streams wait their turn
                continue
            self.out.append(frame(HEADERS, END_HEADERS | END_STREAM, sid, OK_TRAILERS))
            del self.blocked[sid]
            self.streams.pop(sid, None)

    def drop(self, sid: int) -> None:
        s = self.streams.pop(sid, None)
        self.blocked.pop(sid, None)
        if s is not None and s.task is not None and not s.task.done():
            s.task.cancel()

    # -- output -------------------------------------------------------------------------------
    def flush(self) -> None:
        if self.unacked >= DEFAULT_WINDOW // 2:
            self.out.append(frame(WINDOW_UPDATE, 0, 0, _U32.pack(self.unacked)))
            self.unacked = 0
        if self.out and self.transport is not None and not self.closed:
            self.transport.write(b"".join(self.out))
        self.out.clear()

    def fail(self, code: int) -> None:
        """A connection error: GOAWAY with ``code``, then close."""
        if self.closed or self.transport is None:
            return
        self.out.append(frame(GOAWAY, 0, 0, _U32.pack(self.last_stream) + _U32.pack(code)))
        self.flush()
        self.closed = True
        self.transport.close()
