"""The benchmark's SavedModel as a NumPy function: every peer calls it the same way.

One ``serving_default`` call per request (or per batch, where a peer batches), float32 rows in,
the signature's single output out, as the seed-style baseline does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def load(model_dir: str) -> Callable[[Any], np.ndarray]:
    """``predict(rows)`` for the SavedModel in ``model_dir`` (a version directory)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(model_dir)
    signature = loaded.signatures["serving_default"]
    input_name = next(iter(signature.structured_input_signature[1]))
    output_name = next(iter(signature.structured_outputs))

    def predict(rows: Any) -> np.ndarray:
        outputs = signature(**{input_name: tf.constant(rows, dtype=tf.float32)})
        result: np.ndarray = outputs[output_name].numpy()
        return result

    predict.loaded = loaded  # type: ignore[attr-defined]  # keeps the variables alive
    return predict
