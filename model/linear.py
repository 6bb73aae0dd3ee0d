"""The default model: linear regression ``y = Wx + b`` as a ``tf.Module``, trained with MSE.

Features are standardised inside the model (mean and scale are stored as constants), so the
exported SavedModel takes raw feature values. Two serving signatures are exported:

* ``serving_default`` (predict): input ``x`` float32 ``[batch, n_features]`` -> output ``y`` ``[batch]``.
* ``regress`` (TF Serving regress API): input ``inputs``, serialized ``tf.train.Example`` protos with
  one float feature per feature name -> output ``outputs`` ``[batch]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from model.data import Dataset


class LinearRegression(tf.Module):  # type: ignore[misc]
    """``y = ((x - mean) / scale) @ w + b``; ``w`` and ``b`` are trainable."""

    def __init__(self, feature_names: tuple[str, ...], mean: np.ndarray, scale: np.ndarray) -> None:
        super().__init__(name="linear_regression")
        n = len(feature_names)
        self.feature_names = list(feature_names)
        self.mean = tf.constant(mean.reshape(1, n), dtype=tf.float32)
        self.scale = tf.constant(scale.reshape(1, n), dtype=tf.float32)
        self.w = tf.Variable(tf.zeros([n, 1]), name="w")
        self.b = tf.Variable(tf.zeros([1]), name="b")
        spec = {name: tf.io.FixedLenFeature([], tf.float32) for name in self.feature_names}
        self._example_spec = spec
        self.predict = tf.function(
            self._predict, input_signature=[tf.TensorSpec([None, n], tf.float32, name="x")]
        )
        self.regress = tf.function(
            self._regress, input_signature=[tf.TensorSpec([None], tf.string, name="inputs")]
        )

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        z = (x - self.mean) / self.scale
        return tf.reshape(tf.matmul(z, self.w) + self.b, [-1])

    def _predict(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": self(x)}

    def _regress(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        parsed = tf.io.parse_example(inputs, self._example_spec)
        x = tf.stack([parsed[name] for name in self.feature_names], axis=1)
        return {"outputs": self(x)}

    def signatures(self) -> dict[str, Callable[..., dict[str, tf.Tensor]]]:
        return {"serving_default": self.predict, "regress": self.regress}

    def weights(self) -> tuple[np.ndarray, float]:
        """Weights and bias in raw-feature space: ``y = x @ w_raw + b_raw``."""
        w = self.w.numpy().reshape(-1) / self.scale.numpy().reshape(-1)
        b = float(self.b.numpy()[0] - np.sum(self.mean.numpy().reshape(-1) * w))
        return w, b


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train`."""

    epochs: int = 40
    learning_rate: float = 0.01
    batch_size: int = 64
    seed: int = 0


@dataclass
class TrainResult:
    """The trained module and its per-epoch training loss."""

    module: LinearRegression
    loss_history: list[float] = field(default_factory=list)


def train(data: Dataset, config: TrainConfig, progress: bool = True) -> TrainResult:
    """Mini-batch gradient descent on MSE; shows a progress bar when ``progress``."""
    if config.epochs < 1 or config.batch_size < 1 or not config.learning_rate > 0:
        raise ValueError("epochs, batch size and learning rate must be positive")
    tf.random.set_seed(config.seed)
    mean = data.x.mean(axis=0)
    scale = data.x.std(axis=0)
    scale[scale == 0] = 1.0
    module = LinearRegression(data.feature_names, mean, scale)
    x_all = tf.constant(data.x)
    y_all = tf.constant(data.y)
    step = _make_step(module, config.learning_rate)
    rng = np.random.default_rng(config.seed)

    def full_loss() -> float:
        return float(tf.reduce_mean(tf.square(module(x_all) - y_all)))

    history: list[float] = [full_loss()]  # epoch 0: the untrained model
    bar = tqdm(range(config.epochs), desc="training", unit="epoch", disable=not progress)
    for _ in bar:
        order = rng.permutation(len(data.y))
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            step(tf.gather(x_all, idx), tf.gather(y_all, idx))
        loss = full_loss()
        history.append(loss)
        bar.set_postfix(mse=f"{loss:.5f}")
    return TrainResult(module, history)


def _make_step(module: LinearRegression, lr: float) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    @tf.function  # type: ignore[untyped-decorator]
    def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(module(x) - y))
        grads = tape.gradient(loss, [module.w, module.b])
        for var, grad in zip([module.w, module.b], grads, strict=True):
            var.assign_sub(lr * grad)
        return loss

    return step  # type: ignore[no-any-return]
