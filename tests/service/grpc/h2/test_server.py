"""Modelship's own gRPC server on a real socket, called by the official grpcio client.

The server runs its own event loop in a thread and serves service ``p`` with raw-bytes methods,
so every test speaks real HTTP/2 through grpcio's C core: many concurrent calls on one channel,
requests and responses far over the flow-control windows, every streaming kind, deadlines and
cancels, ``stop(grace)`` draining the calls in flight, and ``max_connection_age`` moving clients
to new connections without failing a call.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from service.grpc.h2.limits import Limits
from service.grpc.h2.server import H2Server


async def echo(request: bytes, context: Any) -> bytes:
    return request


async def slow(request: bytes, context: Any) -> bytes:
    await asyncio.sleep(float(request or b"0.3"))
    return b"slept"


async def big(request: bytes, context: Any) -> bytes:
    return b"r" * int(request)


async def total(requests: AsyncIterator[bytes], context: Any) -> bytes:
    n = 0
    async for message in requests:
        n += len(message)
    return str(n).encode()


async def count_to(request: bytes, context: Any) -> AsyncIterator[bytes]:
    for i in range(int(request)):
        yield str(i).encode()


async def upper(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    async for message in requests:
        yield message.upper()


HANDLERS = {
    "Echo": grpc.unary_unary_rpc_method_handler(echo),
    "Slow": grpc.unary_unary_rpc_method_handler(slow),
    "Big": grpc.unary_unary_rpc_method_handler(big),
    "Total": grpc.stream_unary_rpc_method_handler(total),
    "CountTo": grpc.unary_stream_rpc_method_handler(count_to),
    "Upper": grpc.stream_stream_rpc_method_handler(upper),
}


class Running:
    """An H2Server on 127.0.0.1 in its own thread and event loop."""

    def __init__(self, **kw: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = self.run(self._start(**kw))
        self.address = f"127.0.0.1:{self.port}"

    async def _start(self, **kw: Any) -> H2Server:
        server = H2Server(Limits(), **kw)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("p", HANDLERS)])
        self.port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server

    def run(self, coroutine: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        if not self.server.closed.is_set():
            self.run(self.server.stop(0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def running() -> Iterator[Running]:
    r = Running()
    yield r
    r.close()


def methods(channel: grpc.Channel) -> dict[str, Any]:
    return {
        "echo": channel.unary_unary("/p/Echo"),
        "slow": channel.unary_unary("/p/Slow"),
        "big": channel.unary_unary("/p/Big"),
        "total": channel.stream_unary("/p/Total"),
        "count_to": channel.unary_stream("/p/CountTo"),
        "upper": channel.stream_stream("/p/Upper"),
    }


def test_many_concurrent_calls_on_one_channel(running: Running) -> None:
    with grpc.insecure_channel(running.address) as channel:
        call = methods(channel)["echo"]
        futures = [call.future(str(i).encode(), timeout=20) for i in range(200)]
        assert [f.result() for f in futures] == [str(i).encode() for i in range(200)]
        with ThreadPoolExecutor(8) as pool:  # and from many threads at once
            answers = list(pool.map(lambda i: call(b"t%d" % i, timeout=20), range(100)))
        assert answers == [b"t%d" % i for i in range(100)]


def test_requests_and_responses_far_over_the_windows(running: Running) -> None:
    with grpc.insecure_channel(running.address) as channel:
        m = methods(channel)
        for _ in range(3):  # the windows keep being given back, call after call
            payload = b"q" * 4_000_000  # near the 4 MiB message limit: over every window
            assert m["echo"](payload, timeout=30) == payload
            assert len(m["big"](b"4000000", timeout=30)) == 4_000_000


def test_every_streaming_kind(running: Running) -> None:
    with grpc.insecure_channel(running.address) as channel:
        m = methods(channel)
        assert m["total"](iter([b"a" * 10, b"b" * 20_000, b""]), timeout=10) == b"20010"
        assert list(m["count_to"](b"5", timeout=10)) == [b"0", b"1", b"2", b"3", b"4"]
        assert list(m["upper"](iter([b"x", b"y" * 200_000]), timeout=10)) == [b"X", b"Y" * 200_000]
        many = list(m["count_to"](b"2000", timeout=20))
        assert len(many) == 2000
        assert many[-1] == b"1999"


def test_unknown_method_then_the_channel_still_works(running: Running) -> None:
    with grpc.insecure_channel(running.address) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            channel.unary_unary("/p/Nope")(b"", timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "/p/Nope" in caught.value.details()
        assert methods(channel)["echo"](b"fine", timeout=10) == b"fine"


def test_deadline_and_cancel_leave_the_connection_usable(running: Running) -> None:
    with grpc.insecure_channel(running.address) as channel:
        m = methods(channel)
        assert m["echo"](b"up", timeout=10) == b"up"
        with pytest.raises(grpc.RpcError) as caught:
            m["slow"](b"1", timeout=0.05)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        future = m["slow"].future(b"1", timeout=10)
        time.sleep(0.05)
        assert future.cancel()
        with pytest.raises(grpc.FutureCancelledError):
            future.result()
        time.sleep(0.2)
        conn = next(iter(running.server.connections))
        assert not conn.streams  # both calls are gone from the server too
        assert [m["echo"].future(b"%d" % i, timeout=10).result() for i in range(5)] == [
            b"%d" % i for i in range(5)
        ]


def test_stop_with_grace_finishes_calls_in_flight_and_refuses_new_ones() -> None:
    running = Running()
    try:
        with grpc.insecure_channel(running.address) as channel:
            m = methods(channel)
            assert m["echo"](b"up", timeout=10) == b"up"
            in_flight = [m["slow"].future(b"0.5", timeout=10) for _ in range(5)]
            time.sleep(0.1)
            stopping = asyncio.run_coroutine_threadsafe(running.server.stop(5), running.loop)
            assert [f.result() for f in in_flight] == [b"slept"] * 5
            stopping.result(10)
            with pytest.raises(grpc.RpcError) as caught:
                m["echo"](b"after", timeout=2)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        running.close()


def test_stop_past_its_grace_cancels_what_still_runs() -> None:
    running = Running()
    try:
        with grpc.insecure_channel(running.address) as channel:
            future = methods(channel)["slow"].future(b"10", timeout=20)
            time.sleep(0.2)
            started = time.monotonic()
            running.run(running.server.stop(0.3))
            assert time.monotonic() - started < 3
            with pytest.raises(grpc.RpcError) as caught:
                future.result()
            assert caught.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    finally:
        running.close()


def test_max_connection_age_moves_clients_without_failing_a_call() -> None:
    running = Running(max_connection_age=0.3, max_connection_age_grace=5)
    try:
        with grpc.insecure_channel(running.address) as channel:
            call = methods(channel)["echo"]
            seen: set[int] = set()
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                assert call(b"ok", timeout=10) == b"ok"  # never fails across the GOAWAYs
                seen.update(id(c) for c in running.server.connections)
                time.sleep(0.02)
            assert len(seen) >= 3  # aged out and reconnected several times
    finally:
        running.close()
