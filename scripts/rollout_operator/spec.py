"""The ``spec`` of a ModelRollout as typed, validated, immutable values.

The CRD's OpenAPI schema (k8s/crds/) rejects most mistakes at admission; :func:`parse_spec`
checks the same rules again (the operator may meet objects stored before a schema change) plus
the ones a schema cannot express, and fills in the defaults, so the decision logic never sees a
half-valid spec. Schema, rules and defaults are all the resource models'
(:mod:`rollout_operator.resource_spec`, from which the CRD is generated); this module turns a
validated model into the plainer values the decision logic reads. Everything here is pure.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from rollout_operator.resource_analysis import (
    DEFAULT_NON_ERROR_CODES,
    AnalysisSpec,
    DisagreementCheck,
    ErrorRatioCheck,
    LatencyCheck,
    PrometheusSource,
)
from rollout_operator.resource_spec import MAX_STEPS, RolloutSpecDoc, SourceDoc, StepDoc
from rollout_operator.spec_errors import SpecError, spec_error

__all__ = [
    "DEFAULT_NON_ERROR_CODES",
    "MAX_STEPS",
    "MODEL_APIS",
    "AnalysisSpec",
    "CanaryStrategy",
    "DisagreementCheck",
    "ErrorRatioCheck",
    "ImageSource",
    "LatencyCheck",
    "ModelSpec",
    "PrometheusSource",
    "RolloutSpec",
    "Source",
    "SpecError",
    "Step",
    "Strategy",
    "UrlSource",
    "parse_source",
    "parse_spec",
]

# APIs whose requests run the model; status and metadata requests are left out of the analysis.
MODEL_APIS = ("predict", "classify", "regress", "infer")


@dataclass(frozen=True)
class UrlSource:
    """An archive of one SavedModel version, checked against its SHA-256 before extraction."""

    url: str
    sha256: str

    def as_dict(self) -> dict[str, str]:
        return {"url": self.url, "sha256": self.sha256.lower()}


@dataclass(frozen=True)
class ImageSource:
    """An image with the version baked in at ``path`` (default ``<model root>/<name>/<version>``)."""

    image: str
    path: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {"image": self.image, **({"path": self.path} if self.path else {})}


Source = UrlSource | ImageSource


@dataclass(frozen=True)
class ModelSpec:
    """The model version to roll out and where its files come from."""

    version: int
    source: Source
    name: str | None = None

    def source_dict(self) -> dict[str, str]:
        return self.source.as_dict()

    def revision(self) -> str:
        """Short content hash of version + source: equal revisions mean the same model files."""
        doc = json.dumps({"version": self.version, "source": self.source_dict()}, sort_keys=True)
        return hashlib.sha256(doc.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Step:
    """One canary step: ``setWeight`` (percent of serving pods) or ``pause`` (None = until promoted)."""

    kind: Literal["setWeight", "pause"]
    weight: int = 0
    duration: float | None = None

    def describe(self) -> str:
        if self.kind == "setWeight":
            return f"setWeight {self.weight}%"
        return "pause until promoted" if self.duration is None else f"pause {self.duration:g}s"


@dataclass(frozen=True)
class CanaryStrategy:
    steps: tuple[Step, ...]
    traffic_gate: bool
    max_replicas: int | None


@dataclass(frozen=True)
class Strategy:
    type: Literal["rolling", "canary"]
    canary: CanaryStrategy

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.canary.steps if self.type == "canary" else ()


@dataclass(frozen=True)
class RolloutSpec:
    target: str
    container: str
    model: ModelSpec
    strategy: Strategy
    analysis: AnalysisSpec | None
    progress_deadline: float
    paused: bool
    abort: bool


def _source(doc: SourceDoc) -> Source:
    if doc.url is not None:
        assert doc.sha256 is not None  # SourceDoc's own rule
        return UrlSource(url=doc.url, sha256=doc.sha256.lower())
    assert doc.image is not None
    return ImageSource(image=doc.image, path=doc.path)


def _step(doc: StepDoc) -> Step:
    if doc.set_weight is not None:
        return Step("setWeight", weight=doc.set_weight)
    assert doc.pause is not None  # StepDoc's own rule
    return Step("pause", duration=doc.pause.duration)


def parse_source(d: Any) -> Source:
    """The ``model.source`` object: exactly one of ``url`` (+ ``sha256``) or ``image`` (+ ``path``)."""
    try:
        return _source(SourceDoc.model_validate(d, by_name=False))
    except ValidationError as exc:
        raise spec_error(exc, "spec.model.source") from None


def parse_spec(raw: Any) -> RolloutSpec:
    """Validate a ModelRollout ``spec`` and return it with every default filled in."""
    try:
        doc = RolloutSpecDoc.model_validate(raw, by_name=False)
    except ValidationError as exc:
        raise spec_error(exc) from None
    canary = doc.strategy.canary
    return RolloutSpec(
        target=doc.target_ref.name,
        container=doc.target_ref.container,
        model=ModelSpec(version=doc.model.version, source=_source(doc.model.source), name=doc.model.name),
        strategy=Strategy(
            type=doc.strategy.type,
            canary=CanaryStrategy(
                steps=tuple(_step(s) for s in canary.steps),
                traffic_gate=canary.traffic_gate,
                max_replicas=canary.max_replicas,
            ),
        ),
        analysis=doc.analysis,
        progress_deadline=float(doc.progress_deadline_seconds),
        paused=doc.paused,
        abort=doc.abort,
    )
