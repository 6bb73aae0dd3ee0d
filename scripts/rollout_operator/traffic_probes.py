"""What the driver asks the serving pods for the traffic strategy.

:func:`pod_traffic` reads the traffic file a pod applied (``GET /v1/modelship/traffic``) and its
AVAILABLE versions (``GET /v1/models/<model>``); :func:`verify_versions` checks the candidate next
to stable *on the same pod* (version-addressed predicts); :func:`measure_versions` takes one
analysis window per version over all serving pods (:mod:`rollout_operator.version_metrics`) and
judges it with the canary's verdict, the shadow results counting as the candidate's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from rollout_operator.disagreement import DisagreementOutcome, judge_disagreement, predict
from rollout_operator.observations import Measurement, PodTraffic, PodView, Verification
from rollout_operator.phases import Verdict, VerificationOutcome
from rollout_operator.pod_http import PodHttp, ProbeError, json_body
from rollout_operator.spec import DEFAULT_NON_ERROR_CODES, AnalysisSpec, DisagreementCheck
from rollout_operator.verdict import evaluate
from rollout_operator.version_metrics import VersionWindow, scrape_versions, version_delta
from rollout_operator.window import TrackStats


def pod_traffic(http: PodHttp, pod: PodView, model: str) -> PodTraffic:
    """The generation ``pod`` applied and the versions of ``model`` AVAILABLE on it."""
    try:
        status, data = http.request(pod, "GET", "/v1/modelship/traffic")
        body = json_body(data)
        if status != 200 or not isinstance(body, dict):
            return PodTraffic(error=f"GET /v1/modelship/traffic: HTTP {status}")
        generation = str(body.get("generation") or "")
        status, data = http.request(pod, "GET", f"/v1/models/{model}")
        models = json_body(data)
        if status != 200 or not isinstance(models, dict):
            return PodTraffic(generation=generation, error=f"GET /v1/models/{model}: HTTP {status}")
        available = sorted(
            int(v["version"])
            for v in models.get("model_version_status") or []
            if v.get("state") == "AVAILABLE" and str(v.get("version", "")).isdigit()
        )
        return PodTraffic(generation=generation, available=tuple(available))
    except ProbeError as exc:
        return PodTraffic(error=str(exc))


def versions_disagreement(
    http: PodHttp, check: DisagreementCheck, model: str, candidate: int, stable: int, pod: PodView
) -> DisagreementOutcome:
    """The check's inputs to ``candidate`` and to ``stable`` on the same pod, answers compared."""
    if check.inputs is None:
        return DisagreementOutcome(Verdict.SUCCESSFUL, None, "no inputs to compare")
    try:
        c = predict(http, pod, model, candidate, check.inputs)
        s = predict(http, pod, model, stable, check.inputs)
    except ProbeError as exc:
        return DisagreementOutcome(Verdict.ERROR, None, str(exc))
    return judge_disagreement(check, c, s, (f"version {candidate}", f"version {stable}"))


def verify_versions(
    http: PodHttp, pod: PodView, model: str, candidate: int, stable: int, check: DisagreementCheck
) -> Verification:
    """``pod`` answers the check's inputs on ``candidate`` like on ``stable``: passed; differently or
    with an error of the candidate: failed; stable or the pod not answering: error."""
    outcome = versions_disagreement(http, check, model, candidate, stable, pod)
    if outcome.phase == Verdict.SUCCESSFUL:
        return Verification(VerificationOutcome.PASSED, f"version {candidate}: {outcome.message}")
    failed = outcome.phase == Verdict.FAILED
    return Verification(VerificationOutcome.FAILED if failed else VerificationOutcome.ERROR, outcome.message)


def shadow_outcome(window: VersionWindow, check: DisagreementCheck) -> DisagreementOutcome:
    """(disagree + shape_mismatch) / compared shadow results, against ``check.max_ratio``."""
    compared = window.shadow_compared
    bad = window.shadow.get("disagree", 0.0) + window.shadow.get("shape_mismatch", 0.0)
    ratio = bad / compared
    text = f"{bad:g}/{compared:g} shadowed requests disagree with the primary"
    if ratio > check.max_ratio:
        return DisagreementOutcome(Verdict.FAILED, ratio, f"{text} (max ratio {check.max_ratio:g})")
    return DisagreementOutcome(Verdict.SUCCESSFUL, ratio, text)


def judge_window(
    spec: AnalysisSpec, window: VersionWindow, outcome: DisagreementOutcome | None, notes: list[str]
) -> Measurement:
    """The canary's verdict on the candidate version; shadow errors are candidate errors, and a window
    with too few client requests but enough shadow results is judged on those (no latency)."""
    cand, shadow_total = window.candidate, window.shadow_total
    errors = cand.errors + window.shadow.get("error", 0.0)
    if cand.requests >= spec.min_requests:
        stats = TrackStats(cand.requests + shadow_total, errors, cand.buckets)
    elif shadow_total >= spec.min_requests:
        stats = TrackStats(cand.requests + shadow_total, errors)
        spec = spec.model_copy(update={"latency": None})
        notes.append(f"judged on {shadow_total:g} shadow results ({cand.requests:g} client requests)")
    else:
        stats = cand
    return evaluate(spec, stats, window.stable, outcome, notes)


def measure_versions(
    http: PodHttp,
    spec: AnalysisSpec,
    model: str,
    candidate: int,
    stable: int,
    pods: Sequence[PodView],
    baseline: dict[str, Any] | None,
    shadowing: bool = True,
) -> Measurement:
    """One window of ``candidate`` against ``stable`` over all serving ``pods`` (first call: baseline).

    ``shadowing``: the current step shadows the candidate; without it (and without inputs to
    send) the disagreement check has nothing to measure and is left out of the window."""
    codes = spec.error_ratio.non_error_codes if spec.error_ratio else DEFAULT_NON_ERROR_CODES
    notes: list[str] = []
    snaps = scrape_versions(http, pods, model, codes, notes)
    new_baseline: dict[str, Any] = {"versionPods": snaps}
    if baseline is None or "versionPods" not in baseline:
        return Measurement(kind="baseline", baseline=new_baseline)
    if not snaps:
        result = evaluate(spec, None, None, None, notes)
        return dataclasses.replace(result, baseline=baseline)
    old = baseline["versionPods"]
    window = version_delta(snaps, old, str(candidate), str(stable))
    # a serving pod that could not be scraped keeps its old snapshot: dropped from the baseline,
    # its next window would count everything it ever served (as a pod new since the baseline)
    missed = {key: old[key] for key in (p.uid or p.name for p in pods) if key not in snaps and key in old}
    new_baseline = {"versionPods": {**missed, **snaps}}
    outcome = None
    if spec.disagreement is not None:
        if window.shadow_compared > 0:
            outcome = shadow_outcome(window, spec.disagreement)
        elif pods and spec.disagreement.inputs is not None:
            outcome = versions_disagreement(http, spec.disagreement, model, candidate, stable, pods[0])
        elif shadowing:
            outcome = DisagreementOutcome(
                Verdict.INCONCLUSIVE, None, "no shadow results in this window (and no inputs to send)"
            )
        else:
            notes.append("disagreement not measured: no shadow at this step and no inputs")
    result = judge_window(spec, window, outcome, notes)
    return dataclasses.replace(result, baseline=new_baseline)
