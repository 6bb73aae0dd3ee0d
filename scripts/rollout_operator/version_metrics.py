"""Per-version metrics for the traffic strategy: every serving pod's ``/metrics``, summed by version.

With the traffic strategy the same pods serve both versions, so a window is judged per *version*
(``modelship_requests_total{version}``, ``modelship_request_duration_seconds{version}``), summed
over all serving pods, plus the shadow results on the candidate
(``modelship_shadow_requests_total{version,result}``). Each pod's snapshot is diffed against the
previous window's (``status.analysis.baseline.versionPods``, so a restarted operator diffs against
the same numbers); a pod new since the baseline, or whose counters went down, counts from zero.
:func:`parse_version_metrics` and :func:`version_delta` are pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from rollout_operator.observations import PodView
from rollout_operator.pod_http import PodHttp, ProbeError
from rollout_operator.pod_metrics import Snapshot, _le_key, delta
from rollout_operator.spec import MODEL_APIS
from rollout_operator.window import TrackStats

SHADOW_RESULTS = ("agree", "disagree", "shape_mismatch", "error", "dropped")
FAMILIES = ("modelship_requests", "modelship_request_duration_seconds", "modelship_shadow_requests")


def _empty() -> Snapshot:
    return {"requests": 0.0, "errors": 0.0, "buckets": {}}


def parse_version_metrics(text: str, model: str, non_error_codes: Iterable[str]) -> dict[str, Any]:
    """One pod's ``{"versions": {version: Snapshot}, "shadow": {version: {result: count}}}``."""
    ok = set(non_error_codes)
    versions: dict[str, Snapshot] = {}
    shadow: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in FAMILIES:
            continue
        for sample in family.samples:
            labels = sample.labels
            if labels.get("model") != model:
                continue
            version = labels.get("version", "")
            if sample.name == "modelship_shadow_requests_total":
                counts = shadow.setdefault(version, {})
                result = labels.get("result", "")
                counts[result] = counts.get(result, 0.0) + sample.value
                continue
            if labels.get("api") not in MODEL_APIS:
                continue
            snap = versions.setdefault(version, _empty())
            if sample.name == "modelship_requests_total":
                snap["requests"] += sample.value
                if labels.get("code") not in ok:
                    snap["errors"] += sample.value
            elif sample.name == "modelship_request_duration_seconds_bucket":
                le = _le_key(labels["le"])
                snap["buckets"][le] = snap["buckets"].get(le, 0.0) + sample.value
    return {"versions": versions, "shadow": shadow}


@dataclass(frozen=True)
class VersionWindow:
    """One window of one rollout: each version's stats and the candidate's shadow results."""

    candidate: TrackStats
    stable: TrackStats
    shadow: dict[str, float]  # result -> count in the window

    @property
    def shadow_compared(self) -> float:
        return sum(self.shadow.get(r, 0.0) for r in ("agree", "disagree", "shape_mismatch"))

    @property
    def shadow_total(self) -> float:
        """Shadow runs with a result (compared or failed); dropped ones never ran."""
        return self.shadow_compared + self.shadow.get("error", 0.0)


def version_delta(
    current: Mapping[str, Mapping[str, Any]],
    baseline: Mapping[str, Mapping[str, Any]] | None,
    candidate: str,
    stable: str,
) -> VersionWindow:
    """Sum over pods of (current - baseline) for ``candidate`` and ``stable``."""
    base = baseline or {}

    def track(version: str) -> TrackStats:
        cur = {pod: snap["versions"].get(version, _empty()) for pod, snap in current.items()}
        old = {
            pod: snap["versions"][version]
            for pod, snap in base.items()
            if version in (snap.get("versions") or {})
        }
        return delta(cur, old)

    shadow: dict[str, float] = {}
    for pod, snap in current.items():
        now = (snap.get("shadow") or {}).get(candidate, {})
        before = ((base.get(pod) or {}).get("shadow") or {}).get(candidate, {})
        reset = any(now.get(r, 0.0) < before.get(r, 0.0) for r in SHADOW_RESULTS)
        for result in SHADOW_RESULTS:
            diff = now.get(result, 0.0) - (0.0 if reset else before.get(result, 0.0))
            shadow[result] = shadow.get(result, 0.0) + max(0.0, diff)
    return VersionWindow(candidate=track(candidate), stable=track(stable), shadow=shadow)


def scrape_versions(
    http: PodHttp, pods: Sequence[PodView], model: str, codes: Sequence[str], notes: list[str]
) -> dict[str, dict[str, Any]]:
    """Every pod's per-version snapshot by uid; scrape failures become ``notes``."""
    snaps: dict[str, dict[str, Any]] = {}
    for pod in pods:
        try:
            status, data = http.request(pod, "GET", "/metrics")
            if status != 200:
                raise ProbeError(f"GET /metrics on {pod.name}: HTTP {status}")
            snaps[pod.uid or pod.name] = parse_version_metrics(data.decode("utf-8", "replace"), model, codes)
        except (ProbeError, ValueError) as exc:
            notes.append(str(exc))
    return snaps
