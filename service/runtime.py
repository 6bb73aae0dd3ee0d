"""An optional fast runtime: predict signatures converted to LiteRT at load time.

One call of a SavedModel signature through TensorFlow costs ~100-200 µs for a small model; the same
signature as a LiteRT flatbuffer costs ~3 µs. At load time each predict signature with numeric
inputs is converted, then checked against TensorFlow on the warm-up inputs; only signatures whose
results match (``rtol=1e-5``) and whose call is cheap (under ``max_call_us`` on the verification
batch) use LiteRT, everything else keeps TensorFlow. LiteRT calls run inline on the event loop (a
LiteRT interpreter is not thread-safe, and a thread hop costs more than the call), which is why a
signature that computes for long stays on TensorFlow's thread pool: it must never stall the loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from service import signature as sig

log = logging.getLogger(__name__)


class LiteRuntime:
    """LiteRT runners for the signatures of one version that converted and verified."""

    def __init__(self, runners: dict[str, Any]) -> None:
        self._runners = runners

    def supports(self, signature_name: str) -> bool:
        return signature_name in self._runners

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        result: dict[str, np.ndarray] = self._runners[signature_name](**inputs)
        return result

    @property
    def signatures(self) -> list[str]:
        return sorted(self._runners)


def convert(
    path: Path,
    signatures: Mapping[str, sig.SignatureInfo],
    samples: Mapping[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]],
    max_call_us: float = 200.0,
) -> LiteRuntime:
    """Convert the signatures that have verification ``samples`` (inputs, TF outputs)."""
    try:
        import tensorflow as tf
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        log.info("LiteRT not available (%s); using TensorFlow", exc)
        return LiteRuntime({})
    runners: dict[str, Any] = {}
    for name, (inputs, expected) in samples.items():
        info = signatures[name]
        if info.method_name != sig.PREDICT_METHOD or any(
            t.numpy_dtype is None or t.numpy_dtype == np.dtype(object) for t in info.inputs.values()
        ):
            continue
        try:
            converter = tf.lite.TFLiteConverter.from_saved_model(str(path), signature_keys=[name])
            interpreter = Interpreter(model_content=converter.convert(), num_threads=1)
            runner = interpreter.get_signature_runner(name)
            got = runner(**inputs)
        except Exception as exc:  # noqa: BLE001 - any conversion failure means: keep TensorFlow
            log.info(
                "signature %s of %s stays on TensorFlow (LiteRT conversion failed: %s)",
                name,
                path,
                str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__,
            )
            continue
        if not _matches(expected, got):
            log.warning("signature %s of %s stays on TensorFlow: LiteRT results differ", name, path)
            continue
        call_us = _median_call_us(runner, inputs)
        if call_us > max_call_us:
            log.info(
                "signature %s of %s stays on TensorFlow: a LiteRT call takes %.0f µs, too long to run inline",
                name,
                path,
                call_us,
            )
            continue
        runners[name] = runner
    return LiteRuntime(runners)


def _median_call_us(runner: Any, inputs: Mapping[str, np.ndarray], calls: int = 5) -> float:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        runner(**inputs)
        times.append((time.perf_counter() - started) * 1e6)
    return float(np.median(times))


def _matches(expected: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> bool:
    if set(expected) != set(got):
        return False
    for key, want in expected.items():
        have = np.asarray(got[key])
        if have.shape != want.shape or have.dtype != want.dtype:
            return False
        if want.dtype.kind in "fc":
            if not np.allclose(have, want, rtol=1e-5, atol=1e-6, equal_nan=True):
                return False
        elif not np.array_equal(have, want):
            return False
    return True


def verification_samples(
    servable: Any,
    batch: int = 4,
    seed: int = 0,
) -> dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """Random inputs for each numeric predict signature, with TensorFlow's outputs for them."""
    rng = np.random.default_rng(seed)
    samples = {}
    for name, info in servable.signatures.items():
        if info.method_name != sig.PREDICT_METHOD:
            continue
        inputs: dict[str, np.ndarray] = {}
        for alias, tensor in info.inputs.items():
            dtype = tensor.numpy_dtype
            if tensor.shape is None or dtype is None or dtype == np.dtype(object):
                break
            shape = [batch if d < 0 else d for d in tensor.shape]
            if dtype.kind == "f":
                inputs[alias] = rng.normal(size=shape).astype(dtype)
            elif dtype.kind == "b":
                inputs[alias] = rng.integers(0, 2, size=shape).astype(dtype)
            else:
                inputs[alias] = rng.integers(0, 8, size=shape).astype(dtype)
        else:
            try:
                samples[name] = (inputs, servable.run(name, inputs))
            except Exception:  # noqa: BLE001 - random inputs may be invalid: skip the signature
                continue
    return samples
