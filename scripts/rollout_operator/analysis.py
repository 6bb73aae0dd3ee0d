"""Analysis math: metric snapshots and their deltas, histogram quantiles, prediction comparison, verdicts.

The serving pods export ``modelship_requests_total{model,version,api,code,transport}`` and the
``modelship_request_duration_seconds`` histogram. A measurement diffs each pod's counters against
the previous measurement's snapshot (kept in ``status.analysis.baseline``, so a restarted operator
diffs against the same numbers), sums the pods of each track (canary, stable), and judges the
canary against absolute thresholds and against the stable pods of the same window. Missing data,
NaN and too few requests are *inconclusive*, never silently a pass. Everything here is pure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from rollout_operator.durations import format_duration
from rollout_operator.observations import Measurement
from rollout_operator.spec import MODEL_APIS, AnalysisSpec, DisagreementCheck

Snapshot = dict[str, Any]  # {"requests": float, "errors": float, "buckets": {le: cumulative count}}


def parse_pod_metrics(text: str, model: str, non_error_codes: Iterable[str]) -> Snapshot:
    """Sum one pod's model-API request counters, error counters and latency buckets for ``model``."""
    ok = set(non_error_codes)
    requests = errors = 0.0
    buckets: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in ("modelship_requests", "modelship_request_duration_seconds"):
            continue
        for sample in family.samples:
            labels = sample.labels
            if labels.get("model") != model or labels.get("api") not in MODEL_APIS:
                continue
            if sample.name == "modelship_requests_total":
                requests += sample.value
                if labels.get("code") not in ok:
                    errors += sample.value
            elif sample.name == "modelship_request_duration_seconds_bucket":
                le = _le_key(labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
    return {"requests": requests, "errors": errors, "buckets": buckets}


def _le_key(le: str) -> str:
    value = float(le)
    return "+Inf" if math.isinf(value) else repr(value)


@dataclass(frozen=True)
class TrackStats:
    """Requests, errors and latency of one track over one window."""

    requests: float
    errors: float
    buckets: tuple[tuple[float, float], ...] = ()  # (upper bound, cumulative count), sorted
    p99_override: float | None = None  # from Prometheus: the quantile is computed there

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests > 0 else math.nan

    def quantile(self, q: float) -> float:
        if self.p99_override is not None:
            return self.p99_override
        return histogram_quantile(q, self.buckets)


def delta(current: Mapping[str, Snapshot], baseline: Mapping[str, Snapshot] | None) -> TrackStats:
    """Sum over pods of (current - baseline); a pod new since the baseline, or whose counters went
    down (restarted container), counts from zero, as Prometheus' ``increase`` does."""
    base = baseline or {}
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    for pod, cur in current.items():
        old = base.get(pod)
        reset = old is None or cur["requests"] < old["requests"] or cur["errors"] < old["errors"]
        requests += cur["requests"] - (0.0 if reset or old is None else old["requests"])
        errors += cur["errors"] - (0.0 if reset or old is None else old["errors"])
        for le, count in cur["buckets"].items():
            before = 0.0 if reset or old is None else float(old["buckets"].get(le, 0.0))
            buckets[float(le)] = buckets.get(float(le), 0.0) + max(0.0, count - before)
    return TrackStats(requests=requests, errors=errors, buckets=tuple(sorted(buckets.items())))


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """Prometheus' ``histogram_quantile`` on cumulative ``(le, count)`` pairs: linear interpolation
    inside the bucket; NaN without observations; the highest finite bound if it lands in +Inf."""
    pairs = sorted(buckets)
    if not pairs or not math.isinf(pairs[-1][0]):
        return math.nan
    total = pairs[-1][1]
    if total <= 0 or math.isnan(total):
        return math.nan
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for i, (le, count) in enumerate(pairs):
        if count >= rank:
            if math.isinf(le):
                return pairs[i - 1][0] if i > 0 else math.nan
            if i == 0 and le <= 0:
                return le
            in_bucket = count - lower_count
            if in_bucket <= 0:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / in_bucket
        lower_bound, lower_count = le, count
    return pairs[-1][0]


# ------------------------------------------------------------------------------------------------
# prediction disagreement


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for key in sorted(value) for x in _flatten(value[key])]
    if isinstance(value, list | tuple):
        return [x for item in value for x in _flatten(item)]
    return [value]


def _close(a: Any, b: Any, atol: float, rtol: float) -> bool:
    if (
        isinstance(a, bool)
        or isinstance(b, bool)
        or not isinstance(a, int | float)
        or not isinstance(b, int | float)
    ):
        return bool(a == b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= atol + rtol * abs(b)


def compare_predictions(canary: Any, stable: Any, atol: float, rtol: float) -> tuple[int, int, str]:
    """Rows of ``canary`` (``predictions`` list) that differ from ``stable``: (differing, total, example)."""
    if not isinstance(canary, list) or not isinstance(stable, list):
        return 1, 1, "predictions are not lists"
    total = max(len(canary), len(stable))
    if len(canary) != len(stable):
        return total, total, f"canary returned {len(canary)} rows, stable {len(stable)}"
    differing, example = 0, ""
    for i, (c, s) in enumerate(zip(canary, stable, strict=True)):
        fc, fs = _flatten(c), _flatten(s)
        if len(fc) != len(fs) or not all(_close(x, y, atol, rtol) for x, y in zip(fc, fs, strict=True)):
            differing += 1
            if not example:
                example = f"row {i}: canary {_short(c)} vs stable {_short(s)}"
    return differing, total, example


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class DisagreementOutcome:
    """The disagreement check of one canary/stable pod pair."""

    phase: str  # Successful | Failed | Error
    ratio: float | None
    message: str


def judge_disagreement(
    check: DisagreementCheck, canary: tuple[int, Any], stable: tuple[int, Any]
) -> DisagreementOutcome:
    """Judge the HTTP (status, JSON body) of the same predict request to a canary and a stable pod."""
    c_status, c_body = canary
    s_status, s_body = stable
    if c_status != 200:
        return DisagreementOutcome("Failed", None, f"canary answered HTTP {c_status}: {_error_text(c_body)}")
    if s_status != 200:
        return DisagreementOutcome(
            "Error",
            None,
            f"stable answered HTTP {s_status}: {_error_text(s_body)} (fix analysis.disagreement.inputs)",
        )
    c_pred = c_body.get("predictions") if isinstance(c_body, dict) else None
    s_pred = s_body.get("predictions") if isinstance(s_body, dict) else None
    differing, total, example = compare_predictions(c_pred, s_pred, check.abs_tolerance, check.rel_tolerance)
    ratio = differing / total if total else 1.0
    if ratio > check.max_ratio:
        return DisagreementOutcome(
            "Failed",
            ratio,
            f"{differing}/{total} predictions differ from stable (max ratio {check.max_ratio:g}); {example}",
        )
    return DisagreementOutcome("Successful", ratio, f"{differing}/{total} predictions differ from stable")


def _error_text(body: Any) -> str:
    if isinstance(body, dict) and "error" in body:
        return _short(body["error"], 160)
    return _short(body, 160)


# ------------------------------------------------------------------------------------------------
# the verdict of one measurement

PHASE_ORDER = ("Failed", "Error", "Inconclusive", "Successful")


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
    metrics: list[dict[str, Any]] = []
    enough = canary is not None and canary.requests >= spec.min_requests
    if canary is None:
        metrics.append(
            {"name": "requests", "phase": "Error", "message": "no canary pod's metrics could be read"}
        )
    else:
        metrics.append(
            {
                "name": "requests",
                "phase": "Successful" if enough else "Inconclusive",
                "value": _num(canary.requests),
                "threshold": f">= {spec.min_requests}",
                "message": ""
                if enough
                else f"only {canary.requests:g} canary requests in the window, need {spec.min_requests}",
            }
        )
    if spec.error_ratio is not None:
        metrics.append(_error_ratio(spec, canary, stable, enough))
    if spec.latency is not None:
        metrics.append(_latency(spec, canary, stable, enough))
    if disagreement is not None:
        metrics.append(
            {
                "name": "disagreement",
                "phase": disagreement.phase,
                "value": _num(disagreement.ratio),
                "threshold": f"<= {spec.disagreement.max_ratio:g}" if spec.disagreement else "",
                "message": disagreement.message,
            }
        )
    phase = next(p for p in PHASE_ORDER if p == "Successful" or any(m["phase"] == p for m in metrics))
    bad = [f"{m['name']}: {m['message']}" for m in metrics if m["phase"] == phase and m.get("message")]
    message = "; ".join([*bad, *notes]) if phase != "Successful" else "; ".join(notes)
    return Measurement(
        kind="result",
        phase=phase,  # type: ignore[arg-type]
        message=message,
        metrics=tuple(metrics),
    )


def _error_ratio(
    spec: AnalysisSpec, canary: TrackStats | None, stable: TrackStats | None, enough: bool
) -> dict[str, Any]:
    assert spec.error_ratio is not None
    out: dict[str, Any] = {"name": "errorRatio", "threshold": f"<= {spec.error_ratio.max:g}"}
    if stable is not None:
        out["stable"] = _num(stable.error_ratio)
    if canary is None:
        return {**out, "phase": "Error", "message": "canary metrics unavailable"}
    value = canary.error_ratio
    out["value"] = _num(value)
    if math.isnan(value) or not enough:
        return {**out, "phase": "Inconclusive", "message": "not enough canary requests"}
    if value > spec.error_ratio.max:
        return {
            **out,
            "phase": "Failed",
            "message": f"canary error ratio {value:.4f} > {spec.error_ratio.max:g} "
            f"({canary.errors:g} of {canary.requests:g} requests failed)",
        }
    return {**out, "phase": "Successful", "message": ""}


def _latency(
    spec: AnalysisSpec, canary: TrackStats | None, stable: TrackStats | None, enough: bool
) -> dict[str, Any]:
    check = spec.latency
    assert check is not None
    limits = []
    if check.max_seconds is not None:
        limits.append(f"<= {check.max_seconds:g}s")
    if check.max_ratio_to_stable is not None:
        limits.append(f"<= {check.max_ratio_to_stable:g} x stable")
    out: dict[str, Any] = {"name": "latencyP99", "threshold": " and ".join(limits)}
    stable_q = math.nan
    if stable is not None and stable.requests >= max(1, spec.min_requests):
        stable_q = stable.quantile(check.quantile)
        out["stable"] = _num(stable_q)
    if canary is None:
        return {**out, "phase": "Error", "message": "canary metrics unavailable"}
    value = canary.quantile(check.quantile)
    out["value"] = _num(value)
    if math.isnan(value) or not enough:
        return {**out, "phase": "Inconclusive", "message": "no canary latency data in the window"}
    if check.max_seconds is not None and value > check.max_seconds:
        return {
            **out,
            "phase": "Failed",
            "message": f"canary p99 {value * 1000:.1f} ms > {check.max_seconds * 1000:g} ms",
        }
    if check.max_ratio_to_stable is not None:
        if math.isnan(stable_q) or stable_q <= 0:
            if check.max_seconds is None:
                return {**out, "phase": "Inconclusive", "message": "no stable latency to compare with"}
        elif value > check.max_ratio_to_stable * stable_q:
            return {
                **out,
                "phase": "Failed",
                "message": f"canary p99 {value * 1000:.1f} ms > {check.max_ratio_to_stable:g} x stable "
                f"p99 {stable_q * 1000:.1f} ms",
            }
    return {**out, "phase": "Successful", "message": ""}


def history_line(m: Measurement, at: str) -> str:
    """One line of ``status.analysis.history``."""
    values = ", ".join(f"{x['name']}={x['value']:g}" for x in m.metrics if x.get("value") is not None)
    return f"{at} {m.phase}" + (f" ({values})" if values else "")


# ------------------------------------------------------------------------------------------------
# Prometheus queries (analysis.prometheus)


def _promql_regex(names: Iterable[str]) -> str:
    """An alternation of literal names inside a PromQL string: ``.`` (the only regex character a pod
    name or status code may hold) becomes ``\\.``, i.e. an escaped dot after PromQL's own unescaping."""
    return "|".join(n.replace(".", "\\\\.") for n in sorted(names)) or "^$"


def prometheus_queries(
    namespace: str,
    model: str,
    pods: Iterable[str],
    window: float,
    non_error_codes: Iterable[str],
    quantile: float = 0.99,
) -> dict[str, str]:
    """PromQL for one track: requests, errors and the latency quantile over ``window`` seconds.

    Assumes the usual ``namespace`` and ``pod`` target labels (ServiceMonitor/PodMonitor)."""
    apis = "|".join(MODEL_APIS)
    sel = f'namespace="{namespace}",pod=~"{_promql_regex(pods)}",model="{model}",api=~"{apis}"'
    w = format_duration(max(window, 1.0))
    codes = _promql_regex(non_error_codes)
    return {
        "requests": f"sum(increase(modelship_requests_total{{{sel}}}[{w}]))",
        "errors": f'sum(increase(modelship_requests_total{{{sel},code!~"{codes}"}}[{w}]))',
        "latency": f"histogram_quantile({quantile:g}, sum by (le) "
        f"(rate(modelship_request_duration_seconds_bucket{{{sel}}}[{w}])))",
    }


def prometheus_value(response: Any) -> float:
    """The single value of an instant-vector/scalar query response; NaN when empty."""
    if not isinstance(response, dict) or response.get("status") != "success":
        raise ValueError(f"Prometheus query failed: {_short(response, 200)}")
    data = response.get("data") or {}
    result = data.get("result")
    if data.get("resultType") == "scalar" and isinstance(result, list):
        return float(result[1])
    if not result:
        return math.nan
    return float(result[0]["value"][1])
