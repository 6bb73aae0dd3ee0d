"""The HTTP/2 frame layer of Modelship's gRPC server, one real connection driven by raw frames.

Settings, PING, flow control both ways (the peer's windows bound what is sent; overrunning ours is
an error), header blocks in CONTINUATION, padding, stream limits, HTTP errors for non-gRPC
requests, connection errors, graceful shutdown with two GOAWAYs; and random frames never make the
connection raise.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.grpc.h2.frames import (
    ACK,
    CONTINUATION,
    DATA,
    ENABLE_PUSH,
    END_HEADERS,
    END_STREAM,
    FLOW_CONTROL_ERROR,
    GOAWAY,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_CONCURRENT_STREAMS,
    MAX_HEADER_LIST_SIZE,
    PADDED,
    PING,
    PREFACE,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    frame,
)
from service.grpc.h2.limits import Limits
from service.grpc.h2.sender import SHUTDOWN_PING
from tests.service.grpc.h2.peer import RawPeer, grpc_body, server_with, settle


async def echo(request: bytes, context: object) -> bytes:
    return request


def answering(answer: bytes) -> Any:
    """A handler that answers every call with ``answer``."""

    async def fixed(request: bytes, context: object) -> bytes:
        return answer

    return fixed


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


def goaway_code(f: object) -> int:
    payload = f.payload  # type: ignore[attr-defined]
    return int(struct.unpack(">I", payload[4:8])[0])


def test_settings_are_announced_then_the_peers_acknowledged() -> None:
    limits = Limits(max_concurrent_streams=7, stream_window=1 << 20, connection_window=4 << 20)
    peer = RawPeer(server_with(limits=limits), handshake=False)
    first = peer.frames()
    assert [f.kind for f in first] == [SETTINGS, WINDOW_UPDATE]
    announced = dict(struct.iter_unpack(">HI", first[0].payload))
    assert announced == {
        ENABLE_PUSH: 0,
        MAX_CONCURRENT_STREAMS: 7,
        INITIAL_WINDOW_SIZE: 1 << 20,
        MAX_HEADER_LIST_SIZE: limits.max_header_list,
    }
    assert (first[1].stream, first[1].payload) == (0, u32((4 << 20) - 65_535))
    peer.send(PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", INITIAL_WINDOW_SIZE, 1000)))
    assert [(f.kind, f.flags) for f in peer.frames()] == [(SETTINGS, ACK)]


def test_ping_is_acknowledged_with_its_payload() -> None:
    peer = RawPeer(server_with())
    peer.send(frame(PING, 0, 0, b"12345678"))
    (pong,) = peer.frames()
    assert (pong.kind, pong.flags, pong.payload) == (PING, ACK, b"12345678")


def test_bytes_split_anywhere_still_make_the_same_calls() -> None:
    async def scenario() -> None:
        peer = RawPeer(server_with({"M": echo}), handshake=False)
        wire = PREFACE + frame(SETTINGS, 0, 0) + peer.call(1, b"hello") + peer.call(3, b"again")
        for i in range(len(wire)):  # one byte at a time: the preface and frames span reads
            peer.send(wire[i : i + 1])
        await settle()
        sent = peer.frames()
        for sid, text in ((1, b"hello"), (3, b"again")):
            body, fields = peer.response(sid, sent)
            assert (body, fields["grpc-status"]) == (grpc_body(text), "0")

    asyncio.run(scenario())


def test_a_unary_answer_goes_out_in_one_write() -> None:
    async def scenario() -> None:
        peer = RawPeer(server_with({"M": echo}))
        writes = len(peer.transport.writes)
        peer.send(peer.call(1, b"hi"))
        await settle()
        assert len(peer.transport.writes) == writes + 1  # HEADERS, DATA and trailers together
        sent = peer.frames()
        assert [f.kind for f in sent] == [HEADERS, DATA, HEADERS]
        assert sent[-1].flags & END_STREAM
        assert peer.fields(sent[0].payload)[":status"] == "200"

    asyncio.run(scenario())


def test_response_waits_for_the_peers_windows() -> None:
    async def scenario() -> None:
        peer = RawPeer(server_with({"M": answering(b"a" * 100_000)}))
        peer.send(peer.call(1, b"hi"))
        await settle()
        sent = peer.frames()
        data = [f for f in sent if f.kind == DATA]
        assert sum(len(f.payload) for f in data) == 65_535  # the default windows' worth
        assert all(len(f.payload) <= 16_384 for f in data)  # the peer's default max frame
        assert [f.kind for f in sent if f.kind == HEADERS] == [HEADERS]  # no trailers yet
        more = 100_005 - 65_535
        peer.send(frame(WINDOW_UPDATE, 0, 0, u32(more)))
        assert peer.frames() == []  # the stream's own window is still shut
        peer.send(frame(WINDOW_UPDATE, 0, 1, u32(more)))
        sent = peer.frames()
        assert sum(len(f.payload) for f in sent if f.kind == DATA) == more
        assert sent[-1].kind == HEADERS
        assert sent[-1].flags & END_STREAM
        assert peer.fields(sent[-1].payload)["grpc-status"] == "0"
        assert not peer.conn.streams

    asyncio.run(scenario())


def test_a_larger_initial_window_from_settings_applies_to_open_streams() -> None:
    async def scenario() -> None:
        peer = RawPeer(server_with({"M": answering(b"a" * 70_000)}))
        peer.send(frame(WINDOW_UPDATE, 0, 0, u32(100_000)), peer.call(1, b"hi"))
        await settle()
        assert sum(len(f.payload) for f in peer.frames() if f.kind == DATA) == 65_535
        peer.send(frame(SETTINGS, 0, 0, struct.pack(">HI", INITIAL_WINDOW_SIZE, 200_000)))
        sent = peer.frames()
        assert (sent[0].kind, sent[0].flags) == (SETTINGS, ACK)
        assert sum(len(f.payload) for f in sent if f.kind == DATA) == 70_005 - 65_535
        assert sent[-1].flags & END_STREAM

    asyncio.run(scenario())


def test_responses_queue_in_order_while_the_connection_window_is_shut() -> None:
    async def scenario() -> None:
        peer = RawPeer(server_with({"M": answering(b"b" * 70_000)}))
        peer.send(*(peer.call(sid, b"hi") for sid in (1, 3, 5)))
        await settle()
        peer.frames()
        assert list(peer.conn.blocked) == [1, 3, 5]  # stream 1 took the whole connection window
        grants = (frame(WINDOW_UPDATE, 0, sid, u32(200_000)) for sid in (1, 3, 5))
        peer.send(*grants, frame(WINDOW_UPDATE, 0, 0, u32(300_000)))
        ends = [f.stream for f in peer.frames() if f.kind == HEADERS and f.flags & END_STREAM]
        assert ends == [1, 3, 5]
        assert not peer.conn.blocked
        assert not peer.conn.streams

    asyncio.run(scenario())


def test_the_receive_windows_are_given_back_as_a_large_request_arrives() -> None:
    async def size(request: bytes, context: object) -> bytes:
        return str(len(request)).encode()

    async def scenario() -> None:
        limits = Limits(stream_window=65_535, connection_window=65_535)
        peer = RawPeer(server_with({"M": size}, limits=limits))
        body = grpc_body(b"z" * 200_000)
        peer.send(peer.headers(1))
        granted = {0: 65_535, 1: 65_535}
        for i in range(0, len(body), 16_384):  # only ever inside the windows we were given
            chunk = body[i : i + 16_384]
            assert len(chunk) <= min(granted.values())
            granted = {k: v - len(chunk) for k, v in granted.items()}
            last = i + 16_384 >= len(body)
            peer.send(frame(DATA, END_STREAM if last else 0, 1, chunk))
            for f in peer.frames():
                if f.kind == WINDOW_UPDATE:
                    granted[f.stream] += struct.unpack(">I", f.payload)[0]
        await settle()
        body_out, fields = peer.response(1, peer.frames())
        assert (body_out, fields["grpc-status"]) == (grpc_body(b"200000"), "0")

    asyncio.run(scenario())


def test_overrunning_the_connection_window_is_a_connection_error() -> None:
    peer = RawPeer(server_with({"M": echo}, limits=Limits(connection_window=65_535)))
    chunk = b"x" * 16_384
    peer.send(peer.headers(1), *(frame(DATA, 0, 1, chunk) for _ in range(5)))  # 81,920 > 65,535
    (goaway,) = [f for f in peer.frames() if f.kind == GOAWAY]
    assert goaway_code(goaway) == FLOW_CONTROL_ERROR
    assert peer.transport.is_closed


def test_overrunning_a_stream_window_resets_only_that_stream() -> None:
    peer = RawPeer(server_with({"M": echo}, limits=Limits(stream_window=8_192)))
    peer.send(peer.headers(1), frame(DATA, 0, 1, b"x" * 16_384), frame(PING, 0, 0, b"stillup!"))
    sent = peer.frames()
    assert (sent[0].kind, sent[0].stream, sent[0].payload) == (RST_STREAM, 1, u32(FLOW_CONTROL_ERROR))
    assert (sent[-1].kind, sent[-1].payload) == (PING, b"stillup!")
    assert not peer.transport.is_closed
    assert not peer.conn.streams


def test_headers_in_continuation_frames_and_padded_data() -> None:
    async def scenario() -> None:
        peer = RawPeer(server_with({"M": echo}))
        block = peer.headers(1)[9:]
        pad = 7
        data = bytes([pad]) + grpc_body(b"padded") + b"\0" * pad
        peer.send(
            frame(HEADERS, 0, 1, block[:5]),
            frame(CONTINUATION, 0, 1, block[5:9]),
            frame(CONTINUATION, END_HEADERS, 1, block[9:]),
            frame(DATA, END_STREAM | PADDED, 1, data),
        )
        await settle()
        body, fields = peer.response(1, peer.frames())
        assert (body, fields["grpc-status"]) == (grpc_body(b"padded"), "0")

    asyncio.run(scenario())


def test_a_header_block_interrupted_by_another_frame_is_a_protocol_error() -> None:
    peer = RawPeer(server_with({"M": echo}))
    block = peer.headers(1)[9:]
    peer.send(frame(HEADERS, 0, 1, block[:5]), frame(PING, 0, 0, b"12345678"))
    (goaway,) = peer.frames()
    assert (goaway.kind, goaway_code(goaway)) == (GOAWAY, PROTOCOL_ERROR)


def test_streams_over_the_limit_are_refused_and_the_rest_served() -> None:
    release = asyncio.Event()

    async def wait(request: bytes, context: object) -> bytes:
        await release.wait()
        return b"done"

    async def scenario() -> None:
        peer = RawPeer(server_with({"M": wait}, limits=Limits(max_concurrent_streams=1)))
        peer.send(peer.call(1, b"a"), peer.call(3, b"b"))
        await settle()
        (refused,) = peer.frames()
        assert (refused.kind, refused.stream, refused.payload) == (RST_STREAM, 3, u32(REFUSED_STREAM))
        release.set()
        await settle()
        body, fields = peer.response(1, peer.frames())
        assert (body, fields["grpc-status"]) == (grpc_body(b"done"), "0")

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("method", "content_type", "code"),
    [("GET", "application/grpc", "405"), ("POST", "application/json", "415")],
)
def test_a_request_that_is_not_grpc_gets_a_plain_http_error(
    method: str, content_type: str, code: str
) -> None:
    peer = RawPeer(server_with({"M": echo}))
    peer.send(peer.headers(1, method=method, content_type=content_type, end_stream=True))
    (answer,) = peer.frames()
    assert answer.kind == HEADERS
    assert answer.flags & END_STREAM
    fields = peer.fields(answer.payload)
    assert fields[":status"] == code
    assert method in fields["grpc-message"] or content_type in fields["grpc-message"]


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="http1"),
        pytest.param(PREFACE + frame(DATA, 0, 0, b"x"), id="data-on-stream-0"),
        pytest.param(PREFACE + frame(DATA, 0, 9, b"x"), id="data-on-idle-stream"),
        pytest.param(PREFACE + frame(PING, 0, 0, b"short"), id="short-ping"),
        pytest.param(PREFACE + frame(SETTINGS, 0, 1), id="settings-on-a-stream"),
        pytest.param(PREFACE + frame(HEADERS, END_HEADERS, 2, b"\x82"), id="even-stream"),
        pytest.param(PREFACE + frame(HEADERS, END_HEADERS, 1, b"\xff\xff\xff"), id="bad-hpack"),
        pytest.param(PREFACE + b"\x00\x40\x01" + b"\x00" * 6, id="frame-too-large"),
    ],
)
def test_protocol_violations_end_the_connection_with_goaway(wire: bytes) -> None:
    peer = RawPeer(server_with({"M": echo}), handshake=False)
    peer.frames()
    peer.send(wire)
    sent = peer.frames()
    assert sent[-1].kind == GOAWAY
    assert goaway_code(sent[-1]) != 0
    assert peer.transport.is_closed
    peer.send(frame(PING, 0, 0, b"12345678"))  # a closed connection reads nothing more
    assert peer.frames() == []


def test_graceful_shutdown_finishes_the_calls_in_flight() -> None:
    release = asyncio.Event()

    async def wait(request: bytes, context: object) -> bytes:
        await release.wait()
        return b"finished"

    async def scenario() -> None:
        peer = RawPeer(server_with({"M": wait}))
        peer.send(peer.call(1, b"a"))
        await settle()
        peer.conn.shut_down()
        first, ping = peer.frames()
        assert first.kind == GOAWAY
        assert first.payload[:4] == u32(2**31 - 1)
        assert (ping.kind, ping.payload) == (PING, SHUTDOWN_PING)
        peer.send(frame(PING, ACK, 0, SHUTDOWN_PING))  # the peer has seen the first GOAWAY
        (final,) = peer.frames()
        assert (final.kind, final.payload[:4], goaway_code(final)) == (GOAWAY, u32(1), 0)
        peer.send(peer.call(3, b"late"))
        (refused,) = peer.frames()
        assert (refused.kind, refused.stream, refused.payload) == (RST_STREAM, 3, u32(REFUSED_STREAM))
        assert not peer.transport.is_closed  # stream 1 still runs
        release.set()
        await settle()
        body, fields = peer.response(1, peer.frames())
        assert (body, fields["grpc-status"]) == (grpc_body(b"finished"), "0")
        assert peer.transport.is_closed

    asyncio.run(scenario())


def test_a_peer_that_never_acks_the_shutdown_ping_still_gets_the_final_goaway() -> None:
    async def scenario() -> None:
        peer = RawPeer(server_with({"M": echo}))
        peer.conn.shut_down()
        peer.frames()
        await asyncio.sleep(1.2)
        (final,) = peer.frames()
        assert (final.kind, final.payload[:4]) == (GOAWAY, u32(0))
        assert peer.transport.is_closed  # nothing was in flight

    asyncio.run(scenario())


FRAME_TYPES = st.integers(0, 12)


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    kind = draw(FRAME_TYPES)
    flags = draw(st.integers(0, 255))
    sid = draw(st.sampled_from([0, 1, 2, 3, 5, 2**31 - 1]))
    payload = draw(st.binary(max_size=40))
    return frame(kind, flags, sid, payload)


@settings(max_examples=300, deadline=None)
@given(st.lists(frames(), max_size=8), st.integers(1, 64))
def test_random_frames_never_raise_and_every_write_is_whole_frames(wire: list[bytes], cut: int) -> None:
    async def scenario() -> None:
        peer = RawPeer(server_with({"M": echo}))
        data = peer.call(1, b"ok") + b"".join(wire)
        for i in range(0, len(data), cut):
            peer.send(data[i : i + cut])
        await settle()
        peer.frames()  # parses: every write holds whole frames

    asyncio.run(scenario())
