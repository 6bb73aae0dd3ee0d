"""The ``status`` of a ModelRollout: every bit of rollout state, so any operator process can resume.

:class:`Status` round-trips through the resource's JSON (``from_dict``/``to_dict``); times are
RFC 3339 strings in the resource and epoch seconds in code. Pure.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from rollout_operator.phases import plain

HISTORY = 5


def to_rfc3339(t: float) -> str:
    stamp = dt.datetime.fromtimestamp(t, tz=dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def from_rfc3339(s: str | None) -> float | None:
    if not s:
        return None
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


@dataclass
class AnalysisStatus:
    """Counters since the current rollout attempt started, the last result and the metric baseline."""

    measurements: int = 0
    successes: int = 0
    failures: int = 0
    inconclusives: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    last_measured_at: float | None = None
    baseline: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    history: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"{self.successes} ok, {self.failures} failed, {self.inconclusives} inconclusive" + (
            f", {self.errors} errors" if self.errors else ""
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "measurements": self.measurements,
            "successes": self.successes,
            "failures": self.failures,
            "inconclusives": self.inconclusives,
            "errors": self.errors,
            "consecutiveErrors": self.consecutive_errors,
            "summary": self.summary(),
            "history": list(self.history),
        }
        if self.last_measured_at is not None:
            out["lastMeasuredAt"] = to_rfc3339(self.last_measured_at)
        if self.baseline is not None:
            out["baseline"] = copy.deepcopy(self.baseline)
        if self.last is not None:
            out["last"] = copy.deepcopy(self.last)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> AnalysisStatus:
        d = d or {}
        return cls(
            measurements=int(d.get("measurements", 0)),
            successes=int(d.get("successes", 0)),
            failures=int(d.get("failures", 0)),
            inconclusives=int(d.get("inconclusives", 0)),
            errors=int(d.get("errors", 0)),
            consecutive_errors=int(d.get("consecutiveErrors", 0)),
            last_measured_at=from_rfc3339(d.get("lastMeasuredAt")),
            baseline=copy.deepcopy(d.get("baseline")),
            last=copy.deepcopy(d.get("last")),
            history=[str(h) for h in d.get("history", [])],
        )


@dataclass
class Status:
    """Everything the operator knows about one ModelRollout, as stored in ``.status``."""

    phase: str = ""  # a Phase ("" until the first reconcile)
    message: str = ""
    observed_generation: int = 0
    revision: str = ""
    attempt: int = 0
    stable_version: str = ""
    stable_revision: str = ""
    stable_source: dict[str, Any] | None = None
    canary_version: str = ""
    canary_source: dict[str, Any] | None = None
    current_step: int = 0
    steps: int = 0
    step_started_at: float | None = None
    pause_reason: str = ""  # a PauseReason or ""
    desired_weight: int = 0
    canary_weight: int = 0
    canary_replicas: int = 0
    promotion_started_at: float | None = None
    rollback_reason: str = ""  # a FailureReason or ""
    traffic_prepared: bool = False  # traffic strategy: every pod loaded the candidate (and verified it)
    traffic_generation: str = ""  # traffic strategy: the traffic-file generation every pod confirmed
    started_at: float | None = None
    finished_at: float | None = None
    handled: dict[str, str] = field(default_factory=dict)
    analysis: AnalysisStatus = field(default_factory=AnalysisStatus)
    conditions: list[dict[str, Any]] = field(default_factory=list)

    def copy(self) -> Status:
        return copy.deepcopy(self)

    @property
    def progress(self) -> str:
        return f"{self.current_step}/{self.steps}" if self.steps else "-"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "phase": plain(self.phase),
            "message": self.message,
            "observedGeneration": self.observed_generation,
            "revision": self.revision,
            "attempt": self.attempt,
            "stableVersion": self.stable_version,
            "stableRevision": self.stable_revision,
            "canaryVersion": self.canary_version,
            "currentStep": self.current_step,
            "steps": self.steps,
            "progress": self.progress,
            "pauseReason": plain(self.pause_reason),
            "desiredWeight": self.desired_weight,
            "canaryWeight": self.canary_weight,
            "canaryReplicas": self.canary_replicas,
            "rollbackReason": plain(self.rollback_reason),
            "trafficPrepared": self.traffic_prepared,
            "trafficGeneration": self.traffic_generation,
            "handled": dict(self.handled),
            "analysis": self.analysis.to_dict(),
            "conditions": copy.deepcopy(self.conditions),
        }
        if self.stable_source is not None:
            out["stableSource"] = dict(self.stable_source)
        if self.canary_source is not None:
            out["canarySource"] = dict(self.canary_source)
        for key, value in (
            ("stepStartedAt", self.step_started_at),
            ("promotionStartedAt", self.promotion_started_at),
            ("startedAt", self.started_at),
            ("finishedAt", self.finished_at),
        ):
            if value is not None:
                out[key] = to_rfc3339(value)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Status:
        d = d or {}
        return cls(
            phase=str(d.get("phase", "")),
            message=str(d.get("message", "")),
            observed_generation=int(d.get("observedGeneration", 0)),
            revision=str(d.get("revision", "")),
            attempt=int(d.get("attempt", 0)),
            stable_version=str(d.get("stableVersion", "")),
            stable_revision=str(d.get("stableRevision", "")),
            stable_source=dict(d["stableSource"]) if isinstance(d.get("stableSource"), dict) else None,
            canary_version=str(d.get("canaryVersion", "")),
            canary_source=dict(d["canarySource"]) if isinstance(d.get("canarySource"), dict) else None,
            current_step=int(d.get("currentStep", 0)),
            steps=int(d.get("steps", 0)),
            step_started_at=from_rfc3339(d.get("stepStartedAt")),
            pause_reason=str(d.get("pauseReason", "")),
            desired_weight=int(d.get("desiredWeight", 0)),
            canary_weight=int(d.get("canaryWeight", 0)),
            canary_replicas=int(d.get("canaryReplicas", 0)),
            promotion_started_at=from_rfc3339(d.get("promotionStartedAt")),
            rollback_reason=str(d.get("rollbackReason", "")),
            traffic_prepared=bool(d.get("trafficPrepared", False)),
            traffic_generation=str(d.get("trafficGeneration", "")),
            started_at=from_rfc3339(d.get("startedAt")),
            finished_at=from_rfc3339(d.get("finishedAt")),
            handled={str(k): str(v) for k, v in (d.get("handled") or {}).items()},
            analysis=AnalysisStatus.from_dict(d.get("analysis")),
            conditions=copy.deepcopy(list(d.get("conditions") or [])),
        )


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: float,
    generation: int,
) -> None:
    """Set one condition in place; ``lastTransitionTime`` moves only when the status flips."""
    value = "True" if status else "False"
    for cond in conditions:
        if cond.get("type") == type_:
            if cond.get("status") != value:
                cond["lastTransitionTime"] = to_rfc3339(now)
            cond.update(status=value, reason=plain(reason), message=message, observedGeneration=generation)
            return
    conditions.append(
        {
            "type": plain(type_),
            "status": value,
            "reason": plain(reason),
            "message": message,
            "lastTransitionTime": to_rfc3339(now),
            "observedGeneration": generation,
        }
    )
