"""Tiny SavedModels for rollout tests: the same answers, wrong answers, or a broken signature.

All serve ``serving_default`` like the project's linear model (input ``x`` float [-1, 3] -> ``y``
float [-1]), except ``broken`` which wants 4 features, so every 3-feature request is refused.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import tensorflow as tf


class Affine(tf.Module):  # type: ignore[misc]
    def __init__(self, w: list[float], b: float) -> None:
        super().__init__()
        self.w = tf.constant(np.asarray(w, np.float32).reshape(-1, 1))
        self.b = tf.constant(np.float32(b))

    def call(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": tf.reshape(tf.matmul(x, self.w) + self.b, [-1])}


GOOD_W, GOOD_B = [0.5, -1.0, 2.0], 0.25
WRONG_W, WRONG_B = [-0.5, 1.0, -2.0], 3.0


def export_affine(dest: Path, w: list[float], b: float) -> Path:
    """Write an affine model's SavedModel to ``dest`` (a version directory)."""
    module = Affine(w, b)
    fn = tf.function(module.call, input_signature=[tf.TensorSpec([None, len(w)], tf.float32, name="x")])
    tf.saved_model.save(module, str(dest), signatures={"serving_default": fn.get_concrete_function()})
    return dest


def export_kind(dest: Path, kind: str) -> Path:
    """``good`` (GOOD_W), ``wrong`` (other weights) or ``broken`` (4 inputs)."""
    if kind == "good":
        return export_affine(dest, GOOD_W, GOOD_B)
    if kind == "wrong":
        return export_affine(dest, WRONG_W, WRONG_B)
    if kind == "broken":
        return export_affine(dest, [*GOOD_W, 1.0], GOOD_B)
    raise ValueError(kind)


def expected(x: list[list[float]]) -> list[float]:
    return [float(np.dot(row, GOOD_W) + GOOD_B) for row in x]


def archive(version_dir: Path) -> bytes:
    """A .tar.gz of one version directory (its files at the root), as service.fetch_model takes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(version_dir.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(version_dir)), recursive=False)
    return buf.getvalue()
