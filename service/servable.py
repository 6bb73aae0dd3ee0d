"""A loaded model version: its SavedModel, signatures, manifest, and how to run a signature.

The signatures and metadata come from ``saved_model.pb`` parsed as a protobuf, without TensorFlow.
How a signature runs depends on the runtime: ``tensorflow`` and ``auto`` load the SavedModel with
TensorFlow (``auto`` adds LiteRT for the predict signatures that have it, :mod:`service.runtime`);
``litert`` never imports TensorFlow and serves only the signatures with a verified LiteRT artifact,
refusing a version that has none.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from model import manifest as manifest_file
from service import runtime
from service import signature as sig
from service.errors import DataLoss, FailedPrecondition, InvalidArgument, NotFound, ServingError
from service.runtime import LiteRuntime
from service.settings import available_cpus

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Servable:
    """One AVAILABLE-able version of one model. Immutable once loaded; safe to share across threads."""

    name: str
    version: int
    path: Path
    signatures: dict[str, sig.SignatureInfo]
    signature_def_map: get_model_metadata_pb2.SignatureDefMap
    manifest: dict[str, Any] | None
    lite: LiteRuntime | None = None
    batchers: dict[Any, Any] = field(repr=False, default_factory=dict)
    timings: dict[str, float] = field(repr=False, default_factory=dict)  # load steps, seconds
    _functions: dict[str, Any] = field(repr=False, default_factory=dict)
    _module: Any = field(repr=False, default=None)

    @property
    def allow_non_finite(self) -> bool:
        """Models exported by Modelship declare whether NaN/Infinity inputs are allowed."""
        if self.manifest is None:
            return True
        return bool(self.manifest.get("input_schema", {}).get("allow_non_finite", True))

    def signature(self, name: str | None, method: str | None = None) -> sig.SignatureInfo:
        """The named signature (default ``serving_default``), checked against ``method``."""
        key = name or sig.DEFAULT_SIGNATURE
        info = self.signatures.get(key)
        if not name and method is not None and (info is None or info.method_name != method):
            # No name given and the default does not fit: use the one signature that does.
            fitting = [s for s in self.signatures.values() if s.method_name == method]
            if len(fitting) == 1:
                info = fitting[0]
        if info is None:
            raise FailedPrecondition(f'Serving signature key "{key}" not found.')
        if method is not None and info.method_name != method:
            raise InvalidArgument(
                f"Expected {method.rsplit('/', 1)[-1]} signature method_name to be {method}. "
                f"Was: {info.method_name}"
            )
        return info

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run a signature on already validated inputs (on a model thread); return numpy outputs."""
        fn = self._functions.get(signature_name)
        if fn is None:
            if self.lite is not None and self.lite.supports(signature_name):
                return self.lite.run_pooled(signature_name, inputs)
            raise FailedPrecondition(self._no_litert_reason(signature_name))
        import tensorflow as tf

        try:
            result = fn(**{k: tf.constant(v) for k, v in inputs.items()})
        except tf.errors.InvalidArgumentError as exc:
            raise InvalidArgument(_tf_message(exc)) from None
        except tf.errors.OpError as exc:
            raise ServingError(_tf_message(exc)) from None
        return {k: v.numpy() for k, v in result.items()}

    def _no_litert_reason(self, signature_name: str) -> str:
        skipped = (self.manifest or {}).get("litert", {}).get("skipped", {})
        why = f" ({skipped[signature_name]})" if signature_name in skipped else ""
        return (
            f"signature {signature_name} of {self.name} version {self.version} has no LiteRT artifact{why}; "
            "this server runs LiteRT only (--runtime=litert, the slim image): serve the version with the "
            "full image to use it"
        )


def _tf_message(exc: Any) -> str:
    """The part of a TF error that names what was wrong, without graph-execution boilerplate.

    ``Graph execution error:`` / ``Detected at node ... defined at (most recent call last):`` /
    a stack trace / the message / ``[[{{node ...}}]]``: only the message is kept.
    """
    kept = []
    for line in str(exc.message).splitlines():
        text = line.strip()
        if (
            not text
            or text == "Graph execution error:"
            or text.startswith(("Detected at node", 'File "', "[[", "<stack traces"))
            or line.startswith("  ")
        ):
            continue
        kept.append(text.split(" [[", 1)[0].split(" [Op:", 1)[0])
    return ("; ".join(kept) or str(exc.message).strip() or type(exc).__name__)[:1000]


def load(
    name: str, version: int, path: Path, verify_manifest: bool = True, runtime_name: str = "tensorflow"
) -> Servable:
    """Verify (when a manifest is present) and load ``path``; raise :class:`ServingError` on failure.

    ``runtime_name`` is the server's ``--runtime``: with ``litert`` TensorFlow is never imported and a
    version without verified LiteRT artifacts is refused; otherwise the SavedModel is loaded with
    TensorFlow (LiteRT artifacts, when present, are added by :mod:`service.repository.loader`).
    """
    manifest = None
    if verify_manifest:
        try:
            manifest = manifest_file.verify(path)
        except manifest_file.ManifestError as exc:
            raise DataLoss(f"refusing to load version {version} of {name}: {exc}") from None
    def_map = read_signature_defs(path)
    if runtime_name == "litert":
        return _load_litert(name, version, path, manifest, def_map)
    import tensorflow as tf

    try:
        module = tf.saved_model.load(str(path))
    except Exception as exc:  # noqa: BLE001 - TF raises many unrelated types on a bad model
        raise ServingError(f"failed to load SavedModel at {path}: {exc}"[:1000]) from None
    functions = dict(module.signatures)
    signatures = {
        key: sig.from_proto(key, value)
        for key, value in sorted(def_map.signature_def.items())
        if key in functions
    }
    if not signatures:
        raise FailedPrecondition(f"{path} has no callable serving signatures")
    return Servable(name, version, path, signatures, def_map, manifest, _functions=functions, _module=module)


def read_signature_defs(path: Path) -> get_model_metadata_pb2.SignatureDefMap:
    """The serving signatures of the MetaGraph tagged ``serve`` in ``path/saved_model.pb``."""
    pb_path = path / "saved_model.pb"
    if not pb_path.is_file():
        raise NotFound(f"no saved_model.pb in {path}")
    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(pb_path.read_bytes())
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError or RuntimeError
        raise DataLoss(f"cannot parse {pb_path}: {exc}") from None
    meta = next((m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags), None)
    if meta is None:
        raise FailedPrecondition(f"{path} has no MetaGraph tagged 'serve'")
    def_map = get_model_metadata_pb2.SignatureDefMap()
    for key, value in meta.signature_def.items():
        if not key.startswith("__"):  # skip internal signatures such as __saved_model_init_op
            def_map.signature_def[key].CopyFrom(value)
    return def_map


def _load_litert(
    name: str,
    version: int,
    path: Path,
    manifest: dict[str, Any] | None,
    def_map: get_model_metadata_pb2.SignatureDefMap,
) -> Servable:
    refused = f"refusing version {version} of {name} on the LiteRT-only runtime (--runtime=litert)"
    if manifest is None:
        raise FailedPrecondition(
            f"{refused}: it has no verified manifest.json naming LiteRT artifacts "
            "(export it with `python -m model export`, and keep --verify_manifest on)"
        )
    listed = manifest.get("litert", {}).get("signatures", {})
    signatures = {key: sig.from_proto(key, value) for key, value in sorted(def_map.signature_def.items())}
    usable = sorted(key for key in listed if key in signatures)
    if not usable:
        raise FailedPrecondition(
            f"{refused}: its manifest lists no verified LiteRT artifact "
            "(export it with `python -m model export`, or serve it with the full image)"
        )
    lite = runtime.from_artifacts(path, manifest, signatures, threads=available_cpus())
    return Servable(name, version, path, signatures, def_map, manifest, lite=lite)
