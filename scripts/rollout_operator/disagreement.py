"""Prediction disagreement: the same predict instances to a canary and a stable pod, answers compared.

Used twice: by the traffic gate (a canary pod must answer like stable before it gets traffic)
and by each analysis measurement. :func:`judge_disagreement` is pure; :func:`disagreement` and
:func:`predict` send the requests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rollout_operator.observations import PodView
from rollout_operator.phases import Verdict
from rollout_operator.pod_http import PodHttp, ProbeError, json_body, short
from rollout_operator.spec import DisagreementCheck


@dataclass(frozen=True)
class DisagreementOutcome:
    """The disagreement check of one canary/stable pod pair."""

    phase: Verdict  # Successful | Failed | Error
    ratio: float | None
    message: str


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


def compare_predictions(
    canary: Any, stable: Any, atol: float, rtol: float, names: tuple[str, str] = ("canary", "stable")
) -> tuple[int, int, str]:
    """Rows of ``canary`` (``predictions`` list) that differ from ``stable``: (differing, total, example).

    ``names`` are what the example calls the two sides (the traffic strategy: two versions)."""
    cname, sname = names
    if not isinstance(canary, list) or not isinstance(stable, list):
        return 1, 1, "predictions are not lists"
    total = max(len(canary), len(stable))
    if len(canary) != len(stable):
        return total, total, f"{cname} returned {len(canary)} rows, {sname} {len(stable)}"
    differing, example = 0, ""
    for i, (c, s) in enumerate(zip(canary, stable, strict=True)):
        fc, fs = _flatten(c), _flatten(s)
        if len(fc) != len(fs) or not all(_close(x, y, atol, rtol) for x, y in zip(fc, fs, strict=True)):
            differing += 1
            if not example:
                example = f"row {i}: {cname} {short(c)} vs {sname} {short(s)}"
    return differing, total, example


def judge_disagreement(
    check: DisagreementCheck,
    canary: tuple[int, Any],
    stable: tuple[int, Any],
    names: tuple[str, str] = ("canary", "stable"),
) -> DisagreementOutcome:
    """Judge the HTTP (status, JSON body) of the same predict request to a canary and a stable pod
    (or, with the traffic strategy, to two versions on one pod: ``names`` says which)."""
    cname, sname = names
    c_status, c_body = canary
    s_status, s_body = stable
    if c_status != 200:
        return DisagreementOutcome(
            Verdict.FAILED, None, f"{cname} answered HTTP {c_status}: {_error_text(c_body)}"
        )
    if s_status != 200:
        return DisagreementOutcome(
            Verdict.ERROR,
            None,
            f"{sname} answered HTTP {s_status}: {_error_text(s_body)} (fix analysis.disagreement.inputs)",
        )
    c_pred = c_body.get("predictions") if isinstance(c_body, dict) else None
    s_pred = s_body.get("predictions") if isinstance(s_body, dict) else None
    differing, total, example = compare_predictions(
        c_pred, s_pred, check.abs_tolerance, check.rel_tolerance, names
    )
    ratio = differing / total if total else 1.0
    if ratio > check.max_ratio:
        return DisagreementOutcome(
            Verdict.FAILED,
            ratio,
            f"{differing}/{total} predictions differ from {sname} (max ratio {check.max_ratio:g}); {example}",
        )
    return DisagreementOutcome(
        Verdict.SUCCESSFUL, ratio, f"{differing}/{total} predictions differ from {sname}"
    )


def _error_text(body: Any) -> str:
    if isinstance(body, dict) and "error" in body:
        return short(body["error"], 160)
    return short(body, 160)


def predict(
    http: PodHttp, pod: PodView, model: str, version: int | None, inputs: Sequence[Any]
) -> tuple[int, Any]:
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version is not None else "") + ":predict"
    status, data = http.request(pod, "POST", path, {"instances": list(inputs)})
    return status, json_body(data)


def disagreement(
    http: PodHttp, check: DisagreementCheck, model: str, version: int, canary: PodView, stable: PodView
) -> DisagreementOutcome:
    """Send the check's inputs to both pods and judge; transport failures are an Error outcome."""
    if check.inputs is None:  # the spec requires them for the canary strategies that call this
        return DisagreementOutcome(Verdict.INCONCLUSIVE, None, "analysis.disagreement.inputs is not set")
    try:
        c = predict(http, canary, model, version, check.inputs)
        s = predict(http, stable, model, None, check.inputs)
    except ProbeError as exc:
        return DisagreementOutcome(Verdict.ERROR, None, str(exc))
    return judge_disagreement(check, c, s)
