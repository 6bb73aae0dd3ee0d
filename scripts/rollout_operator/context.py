"""The working state of one reconcile, shared by the phase modules (canary, promotion, rollback).

A :class:`Context` holds the status being built (a copy: the input is never changed), the
observations, the clock, and what the reconcile asks for so far: actions, events, the requeue
delay and the one-off commands (annotations with a fresh token) not consumed yet. Pure.
"""

from __future__ import annotations

from rollout_operator.actions import RESYNC_SECONDS, Action, DeleteCanary, Event
from rollout_operator.names import COMMAND_ANNOTATIONS
from rollout_operator.observations import Observations, TargetView
from rollout_operator.phases import EventReason, EventType, FailureReason, Phase
from rollout_operator.spec import ModelSpec, RolloutSpec, SpecError, live_revision, parse_source
from rollout_operator.status import Status


class Context:
    """One reconcile in progress. ``spec``, ``rev`` and ``target`` are set by
    :func:`rollout_operator.decide.reconcile` once the spec is valid and the target exists; the
    phase functions run only after that."""

    spec: RolloutSpec
    rev: str  # the spec's model revision
    target: TargetView

    def __init__(self, status: Status, obs: Observations, now: float) -> None:
        self.st = status.copy()
        self.obs = obs
        self.now = now
        self.actions: list[Action] = []
        self.events: list[Event] = []
        self.requeue = RESYNC_SECONDS
        self.commands: set[str] = set()

    # -- what the reconcile asks for ---------------------------------------------------------------

    def event(self, type_: EventType, reason: EventReason, message: str) -> None:
        self.events.append(Event(type_, reason, message))

    def wake(self, seconds: float) -> None:
        """Reconcile again within ``seconds`` (at least half a second from now)."""
        self.requeue = min(self.requeue, max(0.5, seconds))

    def act(self, action: Action) -> None:
        if action not in self.actions:
            self.actions.append(action)

    def tokens(self) -> dict[str, str]:
        """The command annotations present now: command -> token."""
        return {
            key: self.obs.annotations[ann]
            for key, ann in COMMAND_ANNOTATIONS.items()
            if self.obs.annotations.get(ann)
        }

    def consume(self, command: str) -> bool:
        """True (once) when ``command`` was given with a token not handled before."""
        if command in self.commands:
            self.commands.discard(command)
            return True
        return False

    # -- shared bookkeeping ----------------------------------------------------------------------

    def invalid(self, reason: FailureReason, message: str) -> None:
        """The spec or the target cannot be acted on: phase Invalid until it changes."""
        st = self.st
        if st.phase != Phase.INVALID or st.message != message:
            self.event(EventType.WARNING, EventReason(reason), message)
        st.phase, st.message, st.rollback_reason = Phase.INVALID, message, reason
        self.wake(RESYNC_SECONDS)

    def rolled_back(self, stable: str) -> None:
        """A rollback is done (any strategy): Failed or Aborted, and ``stable`` serves all traffic."""
        st = self.st
        why = st.message
        st.phase = Phase.ABORTED if st.rollback_reason == FailureReason.ABORTED else Phase.FAILED
        st.finished_at, st.promotion_started_at = self.now, None
        st.desired_weight = st.canary_weight = st.canary_replicas = 0
        st.message = f"{st.rollback_reason}: {why}; rolled back, {stable} serves all traffic"
        self.event(
            EventType.WARNING,
            EventReason.ROLLED_BACK,
            f"version {st.canary_version} rolled back ({st.rollback_reason}); {stable} serves all traffic",
        )

    def stable_label(self) -> str:
        return self.st.stable_version or "the chart's model"

    def track_stable(self) -> None:
        """Outside promotion and rollback, stable is whatever the serving Deployment's template holds
        (traffic strategy: the version the pods serve, kept in the status once known)."""
        st, t = self.st, self.target
        if self.spec.strategy.type == "traffic":
            if not st.stable_version and self.obs.stable_served_version:
                st.stable_version = self.obs.stable_served_version
            st.stable_revision = live_revision(st.stable_version) if st.stable_version.isdigit() else ""
            st.stable_source = None
            return
        previous = st.stable_revision
        st.stable_revision, st.stable_source = t.template_revision, t.template_source
        if t.template_version:
            st.stable_version = t.template_version
        elif self.obs.stable_served_version:
            st.stable_version = self.obs.stable_served_version
        elif previous != t.template_revision:
            st.stable_version = ""

    def stable_model(self) -> ModelSpec | None:
        """The model of the stable version, to restore on rollback (None: the chart's own)."""
        st = self.st
        if not st.stable_revision or not st.stable_source:
            return None
        try:
            return ModelSpec(
                version=int(st.stable_version),
                source=parse_source(st.stable_source),
                name=self.spec.model.name,
            )
        except (SpecError, ValueError):
            self.event(
                EventType.WARNING,
                EventReason.STABLE_UNKNOWN,
                "cannot read the stable model source; restoring the chart's model",
            )
            return None

    def flight(self) -> ModelSpec:
        """The model of the rollout in progress (the spec may have moved on during a promotion)."""
        st = self.st
        if st.revision == self.rev or not st.canary_source:
            return self.spec.model
        try:
            return ModelSpec(
                version=int(st.canary_version),
                source=parse_source(st.canary_source),
                name=self.spec.model.name,
            )
        except (SpecError, ValueError):
            return self.spec.model

    def cleanup_canary(self) -> bool:
        """Delete the canary if any of it is left; True when nothing is left."""
        if self.obs.canary is not None or self.obs.canary_pods:
            self.act(DeleteCanary())
            return False
        return True
