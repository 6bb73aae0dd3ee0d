"""One HTTP/2 connection (RFC 9113, cleartext prior-knowledge h2c) carrying gRPC calls.

The frame layer of Modelship's own gRPC server, an ``asyncio.Protocol`` (this module reads;
its base :class:`~service.grpc.h2.sender.Sender` writes): the client preface,
SETTINGS (announced: our stream limit, receive window and header list size; honoured: the peer's
window, frame size), PING, flow control both ways (the peer's windows bound what is sent; the
peer must stay inside ours, and gets received bytes back once half a window is used, or, on a
request-streaming call, once the handler has taken the message), HEADERS + CONTINUATION,
padded DATA, RST_STREAM (cancels the call), and GOAWAY: a graceful shutdown sends two (the first
names the largest stream id, then, once a PING round trip shows the peer has seen it, the last
stream actually taken), finishes the calls in flight, then closes.

What a stream carries is left to the :class:`Dispatcher` (``service.grpc.h2.calls``): it resolves
``:path`` to a method, and is handed the request (the one message of a unary request once the
client half-closes; the stream itself at once for request-streaming methods). Answers come back
through the sender's ``answer``, ``send_message`` and ``finish``. Everything the bytes of one read
produce goes out in one write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol, cast

from service.grpc.h2 import hpack, messages, status
from service.grpc.h2.frames import (
    ACK,
    COMPRESSION_ERROR,
    CONTINUATION,
    DATA,
    DEFAULT_WINDOW,
    ENABLE_PUSH,
    END_HEADERS,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    GOAWAY,
    HEAD,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_CONCURRENT_STREAMS,
    MAX_FRAME,
    MAX_FRAME_SIZE,
    MAX_HEADER_LIST_SIZE,
    MAX_WINDOW,
    PADDED,
    PING,
    PREFACE,
    PRIORITY_FLAG,
    PROTOCOL_ERROR,
    PUSH_PROMISE,
    REFUSED_STREAM,
    RST_STREAM,
    SETTING,
    SETTINGS,
    U32,
    WINDOW_UPDATE,
    frame,
    rst_stream,
    settings_frame,
    window_update,
)
from service.grpc.h2.limits import Limits
from service.grpc.h2.sender import SHUTDOWN_PING, Sender
from service.grpc.h2.stream import Stream


class Dispatcher(Protocol):
    def resolve(self, path: str) -> Any | None:
        """The method serving ``path`` (its ``request_streaming`` says when to start it), or None."""

    def begin(self, conn: H2Connection, s: Stream, message: bytes | None) -> None:
        """Run the call on ``s``: with its one request message, or ``None`` for a request stream."""


class H2Connection(Sender, asyncio.Protocol):
    def __init__(
        self, dispatcher: Dispatcher, limits: Limits, on_close: Callable[[H2Connection], None]
    ) -> None:
        self.dispatcher, self.limits, self.on_close = dispatcher, limits, on_close
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.buf = b""
        self.preface_seen = False
        self.closed = False
        self.receiving = False  # inside data_received: writes wait for its single flush
        self.decoder = hpack.Decoder()
        self.streams: dict[int, Stream] = {}
        self.blocked: dict[int, Stream] = {}  # streams with DATA waiting for window, in order
        self.last_stream = 0
        self.send_window = DEFAULT_WINDOW
        self.recv_window = limits.connection_window  # what the peer may still send us
        self.peer_initial_window = DEFAULT_WINDOW
        self.peer_max_frame = MAX_FRAME
        self.unacked = 0
        self.cont_id = 0
        self.cont_block = bytearray()
        self.cont_end_stream = False
        self.out: list[bytes] = []
        self.draining = 0  # 0: open; 1: first GOAWAY sent; 2: final GOAWAY sent
        self.writable = asyncio.Event()
        self.writable.set()

    # -- transport callbacks ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"ipv4:{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer or "")
        lim = self.limits
        announce = {
            ENABLE_PUSH: 0,
            MAX_CONCURRENT_STREAMS: lim.max_concurrent_streams,
            INITIAL_WINDOW_SIZE: lim.stream_window,
            MAX_HEADER_LIST_SIZE: lim.max_header_list,
        }
        first = settings_frame(announce)
        if lim.connection_window > DEFAULT_WINDOW:
            first += window_update(0, lim.connection_window - DEFAULT_WINDOW)
        self.transport.write(first)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for s in self.streams.values():
            s.cancel()
        self.streams.clear()
        self.blocked.clear()
        self.writable.set()
        self.on_close(self)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        buf = self.buf + data if self.buf else data
        if not self.preface_seen:
            if len(buf) < len(PREFACE):
                self.buf = buf
                if not PREFACE.startswith(buf):
                    self.fail(PROTOCOL_ERROR, "not an HTTP/2 client preface")
                return
            if not buf.startswith(PREFACE):
                self.fail(PROTOCOL_ERROR, "not an HTTP/2 client preface")
                return
            buf, self.preface_seen = buf[len(PREFACE) :], True
        self.receiving = True
        try:
            pos = self._frames(buf)
        finally:
            self.receiving = False
        self.buf = buf[pos:] if pos < len(buf) else b""
        self.flush()

    def _frames(self, buf: bytes) -> int:
        pos, n = 0, len(buf)
        while n - pos >= 9 and not self.closed:
            hi, lo, kind, flags, sid = HEAD.unpack_from(buf, pos)
            length = hi << 16 | lo
            if length > MAX_FRAME:
                self.fail(FRAME_SIZE_ERROR, f"a frame of {length} bytes")
                break
            end = pos + 9 + length
            if end > n:
                break
            payload = buf[pos + 9 : end]
            pos = end
            sid &= 0x7FFFFFFF
            if self.cont_id and kind != CONTINUATION:
                self.fail(PROTOCOL_ERROR, "a header block interrupted")
            elif kind == DATA:
                self.on_data(sid, flags, payload)
            elif kind == HEADERS:
                self.on_headers(sid, flags, payload)
            elif kind == CONTINUATION:
                self.on_continuation(sid, flags, payload)
            elif kind == SETTINGS:
                self.on_settings(sid, flags, payload)
            elif kind == WINDOW_UPDATE:
                self.on_window_update(sid, payload)
            elif kind == PING:
                self.on_ping(sid, flags, payload)
            elif kind == RST_STREAM:
                if not sid or length != 4:
                    self.fail(PROTOCOL_ERROR if not sid else FRAME_SIZE_ERROR, "bad RST_STREAM")
                else:
                    self.drop(sid)
            elif kind == PUSH_PROMISE:
                self.fail(PROTOCOL_ERROR, "PUSH_PROMISE from a client")
            elif kind == GOAWAY and not sid:
                self.draining = max(self.draining, 2)  # the peer will open no more streams
            # PRIORITY and unknown frame types: nothing to do (RFC 9113 5.5)
        return pos

    # -- frames -------------------------------------------------------------------------------
    def on_data(self, sid: int, flags: int, payload: bytes) -> None:
        size = len(payload)  # flow control counts the padding too
        if not sid:
            self.fail(PROTOCOL_ERROR, "DATA on stream 0")
            return
        self.recv_window -= size
        if self.recv_window < 0:
            self.fail(FLOW_CONTROL_ERROR, "the connection's receive window was overrun")
            return
        self.unacked += size
        if flags & PADDED:
            pad = payload[0] if payload else 0
            if pad >= size:
                self.fail(PROTOCOL_ERROR, "padding longer than the frame")
                return
            payload = payload[1 : size - pad]
        s = self.streams.get(sid)
        if s is None or s.remote_closed:
            if sid > self.last_stream:
                self.fail(PROTOCOL_ERROR, f"DATA on idle stream {sid}")
            return  # a stream already answered or reset: its bytes are dropped
        s.recv_window -= size
        if s.recv_window < 0:
            self.reset(s, FLOW_CONTROL_ERROR)
            return
        end = bool(flags & END_STREAM)
        s.remote_closed = end
        if s.call is not None:  # a request stream: messages go to the running call
            s.inbox += payload
            try:
                for message in messages.split(s.inbox, s.encoding, self.limits.max_receive_message):
                    s.call.feed(message, len(message) + 5)
            except messages.MessageError as exc:
                self.finish(s, exc.code, exc.message)
                return
            if end:
                s.call.feed_end()
            return
        s.chunks.append(payload)
        s.size += len(payload)
        if s.size > self.limits.max_receive_message + 5:
            self.finish(
                s,
                status.RESOURCE_EXHAUSTED,
                messages.too_large(s.size - 5, self.limits.max_receive_message).message,
            )
        elif end:
            self._start_unary(s)
        else:
            s.unacked += size
            if s.unacked >= self.limits.stream_window // 2:
                self.give_back(s)

    def give_back(self, s: Stream, size: int = 0) -> None:
        """Let the peer send ``s.unacked`` (+ ``size``) more bytes on stream ``s``."""
        s.unacked += size
        if s.unacked and not s.remote_closed and self.streams.get(s.id) is s:
            self.out.append(window_update(s.id, s.unacked))
            s.recv_window += s.unacked
            s.unacked = 0
            self._kick()

    def on_headers(self, sid: int, flags: int, payload: bytes) -> None:
        start, end = 0, len(payload)
        if flags & PADDED:
            start, end = 1, end - (payload[0] if payload else 0)
        if flags & PRIORITY_FLAG:
            start += 5
        if not sid or start > end:
            self.fail(PROTOCOL_ERROR, "bad HEADERS frame")
            return
        if flags & END_HEADERS:
            self.on_header_block(sid, payload[start:end], bool(flags & END_STREAM))
        else:
            self.cont_id, self.cont_block = sid, bytearray(payload[start:end])
            self.cont_end_stream = bool(flags & END_STREAM)

    def on_continuation(self, sid: int, flags: int, payload: bytes) -> None:
        if not sid or sid != self.cont_id:
            self.fail(PROTOCOL_ERROR, "CONTINUATION out of place")
            return
        self.cont_block += payload
        if len(self.cont_block) > 4 * self.limits.max_header_list:
            self.fail(ENHANCE_YOUR_CALM, "a header block far over SETTINGS_MAX_HEADER_LIST_SIZE")
            return
        if flags & END_HEADERS:
            self.cont_id = 0
            self.on_header_block(sid, bytes(self.cont_block), self.cont_end_stream)

    def on_header_block(self, sid: int, block: bytes, end_stream: bool) -> None:
        try:
            headers = self.decoder.decode(block)  # always, in order: the dynamic table is shared
        except hpack.HpackError as exc:
            self.fail(COMPRESSION_ERROR, str(exc))
            return
        s = self.streams.get(sid)
        if s is not None:  # trailers on the request
            if not end_stream or s.remote_closed:
                self.fail(PROTOCOL_ERROR, "a second header block without END_STREAM")
            else:
                s.remote_closed = True
                if s.call is not None:
                    s.call.feed_end()
                else:
                    self._start_unary(s)
            return
        if sid % 2 == 0 or sid <= self.last_stream:
            if sid % 2 == 0 or sid > self.last_stream:
                self.fail(PROTOCOL_ERROR, f"HEADERS on stream {sid}")
            return  # a closed stream's trailers: ignored
        self.last_stream = sid
        if self.draining >= 2:
            self.out.append(rst_stream(sid, REFUSED_STREAM))  # after our final GOAWAY
            return
        if len(self.streams) >= self.limits.max_concurrent_streams:
            self.out.append(rst_stream(sid, REFUSED_STREAM))
            return
        s = self.streams[sid] = Stream(sid, self.peer_initial_window, self.limits.stream_window)
        s.remote_closed = end_stream
        self._open(s, headers)

    def _open(self, s: Stream, headers: list[tuple[str, str]]) -> None:
        method_name = content_type = ""
        size = 0
        for name, value in headers:
            size += len(name) + len(value) + 32
            if name[0] == ":":
                if name == ":path":
                    s.path = value
                elif name == ":method":
                    method_name = value
            elif name == "content-type":
                content_type = value
            elif name == "grpc-encoding":
                s.encoding = value
        s.headers = headers
        if method_name != "POST":
            self._http_error(s, 405, f"gRPC needs POST, not {method_name or 'no :method'}")
        elif not content_type.startswith(status.CONTENT_TYPE):
            self._http_error(s, 415, f"gRPC needs content-type {status.CONTENT_TYPE}, not {content_type!r}")
        elif size > self.limits.max_header_list:
            why = (
                f"Request metadata of {size} bytes is larger than the limit of {self.limits.max_header_list}"
            )
            self.finish(s, status.RESOURCE_EXHAUSTED, why)
        elif (method := self.dispatcher.resolve(s.path)) is None:
            self.finish(s, status.UNIMPLEMENTED, f"Method not found: {s.path}")
        else:
            s.method = method
            if method.request_streaming:
                self.dispatcher.begin(self, s, None)
                if s.remote_closed and s.call is not None:
                    s.call.feed_end()
            elif s.remote_closed:
                self._start_unary(s)

    def _start_unary(self, s: Stream) -> None:
        if s.method is None:
            return  # answered already (an error at the headers)
        body = b"".join(s.chunks)
        s.chunks = []
        try:
            message = messages.only_message(body, s.encoding, self.limits.max_receive_message)
        except messages.MessageError as exc:
            self.finish(s, exc.code, exc.message)
            return
        self.dispatcher.begin(self, s, message)

    def _http_error(self, s: Stream, code: int, text: str) -> None:
        self.out.append(frame(HEADERS, END_HEADERS | END_STREAM, s.id, status.http_error(code, text)))
        self._close_stream(s)

    def on_settings(self, sid: int, flags: int, payload: bytes) -> None:
        if sid:
            self.fail(PROTOCOL_ERROR, "SETTINGS on a stream")
            return
        if flags & ACK:
            return
        if len(payload) % 6:
            self.fail(FRAME_SIZE_ERROR, "SETTINGS of a bad length")
            return
        for i in range(0, len(payload), 6):
            key, value = SETTING.unpack_from(payload, i)
            if key == INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    self.fail(FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE too large")
                    return
                delta, self.peer_initial_window = value - self.peer_initial_window, value
                for s in self.streams.values():
                    s.send_window += delta
            elif key == MAX_FRAME_SIZE:
                if not MAX_FRAME <= value <= 2**24 - 1:
                    self.fail(PROTOCOL_ERROR, "bad SETTINGS_MAX_FRAME_SIZE")
                    return
                self.peer_max_frame = value
            # HEADER_TABLE_SIZE: our encoder keeps no dynamic table; the rest concern clients
        self.out.append(frame(SETTINGS, ACK, 0))
        self.pump()

    def on_window_update(self, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            self.fail(FRAME_SIZE_ERROR, "WINDOW_UPDATE of a bad length")
            return
        increment = U32.unpack(payload)[0] & 0x7FFFFFFF
        if not sid:
            self.send_window += increment
            if not increment or self.send_window > MAX_WINDOW:
                self.fail(PROTOCOL_ERROR if not increment else FLOW_CONTROL_ERROR, "bad WINDOW_UPDATE")
                return
        elif (s := self.streams.get(sid)) is not None:
            s.send_window += increment
            if not increment or s.send_window > MAX_WINDOW:
                self.reset(s, PROTOCOL_ERROR if not increment else FLOW_CONTROL_ERROR)
                return
        self.pump()

    def on_ping(self, sid: int, flags: int, payload: bytes) -> None:
        if sid or len(payload) != 8:
            self.fail(PROTOCOL_ERROR if sid else FRAME_SIZE_ERROR, "bad PING")
        elif not flags & ACK:
            self.out.append(frame(PING, ACK, 0, payload))
        elif payload == SHUTDOWN_PING and self.draining == 1:
            self._final_goaway()
