# mypy: disallow-untyped-decorators=False
# (bentoml is installed in its peer env only: to the project's mypy its decorators are untyped)
"""A BentoML 1.4 service with one API calling the benchmark's SavedModel.

Run from the BentoML env, at the repository root (``bench/peers.py`` does)::

    BENCH_PEER_MODEL_DIR=BASE/linear/1 BENTOML_DO_NOT_TRACK=True <env>/bin/bentoml serve \\
        bench.servers.peers.bentoml_service:SavedModelService --host=127.0.0.1 --port=3000

``POST /predict`` with ``{"instances": [[...], ...]}`` (BentoML maps the JSON keys to the API's
parameters) answers the predictions as a JSON list. A sync API: BentoML runs it in its thread pool.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
import numpy as np

from bench.servers.peers import savedmodel

MODEL_DIR_ENV = "BENCH_PEER_MODEL_DIR"


@bentoml.service(workers=1)
class SavedModelService:
    def __init__(self) -> None:
        self.predict_rows = savedmodel.load(os.environ[MODEL_DIR_ENV])

    @bentoml.api
    def predict(self, instances: list[list[float]]) -> list[Any]:
        rows = np.asarray(instances, dtype=np.float32)
        result: list[Any] = self.predict_rows(rows).tolist()  # one prediction per row
        return result
