"""The LiteRT runtime: predict signatures run as LiteRT flatbuffers instead of through TensorFlow.

One call of a SavedModel signature through TensorFlow costs ~100-200 µs for a small model; the same
signature as a LiteRT flatbuffer costs a few µs. A signature gets its flatbuffer one of two ways:

* :func:`from_artifacts`: the version was exported with ``litert/*.tflite`` files that export
  verified against TensorFlow (:mod:`model.litert`); the manifest, itself verified, names them.
  No TensorFlow is needed, so this is how the slim image serves (``--runtime=litert``), and the
  full image skips the conversion.
* :func:`convert`: at load, for versions exported without artifacts; each numeric predict
  signature is converted and checked against TensorFlow on random inputs (``rtol=1e-5``).

Each signature has two interpreters over the same flatbuffer: one called inline on the event loop
for small requests (a LiteRT interpreter is not thread-safe, and a thread hop costs more than the
call), one behind a lock for the model threads. A signature whose call takes longer than
``max_call_us`` on a small batch is never run inline: it must not stall the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model import litert
from service import signature as sig

log = logging.getLogger(__name__)

MAX_CALL_US = 200.0


@dataclass
class LiteSignature:
    """The two interpreters of one signature, and whether it may run on the event loop."""

    inline: Any
    pooled: Any
    inline_ok: bool
    lock: threading.Lock = field(default_factory=threading.Lock)


class LiteRuntime:
    """LiteRT runners for the signatures of one version."""

    def __init__(self, signatures: dict[str, LiteSignature]) -> None:
        self._signatures = signatures

    def supports(self, signature_name: str) -> bool:
        """Whether the signature runs on LiteRT at all (inline or on the model threads)."""
        return signature_name in self._signatures

    def runs_inline(self, signature_name: str) -> bool:
        entry = self._signatures.get(signature_name)
        return entry is not None and entry.inline_ok

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on the event loop's interpreter (only ever called from the loop's thread)."""
        result: dict[str, np.ndarray] = self._signatures[signature_name].inline(**inputs)
        return result

    def run_pooled(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on the model threads' interpreter, one call at a time."""
        entry = self._signatures[signature_name]
        with entry.lock:
            result: dict[str, np.ndarray] = entry.pooled(**inputs)
        return result

    @property
    def signatures(self) -> list[str]:
        return sorted(self._signatures)


def _entry(
    flatbuffer: bytes, name: str, inputs: Mapping[str, np.ndarray] | None, threads: int
) -> LiteSignature:
    inline = litert.interpreter(flatbuffer).get_signature_runner(name)
    pooled = litert.interpreter(flatbuffer, threads).get_signature_runner(name)
    inline_ok = True
    if inputs is not None:
        call_us = _median_call_us(inline, inputs)
        inline_ok = call_us <= MAX_CALL_US
        if not inline_ok:
            log.info("signature %s: a LiteRT call takes %.0f µs, too long to run inline", name, call_us)
    return LiteSignature(inline, pooled, inline_ok)


def from_artifacts(
    path: Path, manifest: Mapping[str, Any], signatures: Mapping[str, sig.SignatureInfo], threads: int = 1
) -> LiteRuntime:
    """The runtime for the verified artifacts the manifest lists (its digests were checked on load)."""
    entries: dict[str, LiteSignature] = {}
    listed = manifest.get("litert", {}).get("signatures", {})
    for name, record in sorted(listed.items()):
        info = signatures.get(name)
        if info is None:
            continue
        flatbuffer = (path / record["file"]).read_bytes()
        entries[name] = _entry(flatbuffer, name, zero_inputs(info), threads)
    return LiteRuntime(entries)


def convert(
    path: Path,
    signatures: Mapping[str, sig.SignatureInfo],
    samples: Mapping[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]],
    threads: int = 1,
) -> LiteRuntime:
    """Convert the signatures that have verification ``samples`` (inputs, TF outputs)."""
    entries: dict[str, LiteSignature] = {}
    for name, (inputs, expected) in samples.items():
        info = signatures[name]
        if info.method_name != sig.PREDICT_METHOD or _specs(info) is None:
            continue
        try:
            flatbuffer = litert.convert(path, name)
            entry = _entry(flatbuffer, name, inputs, threads)
            got = entry.inline(**inputs)
        except Exception as exc:  # noqa: BLE001 - any conversion failure means: keep TensorFlow
            log.info(
                "signature %s of %s stays on TensorFlow (LiteRT conversion failed: %s)",
                name,
                path,
                litert.first_line(exc),
            )
            continue
        if not litert.matches(expected, got):
            log.warning("signature %s of %s stays on TensorFlow: LiteRT results differ", name, path)
            continue
        if not entry.inline_ok:  # too slow to run inline (logged by _entry): keep TensorFlow's threads
            log.info("signature %s of %s stays on TensorFlow", name, path)
            continue
        entries[name] = entry
    return LiteRuntime(entries)


def _specs(info: sig.SignatureInfo) -> dict[str, tuple[np.dtype[Any], tuple[int, ...]]] | None:
    specs = {}
    for alias, tensor in info.inputs.items():
        dtype = tensor.numpy_dtype
        if tensor.shape is None or dtype is None or dtype == np.dtype(object):
            return None
        specs[alias] = (dtype, tensor.shape)
    return specs


def zero_inputs(info: sig.SignatureInfo, batch: int = 4) -> dict[str, np.ndarray] | None:
    """Zeros of ``batch`` rows for a numeric signature (``None`` if its inputs are not all numeric)."""
    specs = _specs(info)
    if specs is None:
        return None
    return {
        alias: np.zeros([batch if d < 0 else d for d in dims], dtype)
        for alias, (dtype, dims) in specs.items()
    }


def _median_call_us(runner: Any, inputs: Mapping[str, np.ndarray], calls: int = 5) -> float:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        runner(**inputs)
        times.append((time.perf_counter() - started) * 1e6)
    return float(np.median(times))


def verification_samples(
    servable: Any,
    batch: int = 4,
    seed: int = 0,
) -> dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """Random inputs for each numeric predict signature, with TensorFlow's outputs for them."""
    rng = np.random.default_rng(seed)
    samples = {}
    for name, info in servable.signatures.items():
        specs = _specs(info)
        if info.method_name != sig.PREDICT_METHOD or specs is None:
            continue
        inputs = litert.random_inputs(specs, batch, rng)
        try:
            samples[name] = (inputs, servable.run(name, inputs))
        except Exception:  # noqa: BLE001 - random inputs may be invalid: skip the signature
            continue
    return samples
