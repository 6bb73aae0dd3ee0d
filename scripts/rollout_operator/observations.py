"""What the operator observed of the cluster (and of the pods' answers) for one reconcile.

:mod:`rollout_operator.driver` builds these from API objects and probe results;
:mod:`rollout_operator.decide` reads only these, so the decision logic is testable with
plain fixture values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from rollout_operator.phases import Verdict, VerificationOutcome


@dataclass(frozen=True)
class PodView:
    """One serving pod (stable or canary)."""

    name: str
    uid: str = ""
    ip: str = ""
    revision: str = ""  # the modelship.io/model-revision pod annotation ("" = the chart's model)
    containers_ready: bool = False
    gate_open: bool = False  # the modelship.io/traffic readiness-gate condition is True
    ready: bool = False  # the pod's Ready condition: in the Service's endpoints
    terminating: bool = False
    canary: bool = False

    @property
    def serving(self) -> bool:
        """Receives Service traffic."""
        return self.ready and not self.terminating


@dataclass(frozen=True)
class TargetView:
    """The serving Deployment (the Helm release's): desired replicas, template model and rollout state."""

    name: str
    replicas: int
    available_replicas: int = 0
    template_revision: str = ""  # modelship.io/model-revision on its pod template ("" = chart's model)
    template_version: str = ""
    template_source: dict[str, Any] | None = None
    rollout_complete: bool = True  # every pod runs the current template and is available
    progress_failed: bool = False  # Progressing=False, ProgressDeadlineExceeded
    overlay_error: str | None = None  # why the operator cannot put a model version into this template
    traffic_configmap: str = ""  # the ConfigMap holding the server's traffic file ("" = none mounted)
    traffic_key: str = ""  # its key (the file's name)


@dataclass(frozen=True)
class CanaryView:
    """The canary Deployment the operator made."""

    replicas: int
    revision: str
    ready_replicas: int = 0
    up_to_date: bool = True  # the Deployment controller has seen the latest spec


@dataclass(frozen=True)
class Verification:
    """Result of checking one canary pod before it gets traffic."""

    outcome: VerificationOutcome
    message: str = ""


@dataclass(frozen=True)
class PodTraffic:
    """What one serving pod reports: the traffic-file generation it applied and its AVAILABLE versions."""

    generation: str = ""
    available: tuple[int, ...] = ()
    error: str = ""  # the pod could not be asked ("" = answered)


@dataclass(frozen=True)
class Measurement:
    """One analysis measurement (``kind="baseline"`` only records counters to diff against later)."""

    kind: Literal["baseline", "result"]
    phase: Verdict | Literal[""] = ""
    message: str = ""
    metrics: tuple[dict[str, Any], ...] = ()
    baseline: dict[str, Any] | None = None


@dataclass(frozen=True)
class Observations:
    generation: int = 1
    annotations: dict[str, str] = field(default_factory=dict)
    target: TargetView | None = None
    canary: CanaryView | None = None
    pods: tuple[PodView, ...] = ()
    verifications: dict[str, Verification] = field(default_factory=dict)
    measurement: Measurement | None = None
    stable_served_version: str = ""
    name: str = ""  # the ModelRollout's name
    pod_traffic: dict[str, PodTraffic] = field(default_factory=dict)  # by pod name (traffic strategy)

    @property
    def canary_pods(self) -> tuple[PodView, ...]:
        return tuple(p for p in self.pods if p.canary)

    @property
    def stable_pods(self) -> tuple[PodView, ...]:
        return tuple(p for p in self.pods if not p.canary)
