"""The verdict of one analysis window: each check's result, then the measurement's phase.

The canary is judged against absolute thresholds and against the stable pods of the same window.
Missing data, NaN and too few requests are *inconclusive*, never silently a pass; metrics that
could not be read at all are an *error*. The worst metric wins (:class:`~.phases.Verdict` is
ordered worst first). Pure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rollout_operator.disagreement import DisagreementOutcome
from rollout_operator.observations import Measurement
from rollout_operator.phases import Verdict, plain
from rollout_operator.spec import AnalysisSpec
from rollout_operator.window import TrackStats


@dataclass(frozen=True)
class MetricResult:
    """One check of one window, stored as a dict in ``status.analysis.last.metrics``."""

    name: str  # requests | errorRatio | latencyP99 | disagreement
    phase: Verdict
    message: str = ""
    threshold: str | None = None  # None: not stated
    measured: bool = True  # the canary had metrics: ``value`` is stated (it may still be None)
    value: float | None = None
    stable: float | None = None  # the same number for the stable pods, if known
    has_stable: bool = False

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "phase": plain(self.phase)}
        if self.threshold is not None:
            out["threshold"] = self.threshold
        if self.has_stable:
            out["stable"] = self.stable
        if self.measured:
            out["value"] = self.value
        out["message"] = self.message
        return out


def _num(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) or math.isinf(x) else round(x, 6)


def evaluate(
    spec: AnalysisSpec,
    canary: TrackStats | None,
    stable: TrackStats | None,
    disagreement: DisagreementOutcome | None,
    notes: Iterable[str] = (),
) -> Measurement:
    """Judge one window. ``canary``/``stable`` None means their metrics could not be read at all."""
    enough = canary is not None and canary.requests >= spec.min_requests
    metrics = [_requests(spec, canary, enough)]
    if spec.error_ratio is not None:
        metrics.append(_error_ratio(spec, canary, stable, enough))
    if spec.latency is not None:
        metrics.append(_latency(spec, canary, stable, enough))
    if disagreement is not None:
        metrics.append(
            MetricResult(
                "disagreement",
                disagreement.phase,
                disagreement.message,
                threshold=f"<= {spec.disagreement.max_ratio:g}" if spec.disagreement else "",
                value=_num(disagreement.ratio),
            )
        )
    phase = next(v for v in Verdict if v == Verdict.SUCCESSFUL or any(m.phase == v for m in metrics))
    bad = [f"{m.name}: {m.message}" for m in metrics if m.phase == phase and m.message]
    message = "; ".join([*bad, *notes]) if phase != Verdict.SUCCESSFUL else "; ".join(notes)
    return Measurement(
        kind="result", phase=phase, message=message, metrics=tuple(m.as_dict() for m in metrics)
    )


def _requests(spec: AnalysisSpec, canary: TrackStats | None, enough: bool) -> MetricResult:
    if canary is None:
        return MetricResult(
            "requests", Verdict.ERROR, "no canary pod's metrics could be read", measured=False
        )
    return MetricResult(
        "requests",
        Verdict.SUCCESSFUL if enough else Verdict.INCONCLUSIVE,
        "" if enough else f"only {canary.requests:g} canary requests in the window, need {spec.min_requests}",
        threshold=f">= {spec.min_requests}",
        value=_num(canary.requests),
    )


def _error_ratio(
    spec: AnalysisSpec, canary: TrackStats | None, stable: TrackStats | None, enough: bool
) -> MetricResult:
    assert spec.error_ratio is not None
    limit = spec.error_ratio.max
    common: dict[str, Any] = {"threshold": f"<= {limit:g}"}
    if stable is not None:
        common.update(stable=_num(stable.error_ratio), has_stable=True)
    if canary is None:
        return MetricResult(
            "errorRatio", Verdict.ERROR, "canary metrics unavailable", measured=False, **common
        )
    value = canary.error_ratio
    common["value"] = _num(value)
    if math.isnan(value) or not enough:
        return MetricResult("errorRatio", Verdict.INCONCLUSIVE, "not enough canary requests", **common)
    if value > limit:
        message = (
            f"canary error ratio {value:.4f} > {limit:g} "
            f"({canary.errors:g} of {canary.requests:g} requests failed)"
        )
        return MetricResult("errorRatio", Verdict.FAILED, message, **common)
    return MetricResult("errorRatio", Verdict.SUCCESSFUL, "", **common)


def _latency(
    spec: AnalysisSpec, canary: TrackStats | None, stable: TrackStats | None, enough: bool
) -> MetricResult:
    check = spec.latency
    assert check is not None
    limits = []
    if check.max_seconds is not None:
        limits.append(f"<= {check.max_seconds:g}s")
    if check.max_ratio_to_stable is not None:
        limits.append(f"<= {check.max_ratio_to_stable:g} x stable")
    common: dict[str, Any] = {"threshold": " and ".join(limits)}
    stable_q = math.nan
    if stable is not None and stable.requests >= max(1, spec.min_requests):
        stable_q = stable.quantile(check.quantile)
        common.update(stable=_num(stable_q), has_stable=True)
    if canary is None:
        return MetricResult(
            "latencyP99", Verdict.ERROR, "canary metrics unavailable", measured=False, **common
        )
    value = canary.quantile(check.quantile)
    common["value"] = _num(value)
    if math.isnan(value) or not enough:
        return MetricResult(
            "latencyP99", Verdict.INCONCLUSIVE, "no canary latency data in the window", **common
        )
    if check.max_seconds is not None and value > check.max_seconds:
        message = f"canary p99 {value * 1000:.1f} ms > {check.max_seconds * 1000:g} ms"
        return MetricResult("latencyP99", Verdict.FAILED, message, **common)
    if check.max_ratio_to_stable is not None:
        if math.isnan(stable_q) or stable_q <= 0:
            if check.max_seconds is None:
                return MetricResult(
                    "latencyP99", Verdict.INCONCLUSIVE, "no stable latency to compare with", **common
                )
        elif value > check.max_ratio_to_stable * stable_q:
            message = (
                f"canary p99 {value * 1000:.1f} ms > {check.max_ratio_to_stable:g} x stable "
                f"p99 {stable_q * 1000:.1f} ms"
            )
            return MetricResult("latencyP99", Verdict.FAILED, message, **common)
    return MetricResult("latencyP99", Verdict.SUCCESSFUL, "", **common)


def history_line(m: Measurement, at: str) -> str:
    """One line of ``status.analysis.history``."""
    values = ", ".join(f"{x['name']}={x['value']:g}" for x in m.metrics if x.get("value") is not None)
    return f"{at} {m.phase}" + (f" ({values})" if values else "")
