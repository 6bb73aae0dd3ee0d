"""PROTOTYPE: Modelship's real Predict (its dataplane) behind the prototype HTTP/2 gRPC server.

``bench/servers/h2_grpc.py``'s HTTP/2 connection (``h2_conn.py``) with the production handler in
place of the fixed answer: each request is decoded by ``service.grpc.registration.RequestDecoder``
(memory budget, INVALID_ARGUMENT for a bad message) and answered by
``service.grpc.servicer.PredictionService.Predict`` itself (routing, signature, tensors, the
dataplane, metrics), with a small stand-in for ``grpc.aio.ServicerContext``. The model server is
``service.server.ModelServer`` built from Modelship's own flags (its repository loads and polls the
models as usual); only Predict is served over gRPC, no health or reflection; with
``--rest_api_port`` Modelship's REST API (and ``/metrics``) runs beside it on the same loop::

    python -m bench.servers.h2_modelship --port 8605 --model_name linear --model_base_path DIR

Gaps beyond ``h2_grpc.py``'s: request metadata does not reach the handler (so no auth token and
no traffic-split stickiness keys), no other PredictionService or ModelService method, no
graceful drain on stop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence
from typing import Any, NoReturn

from bench.servers import h2_conn
from bench.servers.h2_conn import GrpcError, H2Connection, Unary
from bench.servers.h2_grpc import PREDICT


class Context:
    """What ``servicer.rpc`` and ``Predict`` ask of a ``grpc.aio.ServicerContext``."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    async def abort(self, code: Any, details: str) -> NoReturn:
        raise GrpcError(int(code.value[0]), details)  # grpc.StatusCode values are (int, name)


def predict_method(server: Any) -> Unary:
    """Predict through Modelship's servicer on ``server`` (a ``service.server.ModelServer``)."""
    from tensorflow_serving.apis import predict_pb2

    from service.grpc.registration import RequestDecoder
    from service.grpc.servicer import PredictionService

    settings = server.settings
    servicer = PredictionService(
        server.dataplane, server.metrics, server.auth, settings.enable_serialization_as_tensor_content
    )
    decode = RequestDecoder(predict_pb2.PredictRequest, server.memory)
    context = Context()

    async def predict(message: bytes) -> bytes:
        response = await servicer.Predict(decode(message), context)
        data: bytes = response.SerializeToString()
        return data

    return predict


async def serve(argv: list[str], host: str, port: int) -> None:
    from service.cli import parse_settings
    from service.server import ModelServer

    # our port as its gRPC port (never bound by it: its grpc.aio server is not built); REST (with
    # /metrics, e.g. the batch-size histogram) only when --rest_api_port is given
    rest = any(a.startswith("--rest_api_port") and a.rpartition("=")[2] != "0" for a in argv)
    extra = [] if rest else ["--rest_api_port=0"]
    settings = parse_settings([*argv, *extra, f"--port={port}", f"--host={host}"])
    server = ModelServer(settings)
    server.repository.start()
    methods = {PREDICT: predict_method(server)}
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(lambda: H2Connection(methods), host, port, backlog=1024)
    async with listener:
        if rest:
            await asyncio.gather(listener.serve_forever(), server.build_rest().serve())
        else:
            await listener.serve_forever()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.servers.h2_modelship",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, required=True, help="gRPC (h2c) port")
    args, modelship_flags = parser.parse_known_args(argv)
    if not modelship_flags:
        parser.error("give Modelship's model flags too (e.g. --model_name NAME --model_base_path DIR)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    coro = serve(modelship_flags, args.host, args.port)
    h2_conn.run(coro)


if __name__ == "__main__":
    main()
