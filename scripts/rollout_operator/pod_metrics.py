"""The pod-scrape metric source: each serving pod's own ``/metrics``, diffed window to window.

The serving pods export ``modelship_requests_total{model,version,api,code,transport}`` and the
``modelship_request_duration_seconds`` histogram. A measurement scrapes every pod
(:func:`scrape`), diffs each pod's counters against the previous measurement's snapshot (kept in
``status.analysis.baseline``, so a restarted operator diffs against the same numbers) and sums
the pods of each track (:func:`delta`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TypedDict

from prometheus_client.parser import text_string_to_metric_families

from rollout_operator.observations import PodView
from rollout_operator.pod_http import PodHttp, ProbeError
from rollout_operator.spec import MODEL_APIS
from rollout_operator.window import TrackStats


class Snapshot(TypedDict):
    """One pod's counters at one moment, as stored in ``status.analysis.baseline.pods``."""

    requests: float
    errors: float
    buckets: dict[str, float]  # le ("0.005", "+Inf") -> cumulative count


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


def scrape(http: PodHttp, pod: PodView, model: str, non_error_codes: Sequence[str]) -> Snapshot:
    """GET one pod's ``/metrics`` and sum what the analysis needs. Raises ProbeError."""
    status, data = http.request(pod, "GET", "/metrics")
    if status != 200:
        raise ProbeError(f"GET /metrics on {pod.name}: HTTP {status}")
    try:
        return parse_pod_metrics(data.decode("utf-8", "replace"), model, non_error_codes)
    except ValueError as exc:
        raise ProbeError(f"unparsable metrics from {pod.name}: {exc}") from exc


def scrape_tracks(
    http: PodHttp,
    model: str,
    codes: Sequence[str],
    canary: Sequence[PodView],
    stable: Sequence[PodView],
    notes: list[str],
) -> tuple[dict[str, Snapshot], dict[str, Snapshot]]:
    """Snapshots of every canary and stable pod by uid; scrape failures become ``notes``."""
    snaps: dict[str, dict[str, Snapshot]] = {"canary": {}, "stable": {}}
    for track, pods in (("canary", canary), ("stable", stable)):
        for pod in pods:
            try:
                snaps[track][pod.uid or pod.name] = scrape(http, pod, model, codes)
            except ProbeError as exc:
                notes.append(str(exc))
    return snaps["canary"], snaps["stable"]
