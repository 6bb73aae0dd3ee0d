"""Fixture builders and a tiny simulated cluster for testing the pure decision logic.

``World`` applies the decisions' actions the way Kubernetes would (a canary Deployment whose pods
start, become container-ready, and join the Service only after their gate is opened; a serving
Deployment whose template change rolls its pods), and stores the status as the JSON dict the
resource holds, so every reconcile starts from what a restarted operator would read.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rollout_operator import actions as act
from rollout_operator import decide, probe_plan
from rollout_operator.names import ANN_PROMOTE, ANN_PROMOTE_FULL, ANN_RETRY
from rollout_operator.observations import (
    CanaryView,
    Measurement,
    Observations,
    PodView,
    TargetView,
    Verification,
)
from rollout_operator.spec import RolloutSpec, parse_spec
from rollout_operator.status import Status

NOW = 1_800_000_000.0
SHA_A = "a" * 64
SHA_B = "b" * 64


def spec_dict(**overrides: Any) -> dict[str, Any]:
    """A canary spec: 25% -> pause 60s -> 50% -> pause until promoted, analysis every 30s."""
    d: dict[str, Any] = {
        "targetRef": {"name": "prod-modelship"},
        "model": {"version": 2, "source": {"url": "http://models.local/linear-2.tar.gz", "sha256": SHA_A}},
        "strategy": {
            "type": "canary",
            "canary": {
                "steps": [
                    {"setWeight": 25},
                    {"pause": {"duration": "60s"}},
                    {"setWeight": 50},
                    {"pause": {}},
                ],
            },
        },
        "analysis": {
            "interval": "30s",
            "count": 2,
            "failureLimit": 1,
            "inconclusiveLimit": 1,
            "consecutiveErrorLimit": 2,
            "minRequests": 10,
            "errorRatio": {"max": 0.05},
            "latencyP99": {"maxSeconds": 0.5},
        },
        "progressDeadlineSeconds": 300,
    }
    for key, value in overrides.items():
        if value is None:
            d.pop(key, None)
        else:
            d[key] = value
    return d


def mk_spec(**overrides: Any) -> RolloutSpec:
    return parse_spec(spec_dict(**overrides))


def result(phase: str, message: str = "") -> Measurement:
    return Measurement(
        kind="result",
        phase=phase,
        message=message or phase.lower(),  # type: ignore[arg-type]
        metrics=({"name": "errorRatio", "phase": phase, "value": 0.0},),
        baseline={"pods": {}},
    )


@dataclass
class SimPod:
    name: str
    revision: str
    canary: bool
    age: int = 0  # ticks since creation
    gate_open: bool = False
    terminating: int = 0  # ticks left before it is gone (0: not terminating)

    def view(self, gated: bool) -> PodView:
        containers_ready = self.age >= 1 and not self.terminating
        ready = containers_ready and (self.gate_open or not (self.canary and gated))
        return PodView(
            name=self.name,
            uid=self.name,
            ip="10.0.0.1",
            revision=self.revision,
            containers_ready=containers_ready,
            gate_open=self.gate_open,
            ready=ready,
            terminating=bool(self.terminating),
            canary=self.canary,
        )


@dataclass
class World:
    spec: dict[str, Any]
    replicas: int = 2
    stable_revision: str = ""
    stable_version: str = ""
    stable_source: dict[str, Any] | None = None
    status: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    now: float = NOW
    canary: tuple[int, str] | None = None  # (replicas, revision)
    pods: list[SimPod] = field(default_factory=list)
    rolling: int = 0  # ticks until the serving Deployment's rollout completes
    verify: Callable[[str], Verification] = lambda pod: Verification("passed", "ok")
    measure: Callable[[World], Measurement | None] = lambda world: None
    events: list[act.Event] = field(default_factory=list)
    actions: list[act.Action] = field(default_factory=list)
    min_stable_serving: int = 10**9
    verified: set[str] = field(default_factory=set)
    opened_unverified: list[str] = field(default_factory=list)
    _names: Any = field(default_factory=lambda: itertools.count())

    def __post_init__(self) -> None:
        self.pods = [
            SimPod(f"stable-{next(self._names)}", self.stable_revision, False, age=5)
            for _ in range(self.replicas)
        ]

    @property
    def gated(self) -> bool:
        return bool(self.spec.get("strategy", {}).get("canary", {}).get("trafficGate", True))

    def observations(
        self, verifications: dict[str, Verification] | None = None, measurement: Measurement | None = None
    ) -> Observations:
        target = TargetView(
            name="prod-modelship",
            replicas=self.replicas,
            available_replicas=sum(1 for p in self.pods if not p.canary and p.age >= 1),
            template_revision=self.stable_revision,
            template_version=self.stable_version,
            template_source=self.stable_source,
            rollout_complete=self.rolling == 0,
        )
        canary = None if self.canary is None else CanaryView(replicas=self.canary[0], revision=self.canary[1])
        return Observations(
            generation=int(self.spec.get("_generation", 1)),
            annotations=dict(self.annotations),
            target=target,
            canary=canary,
            pods=tuple(p.view(self.gated) for p in self.pods),
            verifications=verifications or {},
            measurement=measurement,
            stable_served_version="1",
        )

    def reconcile(self) -> act.Decision:
        spec = parse_spec({k: v for k, v in self.spec.items() if not k.startswith("_")})
        status = Status.from_dict(copy.deepcopy(self.status))
        plain = self.observations()
        plan = probe_plan.plan_probes(spec, status, plain, self.now)
        verifications = {name: self.verify(name) for name in plan.verify}
        self.verified.update(name for name, v in verifications.items() if v.outcome == "passed")
        measurement = self.measure(self) if plan.measure else None
        d = decide.reconcile(spec, status, self.observations(verifications, measurement), self.now)
        self.apply(d.actions)
        self.status = d.status.to_dict()  # what the resource stores
        self.events.extend(d.events)
        self.actions.extend(d.actions)
        return d

    def apply(self, actions: list[act.Action]) -> None:
        for action in actions:
            if isinstance(action, act.ApplyCanary):
                old = self.canary
                self.canary = (action.replicas, action.revision)
                if old is not None and old[1] != action.revision:
                    for p in self.pods:
                        if p.canary and not p.terminating:
                            p.terminating = 1
                live = [
                    p for p in self.pods if p.canary and not p.terminating and p.revision == action.revision
                ]
                for _ in range(action.replicas - len(live)):
                    self.pods.append(SimPod(f"canary-{next(self._names)}", action.revision, True))
                for p in live[action.replicas :]:
                    p.terminating = 1
            elif isinstance(action, act.DeleteCanary):
                self.canary = None
                for p in self.pods:
                    if p.canary and not p.terminating:
                        p.terminating = 1
            elif isinstance(action, act.OpenGate):
                if action.pod not in self.verified:
                    self.opened_unverified.append(action.pod)
                for p in self.pods:
                    if p.name == action.pod:
                        p.gate_open = True
            elif isinstance(action, act.ApplyTargetModel):
                rev = action.model.revision() if action.model else ""
                if rev != self.stable_revision:
                    self.stable_revision = rev
                    self.stable_version = str(action.model.version) if action.model else ""
                    self.stable_source = action.model.source_dict() if action.model else None
                    # surge: new pods first (maxUnavailable 0), old ones go once the new are up
                    for _ in range(self.replicas):
                        self.pods.append(SimPod(f"stable-{next(self._names)}", rev, False))
                    self.rolling = 2

    def tick(self, seconds: float = 5.0) -> act.Decision:
        """One reconcile, then time passes: pods age, terminating pods vanish, rollouts progress."""
        d = self.reconcile()
        self.now += seconds
        survivors = []
        for p in self.pods:
            p.age += 1
            if p.terminating:
                p.terminating += 1
                if p.terminating > 2:  # seen terminating by one reconcile, then gone
                    continue
            survivors.append(p)
        self.pods = survivors
        if self.rolling:
            self.rolling -= 1
            if self.rolling == 0:
                for p in self.pods:
                    if not p.canary and p.revision != self.stable_revision and not p.terminating:
                        p.terminating = 1
        serving_stable = sum(1 for p in self.pods if not p.canary and p.view(self.gated).serving)
        self.min_stable_serving = min(self.min_stable_serving, serving_stable)
        return d

    def run_until(self, phases: tuple[str, ...], max_ticks: int = 200, seconds: float = 5.0) -> act.Decision:
        d = self.tick(seconds)
        for _ in range(max_ticks):
            if d.status.phase in phases:
                return d
            d = self.tick(seconds)
        raise AssertionError(
            f"not in {phases} after {max_ticks} ticks: {self.status.get('phase')} "
            f"{self.status.get('message')}"
        )

    def command(self, name: str, token: str) -> None:
        self.annotations[
            {"promote": ANN_PROMOTE, "promoteFull": ANN_PROMOTE_FULL, "retry": ANN_RETRY}[name]
        ] = token

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events]
