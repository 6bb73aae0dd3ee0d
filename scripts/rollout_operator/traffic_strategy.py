"""The traffic strategy's progressing phases (Progressing, Paused): configuration, not pods.

No pod is created, restarted or replaced: the operator writes the model's entry of the server's
traffic file (:mod:`rollout_operator.traffic_config`) and waits until every serving pod applied it
(:mod:`rollout_operator.traffic_steps`). First the preparation: both versions loaded, the candidate
AVAILABLE on every pod (and, with ``analysis.disagreement``, answering like stable on the same
pod), none of the traffic on it; then the steps (setWeight, shadow, pause), then promotion
(:mod:`rollout_operator.traffic_phases`). Like :mod:`rollout_operator.canary`, an ordered list
of small steps, each True when it ended this reconcile. Pure.
"""

from __future__ import annotations

from collections.abc import Callable

from rollout_operator.actions import WAIT_SECONDS, ApplyTrafficConfig
from rollout_operator.canary import (
    _abort,
    _full_promotion,
    _measurement,
    _resume,
    _settle,
    roll_back_failed_verification,
)
from rollout_operator.canary_steps import Canary, Done, Expired
from rollout_operator.context import Context
from rollout_operator.durations import format_duration
from rollout_operator.phases import FailureReason, VerificationOutcome
from rollout_operator.promotion import begin_promotion
from rollout_operator.rollback import begin_rollback
from rollout_operator.traffic_steps import TRAFFIC_STEP_KINDS, TrafficPass, confirm


def progress(ctx: Context) -> None:
    """Move the traffic rollout on as far as the pods' confirmations allow."""
    t = TrafficPass(ctx)
    for step in STEPS:
        if step(t):
            return
    _settle(t)


def _as_traffic(c: Canary) -> TrafficPass:
    assert isinstance(c, TrafficPass)
    return c


def _stable_known(c: Canary) -> bool:
    t = _as_traffic(c)
    if t.stable:
        return False
    t.ctx.st.message = "waiting for a serving pod to report the stable version it serves"
    t.ctx.wake(WAIT_SECONDS)
    return True


def _failed_verification(c: Canary) -> bool:
    return roll_back_failed_verification(c, lambda pod: f"pod {pod}: version {c.ctx.st.canary_version}")


def _prepare(c: Canary) -> bool:
    """Both versions loaded on every pod, the candidate AVAILABLE (and verified); no traffic on it."""
    t, ctx = _as_traffic(c), c.ctx
    st = ctx.st
    if st.traffic_prepared:
        return False
    plan = t.plan(None)
    st.desired_weight = 0
    done, summary = confirm(ctx, plan, available=(t.stable, t.candidate))
    check = ctx.spec.analysis.disagreement if ctx.spec.analysis is not None else None
    if done and check is not None and check.inputs is not None:  # without inputs: shadow only
        serving = [p.name for p in ctx.obs.pods if p.serving]
        unverified = [
            n
            for n in serving
            if ctx.obs.verifications.get(n) is None
            or ctx.obs.verifications[n].outcome != VerificationOutcome.PASSED
        ]
        if unverified:
            done = False
            errors = c.verification_errors()
            summary += f"; verifying {len(serving) - len(unverified)}/{len(serving)} verified" + (
                f" ({'; '.join(errors[:3])})" if errors else ""
            )
    if done:
        st.traffic_prepared = True
        st.step_started_at = ctx.now
        return False
    if t.expired():
        begin_rollback(
            ctx,
            FailureReason.PROGRESS_DEADLINE_EXCEEDED,
            f"version {t.candidate} was not loaded and AVAILABLE on every pod within "
            f"{format_duration(ctx.spec.progress_deadline)}: {summary}",
        )
        return True
    c.waiting = f"preparing: versions [{t.stable}, {t.candidate}] on every pod: {summary}"
    ctx.wake(WAIT_SECONDS)
    return False


def _run_steps(c: Canary) -> bool:
    st, spec = c.ctx.st, c.ctx.spec
    steps = spec.strategy.steps
    while st.traffic_prepared and st.current_step < len(steps) and not st.pause_reason and not spec.paused:
        step = steps[st.current_step]
        outcome = TRAFFIC_STEP_KINDS[step.kind](c, step)
        if isinstance(outcome, Done):
            c.advance(outcome.note)
            continue
        if isinstance(outcome, Expired):
            begin_rollback(c.ctx, FailureReason.PROGRESS_DEADLINE_EXCEEDED, outcome.message)
            return True
        c.waiting = outcome.message
        if outcome.wake is not None:
            c.ctx.wake(outcome.wake)
        return False
    return False


def _keep_applied(c: Canary) -> bool:
    """The traffic of the current step stays written (idempotent), whatever held the steps."""
    t, st = _as_traffic(c), c.ctx.st
    plan = t.plan(st.current_step if st.traffic_prepared else None)
    if not any(isinstance(a, ApplyTrafficConfig) for a in c.ctx.actions):
        confirm(c.ctx, plan, available=(t.stable, t.candidate))
    st.desired_weight = plan.weight
    return False


def _completion(c: Canary) -> bool:
    ctx, st, spec = c.ctx, c.ctx.st, c.ctx.spec
    if (
        not st.traffic_prepared
        or st.current_step < len(spec.strategy.steps)
        or st.pause_reason
        or spec.paused
    ):
        return False
    need = spec.analysis.count if spec.analysis is not None else 0
    if st.analysis.successes >= need or ctx.consume("promote"):
        begin_promotion(ctx, f"all {st.steps} steps done, {st.analysis.successes} successful measurement(s)")
        return True
    c.waiting = (
        f"all steps done; waiting for analysis: {st.analysis.successes}/{need} successful measurements"
    )
    return False


STEPS: tuple[Callable[[Canary], bool], ...] = (
    _abort,
    _stable_known,
    _failed_verification,
    _measurement,
    _full_promotion,
    _resume,
    _prepare,
    _run_steps,
    _keep_applied,
    _completion,
)
