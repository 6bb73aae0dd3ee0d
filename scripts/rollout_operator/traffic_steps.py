"""The traffic strategy's pass over its steps: pods confirming a traffic file, and each step kind.

A generation of the traffic file is *confirmed* when every serving pod of the target (ready, not
terminating, including pods added mid-rollout) reports it at ``GET /v1/modelship/traffic`` and
shows the versions it must (or must no longer) have AVAILABLE. :class:`TrafficPass` is one pass
(the canary's :class:`~rollout_operator.canary_steps.Canary` plus that bookkeeping); the step
kinds answer :class:`Done`, :class:`Waiting` or :class:`Expired` as the canary's do. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rollout_operator.actions import WAIT_SECONDS, ApplyTrafficConfig
from rollout_operator.canary_steps import STEP_KINDS, Canary, Done, Expired, StepOutcome, Waiting
from rollout_operator.context import Context
from rollout_operator.durations import format_duration
from rollout_operator.phases import EventReason, EventType
from rollout_operator.spec import Step
from rollout_operator.traffic_config import TrafficPlan, confirmed_weight, split_plan

SHOWN = 3  # pods named in a waiting message


def confirmation(
    ctx: Context, generation: str, available: Iterable[int] = (), gone: Iterable[int] = ()
) -> tuple[bool, str]:
    """Whether every serving pod applied ``generation`` (with ``available`` AVAILABLE and ``gone`` not),
    and a summary for the message."""
    pods = [p for p in ctx.obs.pods if p.serving]
    if not pods:
        return False, "no serving pod"
    need, must_go = set(available), set(gone)
    pending = []
    for pod in pods:
        t = ctx.obs.pod_traffic.get(pod.name)
        if t is None or t.error:
            pending.append(f"{pod.name}: {t.error if t else 'not asked yet'}")
        elif t.generation != generation:
            pending.append(f"{pod.name} at {t.generation or 'no generation'}")
        elif need - set(t.available):
            pending.append(f"{pod.name} lacks version {min(need - set(t.available))}")
        elif must_go & set(t.available):
            pending.append(f"{pod.name} still serves version {min(must_go & set(t.available))}")
    summary = f"{len(pods) - len(pending)}/{len(pods)} pod(s) applied {generation}"
    if pending:
        summary += f" ({'; '.join(pending[:SHOWN])}{'; ...' if len(pending) > SHOWN else ''})"
    return not pending, summary


def confirm(
    ctx: Context, plan: TrafficPlan, available: Iterable[int] = (), gone: Iterable[int] = ()
) -> tuple[bool, str]:
    """Write ``plan`` (idempotent) and tell whether every pod confirmed it; posts TrafficApplied once."""
    ctx.act(ApplyTrafficConfig(plan.generation, plan.entry))
    done, summary = confirmation(ctx, plan.generation, available, gone)
    st = ctx.st
    if done and st.traffic_generation != plan.generation:
        st.traffic_generation = plan.generation
        ctx.event(
            EventType.NORMAL,
            EventReason.TRAFFIC_APPLIED,
            f"every serving pod applied traffic generation {plan.generation}: {plan.entry}",
        )
    st.canary_weight = confirmed_weight(ctx.spec, st.traffic_generation)
    return done, summary


class TrafficPass(Canary):
    """One pass over the traffic strategy's progressing phases."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.stable = int(ctx.st.stable_version) if ctx.st.stable_version.isdigit() else 0
        self.candidate = int(ctx.st.canary_version or ctx.spec.model.version)

    def plan(self, index: int | None) -> TrafficPlan:
        st = self.ctx.st
        return split_plan(self.ctx.spec, self.ctx.obs.name, st.attempt, self.stable, self.candidate, index)

    def expired(self) -> bool:
        st = self.ctx.st
        return self.ctx.now - (st.step_started_at or self.ctx.now) > self.ctx.spec.progress_deadline


def _applied(t: TrafficPass, step: Step, extra: float | None) -> StepOutcome:
    """Done once every pod confirmed this step's generation (and ``extra`` seconds passed)."""
    ctx, st = t.ctx, t.ctx.st
    plan = t.plan(st.current_step)
    st.desired_weight = plan.weight
    done, summary = confirm(ctx, plan, available=(t.stable, t.candidate))
    where = f"step {st.current_step + 1}/{st.steps} ({step.describe()})"
    if not done:
        if t.expired():
            return Expired(
                f"not every pod applied traffic generation {plan.generation} at {where} within "
                f"{format_duration(ctx.spec.progress_deadline)}: {summary}"
            )
        return Waiting(f"{where}: waiting for the pods: {summary}", WAIT_SECONDS)
    if extra is None:
        return Done(summary)
    end = (st.step_started_at or ctx.now) + extra
    if ctx.consume("promote"):
        return Done(f"{summary}; promoted before the duration ended")
    if ctx.now >= end:
        return Done(f"{summary}; shadowed {format_duration(extra)}")
    return Waiting(f"{where}: {summary}; {format_duration(end - ctx.now)} more", end - ctx.now)


def _set_weight(c: Canary, step: Step) -> StepOutcome:
    assert isinstance(c, TrafficPass)
    return _applied(c, step, None)


def _shadow(c: Canary, step: Step) -> StepOutcome:
    """Like setWeight, then like a pause: its duration, or until promoted without one."""
    assert isinstance(c, TrafficPass)
    outcome = _applied(c, step, step.duration if step.duration is not None else None)
    if step.duration is None and isinstance(outcome, Done):
        return STEP_KINDS["pause"](c, step)
    return outcome


TRAFFIC_STEP_KINDS: dict[str, Callable[[Canary, Step], StepOutcome]] = {
    "setWeight": _set_weight,
    "shadow": _shadow,
    "pause": STEP_KINDS["pause"],
}
