"""Export's LiteRT artifacts (model.litert): written only when they convert and match TensorFlow."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from model import litert
from model.__main__ import build_parser
from tests.fixtures import expected_linear, export_linear, exporter

X = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [-1.5, 0.25, 4.0], [9.0, -7.0, 0.5]], np.float32)


def _manifest(version_dir: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((version_dir / "manifest.json").read_text())  # type: ignore[no-any-return]


def test_export_writes_a_verified_artifact_recorded_with_its_digest(linear_run: Path, tmp_path: Path) -> None:
    version_dir = export_linear(linear_run, tmp_path, 1)
    entry = _manifest(version_dir)["litert"]
    assert entry["format"] == litert.FORMAT
    assert entry["verified"] == {"rtol": litert.RTOL, "atol": litert.ATOL, "batches": [1, 4], "seed": 0}
    assert entry["tensorflow"] == tf.__version__
    assert set(entry["signatures"]) == {"serving_default"}
    record = entry["signatures"]["serving_default"]
    data = (version_dir / record["file"]).read_bytes()
    assert record["file"] == "litert/serving_default.tflite"
    assert (
        record["sha256"]
        == hashlib.sha256(data).hexdigest()
        == _manifest(version_dir)["files"][record["file"]]
    )
    assert record["bytes"] == len(data)
    # regress parses tf.Examples: not a LiteRT signature, and the manifest says why.
    assert entry["skipped"] == {
        "regress": "method tensorflow/serving/regress (only predict signatures run on LiteRT)"
    }
    # The artifact computes what the SavedModel computes.
    got = litert.interpreter(data).get_signature_runner("serving_default")(x=X)["y"]
    np.testing.assert_allclose(got, expected_linear(version_dir, X), rtol=1e-5, atol=1e-6)


def test_no_litert_writes_no_artifact(linear_run: Path, tmp_path: Path) -> None:
    version_dir = export_linear(linear_run, tmp_path, 1, litert=False)
    assert "litert" not in _manifest(version_dir)
    assert not (version_dir / "litert").exists()
    args = build_parser().parse_args(["export", "--run-dir", "r", "--base-path", "b", "--no-litert"])
    assert args.litert is False
    assert build_parser().parse_args(["export", "--run-dir", "r", "--base-path", "b"]).litert is True


class _Mixed(tf.Module):  # type: ignore[misc]
    """One signature that converts, one with string inputs, one numeric whose ops LiteRT lacks."""

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="a")])
    def double(self, a: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"twice": a * 2.0}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="s")])
    def length(self, s: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"n": tf.strings.length(s)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="i")])
    def digits(self, i: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"n": tf.strings.length(tf.strings.as_string(i))}


def test_signatures_that_cannot_run_on_litert_are_skipped_with_a_reason(tmp_path: Path) -> None:
    module = _Mixed()
    saved = tmp_path / "saved"
    tf.saved_model.save(
        module,
        str(saved),
        signatures={"double": module.double, "length": module.length, "odd key/x": module.digits},
    )
    version_dir = exporter.export(saved, tmp_path / "base", "mixed", {}, 1)
    entry = _manifest(version_dir)["litert"]
    assert set(entry["signatures"]) == {"double"}
    assert entry["skipped"]["length"] == "inputs are not numeric tensors of known rank"
    assert entry["skipped"]["odd key/x"].startswith("conversion failed: ")
    assert sorted(p.name for p in (version_dir / "litert").iterdir()) == ["double.tflite"]


def test_file_names_are_safe_for_any_signature_key() -> None:
    assert litert.file_name("serving_default") == "litert/serving_default.tflite"
    odd = litert.file_name("../../etc/passwd")
    assert odd.startswith("litert/sig-")
    assert "/" not in odd.removeprefix("litert/")
    assert litert.file_name("a b") != litert.file_name("a_b")


@pytest.mark.parametrize(
    ("got", "same"),
    [
        ({"y": np.array([1.0, 2.0], np.float32)}, True),
        ({"y": np.array([1.0, 2.0 + 1e-7], np.float32)}, True),
        ({"y": np.array([1.0, 2.01], np.float32)}, False),
        ({"y": np.array([1.0, 2.0], np.float64)}, False),  # dtype differs
        ({"y": np.array([[1.0, 2.0]], np.float32)}, False),  # shape differs
        ({"z": np.array([1.0, 2.0], np.float32)}, False),  # outputs differ
    ],
)
def test_matches(got: dict[str, np.ndarray], same: bool) -> None:
    assert litert.matches({"y": np.array([1.0, 2.0], np.float32)}, got) is same


def test_matches_treats_nan_as_equal_and_ints_exactly() -> None:
    assert litert.matches({"y": np.array([np.nan])}, {"y": np.array([np.nan])})
    assert not litert.matches({"i": np.array([1, 2])}, {"i": np.array([1, 3])})


def test_random_inputs_fill_unknown_dimensions_with_the_batch() -> None:
    specs = {
        "a": (np.dtype(np.float32), [-1, 3]),
        "b": (np.dtype(np.int64), [-1]),
        "c": (np.dtype(bool), [2]),
    }
    inputs = litert.random_inputs(specs, 5, np.random.default_rng(0))
    assert {k: (v.shape, v.dtype) for k, v in inputs.items()} == {
        "a": ((5, 3), np.float32),
        "b": ((5,), np.int64),
        "c": ((2,), np.bool_),
    }
