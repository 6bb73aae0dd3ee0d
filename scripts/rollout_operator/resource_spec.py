"""The ``spec`` of a ModelRollout as pydantic models: the one source of its schema and defaults.

Every field, default, bound, pattern, description and CEL rule of the CRD's ``spec`` is written
here once; :mod:`rollout_operator.crd` generates the CRD's ``openAPIV3Schema`` from these models and
:func:`rollout_operator.spec.parse_spec` validates with them. Rules a schema cannot state (a
duration of at least 1s, an image reference without spaces) are validators here too. The analysis
checks (:mod:`rollout_operator.resource_analysis`) are used by the operator as they are; the rest
is turned into the plainer values of :mod:`rollout_operator.spec`. Pure.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from rollout_operator.resource_analysis import AnalysisSpec
from rollout_operator.schema_types import Duration, FieldProblem, Int64, Matching, Strict, cel

MAX_STEPS = 32
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
HTTP_URL = r"^https?://[^/\s]+"
SHA256 = r"^[0-9a-fA-F]{64}$"
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

DeploymentName = Annotated[
    str,
    Field(max_length=63),
    Matching(DNS_LABEL, "must be a DNS-1123 label (the serving Deployment's name), got {value!r}"),
]
ArchiveUrl = Annotated[
    str, Field(max_length=2048), Matching(HTTP_URL, "must be an http:// or https:// URL, got {value!r}")
]
ArchiveSha256 = Annotated[
    str, Matching(SHA256, "the url source needs the archive's hex SHA-256 (64 hex digits)")
]
ImageRef = Annotated[str, Field(min_length=1, max_length=512)]
AbsolutePath = Annotated[str, Matching(r"^/", "must be absolute, got {value!r}")]
ModelName = Annotated[str, Field(max_length=253), Matching(MODEL_NAME, "not a model name: {value!r}")]


class TargetRefDoc(Strict):
    name: DeploymentName
    container: str = Field("server", max_length=63)


class SourceDoc(
    Strict,
    json_schema_extra=cel(
        ("has(self.url) != has(self.image)", "set exactly one of url or image"),
        ("!has(self.url) || has(self.sha256)", "the url source needs the archive's sha256"),
        ("!has(self.path) || has(self.image)", "path goes with the image source"),
    ),
):
    url: ArchiveUrl | None = Field(None, description="Archive (.tar.gz/.tar/.zip) of one SavedModel version.")
    sha256: ArchiveSha256 | None = Field(
        None, description="Hex SHA-256 of the archive, checked before extraction."
    )
    image: ImageRef | None = Field(
        None, description="Image with the version baked in (it must contain python)."
    )
    path: AbsolutePath | None = Field(
        None, description="Directory of the version in the image; default <model root>/<name>/<version>."
    )

    @field_validator("image")
    @classmethod
    def _image_reference(cls, image: str | None) -> str | None:
        if image is not None and (not image.strip() or any(c.isspace() for c in image)):
            raise ValueError(f"not an image reference: {image!r}")
        return image

    @model_validator(mode="after")
    def _one_source(self) -> SourceDoc:
        if (self.url is None) == (self.image is None):
            raise ValueError("set exactly one of url or image")
        if self.url is not None and self.sha256 is None:
            raise FieldProblem("sha256", "the url source needs the archive's hex SHA-256 (64 hex digits)")
        if self.path is not None and self.image is None:
            raise FieldProblem("path", "path goes with the image source")
        return self


class ModelDoc(Strict):
    name: ModelName | None = Field(
        None, description="Model name in URLs; default the container's MODEL_NAME."
    )
    version: Annotated[int, Int64()] = Field(
        ge=1, description="The version number (the <version> directory the server loads)."
    )
    source: SourceDoc | None = Field(
        None,
        description="Exactly one of url (with sha256) or image; required by canary and rolling, "
        "left out with traffic (the version reaches the pods from the server's own live source).",
    )


class PauseDoc(Strict):
    duration: Duration | None = None


class StepDoc(
    Strict,
    json_schema_extra=cel(
        ("has(self.setWeight) != has(self.pause)", "set exactly one of setWeight or pause"),
    ),
):
    set_weight: int | None = Field(
        None, ge=1, le=99, description="Percent of serving pods running the canary (stable never shrinks)."
    )
    pause: PauseDoc | None = Field(None, description="Wait `duration`, or until promoted when it has none.")

    @model_validator(mode="after")
    def _one_kind(self) -> StepDoc:
        if (self.set_weight is None) == (self.pause is None):
            raise ValueError("set exactly one of setWeight or pause")
        return self


DEFAULT_STEPS = (
    {"setWeight": 20},
    {"pause": {"duration": "60s"}},
    {"setWeight": 50},
    {"pause": {"duration": "60s"}},
)


def _default_steps() -> tuple[StepDoc, ...]:
    return tuple(StepDoc.model_validate(step) for step in DEFAULT_STEPS)


class ShadowDoc(Strict):
    percent: float = Field(
        ge=0, le=100, description="Percent of name-only requests also run on the candidate (0: off)."
    )
    duration: Duration | None = Field(
        None, description="How long the step lasts once every pod applied it; none: until promoted."
    )


class TrafficStepDoc(
    Strict,
    json_schema_extra=cel(
        (
            "[has(self.setWeight), has(self.pause), has(self.shadow)].filter(x, x).size() == 1",
            "set exactly one of setWeight, pause or shadow",
        ),
    ),
):
    set_weight: int | None = Field(
        None, ge=1, le=100, description="Percent of name-only requests the candidate version answers."
    )
    pause: PauseDoc | None = Field(None, description="Wait `duration`, or until promoted when it has none.")
    shadow: ShadowDoc | None = Field(
        None, description="Shadow a share of requests on the candidate (stays on until changed)."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> TrafficStepDoc:
        if sum(x is not None for x in (self.set_weight, self.pause, self.shadow)) != 1:
            raise ValueError("set exactly one of setWeight, pause or shadow")
        return self


DEFAULT_TRAFFIC_STEPS = (
    {"shadow": {"percent": 100, "duration": "60s"}},
    {"setWeight": 10},
    {"pause": {"duration": "60s"}},
    {"setWeight": 50},
    {"pause": {"duration": "60s"}},
)
HEADER = r"^[!#$%&'*+.^_`|~0-9a-z-]+$"


def _default_traffic_steps() -> tuple[TrafficStepDoc, ...]:
    return tuple(TrafficStepDoc.model_validate(step) for step in DEFAULT_TRAFFIC_STEPS)


class TrafficDoc(Strict):
    # The default steps are the operator's (the CRD has none: the API server leaves them out).
    steps: tuple[TrafficStepDoc, ...] = Field(
        default_factory=_default_traffic_steps,
        max_length=MAX_STEPS,
        strict=False,
        description="Default shadow 100% 60s, setWeight 10, pause 60s, setWeight 50, pause 60s.",
    )
    sticky_header: (
        Annotated[
            str,
            Field(max_length=256),
            Matching(HEADER, "must be a lower-case HTTP header name, got {value!r}"),
        ]
        | None
    ) = Field(None, description="Requests with this header pick the version by a hash of its value.")


class CanaryDoc(Strict):
    # The default steps are the operator's (the CRD has none: the API server leaves them out).
    steps: tuple[StepDoc, ...] = Field(
        default_factory=_default_steps,
        max_length=MAX_STEPS,
        strict=False,
        description="Default 20%, pause 60s, 50%, pause 60s.",
    )
    traffic_gate: bool = Field(
        True, description="Canary pods join the Service only once the operator verified them."
    )
    max_replicas: int | None = Field(
        None, ge=1, description="Most canary pods; default as many as stable (a 50% split)."
    )


class StrategyDoc(
    Strict,
    json_schema_extra=cel(
        (
            "!has(self.type) || self.type != 'canary' || !has(self.canary) || !has(self.canary.steps)"
            " || self.canary.steps.exists(s, has(s.setWeight))",
            "a canary needs at least one setWeight step",
        )
    ),
):
    type: Literal["rolling", "canary", "traffic"] = Field(
        "canary",
        description="canary (a second Deployment weighted by replica ratio), rolling, or traffic "
        "(per-request weights and shadow in the server's traffic file; no pod restarted).",
    )
    canary: CanaryDoc = Field(default_factory=lambda: CanaryDoc.model_validate({}))
    traffic: TrafficDoc = Field(default_factory=lambda: TrafficDoc.model_validate({}))

    @model_validator(mode="after")
    def _canary_moves(self) -> StrategyDoc:
        if self.type == "canary" and not any(step.set_weight is not None for step in self.canary.steps):
            raise FieldProblem("canary.steps", "a canary needs at least one setWeight step")
        return self


TRAFFIC = "has(self.strategy) && has(self.strategy.type) && self.strategy.type == 'traffic'"
NEEDS_SOURCE = "the canary and rolling strategies need model.source (url with sha256, or image)"
NEEDS_INPUTS = (
    "the canary and rolling strategies compare answers to analysis.disagreement.inputs; only the "
    "traffic strategy can do without (its servers shadow live traffic)"
)


def live_source_message(version: int | str) -> str:
    return (
        f"the traffic strategy changes no pod: publish version {version} to the model's bucket or "
        "shared volume and leave out model.source; url and image sources need new pods: use the "
        "canary strategy"
    )


class RolloutSpecDoc(
    Strict,
    json_schema_extra=cel(
        (f"({TRAFFIC}) || has(self.model.source)", NEEDS_SOURCE),
        (
            f"!({TRAFFIC}) || !has(self.model.source)",
            live_source_message("N").replace("version N", "the version"),
        ),
        (
            f"!({TRAFFIC}) || !has(self.analysis) || !has(self.analysis.prometheus)",
            "the traffic strategy measures by version from the pods' own metrics; leave out "
            "analysis.prometheus",
        ),
        # No CEL rule for NEEDS_INPUTS: CEL cannot see `inputs` (its items are untyped JSON), so
        # the API server refuses such a rule; the operator's validator reports it as Invalid.
    ),
):
    target_ref: TargetRefDoc = Field(
        description="The serving Deployment (the chart's fullname) and its server container."
    )
    model: ModelDoc = Field(description="The model version to roll out and where its files come from.")
    strategy: StrategyDoc = Field(default_factory=lambda: StrategyDoc.model_validate({}))
    analysis: AnalysisSpec | None = Field(
        None, description="Measurements of the canary pods against the stable ones, every interval."
    )
    progress_deadline_seconds: int = Field(
        600,
        ge=10,
        description="How long a step may wait for pods, or a promotion may take, before rolling back.",
    )
    paused: bool = Field(False, description="Hold the canary steps where they are (analysis keeps running).")
    abort: bool = Field(False, description="Roll back and stay rolled back; set false again to retry.")

    @model_validator(mode="after")
    def _source_fits_the_strategy(self) -> RolloutSpecDoc:
        traffic = self.strategy.type == "traffic"
        if traffic and self.model.source is not None:
            raise FieldProblem("model.source", live_source_message(self.model.version))
        if not traffic and self.model.source is None:
            raise FieldProblem("model.source", NEEDS_SOURCE)
        disagreement = self.analysis.disagreement if self.analysis is not None else None
        if not traffic and disagreement is not None and disagreement.inputs is None:
            raise FieldProblem("analysis.disagreement.inputs", NEEDS_INPUTS)
        shadows = any(st.shadow is not None and st.shadow.percent > 0 for st in self.strategy.traffic.steps)
        if traffic and disagreement is not None and disagreement.inputs is None and not shadows:
            raise FieldProblem(
                "analysis.disagreement",
                "without inputs the disagreement is measured by shadowing live traffic: add a shadow "
                "step (e.g. {shadow: {percent: 100, duration: 5m}}) or give inputs",
            )
        if traffic and self.analysis is not None and self.analysis.prometheus is not None:
            raise FieldProblem(
                "analysis.prometheus",
                "the traffic strategy measures by version from the pods' own metrics "
                "(modelship_requests_total by version, modelship_shadow_requests_total); "
                "leave out analysis.prometheus",
            )
        return self
