"""The traffic file (``--traffic_config_file``): version pin, weights, sticky header and shadow per model.

JSON, validated with pydantic (unknown fields are errors, each naming its field)::

    {"generation": "rollout-7",
     "models": {"linear": {"versions": [1, 2], "weights": {"1": 90, "2": 10},
                           "sticky_header": "x-user-id",
                           "shadow": {"version": 2, "percent": 10, "rtol": 1e-4, "atol": 1e-6}}}}

``versions`` pins the versions the server keeps loaded (it replaces the model config's version
policy while present); weighted and shadowed versions must then be among them.

:func:`parse` turns text into an immutable :class:`TrafficConfig`; :func:`normalized` is its
normalized form (defaults filled in, ``versions`` sorted, and left out when absent so a file
without a pin keeps the hash it had before pins existed) and :func:`config_hash` the hash of that,
the same on every pod for the same meaning whatever the file's spacing or key order.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from service.errors import InvalidArgument

__all__ = ["ModelTraffic", "Shadow", "TrafficConfig", "config_hash", "normalized", "parse"]

VERSION_LIMIT = 2**63  # versions are int64 on the wire
_HEADER = re.compile(r"^[!#$%&'*+.^_`|~0-9a-z-]+$")  # an HTTP token, lower case (gRPC metadata keys)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Shadow(_Frozen):
    """Also run ``percent`` % of the name-only requests answered by another version on ``version``."""

    version: int = Field(ge=1, description="The candidate version (it must be loaded to be shadowed).")
    percent: float = Field(ge=0, le=100, description="Share of eligible name-only requests, 0-100.")
    rtol: float = Field(1e-4, ge=0, description="Relative tolerance of numpy.isclose (primary = reference).")
    atol: float = Field(1e-6, ge=0, description="Absolute tolerance of numpy.isclose.")


class ModelTraffic(_Frozen):
    """Which versions of one model are loaded (``versions``) and how name-only requests spread."""

    versions: tuple[int, ...] | None = Field(
        None,
        description="Pin: exactly these versions are kept loaded, whatever the model config's "
        "version policy says (absent: the policy decides).",
    )
    weights: dict[int, int] = Field(
        default_factory=dict, description="Version -> non-negative integer weight."
    )
    sticky_header: str | None = Field(
        None, description="Request header (gRPC metadata key) whose value picks the version by hash."
    )
    shadow: Shadow | None = None

    @field_validator("versions", mode="before")
    @classmethod
    def _pin(cls, value: object) -> object:
        if value is None:
            return None
        if not isinstance(value, list | tuple):
            raise ValueError(f"must be a list of versions, got {value!r}")
        if not value:
            raise ValueError("must list at least one version (leave the field out to unpin)")
        seen: set[int] = set()
        for version in value:
            if isinstance(version, bool) or not isinstance(version, int) or not 0 < version < VERSION_LIMIT:
                raise ValueError(f"version {version!r} is not a positive integer")
            if version in seen:
                raise ValueError(f"version {version} is listed twice")
            seen.add(version)
        return tuple(sorted(seen))

    @field_validator("weights", mode="before")
    @classmethod
    def _weights(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        out: dict[int, object] = {}
        for key, weight in value.items():
            if not (isinstance(key, str) and key.isdigit() and 0 < int(key) < 2**63):
                raise ValueError(f"version {key!r} is not a positive integer")
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
                raise ValueError(f"weight of version {key} must be a non-negative integer, got {weight!r}")
            out[int(key)] = weight
        return out

    @field_validator("weights")
    @classmethod
    def _weights_pinned(cls, value: dict[int, int], info: ValidationInfo) -> dict[int, int]:
        pin = info.data.get("versions")
        if pin is not None:
            outside = sorted(v for v, w in value.items() if w > 0 and v not in pin)
            if outside:
                raise ValueError(
                    f"version {outside[0]} has a weight but is not in versions {list(pin)} "
                    "(a weighted version must be pinned)"
                )
        return value

    @field_validator("shadow")
    @classmethod
    def _shadow_pinned(cls, value: Shadow | None, info: ValidationInfo) -> Shadow | None:
        pin = info.data.get("versions")
        if value is not None and pin is not None and value.version not in pin:
            raise ValueError(
                f"version {value.version} is not in versions {list(pin)} (a shadowed version must be pinned)"
            )
        return value

    @field_validator("sticky_header")
    @classmethod
    def _header(cls, value: str | None) -> str | None:
        if value is not None and not _HEADER.match(value):
            raise ValueError(f"{value!r} is not a lower-case HTTP header name")
        return value


class TrafficConfig(_Frozen):
    """The whole file; ``generation`` is free text the rollout tooling sets to recognise its change."""

    generation: str = Field("", max_length=128)
    models: dict[str, ModelTraffic] = Field(default_factory=dict)

    def pins(self) -> dict[str, tuple[int, ...]]:
        """Model -> its pinned versions, for the models that have a ``versions`` pin."""
        return {name: spec.versions for name, spec in self.models.items() if spec.versions is not None}


def parse(text: str | bytes, source: str = "traffic config") -> TrafficConfig:
    """Validate ``text``; :class:`InvalidArgument` (400) names the first bad field."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"{source}: not valid JSON: {exc}") from None
    try:
        return TrafficConfig.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise InvalidArgument(f"{source}: {where}: {first['msg']}") from None


def normalized(config: TrafficConfig) -> dict[str, Any]:
    """The config as JSON data: defaults filled in, ``versions`` sorted, and absent when unpinned."""
    doc: dict[str, Any] = config.model_dump(mode="json")
    for spec in doc["models"].values():
        if spec["versions"] is None:
            del spec["versions"]
    return doc


def config_hash(config: TrafficConfig) -> str:
    """16 hex digits of the sha256 of the normalized config."""
    normal = json.dumps(normalized(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(normal.encode()).hexdigest()[:16]
