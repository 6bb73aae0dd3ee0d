"""The traffic file (``--traffic_config_file``): weights, sticky header and shadow per model.

JSON, validated with pydantic (unknown fields are errors, each naming its field)::

    {"generation": "rollout-7",
     "models": {"linear": {"weights": {"1": 90, "2": 10}, "sticky_header": "x-user-id",
                           "shadow": {"version": 2, "percent": 10, "rtol": 1e-4, "atol": 1e-6}}}}

:func:`parse` turns text into an immutable :class:`TrafficConfig`; :func:`config_hash` is the hash
of its normalized form (sorted keys, defaults filled in), the same on every pod for the same meaning
whatever the file's spacing or key order.
"""

from __future__ import annotations

import hashlib
import json
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from service.errors import InvalidArgument

__all__ = ["ModelTraffic", "Shadow", "TrafficConfig", "config_hash", "parse"]

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
    """How one model's name-only requests are spread over its versions."""

    weights: dict[int, int] = Field(
        default_factory=dict, description="Version -> non-negative integer weight."
    )
    sticky_header: str | None = Field(
        None, description="Request header (gRPC metadata key) whose value picks the version by hash."
    )
    shadow: Shadow | None = None

    @field_validator("weights", mode="before")
    @classmethod
    def _versions(cls, value: object) -> object:
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


def config_hash(config: TrafficConfig) -> str:
    """16 hex digits of the sha256 of the normalized config."""
    normal = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(normal.encode()).hexdigest()[:16]
