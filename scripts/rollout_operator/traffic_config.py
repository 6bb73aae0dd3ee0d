"""The traffic strategy's entry in the server's traffic file, derived from the spec and the status.

Everything here is a pure function of the spec's steps, the stable and candidate versions and the
rollout's attempt, so a restarted operator writes exactly the same file (same ``generation``).
The generation is ``<rollout>-<attempt>-<label>``: label ``prep`` (both versions loaded, none of
the traffic on the candidate), the index of the step that last changed the traffic (a pause
changes nothing, so it keeps the previous generation), ``promote`` or ``rollback``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollout_operator.spec import DisagreementCheck, RolloutSpec, Step

PREP, PROMOTE, ROLLBACK = "prep", "promote", "rollback"
MAX_NAME = 100  # the server allows 128 characters of generation


@dataclass(frozen=True)
class TrafficPlan:
    """One traffic-file entry to write: its generation, content and the candidate's share."""

    generation: str
    entry: dict[str, Any]
    weight: int  # percent of name-only requests on the candidate
    shadow: float  # percent shadowed on the candidate


def generation(name: str, attempt: int, label: str) -> str:
    return f"{name[:MAX_NAME]}-{attempt}-{label}"


def changes_traffic(step: Step) -> bool:
    return step.kind in ("setWeight", "shadow")


def step_label(steps: tuple[Step, ...], index: int) -> str:
    """The label of the traffic in force at step ``index``: its last traffic-changing step."""
    for j in range(min(index, len(steps) - 1), -1, -1):
        if changes_traffic(steps[j]):
            return str(j)
    return PREP


def weight_at(steps: tuple[Step, ...], index: int) -> int:
    for j in range(min(index, len(steps) - 1), -1, -1):
        if steps[j].kind == "setWeight":
            return steps[j].weight
    return 0


def shadow_at(steps: tuple[Step, ...], index: int) -> float:
    """A shadow step's share stays on until another shadow step changes it (0 switches it off)."""
    for j in range(min(index, len(steps) - 1), -1, -1):
        if steps[j].kind == "shadow":
            return steps[j].percent
    return 0.0


def _shadow(candidate: int, percent: float, check: DisagreementCheck | None) -> dict[str, Any]:
    out: dict[str, Any] = {"version": candidate, "percent": percent}
    if check is not None:
        out["rtol"], out["atol"] = check.rel_tolerance, check.abs_tolerance
    return out


def split_plan(
    spec: RolloutSpec, name: str, attempt: int, stable: int, candidate: int, index: int | None
) -> TrafficPlan:
    """Both versions loaded; the weights and shadow of step ``index`` (None: the preparation)."""
    steps = spec.strategy.traffic.steps
    label = PREP if index is None else step_label(steps, index)
    weight = 0 if label == PREP else weight_at(steps, index or 0)
    shadow = 0.0 if label == PREP else shadow_at(steps, index or 0)
    entry: dict[str, Any] = {
        "versions": [stable, candidate],
        "weights": {str(stable): 100 - weight, str(candidate): weight},
    }
    if spec.strategy.traffic.sticky_header:
        entry["sticky_header"] = spec.strategy.traffic.sticky_header
    if shadow > 0:
        check = spec.analysis.disagreement if spec.analysis is not None else None
        entry["shadow"] = _shadow(candidate, shadow, check)
    return TrafficPlan(generation(name, attempt, label), entry, weight, shadow)


def only_plan(name: str, attempt: int, version: int, label: str) -> TrafficPlan:
    """Only ``version`` loaded, no weights, no shadow (``promote``: the candidate; ``rollback``: stable)."""
    return TrafficPlan(
        generation(name, attempt, label), {"versions": [version]}, 100 if label == PROMOTE else 0, 0.0
    )


def confirmed_weight(spec: RolloutSpec, confirmed: str) -> int:
    """The candidate's weight in the generation every pod confirmed."""
    label = confirmed.rsplit("-", 1)[-1] if confirmed else PREP
    if label == PROMOTE:
        return 100
    if not label.isdigit():
        return 0
    return weight_at(spec.strategy.traffic.steps, int(label))


def merge_file(
    current: dict[str, Any] | None, model: str, plan_generation: str, entry: dict[str, Any]
) -> dict[str, Any]:
    """The whole traffic file: ``current`` (other models kept as found) with ``model``'s entry set."""
    doc = dict(current or {})
    models = dict(doc.get("models") or {}) if isinstance(doc.get("models"), dict) else {}
    models[model] = entry
    return {**doc, "generation": plan_generation, "models": models}
