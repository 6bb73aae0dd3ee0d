"""Which pods the driver must ask before a reconcile: canary pods to verify, whether to measure.

The driver calls :func:`plan_probes` on the Kubernetes part of the observations, runs the probes
(:mod:`rollout_operator.probes`) and hands their answers to
:func:`rollout_operator.decide.reconcile` in the observations. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from rollout_operator.observations import Observations
from rollout_operator.phases import ACTIVE_PHASES, CANARY_PHASES, MEASURED_PHASES, Phase
from rollout_operator.spec import RolloutSpec, SpecError
from rollout_operator.status import Status


@dataclass(frozen=True)
class ProbePlan:
    """What the driver must ask the pods before reconciling."""

    verify: tuple[str, ...] = ()
    measure: bool = False
    stable_version: bool = False
    traffic: bool = False  # traffic strategy: ask every serving pod what traffic file it applied
    verify_versions: bool = False  # traffic strategy: verify the candidate next to stable on each pod


def plan_probes(spec: RolloutSpec | SpecError, status: Status, obs: Observations, now: float) -> ProbePlan:
    """Pods to verify (canary pods ready but not yet let into the Service) and whether a measurement
    is due. Reads only the Kubernetes part of ``obs``."""
    if isinstance(spec, SpecError) or obs.target is None:
        return ProbePlan()
    rev = spec.model.revision()
    current = status.revision == rev
    if spec.strategy.type == "traffic":
        return _traffic_plan(spec, status, obs, now, current)
    return ProbePlan(
        verify=_to_verify(spec, status, obs, rev) if current else (),
        measure=current and _measurement_due(spec, status, obs, now, rev),
        stable_version=(
            not status.stable_version
            and not obs.target.template_version
            and any(p.serving for p in obs.stable_pods)
        ),
    )


def _to_verify(spec: RolloutSpec, status: Status, obs: Observations, rev: str) -> tuple[str, ...]:
    """Canary pods of this revision that are ready but still kept out of the Service by the gate."""
    if status.phase not in CANARY_PHASES or spec.strategy.type != "canary":
        return ()
    if not spec.strategy.canary.traffic_gate:
        return ()
    return tuple(
        p.name
        for p in obs.canary_pods
        if p.revision == rev and p.containers_ready and not p.gate_open and not p.terminating
    )


def _measurement_due(spec: RolloutSpec, status: Status, obs: Observations, now: float, rev: str) -> bool:
    """An analysis interval has passed since the last measurement and a pod of ``rev`` serves."""
    if spec.analysis is None or status.phase not in MEASURED_PHASES:
        return False
    last = status.analysis.last_measured_at
    due = last is None or now - last >= spec.analysis.interval - 0.5
    return due and any(p.serving and p.revision == rev for p in obs.pods)


def _traffic_plan(
    spec: RolloutSpec, status: Status, obs: Observations, now: float, current: bool
) -> ProbePlan:
    """Traffic strategy: every serving pod reports its traffic file; verification while preparing;
    a measurement once the candidate is loaded everywhere."""
    serving = any(p.serving for p in obs.pods)
    analysis = spec.analysis
    due = False
    if analysis is not None and current and status.phase in MEASURED_PHASES and status.traffic_prepared:
        last = status.analysis.last_measured_at
        due = serving and (last is None or now - last >= analysis.interval - 0.5)
    return ProbePlan(
        measure=due,
        stable_version=not status.stable_version and serving,
        traffic=serving and status.phase in (*ACTIVE_PHASES, Phase.PENDING, Phase.INVALID, ""),
        verify_versions=(
            current
            and status.phase in CANARY_PHASES
            and not status.traffic_prepared
            and analysis is not None
            and analysis.disagreement is not None
            and analysis.disagreement.inputs is not None
        ),
    )
