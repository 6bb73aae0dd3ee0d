"""What one reconcile asks for: actions on the cluster, events to post, and when to look again.

:func:`rollout_operator.decide.reconcile` returns a :class:`Decision`; the driver
(:mod:`rollout_operator.driver`) performs its actions in order, all idempotent (server-side apply
of a whole desired state, delete, set a pod condition), then writes the status and posts the
events. Pure values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rollout_operator.phases import EventReason, EventType
from rollout_operator.spec import ModelSpec
from rollout_operator.status import Status

RESYNC_SECONDS = 30.0  # look again at least this often, whatever happens
WAIT_SECONDS = 5.0  # look again this soon while waiting for pods


@dataclass(frozen=True)
class ApplyCanary:
    """Create or update the canary Deployment: current serving template + ``model``, ``replicas`` pods."""

    model: ModelSpec
    replicas: int

    @property
    def revision(self) -> str:
        return self.model.revision()


@dataclass(frozen=True)
class DeleteCanary:
    """Delete the canary Deployment (its pods drain gracefully)."""


@dataclass(frozen=True)
class ApplyTargetModel:
    """Server-side apply the operator's model fields on the serving Deployment (None: the chart's model)."""

    model: ModelSpec | None


@dataclass(frozen=True)
class OpenGate:
    """Set the traffic readiness-gate condition of a verified canary pod to True."""

    pod: str


@dataclass(frozen=True)
class ApplyTrafficConfig:
    """Server-side apply the model's entry of the server's traffic file (other models kept as found)."""

    generation: str
    entry: dict[str, Any] = field(hash=False)


Action = ApplyCanary | DeleteCanary | ApplyTargetModel | OpenGate | ApplyTrafficConfig


@dataclass(frozen=True)
class Event:
    """One Kubernetes Event on the ModelRollout."""

    type: EventType
    reason: EventReason
    message: str


@dataclass
class Decision:
    """The next status, the actions that move the cluster towards it, and the requeue delay."""

    status: Status
    actions: list[Action] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    requeue_after: float = RESYNC_SECONDS
