"""LiteRT artifacts: predict signatures converted to LiteRT flatbuffers and verified against TensorFlow.

``python -m model export`` writes ``litert/<signature>.tflite`` beside the SavedModel for every predict
signature with numeric inputs that converts and whose LiteRT results match TensorFlow's (``RTOL``,
``ATOL``) on seeded random inputs at each of ``VERIFY_BATCHES`` rows. The manifest's ``litert`` entry
records each file with its sha256, how it was verified, and why the other signatures were left out.
The server runs these files without TensorFlow (the slim image) or instead of converting at load (the
full image). TensorFlow is imported only by the functions that convert; :func:`matches` and
:func:`random_inputs` are plain numpy, shared with the server's load-time conversion.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

DIRECTORY = "litert"
FORMAT = "modelship.litert/v1"
RTOL = 1e-5
ATOL = 1e-6
VERIFY_BATCHES = (1, 4)
SEED = 0
PREDICT_METHOD = "tensorflow/serving/predict"

# (dtype, shape with -1 for unknown dimensions) of each input alias
InputSpecs = Mapping[str, tuple[np.dtype[Any], Sequence[int]]]


def file_name(signature_key: str) -> str:
    """``litert/<key>.tflite`` for keys that are safe file names, else a digest of the key."""
    if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}", signature_key):
        return f"{DIRECTORY}/{signature_key}.tflite"
    return f"{DIRECTORY}/sig-{hashlib.sha256(signature_key.encode()).hexdigest()[:16]}.tflite"


def random_inputs(specs: InputSpecs, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Seeded inputs of ``batch`` rows for the unknown dimensions: normal floats, small ints, bools."""
    inputs: dict[str, np.ndarray] = {}
    for alias, (dtype, dims) in specs.items():
        shape = [batch if d < 0 else d for d in dims]
        if dtype.kind in "fc":
            inputs[alias] = rng.normal(size=shape).astype(dtype)
        elif dtype.kind == "b":
            inputs[alias] = rng.integers(0, 2, size=shape).astype(dtype)
        else:
            inputs[alias] = rng.integers(0, 8, size=shape).astype(dtype)
    return inputs


def matches(expected: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> bool:
    """Same outputs, shapes and dtypes; floats within ``RTOL``/``ATOL``, everything else exact."""
    if set(expected) != set(got):
        return False
    for key, want in expected.items():
        have = np.asarray(got[key])
        want = np.asarray(want)
        if have.shape != want.shape or have.dtype != want.dtype:
            return False
        if want.dtype.kind in "fc":
            if not np.allclose(have, want, rtol=RTOL, atol=ATOL, equal_nan=True):
                return False
        elif not np.array_equal(have, want):
            return False
    return True


def convert(saved_model_dir: Path, signature_key: str) -> bytes:
    """One signature of a SavedModel as a LiteRT flatbuffer (TensorFlow's converter, built-in ops only)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=[signature_key])
    return bytes(converter.convert())


def interpreter(flatbuffer: bytes, threads: int = 1) -> Any:
    """A LiteRT interpreter for ``flatbuffer`` (imported lazily: the export image may lack LiteRT)."""
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=flatbuffer, num_threads=threads)


def write_artifacts(version_dir: Path, methods: Mapping[str, str]) -> dict[str, Any]:
    """Convert and verify the SavedModel in ``version_dir``; return the manifest's ``litert`` entry.

    ``methods`` maps each signature key to its method name (TF2 saves every signature as predict, so
    the caller passes the relabelled names). Nothing is written for a signature that does not
    convert or verify; its reason is recorded under ``skipped``.
    """
    import tensorflow as tf

    module = tf.saved_model.load(str(version_dir))
    written: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for key in sorted(module.signatures):
        fn = module.signatures[key]
        specs = _input_specs(fn)
        if methods.get(key, PREDICT_METHOD) != PREDICT_METHOD:
            skipped[key] = f"method {methods[key]} (only predict signatures run on LiteRT)"
            continue
        if specs is None:
            skipped[key] = "inputs are not numeric tensors of known rank"
            continue
        try:
            flatbuffer = convert(version_dir, key)
            runner = interpreter(flatbuffer).get_signature_runner(key)
        except Exception as exc:  # noqa: BLE001 - any converter failure: the signature stays TF-only
            skipped[key] = f"conversion failed: {first_line(exc)}"
            continue
        reason = _verify(fn, runner, specs)
        if reason:
            skipped[key] = reason
            continue
        rel = file_name(key)
        (version_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (version_dir / rel).write_bytes(flatbuffer)
        written[key] = {
            "file": rel,
            "sha256": hashlib.sha256(flatbuffer).hexdigest(),
            "bytes": len(flatbuffer),
        }
    for key, reason in skipped.items():
        log.info("signature %s: no LiteRT artifact (%s)", key, reason)
    return {
        "format": FORMAT,
        "signatures": written,
        "skipped": skipped,
        "verified": {"rtol": RTOL, "atol": ATOL, "batches": list(VERIFY_BATCHES), "seed": SEED},
        "tensorflow": tf.__version__,
    }


def _input_specs(fn: Any) -> dict[str, tuple[np.dtype[Any], list[int]]] | None:
    specs: dict[str, tuple[np.dtype[Any], list[int]]] = {}
    for alias, spec in fn.structured_input_signature[1].items():
        dtype = spec.dtype
        if spec.shape.rank is None or not (dtype.is_floating or dtype.is_integer or dtype.is_bool):
            return None
        specs[alias] = (np.dtype(dtype.as_numpy_dtype), [-1 if d is None else int(d) for d in spec.shape])
    return specs


def _verify(fn: Any, runner: Any, specs: InputSpecs) -> str | None:
    """``None`` if LiteRT agrees with TensorFlow at every verification batch, else why not."""
    import tensorflow as tf

    rng = np.random.default_rng(SEED)
    for batch in VERIFY_BATCHES:
        inputs = random_inputs(specs, batch, rng)
        try:
            expected = {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}
            got = runner(**inputs)
        except Exception as exc:  # noqa: BLE001 - random inputs the model rejects: cannot verify
            return f"verification at batch {batch} failed: {first_line(exc)}"
        if not matches(expected, got):
            return f"LiteRT results differ from TensorFlow's at batch {batch}"
    return None


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (at most 200 characters), or its type's name."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
