"""``spec.analysis`` of a ModelRollout: the checks of each measurement, as pydantic models.

The one source of these fields' schema and defaults (see :mod:`rollout_operator.resource_spec`),
and the values the analysis code reads (:mod:`rollout_operator.probes`,
:mod:`rollout_operator.verdict`): snake_case attributes, durations in seconds. Pure.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, field_validator, model_validator

from rollout_operator.schema_types import Duration, JsonValue, Matching, Strict, cel

# Codes (the server's ``code`` label: TF/gRPC canonical names) that do not count as errors of the
# model version: a success, a client that went away, and requests refused before the model ran.
DEFAULT_NON_ERROR_CODES = ("OK", "CANCELLED", "UNAUTHENTICATED", "PERMISSION_DENIED")

PrometheusUrl = Annotated[
    str, Matching(r"^https?://[^/\s]+", "an http(s) URL of the Prometheus server is required, got {value!r}")
]


class ErrorRatioCheck(Strict):
    max: float = Field(0.01, ge=0, le=1)
    # The default codes are the operator's (the CRD has none: the API server leaves them out).
    non_error_codes: tuple[str, ...] = Field(
        default_factory=lambda: DEFAULT_NON_ERROR_CODES,
        strict=False,
        description="Status codes that are not errors; "
        "default OK, CANCELLED, UNAUTHENTICATED, PERMISSION_DENIED.",
    )


class LatencyCheck(
    Strict,
    json_schema_extra=cel(
        ("has(self.maxSeconds) || has(self.maxRatioToStable)", "set maxSeconds, maxRatioToStable or both"),
    ),
):
    quantile: ClassVar[float] = 0.99  # the resource calls it latencyP99

    max_seconds: float | None = Field(None, ge=0)
    max_ratio_to_stable: float | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _a_limit(self) -> LatencyCheck:
        if self.max_seconds is None and self.max_ratio_to_stable is None:
            raise ValueError("set maxSeconds, maxRatioToStable or both")
        return self


class DisagreementCheck(Strict):
    """Send ``inputs`` (predict ``instances``) to a canary and a stable pod; compare the answers.
    With the traffic strategy the servers' shadow scoring compares live traffic, and ``inputs``
    (optional there) only verify each pod before any traffic."""

    inputs: tuple[JsonValue, ...] | None = Field(
        None,
        min_length=1,
        max_length=256,
        strict=False,
        description="Predict instances; required by canary and rolling, optional with traffic.",
    )
    abs_tolerance: float = Field(1e-6, ge=0)
    rel_tolerance: float = Field(1e-3, ge=0)
    max_ratio: float = Field(0, ge=0, le=1)


class PrometheusSource(Strict):
    """Read the metrics from a Prometheus server instead of scraping the pods."""

    url: PrometheusUrl
    timeout: Duration = 10.0

    @field_validator("url")
    @classmethod
    def _no_trailing_slash(cls, url: str) -> str:
        return url.rstrip("/")


class AnalysisSpec(Strict):
    interval: Duration = 30.0
    count: int = Field(3, ge=0, description="Successful measurements needed before promotion.")
    failure_limit: int = Field(0, ge=0, description="Failed measurements tolerated; one more rolls back.")
    inconclusive_limit: int = Field(
        2, ge=0, description="Inconclusive measurements tolerated; one more pauses for a human."
    )
    consecutive_error_limit: int = Field(
        4, ge=0, description="Measurements in a row that could not be taken; one more rolls back."
    )
    min_requests: int = Field(
        20, ge=0, description="Canary requests per window below which a measurement is inconclusive."
    )
    error_ratio: ErrorRatioCheck | None = None
    latency: LatencyCheck | None = Field(None, alias="latencyP99")
    disagreement: DisagreementCheck | None = Field(
        None, description="The same predict instances to a canary and a stable pod; answers compared."
    )
    prometheus: PrometheusSource | None = Field(
        None,
        description="Read the metrics from Prometheus (namespace and pod target labels) instead of the pods.",
    )

    @field_validator("interval")
    @classmethod
    def _at_least_a_second(cls, interval: float) -> float:
        if interval < 1.0:
            raise ValueError("must be at least 1s")
        return interval
