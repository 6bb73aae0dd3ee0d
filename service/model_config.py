"""Which models to serve: from ``--model_name``/``--model_base_path`` or a TF Serving config file.

The config file is TF Serving's ``ModelServerConfig`` text proto (``model_config_list``), so
existing files work unchanged::

    model_config_list {
      config {
        name: 'linear'  base_path: '/models/linear'  model_platform: 'tensorflow'
        model_version_policy { latest { num_versions: 2 } }
        version_labels { key: 'stable' value: 1 }
        version_labels { key: 'canary' value: 2 }
      }
    }
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from model.storage import ObjectURL, StorageError, is_object_url
from service.errors import InvalidArgument

LABEL_RE = re.compile(r"^[a-zA-Z0-9_\-]+$")


@dataclass(frozen=True)
class VersionPolicy:
    """TF Serving's ``ServableVersionPolicy``: ``latest`` N, ``all``, or ``specific`` versions."""

    kind: Literal["latest", "all", "specific"] = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def select(self, on_disk: list[int]) -> list[int]:
        """The versions to serve out of those found on disk."""
        ordered = sorted(set(on_disk))
        if self.kind == "all":
            return ordered
        if self.kind == "specific":
            return [v for v in ordered if v in self.versions]
        return ordered[-max(1, self.num_versions) :]


@dataclass(frozen=True)
class ModelConfig:
    """One served model: its name, base path, version policy and version labels."""

    name: str
    base_path: str
    """A directory, or an ``s3://`` / ``gs://`` URL (see :mod:`model.storage`)."""
    policy: VersionPolicy = VersionPolicy()
    labels: dict[str, int] = field(default_factory=dict)


def single(name: str, base_path: str | Path) -> list[ModelConfig]:
    return [ModelConfig(name=name, base_path=str(base_path))]


def parse(text: str, origin: str = "model config") -> list[ModelConfig]:
    """Parse a ``ModelServerConfig`` text proto; raise :class:`InvalidArgument` if it is wrong."""
    proto = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, proto)
    except text_format.ParseError as exc:
        raise InvalidArgument(f"{origin}: {exc}") from None
    if proto.WhichOneof("config") != "model_config_list":
        raise InvalidArgument(f"{origin}: only model_config_list is supported")
    out: list[ModelConfig] = []
    seen: set[str] = set()
    for entry in proto.model_config_list.config:
        if not entry.name:
            raise InvalidArgument(f"{origin}: a config entry has no name")
        if entry.name in seen:
            raise InvalidArgument(f"{origin}: model {entry.name!r} is configured twice")
        seen.add(entry.name)
        if not entry.base_path:
            raise InvalidArgument(f"{origin}: model {entry.name!r} has no base_path")
        if entry.model_platform not in ("", "tensorflow"):
            raise InvalidArgument(
                f"{origin}: model {entry.name!r}: unsupported platform "
                f"{entry.model_platform!r} (only 'tensorflow')"
            )
        for label in entry.version_labels:
            if not LABEL_RE.match(label):
                raise InvalidArgument(f"{origin}: model {entry.name!r}: invalid label {label!r}")
        base_path = entry.base_path
        if is_object_url(base_path):
            try:
                ObjectURL.parse(base_path)
            except StorageError as exc:
                raise InvalidArgument(f"{origin}: model {entry.name!r}: {exc}") from None
        out.append(ModelConfig(entry.name, base_path, _policy(entry), dict(entry.version_labels)))
    if not out:
        raise InvalidArgument(f"{origin}: no models configured")
    return out


def load_file(path: Path) -> list[ModelConfig]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidArgument(f"cannot read model config file {path}: {exc}") from None
    return parse(text, origin=str(path))


def _policy(entry: model_server_config_pb2.ModelConfig) -> VersionPolicy:
    policy = entry.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return VersionPolicy("all")
    if kind == "specific":
        if not policy.specific.versions:
            raise InvalidArgument(f"model {entry.name!r}: specific version policy lists no versions")
        return VersionPolicy("specific", versions=tuple(policy.specific.versions))
    if kind == "latest":
        return VersionPolicy("latest", num_versions=max(1, policy.latest.num_versions))
    return VersionPolicy()
