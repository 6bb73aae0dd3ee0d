# mypy: disallow-subclassing-any=False
# (mlserver is installed in its peer env only: to the project's mypy its classes are Any)
"""A tiny MLServer runtime: the benchmark's SavedModel behind the Open Inference (V2) protocol.

``bench/peers.py`` writes the model repository that points MLServer at it
(``model-settings.json``: ``"implementation":
"bench.servers.peers.mlserver_runtime.SavedModelRuntime"``, ``"parameters": {"uri": <version
dir>}``) and runs ``mlserver start`` from the MLServer env with the repository root on PYTHONPATH.
``predict`` calls TensorFlow in the event loop, as MLServer's own runtimes call their models.
"""

from __future__ import annotations

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

from bench.servers.peers import savedmodel


class SavedModelRuntime(MLModel):
    """``POST /v2/models/<name>/infer`` with one FP32 input tensor of shape [rows, features]."""

    async def load(self) -> bool:
        uri = self.settings.parameters.uri
        if not uri:
            raise ValueError("model-settings.json needs parameters.uri: the SavedModel version directory")
        self.predict_rows = savedmodel.load(uri)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        rows = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32, copy=False)
        output = NumpyCodec.encode_output("predictions", self.predict_rows(rows))
        return InferenceResponse(model_name=self.name, model_version=self.version, outputs=[output])
