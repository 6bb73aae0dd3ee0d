"""Rolling back: remove the canary and, when a promotion had started, restore the stable model.

Ends in Failed, or Aborted when the user asked for it (``spec.abort``). Pure.
"""

from __future__ import annotations

from rollout_operator.actions import ApplyTargetModel
from rollout_operator.context import Context
from rollout_operator.phases import EventReason, EventType, FailureReason, Phase
from rollout_operator.traffic_phases import traffic_rolling_back

RETRY_SECONDS = 3.0


def begin_rollback(ctx: Context, reason: FailureReason, message: str) -> None:
    st = ctx.st
    restoring = st.promotion_started_at is not None
    st.phase, st.rollback_reason, st.pause_reason, st.message = Phase.ROLLING_BACK, reason, "", message
    if ctx.spec.strategy.type == "traffic":
        ctx.event(
            EventType.WARNING,
            EventReason.ROLLBACK_STARTED,
            f"{reason}: {message}; the traffic file keeps only version {ctx.stable_label()} loaded",
        )
        traffic_rolling_back(ctx)
        return
    ctx.event(
        EventType.WARNING,
        EventReason.ROLLBACK_STARTED,
        f"{reason}: {message}; removing the canary"
        + (f" and restoring {ctx.stable_label()} on Deployment {ctx.target.name}" if restoring else ""),
    )
    rolling_back(ctx)


def rolling_back(ctx: Context) -> None:
    if ctx.spec.strategy.type == "traffic":
        traffic_rolling_back(ctx)
        return
    st, t = ctx.st, ctx.target
    done = ctx.cleanup_canary()
    if st.promotion_started_at is not None:
        ctx.act(ApplyTargetModel(ctx.stable_model()))
        done = done and t.template_revision == st.stable_revision and t.rollout_complete
    if not done:
        ctx.wake(RETRY_SECONDS)
        return
    ctx.rolled_back(ctx.stable_label())
