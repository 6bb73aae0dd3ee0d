"""The compute-heavy benchmark model: a Keras MLP, 64 floats -> Dense 1,024 -> Dense 1,024 -> 1.

``scripts/bench --model heavy`` builds it in the run's temporary directory and exports it with the
project's own exporter (:func:`model.export.export`: manifest, warm-up record, atomic rename) as
``<base>/heavy/1/``. The weights are Keras's default initialisers with fixed seeds (Glorot-uniform
kernels, zero biases), so every run serves the same model; nothing is trained, only its cost
matters: about 1.1 M multiply-adds per row (64 x 1,024 + 1,024 x 1,024 + 1,024) against the
linear model's 3. Its ``serving_default`` has the linear model's shape: ``x`` float32
``[batch, 64]`` -> ``y`` ``[batch]``, so every target serves it unchanged. Run by the harness as
a separate process (TensorFlow and Keras stay out of the harness)::

    python -m bench.heavy --base-path DIR [--name heavy] [--features 64] [--hidden 1024]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from model import export as exporter

NAME = "heavy"
FEATURES = 64
HIDDEN = 1024
LAYERS = 2


class MLP(tf.Module):  # type: ignore[misc]
    """``serving_default``: ``x`` float32 ``[batch, features]`` -> ``y`` ``[batch]``."""

    def __init__(self, features: int = FEATURES, hidden: int = HIDDEN, seed: int = 0) -> None:
        super().__init__(name="mlp")
        keras = tf.keras
        dense = [
            keras.layers.Dense(
                hidden, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed + i)
            )
            for i in range(LAYERS)
        ]
        out = keras.layers.Dense(1, kernel_initializer=keras.initializers.GlorotUniform(seed + LAYERS))
        self.net = keras.Sequential([keras.Input((features,), name="x"), *dense, out])
        self.predict = tf.function(
            self._predict, input_signature=[tf.TensorSpec([None, features], tf.float32, name="x")]
        )

    def _predict(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": tf.reshape(self.net(x), [-1])}


def manifest_body(features: int, hidden: int, seed: int) -> dict[str, Any]:
    """What the version's ``manifest.json`` records besides its files (the linear model's keys)."""
    names = [f"f{i}" for i in range(features)]
    return {
        "model_type": "mlp",
        "feature_names": names,
        "target_name": "y",
        "input_schema": {
            "signature": "serving_default",
            "inputs": {"x": {"dtype": "DT_FLOAT", "shape": [-1, features], "features": names}},
            "outputs": {"y": {"dtype": "DT_FLOAT", "shape": [-1]}},
            "allow_non_finite": False,
        },
        "architecture": {
            "layers": [features, *[hidden] * LAYERS, 1],
            "activation": "relu",
            "weights": f"Keras default initialisers, seeds {seed}..{seed + LAYERS}, untrained",
        },
    }


def export_heavy(
    base_path: Path, name: str = NAME, features: int = FEATURES, hidden: int = HIDDEN, seed: int = 0
) -> Path:
    """Build the MLP and export it to ``<base_path>/<name>/<next version>/``; return that directory."""
    module = MLP(features, hidden, seed)
    with tempfile.TemporaryDirectory(prefix="modelship-heavy-") as tmp:
        saved = Path(tmp) / "saved_model"
        exporter.save_saved_model(module, saved, {"serving_default": module.predict})
        warmup = ("x", np.zeros((1, features), dtype=np.float32))
        return exporter.export(saved, base_path, name, manifest_body(features, hidden, seed), warmup=warmup)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.heavy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--base-path", type=Path, required=True, help="root of model base paths")
    p.add_argument("--name", default=NAME, help="model name (the version lands in BASE/NAME/VERSION)")
    p.add_argument("--features", type=int, default=FEATURES, help="float inputs per row")
    p.add_argument("--hidden", type=int, default=HIDDEN, help="units of each hidden layer")
    p.add_argument("--seed", type=int, default=0, help="seed of the first layer's initialiser")
    args = p.parse_args(argv)
    path = export_heavy(args.base_path, args.name, args.features, args.hidden, args.seed)
    print(path)  # the harness reads the version directory from stdout
    return 0


if __name__ == "__main__":
    sys.exit(main())
