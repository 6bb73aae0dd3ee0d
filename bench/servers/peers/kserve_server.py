# mypy: disallow-subclassing-any=False
# (kserve is installed in its peer env only: to the project's mypy its classes are Any)
"""KServe's Python ModelServer serving the benchmark's SavedModel over its V1 protocol.

Run by the KServe env's interpreter from the repository root (``bench/peers.py`` does)::

    <env>/bin/python -m bench.servers.peers.kserve_server --model_dir=BASE/linear/1 \\
        --model_name=linear --host=127.0.0.1 --http_port=8080 --workers=1 --enable_grpc=false

KServe's own flags (``--http_port``, ``--workers``, ``--enable_grpc``, ...) are read from the same
command line by ``kserve.model_server``'s parser; ``--model_dir`` and ``--host`` are this file's.
KServe binds its REST server to 0.0.0.0 in code: ``--host`` rebinds it (the only change made to it).
"""

from __future__ import annotations

import argparse
from typing import Any

import kserve
import numpy as np
from kserve import model_server
from kserve.protocol.rest.server import RESTServer

from bench.servers.peers import savedmodel


class SavedModelPredictor(kserve.Model):
    """``POST /v1/models/<name>:predict`` with ``{"instances": [[...], ...]}``."""

    def __init__(self, name: str, model_dir: str) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.predict_rows = savedmodel.load(model_dir)
        self.ready = True

    def predict(self, payload: Any, headers: Any = None) -> dict[str, Any]:
        rows = np.asarray(payload["instances"], dtype=np.float32)
        return {"predictions": self.predict_rows(rows).tolist()}


def bind_rest_server(host: str) -> None:
    """Make ``ModelServer.start`` build its REST server on ``host`` instead of 0.0.0.0."""

    class HostRESTServer(RESTServer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.config.host = host

    model_server.RESTServer = HostRESTServer


def main() -> None:
    parser = argparse.ArgumentParser(parents=[model_server.parser], description=__doc__)
    parser.add_argument("--model_dir", required=True, help="SavedModel version directory to serve")
    parser.add_argument("--host", default="127.0.0.1", help="address the REST server binds")
    args, _ = parser.parse_known_args()
    bind_rest_server(args.host)
    kserve.ModelServer().start([SavedModelPredictor(args.model_name, args.model_dir)])


if __name__ == "__main__":
    main()
