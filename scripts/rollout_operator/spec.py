"""The ``spec`` of a ModelRollout as typed, validated, immutable values.

The CRD's OpenAPI schema (k8s/crds/) rejects most mistakes at admission; :func:`parse_spec`
checks the same rules again (the operator may meet objects stored before a schema change) plus
the ones a schema cannot express, and fills in the defaults, so the decision logic never sees a
half-valid spec. Everything here is pure.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from rollout_operator.durations import parse_duration

# Codes (the server's ``code`` label: TF/gRPC canonical names) that do not count as errors of the
# model version: a success, a client that went away, and requests refused before the model ran.
DEFAULT_NON_ERROR_CODES = ("OK", "CANCELLED", "UNAUTHENTICATED", "PERMISSION_DENIED")
# APIs whose requests run the model; status and metadata requests are left out of the analysis.
MODEL_APIS = ("predict", "classify", "regress", "infer")
MAX_STEPS = 32
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


class SpecError(ValueError):
    """The spec cannot be acted on; the message says which field and why."""


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
    traffic_gate: bool = True
    max_replicas: int | None = None


@dataclass(frozen=True)
class Strategy:
    type: Literal["rolling", "canary"]
    canary: CanaryStrategy = field(default_factory=lambda: CanaryStrategy(steps=()))

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.canary.steps if self.type == "canary" else ()


@dataclass(frozen=True)
class ErrorRatioCheck:
    max: float
    non_error_codes: tuple[str, ...] = DEFAULT_NON_ERROR_CODES


@dataclass(frozen=True)
class LatencyCheck:
    max_seconds: float | None = None
    max_ratio_to_stable: float | None = None
    quantile: float = 0.99


@dataclass(frozen=True)
class DisagreementCheck:
    """Send ``inputs`` (predict ``instances``) to a canary and a stable pod; compare the answers."""

    inputs: tuple[Any, ...]
    abs_tolerance: float = 1e-6
    rel_tolerance: float = 1e-3
    max_ratio: float = 0.0


@dataclass(frozen=True)
class PrometheusSource:
    """Read the metrics from a Prometheus server instead of scraping the pods."""

    url: str
    timeout: float = 10.0


@dataclass(frozen=True)
class AnalysisSpec:
    interval: float = 30.0
    count: int = 3
    failure_limit: int = 0
    inconclusive_limit: int = 2
    consecutive_error_limit: int = 4
    min_requests: int = 20
    error_ratio: ErrorRatioCheck | None = None
    latency: LatencyCheck | None = None
    disagreement: DisagreementCheck | None = None
    prometheus: PrometheusSource | None = None


@dataclass(frozen=True)
class RolloutSpec:
    target: str
    container: str
    model: ModelSpec
    strategy: Strategy
    analysis: AnalysisSpec | None = None
    progress_deadline: float = 600.0
    paused: bool = False
    abort: bool = False


# ------------------------------------------------------------------------------------------------
# parsing


def _obj(d: Any, path: str) -> dict[str, Any]:
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise SpecError(f"{path}: expected an object")
    return d


def _int(
    d: dict[str, Any],
    key: str,
    path: str,
    default: int | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    value = d.get(key, default)
    if value is None:
        raise SpecError(f"{path}.{key}: required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{path}.{key}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise SpecError(f"{path}.{key}: must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SpecError(f"{path}.{key}: must be <= {maximum}, got {value}")
    return value


def _num(
    d: dict[str, Any],
    key: str,
    path: str,
    default: float | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float | None:
    value = d.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpecError(f"{path}.{key}: expected a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise SpecError(f"{path}.{key}: must be >= {minimum:g}, got {value:g}")
    if maximum is not None and value > maximum:
        raise SpecError(f"{path}.{key}: must be <= {maximum:g}, got {value:g}")
    return float(value)


def _bool(d: dict[str, Any], key: str, path: str, default: bool) -> bool:
    value = d.get(key, default)
    if not isinstance(value, bool):
        raise SpecError(f"{path}.{key}: expected true or false, got {value!r}")
    return value


def _dur(d: dict[str, Any], key: str, path: str, default: float | None) -> float | None:
    value = d.get(key)
    if value is None:
        return default
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise SpecError(f"{path}.{key}: {exc}") from None


def _str(d: dict[str, Any], key: str, path: str, default: str | None = None) -> str | None:
    value = d.get(key, default)
    if value is not None and not isinstance(value, str):
        raise SpecError(f"{path}.{key}: expected a string, got {value!r}")
    return value


def parse_source(d: dict[str, Any]) -> Source:
    """The ``model.source`` object: exactly one of ``url`` (+ ``sha256``) or ``image`` (+ ``path``)."""
    path = "spec.model.source"
    url, image = _str(d, "url", path), _str(d, "image", path)
    if (url is None) == (image is None):
        raise SpecError(f"{path}: set exactly one of url or image")
    if url is not None:
        if not re.match(r"^https?://[^/\s]+", url):
            raise SpecError(f"{path}.url: must be an http:// or https:// URL, got {url!r}")
        sha = _str(d, "sha256", path)
        if sha is None or not _SHA256.match(sha):
            raise SpecError(f"{path}.sha256: the url source needs the archive's hex SHA-256 (64 hex digits)")
        return UrlSource(url=url, sha256=sha.lower())
    assert image is not None
    if not image.strip() or any(c.isspace() for c in image):
        raise SpecError(f"{path}.image: not an image reference: {image!r}")
    img_path = _str(d, "path", path)
    if img_path is not None and not img_path.startswith("/"):
        raise SpecError(f"{path}.path: must be absolute, got {img_path!r}")
    return ImageSource(image=image, path=img_path)


def _parse_steps(raw: Any) -> tuple[Step, ...]:
    if raw is None:
        return (
            Step("setWeight", weight=20),
            Step("pause", duration=60.0),
            Step("setWeight", weight=50),
            Step("pause", duration=60.0),
        )
    if not isinstance(raw, list):
        raise SpecError("spec.strategy.canary.steps: expected a list")
    if len(raw) > MAX_STEPS:
        raise SpecError(f"spec.strategy.canary.steps: at most {MAX_STEPS} steps")
    steps: list[Step] = []
    for i, item in enumerate(raw):
        path = f"spec.strategy.canary.steps[{i}]"
        item = _obj(item, path)
        if ("setWeight" in item) == ("pause" in item):
            raise SpecError(f"{path}: set exactly one of setWeight or pause")
        if "setWeight" in item:
            steps.append(Step("setWeight", weight=_int(item, "setWeight", path, minimum=1, maximum=99)))
        else:
            pause = _obj(item["pause"], f"{path}.pause")
            steps.append(Step("pause", duration=_dur(pause, "duration", f"{path}.pause", None)))
    return tuple(steps)


def _parse_analysis(d: dict[str, Any]) -> AnalysisSpec:
    path = "spec.analysis"
    err = _obj(d.get("errorRatio"), f"{path}.errorRatio") if "errorRatio" in d else None
    lat = _obj(d.get("latencyP99"), f"{path}.latencyP99") if "latencyP99" in d else None
    dis = _obj(d.get("disagreement"), f"{path}.disagreement") if "disagreement" in d else None
    prom = _obj(d.get("prometheus"), f"{path}.prometheus") if "prometheus" in d else None
    error_ratio = None
    if err is not None:
        codes = err.get("nonErrorCodes", list(DEFAULT_NON_ERROR_CODES))
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise SpecError(f"{path}.errorRatio.nonErrorCodes: expected a list of code names")
        error_ratio = ErrorRatioCheck(
            max=_num(err, "max", f"{path}.errorRatio", 0.01, 0.0, 1.0) or 0.0, non_error_codes=tuple(codes)
        )
    latency = None
    if lat is not None:
        latency = LatencyCheck(
            max_seconds=_num(lat, "maxSeconds", f"{path}.latencyP99", None, 0.0),
            max_ratio_to_stable=_num(lat, "maxRatioToStable", f"{path}.latencyP99", None, 1.0),
        )
        if latency.max_seconds is None and latency.max_ratio_to_stable is None:
            raise SpecError(f"{path}.latencyP99: set maxSeconds, maxRatioToStable or both")
    disagreement = None
    if dis is not None:
        inputs = dis.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise SpecError(f"{path}.disagreement.inputs: a non-empty list of predict instances")
        disagreement = DisagreementCheck(
            inputs=tuple(inputs),
            abs_tolerance=_num(dis, "absTolerance", f"{path}.disagreement", 1e-6, 0.0) or 0.0,
            rel_tolerance=_num(dis, "relTolerance", f"{path}.disagreement", 1e-3, 0.0) or 0.0,
            max_ratio=_num(dis, "maxRatio", f"{path}.disagreement", 0.0, 0.0, 1.0) or 0.0,
        )
    prometheus = None
    if prom is not None:
        url = _str(prom, "url", f"{path}.prometheus")
        if url is None or not re.match(r"^https?://[^/\s]+", url):
            raise SpecError(f"{path}.prometheus.url: an http(s) URL of the Prometheus server is required")
        prometheus = PrometheusSource(
            url=url.rstrip("/"), timeout=_dur(prom, "timeout", f"{path}.prometheus", 10.0) or 10.0
        )
    interval = _dur(d, "interval", path, 30.0) or 0.0
    if interval < 1.0:
        raise SpecError(f"{path}.interval: must be at least 1s")
    return AnalysisSpec(
        interval=interval,
        count=_int(d, "count", path, 3, 0),
        failure_limit=_int(d, "failureLimit", path, 0, 0),
        inconclusive_limit=_int(d, "inconclusiveLimit", path, 2, 0),
        consecutive_error_limit=_int(d, "consecutiveErrorLimit", path, 4, 0),
        min_requests=_int(d, "minRequests", path, 20, 0),
        error_ratio=error_ratio,
        latency=latency,
        disagreement=disagreement,
        prometheus=prometheus,
    )


def parse_spec(raw: Any) -> RolloutSpec:
    """Validate a ModelRollout ``spec`` and return it with every default filled in."""
    d = _obj(raw, "spec")
    target = _obj(d.get("targetRef"), "spec.targetRef")
    name = _str(target, "name", "spec.targetRef")
    if not name or not _DNS_LABEL.match(name) or len(name) > 63:
        raise SpecError("spec.targetRef.name: the serving Deployment's name (a DNS-1123 label) is required")
    container = _str(target, "container", "spec.targetRef", "server") or "server"
    m = _obj(d.get("model"), "spec.model")
    model = ModelSpec(
        version=_int(m, "version", "spec.model", minimum=1, maximum=2**63 - 1),
        source=parse_source(_obj(m.get("source"), "spec.model.source")),
        name=_str(m, "name", "spec.model"),
    )
    if model.name is not None and not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", model.name):
        raise SpecError(f"spec.model.name: not a model name: {model.name!r}")
    s = _obj(d.get("strategy"), "spec.strategy")
    kind = s.get("type", "canary")
    if kind not in ("rolling", "canary"):
        raise SpecError(f"spec.strategy.type: rolling or canary, got {kind!r}")
    c = _obj(s.get("canary"), "spec.strategy.canary")
    max_replicas = c.get("maxReplicas")
    canary = CanaryStrategy(
        steps=_parse_steps(c.get("steps")),
        traffic_gate=_bool(c, "trafficGate", "spec.strategy.canary", True),
        max_replicas=None
        if max_replicas is None
        else _int(c, "maxReplicas", "spec.strategy.canary", minimum=1),
    )
    if kind == "canary" and not any(step.kind == "setWeight" for step in canary.steps):
        raise SpecError("spec.strategy.canary.steps: a canary needs at least one setWeight step")
    analysis = (
        _parse_analysis(_obj(d["analysis"], "spec.analysis")) if d.get("analysis") is not None else None
    )
    return RolloutSpec(
        target=name,
        container=container,
        model=model,
        strategy=Strategy(type=kind, canary=canary),
        analysis=analysis,
        progress_deadline=float(_int(d, "progressDeadlineSeconds", "spec", 600, 10)),
        paused=_bool(d, "paused", "spec", False),
        abort=_bool(d, "abort", "spec", False),
    )
