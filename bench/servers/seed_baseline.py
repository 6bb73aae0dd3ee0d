"""The model served "the way the seed does it": the baseline Modelship is compared with.

FastAPI with a pydantic request model, one TensorFlow call per request through the SavedModel's
``serving_default`` signature, the response encoded by FastAPI's default (stdlib ``json``) and
uvicorn with its default settings (which pick uvloop and httptools when installed, and log every
request). The route and body are TF Serving's, so the same load script drives every target::

    python -m bench.servers.seed_baseline --model-dir BASE/linear/1 --port 8601
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel


class PredictRequest(BaseModel):
    """TF Serving's row format, validated by pydantic on every request."""

    instances: list[list[float]]


def build_app(model_dir: str, model_name: str) -> FastAPI:
    import tensorflow as tf

    signature = tf.saved_model.load(model_dir).signatures["serving_default"]
    input_name = next(iter(signature.structured_input_signature[1]))
    output_name = next(iter(signature.structured_outputs))
    app = FastAPI()

    @app.post(f"/v1/models/{model_name}:predict")
    def predict(body: PredictRequest) -> dict[str, Any]:
        outputs = signature(**{input_name: tf.constant(body.instances, dtype=tf.float32)})
        return {"predictions": outputs[output_name].numpy().tolist()}

    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.servers.seed_baseline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model-dir", required=True, help="SavedModel version directory to serve")
    parser.add_argument("--model-name", default="linear", help="model name in the route path")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, required=True, help="HTTP port")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    uvicorn.run(build_app(args.model_dir, args.model_name), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
