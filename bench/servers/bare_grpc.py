"""The gRPC ceilings in Python here: a bare PredictionService with a fixed answer, per server.

It implements ``tensorflow.serving.PredictionService/Predict`` with the official
``tensorflow_serving.apis`` stubs (so requests are parsed as PredictRequest) and returns one
prebuilt PredictResponse; every other method is left UNIMPLEMENTED. ``--server`` picks the gRPC
server under it, as Modelship's ``--grpc_server`` does: ``grpcio`` (``grpc.aio``, on asyncio's loop)
or ``modelship`` (``service.grpc.h2``, Modelship's own HTTP/2 server, on uvloop as Modelship runs
it)::

    python -m bench.servers.bare_grpc --port 8603 [--server modelship]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import grpc
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc


def fixed_response(model_name: str) -> Any:
    response = predict_pb2.PredictResponse()
    response.model_spec.name = model_name
    response.model_spec.version.value = 1
    response.model_spec.signature_name = "serving_default"
    y = response.outputs["y"]
    y.dtype = 1  # DT_FLOAT
    y.tensor_shape.dim.add().size = 1
    y.float_val.append(0.0)
    return response


class FixedPrediction(prediction_service_pb2_grpc.PredictionServiceServicer):  # type: ignore[misc]
    def __init__(self, model_name: str) -> None:
        self.response = fixed_response(model_name)

    async def Predict(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return self.response


async def serve(host: str, port: int, model_name: str, implementation: str = "grpcio") -> None:
    if implementation == "grpcio":
        server = grpc.aio.server()
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            FixedPrediction(model_name), server
        )
        server.add_insecure_port(f"{host}:{port}")
        await server.start()
        await server.wait_for_termination()
        return
    from service.grpc.h2.limits import Limits
    from service.grpc.h2.server import H2Server

    h2 = H2Server(Limits())
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(FixedPrediction(model_name), h2)
    h2.add_insecure_port(f"{host}:{port}")
    await h2.start()
    await h2.closed.wait()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.servers.bare_grpc",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, required=True, help="gRPC port")
    parser.add_argument("--model-name", default="linear", help="model name echoed in the response")
    parser.add_argument(
        "--server",
        choices=("grpcio", "modelship"),
        default="grpcio",
        help="the gRPC server: grpcio (grpc.aio) or modelship (Modelship's own HTTP/2 server)",
    )
    args = parser.parse_args(argv)
    runner: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    if args.server == "modelship":  # the loop Modelship serves on (service.server.run)
        with contextlib.suppress(ImportError):
            import uvloop

            runner = uvloop.run
    runner(serve(args.host, args.port, args.model_name, args.server))


if __name__ == "__main__":
    main()
