"""gRPC calls on Modelship's own HTTP/2 server, driven by raw frames: what a handler sees and sends.

Metadata (``-bin`` values decoded), compressed requests, abort and Trailers-Only with a
percent-encoded message, handler errors, deadlines from ``grpc-timeout``, cancellation by
RST_STREAM, size and header limits, unknown methods, and streaming both ways with the receive
window given back as the handler reads.
"""

from __future__ import annotations

import asyncio
import gzip
import struct
from typing import Any

import grpc
import pytest

from service.grpc.h2.frames import DATA, END_STREAM, HEADERS, RST_STREAM, WINDOW_UPDATE, frame
from service.grpc.h2.limits import Limits
from tests.service.grpc.h2.peer import RawPeer, grpc_body, server_with, settle


async def echo(request: bytes, context: Any) -> bytes:
    return request


def run_one(peer: RawPeer, wire: bytes, sid: int = 1) -> tuple[bytes, dict[str, str], int]:
    """Send ``wire``, let the call run; (body, headers + trailers, number of HEADERS frames)."""

    async def go() -> tuple[bytes, dict[str, str], int]:
        peer.send(wire)
        await settle()
        sent = peer.frames()
        body, fields = peer.response(sid, sent)
        return body, fields, sum(1 for f in sent if f.kind == HEADERS and f.stream == sid)

    return asyncio.run(go())


def test_the_handler_sees_the_clients_metadata_and_its_own_answer_goes_back() -> None:
    seen: dict[str, Any] = {}

    async def look(request: bytes, context: Any) -> bytes:
        seen.update(context.invocation_metadata())
        seen["peer"] = context.peer()
        seen["remaining"] = context.time_remaining()
        await context.send_initial_metadata((("x-first", "1"),))
        context.set_trailing_metadata((("x-last", "2"), ("x-raw-bin", b"\x00\xff")))
        return b"seen"

    peer = RawPeer(server_with({"M": look}))
    extra = [("x-user", "ada"), ("x-blob-bin", "AP8"), ("grpc-timeout", "5S")]
    body, fields, _ = run_one(peer, peer.call(1, b"?", extra=extra))
    assert body == grpc_body(b"seen")
    assert seen["x-user"] == "ada"
    assert seen["x-blob-bin"] == b"\x00\xff"
    assert "content-type" not in seen
    assert "grpc-timeout" not in seen
    assert ":path" not in seen
    assert seen["peer"] == "ipv4:127.0.0.1:40000"
    assert 4 < seen["remaining"] <= 5
    assert (fields["x-first"], fields["x-last"], fields["x-raw-bin"]) == ("1", "2", "AP8")
    assert fields["grpc-status"] == "0"


def test_gzip_and_deflate_requests_are_inflated() -> None:
    import zlib

    peer = RawPeer(server_with({"M": echo}))
    for sid, encoding, packed in (
        (1, "gzip", gzip.compress(b"squeezed")),
        (3, "deflate", zlib.compress(b"squeezed")),
    ):
        wire = peer.headers(sid, extra=[("grpc-encoding", encoding)])
        wire += frame(DATA, END_STREAM, sid, grpc_body(packed, compressed=True))
        body, fields, _ = run_one(peer, wire, sid)
        assert (body, fields["grpc-status"]) == (grpc_body(b"squeezed"), "0")


@pytest.mark.parametrize(
    ("encoding", "payload", "code"),
    [("snappy", b"x", "12"), ("", b"x", "12"), ("gzip", b"not gzip", "13")],
)
def test_a_compressed_request_that_cannot_be_read_is_refused(
    encoding: str, payload: bytes, code: str
) -> None:
    peer = RawPeer(server_with({"M": echo}))
    extra = [("grpc-encoding", encoding)] if encoding else []
    wire = peer.headers(1, extra=extra) + frame(DATA, END_STREAM, 1, grpc_body(payload, compressed=True))
    body, fields, _ = run_one(peer, wire)
    assert (body, fields["grpc-status"]) == (b"", code)
    assert fields["grpc-message"]


def test_abort_is_trailers_only_with_a_percent_encoded_message() -> None:
    async def refuse(request: bytes, context: Any) -> bytes:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad 100% ünicode", (("x-why", "because"),))
        raise AssertionError("abort returned")

    peer = RawPeer(server_with({"M": refuse}))
    body, fields, header_frames = run_one(peer, peer.call(1, b"?"))
    assert (body, header_frames) == (b"", 1)  # one HEADERS frame, END_STREAM: Trailers-Only
    assert fields[":status"] == "200"
    assert fields["content-type"] == "application/grpc"
    assert (fields["grpc-status"], fields["grpc-message"]) == ("3", "bad 100%25 %C3%BCnicode")
    assert fields["x-why"] == "because"


@pytest.mark.parametrize(
    ("code", "expected"),
    [(None, "2"), (grpc.StatusCode.UNIMPLEMENTED, "12")],
)
def test_a_handler_that_raises_ends_unknown_or_with_the_code_it_set(
    code: grpc.StatusCode | None, expected: str
) -> None:
    async def broken(request: bytes, context: Any) -> bytes:
        if code is not None:
            context.set_code(code)
        raise NotImplementedError("nope")

    peer = RawPeer(server_with({"M": broken}))
    _, fields, _ = run_one(peer, peer.call(1, b"?"))
    assert fields["grpc-status"] == expected
    assert "NotImplementedError" in fields["grpc-message"]


def test_set_code_and_details_without_raising_end_the_call_so() -> None:
    async def soft(request: bytes, context: Any) -> bytes:
        context.set_code(grpc.StatusCode.NOT_FOUND)
        context.set_details("no such model")
        return b"ignored"

    peer = RawPeer(server_with({"M": soft}))
    body, fields, _ = run_one(peer, peer.call(1, b"?"))
    assert (body, fields["grpc-status"], fields["grpc-message"]) == (b"", "5", "no such model")


def test_a_request_the_deserializer_refuses_is_internal() -> None:
    def parse(data: bytes) -> bytes:
        raise ValueError("garbage")

    handler = grpc.unary_unary_rpc_method_handler(echo, request_deserializer=parse)
    peer = RawPeer(server_with(handlers={"M": handler}))
    _, fields, _ = run_one(peer, peer.call(1, b"?"))
    assert (fields["grpc-status"], fields["grpc-message"]) == ("13", "Exception deserializing request!")


def slow_handler(started: asyncio.Event, cancelled: asyncio.Event) -> Any:
    """A handler that would answer in 10 s; it sets ``started``, and ``cancelled`` when cancelled."""

    async def slow(request: bytes, context: Any) -> bytes:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return b"late"

    return slow


def test_the_deadline_cancels_the_handler_and_ends_deadline_exceeded() -> None:
    cancelled = asyncio.Event()

    async def scenario() -> None:
        peer = RawPeer(server_with({"M": slow_handler(asyncio.Event(), cancelled)}))
        peer.send(peer.call(1, b"?", extra=[("grpc-timeout", "30m")]))
        await asyncio.wait_for(cancelled.wait(), 2)
        await settle()
        _, fields = peer.response(1, peer.frames())
        assert (fields["grpc-status"], fields["grpc-message"]) == ("4", "Deadline Exceeded")

    asyncio.run(scenario())


def test_rst_stream_cancels_the_handler_and_nothing_is_answered() -> None:
    cancelled = asyncio.Event()
    started = asyncio.Event()

    async def scenario() -> None:
        peer = RawPeer(server_with({"M": slow_handler(started, cancelled)}))
        peer.send(peer.call(1, b"?"))
        await asyncio.wait_for(started.wait(), 2)
        peer.send(frame(RST_STREAM, 0, 1, struct.pack(">I", 8)))
        await asyncio.wait_for(cancelled.wait(), 2)
        await settle()
        assert peer.frames() == []
        assert not peer.conn.streams

    asyncio.run(scenario())


def test_limits_on_messages_and_metadata_are_resource_exhausted() -> None:
    async def big(request: bytes, context: Any) -> bytes:
        return b"y" * 50

    limits = Limits(max_receive_message=10, max_send_message=20, max_header_list=400)
    peer = RawPeer(server_with({"M": echo, "Big": big}, limits=limits))
    _, fields, _ = run_one(peer, peer.call(1, b"x" * 20))
    assert fields["grpc-status"] == "8"
    assert "Received message larger than max (20 vs. 10)" in fields["grpc-message"]
    _, fields, _ = run_one(peer, peer.call(3, b"x", path="/p/Big"), 3)
    assert fields["grpc-status"] == "8"
    assert "Sent message larger than max (50 vs. 20)" in fields["grpc-message"]
    _, fields, _ = run_one(peer, peer.call(5, b"x", extra=[("x-big", "v" * 500)]), 5)
    assert fields["grpc-status"] == "8"
    assert "metadata" in fields["grpc-message"]
    body, fields, _ = run_one(peer, peer.call(7, b"fits"), 7)  # the connection is still fine
    assert (body, fields["grpc-status"]) == (grpc_body(b"fits"), "0")


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"", "no message"),
        (b"\0\0\0\0\x09abc", "Truncated"),
        (grpc_body(b"a") + grpc_body(b"b"), "More than one"),
    ],
)
def test_a_unary_body_that_is_not_one_message_is_internal(body: bytes, why: str) -> None:
    peer = RawPeer(server_with({"M": echo}))
    _, fields, _ = run_one(peer, peer.headers(1) + frame(DATA, END_STREAM, 1, body))
    assert fields["grpc-status"] == "13"
    assert why in fields["grpc-message"]


def test_an_unknown_method_is_unimplemented_and_names_it() -> None:
    peer = RawPeer(server_with({"M": echo}))
    _, fields, header_frames = run_one(peer, peer.call(1, b"?", path="/p/Nope"))
    assert header_frames == 1
    assert (fields["grpc-status"], fields["grpc-message"]) == ("12", "Method not found: /p/Nope")


def given_back(peer: RawPeer) -> int:
    return sum(
        struct.unpack(">I", f.payload)[0] for f in peer.frames() if f.kind == WINDOW_UPDATE and f.stream == 1
    )


def test_a_request_stream_gets_its_window_back_as_the_handler_reads() -> None:
    gate = asyncio.Event()

    async def count(requests: Any, context: Any) -> bytes:
        n = 0
        async for message in requests:
            await gate.wait()
            n += len(message)
        return str(n).encode()

    async def scenario() -> None:
        handler = grpc.stream_unary_rpc_method_handler(count)
        peer = RawPeer(server_with(handlers={"M": handler}, limits=Limits(stream_window=65_535)))
        messages = grpc_body(b"a" * 1000) + grpc_body(b"b" * 2000)
        peer.send(peer.headers(1), frame(DATA, 0, 1, messages))
        await settle()
        assert given_back(peer) == 1005  # the handler has taken the first message, not the second
        gate.set()
        await settle()
        assert given_back(peer) == 2005
        peer.send(frame(DATA, END_STREAM, 1, grpc_body(b"c" * 3)))
        await settle()
        body, fields = peer.response(1, peer.frames())
        assert (body, fields["grpc-status"]) == (grpc_body(b"3003"), "0")

    asyncio.run(scenario())


def test_a_response_stream_sends_each_message_then_trailers() -> None:
    async def three(request: bytes, context: Any) -> Any:
        for i in range(3):
            yield request + str(i).encode()

    async def scenario() -> None:
        handler = grpc.unary_stream_rpc_method_handler(three)
        peer = RawPeer(server_with(handlers={"M": handler}))
        peer.send(peer.call(1, b"m"))
        await settle()
        body, fields = peer.response(1, peer.frames())
        assert body == grpc_body(b"m0") + grpc_body(b"m1") + grpc_body(b"m2")
        assert fields["grpc-status"] == "0"

    asyncio.run(scenario())
