"""Promoting: the serving Deployment takes the new model with its own rolling-update policy.

The canary stays up until that rollout is complete (and, for the ``rolling`` strategy, until
enough measurements succeeded), then it is deleted and the new version is stable. Pure.
"""

from __future__ import annotations

from rollout_operator.actions import WAIT_SECONDS, ApplyTargetModel
from rollout_operator.context import Context
from rollout_operator.durations import format_duration
from rollout_operator.measurement import record_measurement
from rollout_operator.phases import EventReason, EventType, FailureReason, Phase
from rollout_operator.rollback import begin_rollback
from rollout_operator.spec import ModelSpec
from rollout_operator.traffic_phases import begin_traffic_promotion, traffic_promoting


def begin_promotion(ctx: Context, why: str) -> None:
    if ctx.spec.strategy.type == "traffic":
        begin_traffic_promotion(ctx, why)
        return
    st, model = ctx.st, ctx.flight()
    st.phase, st.promotion_started_at, st.pause_reason = Phase.PROMOTING, ctx.now, ""
    ctx.act(ApplyTargetModel(model))
    ctx.event(
        EventType.NORMAL,
        EventReason.PROMOTION_STARTED,
        f"promoting model version {model.version}: updating Deployment {ctx.target.name} "
        f"with its own rolling-update policy ({why})",
    )
    st.message = f"promoting: Deployment {ctx.target.name} is rolling to version {model.version}"
    ctx.wake(WAIT_SECONDS)


def promoting(ctx: Context) -> None:
    if ctx.spec.strategy.type == "traffic":
        traffic_promoting(ctx)
        return
    st, spec, t, model = ctx.st, ctx.spec, ctx.target, ctx.flight()
    if spec.abort:
        begin_rollback(
            ctx, FailureReason.ABORTED, "aborted by the user during promotion (spec.abort is true)"
        )
        return
    if record_measurement(ctx):
        return
    ctx.act(ApplyTargetModel(model))
    if t.template_revision == st.revision and t.rollout_complete:
        need = spec.analysis.count if spec.analysis is not None and spec.strategy.type == "rolling" else 0
        if st.analysis.successes < need:
            st.message = (
                f"Deployment {t.name} runs version {model.version} on all pods; waiting for "
                f"analysis: {st.analysis.successes}/{need} successful measurements"
            )
            ctx.wake(WAIT_SECONDS)
            return
        _succeed(ctx, model)
        return
    elapsed = ctx.now - (st.promotion_started_at or ctx.now)
    if t.progress_failed or elapsed > spec.progress_deadline:
        begin_rollback(
            ctx,
            FailureReason.PROMOTION_FAILED,
            f"Deployment {t.name} did not finish rolling to version "
            f"{model.version} within {format_duration(spec.progress_deadline)}",
        )
        return
    st.message = (
        f"promoting: Deployment {t.name} rolling to version {model.version} "
        f"({t.available_replicas}/{t.replicas} available)"
    )
    ctx.wake(WAIT_SECONDS)


def _succeed(ctx: Context, model: ModelSpec) -> None:
    """Every pod runs ``model``: delete the canary; it is the stable version now."""
    st, t = ctx.st, ctx.target
    ctx.cleanup_canary()
    took = ctx.now - (st.started_at or ctx.now)
    st.phase, st.finished_at = Phase.SUCCEEDED, ctx.now
    st.stable_version, st.stable_revision = str(model.version), st.revision
    st.stable_source = model.source_dict()
    st.canary_version, st.canary_source = "", None
    st.desired_weight, st.canary_weight, st.canary_replicas = 0, 0, 0
    st.promotion_started_at = None
    st.message = f"model version {model.version} is stable on all {t.replicas} pod(s)"
    ctx.event(EventType.NORMAL, EventReason.ROLLOUT_SUCCEEDED, f"{st.message}; took {format_duration(took)}")
