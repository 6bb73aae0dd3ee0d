"""The canary phases (Progressing, Paused): an ordered list of small steps, like Argo Rollouts'.

:func:`progress` runs :data:`STEPS` in order; each returns True when it ended this reconcile
(a rollback, a promotion, a stale canary to remove first). Completion of the current canary step
is decided by one function per step kind (:data:`rollout_operator.canary_steps.STEP_KINDS`).
When no step stopped, the phase and the message are derived once from the final state
(:func:`_settle`). Pure.
"""

from __future__ import annotations

from collections.abc import Callable

from rollout_operator.actions import ApplyCanary, DeleteCanary, OpenGate
from rollout_operator.canary_steps import STEP_KINDS, Canary, Done, Expired
from rollout_operator.context import Context
from rollout_operator.measurement import record_measurement
from rollout_operator.phases import (
    EventReason,
    EventType,
    FailureReason,
    PauseReason,
    Phase,
    VerificationOutcome,
)
from rollout_operator.promotion import begin_promotion
from rollout_operator.rollback import begin_rollback
from rollout_operator.weights import canary_replicas, weight_percent

STALE_CANARY_SECONDS = 2.0


def progress(ctx: Context) -> None:
    """Move the canary on as far as the observations allow."""
    canary = Canary(ctx)
    for step in STEPS:
        if step(canary):
            return
    _settle(canary)


# -- the steps, in order ---------------------------------------------------------------------------


def _abort(c: Canary) -> bool:
    if c.ctx.spec.abort:
        begin_rollback(c.ctx, FailureReason.ABORTED, "aborted by the user (spec.abort is true)")
        return True
    return False


def roll_back_failed_verification(c: Canary, subject: Callable[[str], str]) -> bool:
    """A pod that failed verification rolls back; ``subject`` names what failed, for the message."""
    for pod, verification in sorted(c.ctx.obs.verifications.items()):
        if verification.outcome == VerificationOutcome.FAILED:
            begin_rollback(
                c.ctx,
                FailureReason.VERIFICATION_FAILED,
                f"{subject(pod)} failed verification: {verification.message}",
            )
            return True
    return False


def _failed_verification(c: Canary) -> bool:
    return roll_back_failed_verification(c, lambda pod: f"canary pod {pod}")


def _measurement(c: Canary) -> bool:
    return record_measurement(c.ctx)


def _full_promotion(c: Canary) -> bool:
    if not c.ctx.consume("promoteFull"):
        return False
    c.ctx.event(
        EventType.NORMAL,
        EventReason.PROMOTED_FULL,
        "full promotion requested: skipping the remaining steps and analysis",
    )
    begin_promotion(c.ctx, "full promotion requested")
    return True


def _stale_canary(c: Canary) -> bool:
    """A canary of another revision goes before this one starts."""
    ctx = c.ctx
    if ctx.obs.canary is None or ctx.obs.canary.revision == ctx.rev:
        return False
    ctx.act(DeleteCanary())
    ctx.st.message = "removing the canary of the previous version before starting this one"
    ctx.st.phase = Phase.PROGRESSING
    ctx.wake(STALE_CANARY_SECONDS)
    return True


def _resume(c: Canary) -> bool:
    """A promote ends an inconclusive-analysis pause or a manual pause step."""
    st = c.ctx.st
    if st.pause_reason == PauseReason.INCONCLUSIVE and c.ctx.consume("promote"):
        st.pause_reason = ""
        st.analysis.inconclusives = 0
        c.ctx.event(
            EventType.NORMAL, EventReason.RESUMED, "promoted past inconclusive analysis; measuring again"
        )
    elif st.pause_reason == PauseReason.MANUAL and c.ctx.consume("promote"):
        st.pause_reason = ""
        c.advance("promoted")
    return False


def _open_gates(c: Canary) -> bool:
    """Verified canary pods join the Service."""
    for pod, verification in sorted(c.ctx.obs.verifications.items()):
        if verification.outcome == VerificationOutcome.PASSED:
            c.ctx.act(OpenGate(pod))
            c.ctx.event(
                EventType.NORMAL,
                EventReason.TRAFFIC_GATE_OPENED,
                f"canary pod {pod} verified ({verification.message}); letting it into the Service",
            )
    return False


def _run_steps(c: Canary) -> bool:
    """Complete canary steps until one is not done yet (or a pause holds them)."""
    st, spec = c.ctx.st, c.ctx.spec
    steps = spec.strategy.steps
    while st.current_step < len(steps) and not st.pause_reason and not spec.paused:
        step = steps[st.current_step]
        outcome = STEP_KINDS[step.kind](c, step)
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


def _scale_canary(c: Canary) -> bool:
    """The canary Deployment at the replicas of the desired weight; the weight its serving pods give."""
    ctx, st = c.ctx, c.ctx.st
    want = canary_replicas(ctx.target.replicas, st.desired_weight, c.cap)
    ctx.act(ApplyCanary(ctx.spec.model, want))
    st.canary_replicas = want
    st.canary_weight = weight_percent(c.serving, c.stable_serving)
    return False


def _completion(c: Canary) -> bool:
    """All steps done: promote once the analysis has its successes (or a human promotes)."""
    ctx, st, spec = c.ctx, c.ctx.st, c.ctx.spec
    if st.current_step < len(spec.strategy.steps) or st.pause_reason or spec.paused:
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
    _failed_verification,
    _measurement,
    _full_promotion,
    _stale_canary,
    _resume,
    _open_gates,
    _run_steps,
    _scale_canary,
    _completion,
)


# -- the phase and message, from the final state ----------------------------------------------------


def _settle(c: Canary) -> None:
    st, spec = c.ctx.st, c.ctx.spec
    st.phase = Phase.PAUSED if (spec.paused or st.pause_reason) else Phase.PROGRESSING
    if spec.paused:
        st.message = f"paused by spec.paused at step {min(st.current_step + 1, st.steps)}/{st.steps}"
    elif st.pause_reason == PauseReason.MANUAL:
        st.message = (
            f"step {st.current_step + 1}/{st.steps}: paused until promoted; canary {st.canary_version} "
            f"at {st.canary_weight}% of {'requests' if spec.strategy.type == 'traffic' else 'pods'}; "
            f"analysis {st.analysis.summary()}"
        )
    elif st.pause_reason == PauseReason.INCONCLUSIVE:
        st.message = (
            f"paused: analysis inconclusive {st.analysis.inconclusives} times "
            f"({(st.analysis.last or {}).get('message', '')}); promote to continue or abort"
        )
    else:
        st.message = c.waiting or f"step {st.current_step + 1}/{st.steps}"
