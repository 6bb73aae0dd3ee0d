"""Completion of one canary step, by kind: ``setWeight`` and ``pause`` (:data:`STEP_KINDS`).

:class:`Canary` is one pass over the canary phases (:mod:`rollout_operator.canary`): the
context plus the pod counts the steps judge and the note for the final message. Each step-kind
function answers :class:`Done` (with the note of the StepCompleted event), :class:`Waiting` or
:class:`Expired` (the step missed ``spec.progressDeadlineSeconds``). Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rollout_operator.actions import WAIT_SECONDS
from rollout_operator.context import Context
from rollout_operator.durations import format_duration
from rollout_operator.phases import EventReason, EventType, PauseReason, VerificationOutcome
from rollout_operator.spec import Step
from rollout_operator.weights import canary_replicas, weight_percent


class Canary:
    """One pass over the canary phases: the context plus what the steps tell the final message."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.waiting = ""  # why the rollout is not moving on, for the message
        obs = ctx.obs
        self.serving = sum(1 for p in obs.canary_pods if p.serving and p.revision == ctx.rev)
        self.stable_serving = sum(1 for p in obs.stable_pods if p.serving)
        self.cap = ctx.spec.strategy.canary.max_replicas

    def verification_errors(self) -> list[str]:
        return [
            f"{pod}: {v.message}"
            for pod, v in sorted(self.ctx.obs.verifications.items())
            if v.outcome == VerificationOutcome.ERROR
        ]

    def advance(self, note: str) -> None:
        """The current step is done: post StepCompleted and start the next one."""
        st = self.ctx.st
        step = self.ctx.spec.strategy.steps[st.current_step]
        self.ctx.event(
            EventType.NORMAL,
            EventReason.STEP_COMPLETED,
            f"step {st.current_step + 1}/{st.steps} ({step.describe()}) done: {note}",
        )
        st.current_step += 1
        st.step_started_at = self.ctx.now


@dataclass(frozen=True)
class Done:
    note: str  # for the StepCompleted event


@dataclass(frozen=True)
class Waiting:
    message: str  # for the status message ("" when an event already says it)
    wake: float | None = None  # reconcile again this soon


@dataclass(frozen=True)
class Expired:
    message: str  # the step missed spec.progressDeadlineSeconds: roll back


StepOutcome = Done | Waiting | Expired


def _set_weight(c: Canary, step: Step) -> StepOutcome:
    """Done when the canary Deployment has the step's replicas, all of them verified and serving."""
    ctx, st = c.ctx, c.ctx.st
    st.desired_weight = step.weight
    want = canary_replicas(ctx.target.replicas, step.weight, c.cap)
    dep = ctx.obs.canary
    if (
        dep is not None
        and dep.revision == ctx.rev
        and dep.up_to_date
        and dep.replicas == want
        and c.serving >= want
    ):
        return Done(
            f"{c.serving} canary pod(s) serving next to {c.stable_serving} stable "
            f"({weight_percent(c.serving, c.stable_serving)}% of pods)"
        )
    errors = c.verification_errors()
    if ctx.now - (st.step_started_at or ctx.now) > ctx.spec.progress_deadline:
        return Expired(
            f"the canary did not reach {want} verified, ready pod(s) at step "
            f"{st.current_step + 1} within {format_duration(ctx.spec.progress_deadline)}"
            + (f" ({'; '.join(errors)})" if errors else "")
        )
    return Waiting(
        f"step {st.current_step + 1}/{st.steps} (setWeight {step.weight}%): waiting for "
        f"{want} canary pod(s) to be verified and ready ({c.serving}/{want})"
        + (f"; verification: {'; '.join(errors)}" if errors else ""),
        WAIT_SECONDS,
    )


def _pause(c: Canary, step: Step) -> StepOutcome:
    """Done when its duration has passed, or when promoted; without a duration, only when promoted."""
    ctx, st = c.ctx, c.ctx.st
    if step.duration is None:
        if ctx.consume("promote"):
            return Done("promoted")
        st.pause_reason = PauseReason.MANUAL
        ctx.event(
            EventType.NORMAL,
            EventReason.PAUSED,
            f"step {st.current_step + 1}/{st.steps}: paused until promoted "
            "(scripts/rollout promote, or annotate modelship.io/promote)",
        )
        return Waiting("")
    end = (st.step_started_at or ctx.now) + step.duration
    if ctx.consume("promote"):
        return Done("promoted before the pause ended")
    if ctx.now >= end:
        return Done(f"paused {format_duration(step.duration)}")
    return Waiting(
        f"step {st.current_step + 1}/{st.steps}: pausing {format_duration(end - ctx.now)} more", end - ctx.now
    )


STEP_KINDS: dict[str, Callable[[Canary, Step], StepOutcome]] = {"setWeight": _set_weight, "pause": _pause}
