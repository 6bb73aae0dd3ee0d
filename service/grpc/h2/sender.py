"""The sending half of one HTTP/2 connection of Modelship's gRPC server: answers, flow, shutdown.

:class:`Sender` is the base of :class:`service.grpc.h2.connection.H2Connection` and holds
everything that writes: the calls' answers (:meth:`Sender.answer` for a whole unary response in
one go, :meth:`Sender.send_message` and :meth:`Sender.finish` for the rest, Trailers-Only when
nothing was sent yet), DATA queued per stream and sent only inside the peer's connection and
stream windows, in the order the streams were blocked (:meth:`Sender.pump`), the single write per
read (:meth:`Sender.flush`), and the end of a connection: a graceful shutdown's two GOAWAYs, an
abort, or a connection error. The receiving half (frames in, streams opened) is the connection.
"""

from __future__ import annotations

import asyncio
import logging

from service.grpc.h2 import messages, status
from service.grpc.h2.frames import (
    DATA,
    END_HEADERS,
    END_STREAM,
    HEAD,
    HEADERS,
    LAST_STREAM,
    NO_ERROR,
    PING,
    frame,
    goaway,
    rst_stream,
    window_update,
)
from service.grpc.h2.limits import Limits
from service.grpc.h2.stream import Stream

log = logging.getLogger(__name__)
SHUTDOWN_PING = b"modelshp"  # the PING after a shutdown's first GOAWAY: its ACK sends the final one


class Sender:
    """What one connection writes; the state is shared with the receiving half (set up there)."""

    transport: asyncio.Transport | None
    limits: Limits
    peer: str
    closed: bool
    receiving: bool  # inside data_received: writes wait for its single flush
    streams: dict[int, Stream]
    blocked: dict[int, Stream]  # streams with DATA waiting for window, in order
    last_stream: int
    send_window: int  # what the peer lets us send on the connection
    recv_window: int  # what the peer may still send us on it
    peer_max_frame: int
    unacked: int  # received bytes not yet given back on the connection
    out: list[bytes]
    draining: int  # 0: open; 1: first GOAWAY sent; 2: final GOAWAY sent

    # -- answers (called by the calls) --------------------------------------------------------
    def answer(self, s: Stream, message: bytes) -> None:
        """A unary call's whole response: headers, the message, OK trailers."""
        if self.streams.get(s.id) is not s:
            return
        data = messages.prefixed(message)
        n, sid = len(data), s.id
        if (
            not s.headers_sent
            and not self.blocked
            and n <= min(self.send_window, s.send_window, self.peer_max_frame)
        ):
            self.send_window -= n
            s.send_window -= n
            self.out += (
                frame(HEADERS, END_HEADERS, sid, status.RESPONSE_HEADERS),
                HEAD.pack(n >> 16, n & 0xFFFF, DATA, 0, sid) + data,
                frame(HEADERS, END_HEADERS | END_STREAM, sid, status.OK_TRAILERS),
            )
            self._close_stream(s)
            self._kick()
            return
        self.send_message(s, message)
        self.finish(s, status.OK, "")

    def send_headers(self, s: Stream, metadata: status.Metadata = ()) -> None:
        if not s.headers_sent and self.streams.get(s.id) is s:
            s.headers_sent = True
            self.out.append(frame(HEADERS, END_HEADERS, s.id, status.response_headers(metadata)))

    def send_message(self, s: Stream, message: bytes) -> None:
        if self.streams.get(s.id) is not s or s.trailers is not None:
            return
        self.send_headers(s)
        s.pending += messages.prefixed(message)
        self.blocked[s.id] = s
        self.pump()
        self._kick()

    def finish(self, s: Stream, code: int, message: str, metadata: status.Metadata = ()) -> None:
        """End the call on ``s`` with ``code`` (Trailers-Only if nothing was sent yet)."""
        if self.streams.get(s.id) is not s or s.trailers is not None:
            return
        if not s.headers_sent and not s.pending:
            block = status.trailers_only(code, message, metadata)
            self.out.append(frame(HEADERS, END_HEADERS | END_STREAM, s.id, block))
            self._close_stream(s)
        else:
            s.trailers = status.trailers(code, message, metadata)
            self.blocked[s.id] = s
            self.pump()
        self._kick()

    def reset(self, s: Stream, code: int) -> None:
        self.out.append(rst_stream(s.id, code))
        self.drop(s.id)
        self._kick()

    def pump(self) -> None:
        """Send waiting DATA within the connection's and each stream's window, then trailers."""
        if not self.blocked:
            return
        for sid, s in list(self.blocked.items()):
            while s.pending and self.send_window > 0:
                n = min(len(s.pending), self.send_window, s.send_window, self.peer_max_frame)
                if n <= 0:
                    break
                self.out.append(frame(DATA, 0, sid, bytes(s.pending[:n])))
                del s.pending[:n]
                self.send_window -= n
                s.send_window -= n
            if s.pending:
                if self.send_window <= 0:
                    return  # the connection window is shut: later streams wait their turn
                continue
            s.drained()
            if s.trailers is not None:
                self.out.append(frame(HEADERS, END_HEADERS | END_STREAM, sid, s.trailers))
                self._close_stream(s)
            else:
                del self.blocked[sid]

    def _close_stream(self, s: Stream) -> None:
        """We sent END_STREAM: the stream is done (RST_STREAM NO_ERROR if the peer is still sending)."""
        if not s.remote_closed:
            self.out.append(rst_stream(s.id, NO_ERROR))
        self.streams.pop(s.id, None)
        self.blocked.pop(s.id, None)
        if self.draining == 2 and not self.streams:
            self._close_soon()

    def drop(self, sid: int) -> None:
        s = self.streams.pop(sid, None)
        self.blocked.pop(sid, None)
        if s is not None:
            s.cancel()
        if self.draining == 2 and not self.streams:
            self._close_soon()

    # -- output and shutdown ------------------------------------------------------------------
    def _kick(self) -> None:
        if not self.receiving:
            self.flush()

    def flush(self) -> None:
        if self.unacked >= self.limits.connection_window // 2:
            self.out.append(window_update(0, self.unacked))
            self.recv_window += self.unacked
            self.unacked = 0
        if self.out and self.transport is not None and not self.closed:
            self.transport.write(b"".join(self.out))
        self.out.clear()

    def shut_down(self) -> None:
        """Start a graceful shutdown: no new streams, the open ones run to their end."""
        if self.closed or self.draining:
            return
        self.draining = 1
        self.out += (goaway(LAST_STREAM, NO_ERROR), frame(PING, 0, 0, SHUTDOWN_PING))
        self._kick()
        asyncio.get_running_loop().call_later(1.0, self._final_goaway)  # a peer that never acks

    def _final_goaway(self) -> None:
        if self.closed or self.draining != 1:
            return
        self.draining = 2
        self.out.append(goaway(self.last_stream, NO_ERROR))
        self._kick()
        if not self.streams:
            self._close_soon()

    def _close_soon(self) -> None:
        if self.transport is not None and not self.closed:
            self.flush()
            self.transport.close()  # after the buffered frames are written

    def abort(self) -> None:
        """Close now, cancelling what still runs (the end of a shutdown's grace)."""
        if not self.closed and self.transport is not None:
            self.out.append(goaway(self.last_stream, NO_ERROR))
            self.flush()
            self.transport.close()
        for s in list(self.streams.values()):
            s.cancel()

    def fail(self, code: int, why: str) -> None:
        """A connection error: GOAWAY with ``code`` and why, then close."""
        if self.closed or self.transport is None:
            return
        log.info("HTTP/2 connection error from %s: %s", self.peer, why)
        self.out.append(goaway(self.last_stream, code, why.encode()[:200]))
        self.flush()
        self.closed = True
        self.transport.close()
        for s in self.streams.values():
            s.cancel()
        self.streams.clear()
        self.blocked.clear()
