"""A simulated cluster for the traffic strategy: pods that read a traffic file with some lag.

The serving pods never change (the traffic strategy changes configuration, not pods); each one
applies the file the operator last wrote one tick after it was written (``stuck`` pods never do),
and serves as AVAILABLE exactly the versions the file pins (``[1]`` before any file). The status
is stored as the resource's JSON, so every reconcile starts from what a restarted operator reads.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rollout_operator import actions as act
from rollout_operator import decide, probe_plan
from rollout_operator.names import ANN_PROMOTE, ANN_PROMOTE_FULL, ANN_RETRY
from rollout_operator.observations import (
    Measurement,
    Observations,
    PodTraffic,
    PodView,
    TargetView,
    Verification,
)
from rollout_operator.spec import parse_spec
from rollout_operator.status import Status
from tests.scripts.rollout_operator.sim import NOW


def traffic_spec(**overrides: Any) -> dict[str, Any]:
    """shadow 100% 30s -> setWeight 5 -> pause 30s -> setWeight 50; analysis every 30s."""
    d: dict[str, Any] = {
        "targetRef": {"name": "prod-modelship"},
        "model": {"version": 2},
        "strategy": {
            "type": "traffic",
            "traffic": {
                "steps": [
                    {"shadow": {"percent": 100, "duration": "30s"}},
                    {"setWeight": 5},
                    {"pause": {"duration": "30s"}},
                    {"setWeight": 50},
                ],
                "stickyHeader": "x-user-id",
            },
        },
        "analysis": {"interval": "30s", "count": 1, "minRequests": 10, "errorRatio": {"max": 0.05}},
        "progressDeadlineSeconds": 120,
    }
    d.update({k: v for k, v in overrides.items() if v is not None})
    for k, v in overrides.items():
        if v is None:
            d.pop(k, None)
    return d


@dataclass
class TrafficPod:
    name: str
    generation: str = ""
    versions: tuple[int, ...] = (1,)
    stuck: bool = False
    ready: bool = True


@dataclass
class TrafficWorld:
    spec: dict[str, Any]
    replicas: int = 2
    status: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    now: float = NOW
    pods: list[TrafficPod] = field(default_factory=list)
    file: tuple[str, dict[str, Any]] | None = None  # (generation, the model's entry)
    written: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # each new file, in order
    overlay_error: str | None = None
    verify: Callable[[str], Verification] = lambda pod: Verification("passed", "ok")
    measure: Callable[[TrafficWorld], Measurement | None] = lambda world: None
    events: list[act.Event] = field(default_factory=list)
    decisions: list[act.Decision] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.pods:
            self.pods = [TrafficPod(f"pod-{i}") for i in range(self.replicas)]

    def observations(self, plan: probe_plan.ProbePlan | None = None, **kw: Any) -> Observations:
        views = tuple(
            PodView(name=p.name, uid=p.name, ip="10.0.0.1", containers_ready=p.ready, ready=p.ready)
            for p in self.pods
        )
        traffic = {
            p.name: PodTraffic(generation=p.generation, available=p.versions)
            for p in self.pods
            if p.ready and (plan is None or plan.traffic)
        }
        target = TargetView(
            name="prod-modelship",
            replicas=len(self.pods),
            available_replicas=len(self.pods),
            overlay_error=self.overlay_error,
            traffic_configmap="prod-traffic",
            traffic_key="traffic.json",
        )
        return Observations(
            name="linear",
            annotations=dict(self.annotations),
            target=target,
            pods=views,
            pod_traffic=traffic,
            stable_served_version="1",
            **kw,
        )

    def reconcile(self) -> act.Decision:
        spec = parse_spec(self.spec)
        status = Status.from_dict(copy.deepcopy(self.status))
        plan = probe_plan.plan_probes(spec, status, self.observations(), self.now)
        verifications = {}
        if plan.verify_versions:
            verifications = {p.name: self.verify(p.name) for p in self.pods if {1, 2} <= set(p.versions)}
        measurement = self.measure(self) if plan.measure else None
        obs = self.observations(plan, verifications=verifications, measurement=measurement)
        d = decide.reconcile(spec, status, obs, self.now)
        for action in d.actions:
            assert isinstance(action, act.ApplyTrafficConfig | act.DeleteCanary), action
            if isinstance(action, act.ApplyTrafficConfig):
                new = (action.generation, action.entry)
                if self.file != new:
                    self.written.append(new)
                self.file = new
        self.status = d.status.to_dict()
        self.events.extend(d.events)
        self.decisions.append(d)
        return d

    def tick(self, seconds: float = 5.0) -> act.Decision:
        d = self.reconcile()
        self.now += seconds
        if self.file is not None:
            for p in self.pods:
                if not p.stuck:
                    p.generation, p.versions = self.file[0], tuple(self.file[1]["versions"])
        return d

    def run_until(self, phases: tuple[str, ...], max_ticks: int = 200) -> act.Decision:
        for _ in range(max_ticks):
            d = self.tick()
            if d.status.phase in phases:
                return d
        raise AssertionError(f"not in {phases}: {self.status.get('phase')} {self.status.get('message')}")

    def command(self, name: str, token: str) -> None:
        self.annotations[
            {"promote": ANN_PROMOTE, "promoteFull": ANN_PROMOTE_FULL, "retry": ANN_RETRY}[name]
        ] = token

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events]

    def generations(self) -> list[str]:
        return [g for g, _ in self.written]
