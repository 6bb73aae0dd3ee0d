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
from rollout_operator.resource_spec import (
    MAX_STEPS,
    RolloutSpecDoc,
    SourceDoc,
    StepDoc,
    TrafficStepDoc,
)
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
    "TrafficStrategy",
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
    source: Source | None  # None: the server's own live source (the traffic strategy)
    name: str | None = None

    def source_dict(self) -> dict[str, str]:
        return self.source.as_dict() if self.source is not None else {}

    def revision(self) -> str:
        """Short content hash of version + source: equal revisions mean the same model files
        (a source-less version hashes with ``"live"``, distinct from every url or image revision)."""
        return revision_of(self.version, self.source_dict() if self.source is not None else "live")


def revision_of(version: int, source: dict[str, str] | str) -> str:
    doc = json.dumps({"version": version, "source": source}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:12]


def live_revision(version: int | str) -> str:
    """The revision of ``version`` from the server's live source (the traffic strategy)."""
    return revision_of(int(version), "live")


@dataclass(frozen=True)
class Step:
    """One step: ``setWeight`` (canary: percent of serving pods; traffic: of name-only requests),
    ``pause`` or (traffic only) ``shadow`` (``percent``); ``duration`` None = until promoted."""

    kind: Literal["setWeight", "pause", "shadow"]
    weight: int = 0
    duration: float | None = None
    percent: float = 0.0

    def describe(self) -> str:
        if self.kind == "setWeight":
            return f"setWeight {self.weight}%"
        if self.kind == "shadow":
            until = "until promoted" if self.duration is None else f"{self.duration:g}s"
            return f"shadow {self.percent:g}% {until}"
        return "pause until promoted" if self.duration is None else f"pause {self.duration:g}s"


@dataclass(frozen=True)
class CanaryStrategy:
    steps: tuple[Step, ...]
    traffic_gate: bool
    max_replicas: int | None


@dataclass(frozen=True)
class TrafficStrategy:
    steps: tuple[Step, ...] = ()
    sticky_header: str | None = None


@dataclass(frozen=True)
class Strategy:
    type: Literal["rolling", "canary", "traffic"]
    canary: CanaryStrategy
    traffic: TrafficStrategy = TrafficStrategy()

    @property
    def steps(self) -> tuple[Step, ...]:
        if self.type == "traffic":
            return self.traffic.steps
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


def _step(doc: StepDoc | TrafficStepDoc) -> Step:
    if doc.set_weight is not None:
        return Step("setWeight", weight=doc.set_weight)
    if isinstance(doc, TrafficStepDoc) and doc.shadow is not None:
        return Step("shadow", percent=float(doc.shadow.percent), duration=doc.shadow.duration)
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
    canary, traffic = doc.strategy.canary, doc.strategy.traffic
    source = _source(doc.model.source) if doc.model.source is not None else None
    return RolloutSpec(
        target=doc.target_ref.name,
        container=doc.target_ref.container,
        model=ModelSpec(version=doc.model.version, source=source, name=doc.model.name),
        strategy=Strategy(
            type=doc.strategy.type,
            canary=CanaryStrategy(
                steps=tuple(_step(s) for s in canary.steps),
                traffic_gate=canary.traffic_gate,
                max_replicas=canary.max_replicas,
            ),
            traffic=TrafficStrategy(
                steps=tuple(_step(s) for s in traffic.steps), sticky_header=traffic.sticky_header
            ),
        ),
        analysis=doc.analysis,
        progress_deadline=float(doc.progress_deadline_seconds),
        paused=doc.paused,
        abort=doc.abort,
    )
