"""Save trained models as SavedModels and export them to a TF Serving model base path.

Layout: ``<base>/<name>/<version>/`` holding ``saved_model.pb``, ``variables/``,
``assets.extra/tf_serving_warmup_requests`` and ``manifest.json``. An export is written to a hidden
temporary directory beside the version and renamed into place, so a server polling the base path
never sees a half-written version. To a bucket (:func:`publish`), the version is written locally
the same way and then uploaded, ``manifest.json`` last (:mod:`model.publish`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from model import litert as litert_artifacts
from model import manifest
from model.errors import ExportError
from model.publish import existing_versions as bucket_versions
from model.publish import upload_version
from model.storage import ObjectURL

REGRESS_METHOD = "tensorflow/serving/regress"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"


def save_saved_model(module: tf.Module, directory: Path, signatures: dict[str, Any]) -> None:
    """``tf.saved_model.save`` plus TF Serving method names for the ``regress`` signature.

    TF2 saves every signature with the predict method name; TF Serving's ``:regress`` API wants
    ``tensorflow/serving/regress``, so the saved graph's signature is re-labelled in place.
    """
    tf.saved_model.save(module, str(directory), signatures=signatures)
    if "regress" in signatures:
        pb_path = directory / "saved_model.pb"
        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString(pb_path.read_bytes())
        for meta_graph in proto.meta_graphs:
            if "regress" in meta_graph.signature_def:
                meta_graph.signature_def["regress"].method_name = REGRESS_METHOD
        pb_path.write_bytes(proto.SerializeToString())


def existing_versions(model_dir: Path) -> list[int]:
    """Integer version directories under ``model_dir`` (as TF Serving parses them)."""
    if not model_dir.is_dir():
        return []
    out = []
    for child in model_dir.iterdir():
        if child.is_dir() and child.name.isdigit():
            out.append(int(child.name))
    return sorted(out)


def write_warmup(version_dir: Path, model_name: str, example: np.ndarray, input_name: str) -> None:
    """TF Serving warm-up records: one predict request with ``example`` as ``input_name``."""
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model_name))
    request.inputs[input_name].CopyFrom(tf.make_tensor_proto(example))
    log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    path = version_dir / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(log.SerializeToString())


def signature_methods(version_dir: Path) -> dict[str, str]:
    """The method name of each serving signature, as saved in ``saved_model.pb``."""
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    meta = next((m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags), None)
    if meta is None:
        return {}
    return {key: value.method_name for key, value in meta.signature_def.items() if not key.startswith("__")}


def export(
    saved_model_dir: Path,
    base_path: Path,
    name: str,
    manifest_body: dict[str, Any],
    version: int | None = None,
    warmup: tuple[str, np.ndarray] | None = None,
    litert: bool = True,
) -> Path:
    """Copy ``saved_model_dir`` to ``<base_path>/<name>/<version>/`` atomically; return that path.

    With ``litert``, the predict signatures that convert to LiteRT and verify are written beside it
    (:mod:`model.litert`) and recorded in the manifest, so the slim server image can serve them.
    """
    if not name or "/" in name or name.startswith("."):
        raise ExportError(f"invalid model name {name!r}")
    model_dir = base_path / name
    model_dir.mkdir(parents=True, exist_ok=True)
    if version is None:
        version = max(existing_versions(model_dir), default=0) + 1
    if version < 1:
        raise ExportError(f"version must be a positive integer, got {version}")
    final = model_dir / str(version)
    if final.exists():
        raise ExportError(f"version {version} already exists at {final}")
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=model_dir))
    try:
        shutil.copytree(saved_model_dir, staging, dirs_exist_ok=True)
        if warmup is not None:
            write_warmup(staging, name, warmup[1], warmup[0])
        lite = litert_artifacts.write_artifacts(staging, signature_methods(staging)) if litert else None
        body = {
            **manifest_body,
            **({"litert": lite} if lite is not None else {}),
            "name": name,
            "version": version,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        manifest.write(staging, body)
        _fsync_tree(staging)
        os.chmod(staging, 0o755)
        try:
            os.rename(staging, final)
        except OSError as exc:
            raise ExportError(f"could not move the export into place at {final}: {exc}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return final


def publish(
    saved_model_dir: Path,
    base_url: ObjectURL,
    name: str,
    manifest_body: dict[str, Any],
    version: int | None = None,
    warmup: tuple[str, np.ndarray] | None = None,
    litert: bool = True,
) -> str:
    """Export to ``<base_url>/<name>/<version>/`` in object storage; return the version's URL."""
    if not name or "/" in name or name.startswith("."):
        raise ExportError(f"invalid model name {name!r}")
    model_url = base_url.child(name)
    taken = bucket_versions(model_url)
    if version is None:
        version = max(taken, default=0) + 1
    if version in taken:
        raise ExportError(f"version {version} already exists at {model_url.child(str(version))}")
    with tempfile.TemporaryDirectory(prefix="modelship-publish-") as tmp:
        local = export(saved_model_dir, Path(tmp), name, manifest_body, version, warmup, litert)
        upload_version(local, model_url.child(str(version)))
    return str(model_url.child(str(version)))


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
