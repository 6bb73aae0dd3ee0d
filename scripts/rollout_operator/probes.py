"""What the driver asks the serving pods (and Prometheus) before a reconcile.

:func:`verify_pod` checks a canary pod before it gets traffic, :func:`measure` takes one analysis
measurement from the metric source (:mod:`~rollout_operator.pod_metrics` or
:mod:`~rollout_operator.prometheus`) plus the disagreement check, and :func:`served_version`
reads the stable version when the chart's model is serving. They return what the decision logic
consumes (:class:`~.observations.Verification`, :class:`~.observations.Measurement`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from rollout_operator.disagreement import DisagreementOutcome, disagreement
from rollout_operator.observations import Measurement, PodView, Verification
from rollout_operator.phases import Verdict, VerificationOutcome
from rollout_operator.pod_http import PodHttp, ProbeError, json_body
from rollout_operator.pod_metrics import delta, scrape_tracks
from rollout_operator.prometheus import prometheus_track
from rollout_operator.spec import DEFAULT_NON_ERROR_CODES, AnalysisSpec, DisagreementCheck
from rollout_operator.verdict import evaluate
from rollout_operator.window import TrackStats


def served_version(http: PodHttp, pod: PodView, model: str) -> str:
    """The highest AVAILABLE version of ``model`` on ``pod`` ("" if none)."""
    status, data = http.request(pod, "GET", f"/v1/models/{model}")
    body = json_body(data)
    if status != 200 or not isinstance(body, dict):
        raise ProbeError(f"GET /v1/models/{model} on {pod.name}: HTTP {status}")
    versions = [
        int(v["version"]) for v in body.get("model_version_status", []) if v.get("state") == "AVAILABLE"
    ]
    return str(max(versions)) if versions else ""


def verify_pod(
    http: PodHttp,
    pod: PodView,
    stable: PodView | None,
    model: str,
    version: int,
    check: DisagreementCheck | None,
) -> Verification:
    """Before a canary pod gets traffic: it must serve ``version`` AVAILABLE and (with a disagreement
    check) answer the check's inputs successfully and like stable."""
    try:
        status, data = http.request(pod, "GET", f"/v1/models/{model}/versions/{version}")
    except ProbeError as exc:
        return Verification(VerificationOutcome.ERROR, str(exc))
    body = json_body(data)
    states = [v.get("state") for v in body.get("model_version_status", [])] if isinstance(body, dict) else []
    if status != 200 or "AVAILABLE" not in states:
        detail = body.get("error") if isinstance(body, dict) and "error" in body else f"states {states}"
        return Verification(
            VerificationOutcome.FAILED,
            f"model {model} version {version} is not AVAILABLE on the pod "
            f"(HTTP {status}: {detail}); with the latest-version policy the rolled-out "
            "version must be the highest one present",
        )
    if check is None:
        return Verification(VerificationOutcome.PASSED, f"serves {model} version {version}")
    if stable is None:
        return Verification(VerificationOutcome.ERROR, "no ready stable pod to compare predictions with")
    outcome = disagreement(http, check, model, version, pod, stable)
    if outcome.phase == Verdict.SUCCESSFUL:
        return Verification(
            VerificationOutcome.PASSED, f"serves {model} version {version}; {outcome.message}"
        )
    failed = outcome.phase == Verdict.FAILED
    return Verification(VerificationOutcome.FAILED if failed else VerificationOutcome.ERROR, outcome.message)


def measure(
    http: PodHttp,
    spec: AnalysisSpec,
    namespace: str,
    model: str,
    version: int,
    canary: Sequence[PodView],
    stable: Sequence[PodView],
    baseline: dict[str, Any] | None,
) -> Measurement:
    """Take one measurement of the serving ``canary`` pods against the serving ``stable`` pods.

    The first call (no baseline) only records the counters; later calls judge the window since."""
    codes = spec.error_ratio.non_error_codes if spec.error_ratio else DEFAULT_NON_ERROR_CODES
    notes: list[str] = []
    canary_stats: TrackStats | None
    stable_stats: TrackStats | None
    if spec.prometheus is not None:
        if baseline is None:
            return Measurement(kind="baseline", baseline={"prometheus": True})
        canary_stats = _prometheus_track(spec, namespace, model, canary, codes, notes, "canary")
        stable_stats = (
            _prometheus_track(spec, namespace, model, stable, codes, notes, "stable") if stable else None
        )
        new_baseline: dict[str, Any] = {"prometheus": True}
    else:
        canary_snaps, stable_snaps = scrape_tracks(http, model, codes, canary, stable, notes)
        new_baseline = {"pods": {**canary_snaps, **stable_snaps}}
        if baseline is None or "pods" not in baseline:
            return Measurement(kind="baseline", baseline=new_baseline)
        old = baseline["pods"]
        # a serving pod that could not be scraped keeps its old snapshot: dropped from the
        # baseline, its next window would count everything it ever served (as a new pod)
        scraped = new_baseline["pods"]
        missed = {
            k: old[k] for k in (p.uid or p.name for p in (*canary, *stable)) if k not in scraped and k in old
        }
        new_baseline = {"pods": {**missed, **scraped}}
        canary_stats = delta(canary_snaps, old) if canary_snaps else None
        stable_stats = delta(stable_snaps, old) if stable_snaps else None
    outcome = None
    if spec.disagreement is not None and canary:
        if stable:
            outcome = disagreement(http, spec.disagreement, model, version, canary[0], stable[0])
        else:
            outcome = DisagreementOutcome(
                Verdict.ERROR, None, "no ready stable pod to compare predictions with"
            )
    result = evaluate(spec, canary_stats, stable_stats, outcome, notes)
    return dataclasses.replace(result, baseline=new_baseline)


def _prometheus_track(
    spec: AnalysisSpec,
    namespace: str,
    model: str,
    pods: Sequence[PodView],
    codes: Sequence[str],
    notes: list[str],
    track: str,
) -> TrackStats | None:
    assert spec.prometheus is not None
    quantile = spec.latency.quantile if spec.latency else 0.99
    names = [p.name for p in pods]
    try:
        return prometheus_track(spec.prometheus, namespace, model, names, spec.interval, codes, quantile)
    except ProbeError as exc:
        notes.append(f"{track}: {exc}")
        return None
