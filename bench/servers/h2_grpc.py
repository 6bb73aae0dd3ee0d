"""PROTOTYPE: unary gRPC on a minimal HTTP/2 server of our own (asyncio/uvloop), fixed answer.

Issue 13's moonshot: grpc.aio's own per-call cost is the floor of Modelship's gRPC path, so this
measures what a different server path would cost. It serves
``/tensorflow.serving.PredictionService/Predict`` like ``bench/servers/bare_grpc.py``: the request
is parsed as a PredictRequest with the official ``tensorflow_serving.apis`` protos and the answer is
the same prebuilt PredictResponse (serialized once). Every other method is UNIMPLEMENTED::

    python -m bench.servers.h2_grpc --port 8604

The HTTP/2 connection is ``bench/servers/h2_conn.py``, HPACK ``bench/servers/h2_hpack.py``.

What it does NOT implement (a benchmark prototype, not a production server):

- TLS and ALPN, HTTP/1.1 Upgrade to h2c: cleartext prior-knowledge h2c only;
- server push, stream priority (PRIORITY frames and the HEADERS priority block are skipped);
- streaming RPCs: exactly one request message, answered once the client half-closes;
- compression (a compressed message gets UNIMPLEMENTED), ``grpc-timeout`` (the client's deadline
  is enforced by the client's RST_STREAM only), metadata to handlers, custom response metadata;
- SETTINGS_MAX_CONCURRENT_STREAMS / MAX_HEADER_LIST_SIZE enforcement (none announced, none
  enforced), checking that the peer stays within *our* receive windows, request header validation
  beyond ``:path`` and ``content-type`` (pseudo-header order, ``:method``, ``te``), stream state
  errors such as DATA on a closed stream (ignored, not STREAM_CLOSED);
- Trailers-Only edge cases beyond errors sent before any response, HTTP status mapping for
  non-gRPC clients (only 415 for a wrong content-type);
- graceful shutdown (no GOAWAY on stop), write back-pressure (no pause_writing), keepalive
  policy (pings are answered, never sent, never limited), settings-ACK timeouts.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Sequence

from google.protobuf.message import DecodeError
from tensorflow_serving.apis import predict_pb2

from bench.servers import h2_conn
from bench.servers.bare_grpc import fixed_response
from bench.servers.h2_conn import INTERNAL, GrpcError, H2Connection, Unary

PREDICT = "/tensorflow.serving.PredictionService/Predict"


def predict_method(model_name: str, delay_s: float = 0.0) -> Unary:
    """Predict: parse the PredictRequest, return the fixed answer (after ``delay_s``, if any)."""
    answer: bytes = fixed_response(model_name).SerializeToString()
    parse: Callable[[bytes], object] = predict_pb2.PredictRequest.FromString

    def predict(message: bytes) -> bytes:
        try:
            parse(message)
        except DecodeError as exc:
            raise GrpcError(INTERNAL, f"cannot parse the PredictRequest: {exc}") from None
        return answer

    if not delay_s:
        return predict

    def slow_predict(message: bytes) -> Awaitable[bytes]:
        async def later() -> bytes:
            await asyncio.sleep(delay_s)
            return predict(message)

        return later()

    return slow_predict


async def serve(host: str, port: int, model_name: str, delay_s: float = 0.0) -> None:
    methods = {PREDICT: predict_method(model_name, delay_s)}
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: H2Connection(methods), host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.servers.h2_grpc",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, required=True, help="gRPC (h2c) port")
    parser.add_argument("--model-name", default="linear", help="model name echoed in the response")
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=0.0,
        help="answer each Predict this many ms late, from a task (the tests' deadlines and cancels)",
    )
    args = parser.parse_args(argv)
    coro = serve(args.host, args.port, args.model_name, args.delay_ms / 1000)
    h2_conn.run(coro)


if __name__ == "__main__":
    main()
