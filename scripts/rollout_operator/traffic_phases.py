"""The traffic strategy's promotion and rollback: only one version left in the traffic file.

Promoting writes ``versions: [candidate]`` (no weights, no shadow) and succeeds once every serving
pod applied it and none serves the stable version any more; the Deployment is never changed.
Rolling back writes ``versions: [stable]`` and ends once every pod applied it and none serves
the candidate. The stable version lives in ``status.stableVersion``. Pure.
"""

from __future__ import annotations

from rollout_operator.actions import WAIT_SECONDS
from rollout_operator.context import Context
from rollout_operator.durations import format_duration
from rollout_operator.phases import EventReason, EventType, FailureReason, Phase
from rollout_operator.traffic_config import PROMOTE, ROLLBACK, TrafficPlan, only_plan
from rollout_operator.traffic_steps import confirm

RETRY_SECONDS = 3.0


def _plan(ctx: Context, version: int, label: str) -> TrafficPlan:
    return only_plan(ctx.obs.name, ctx.st.attempt, version, label)


def _candidate(ctx: Context) -> int:
    return int(ctx.st.canary_version or ctx.spec.model.version)


def begin_traffic_promotion(ctx: Context, why: str) -> None:
    st = ctx.st
    st.phase, st.promotion_started_at, st.pause_reason = Phase.PROMOTING, ctx.now, ""
    plan = _plan(ctx, _candidate(ctx), PROMOTE)
    st.desired_weight = 100
    confirm(ctx, plan)
    ctx.event(
        EventType.NORMAL,
        EventReason.PROMOTION_STARTED,
        f"promoting model version {_candidate(ctx)}: traffic generation {plan.generation} keeps only it "
        f"loaded on every pod, no pod restarted ({why})",
    )
    st.message = f"promoting: every pod is to serve only version {_candidate(ctx)}"
    ctx.wake(WAIT_SECONDS)


def traffic_promoting(ctx: Context) -> None:
    # rollback and measurement import this module (rollback dispatches here): import them late
    from rollout_operator.measurement import record_measurement
    from rollout_operator.rollback import begin_rollback

    st, spec = ctx.st, ctx.spec
    if spec.abort:
        begin_rollback(
            ctx, FailureReason.ABORTED, "aborted by the user during promotion (spec.abort is true)"
        )
        return
    if record_measurement(ctx):
        return
    candidate = _candidate(ctx)
    stable = [int(st.stable_version)] if st.stable_version.isdigit() else []
    done, summary = confirm(ctx, _plan(ctx, candidate, PROMOTE), available=(candidate,), gone=stable)
    if done:
        _succeed(ctx, candidate)
        return
    if ctx.now - (st.promotion_started_at or ctx.now) > spec.progress_deadline:
        begin_rollback(
            ctx,
            FailureReason.PROMOTION_FAILED,
            f"not every pod served only version {candidate} within "
            f"{format_duration(spec.progress_deadline)}: {summary}",
        )
        return
    st.message = f"promoting: every pod is to serve only version {candidate}: {summary}"
    ctx.wake(WAIT_SECONDS)


def _succeed(ctx: Context, candidate: int) -> None:
    st = ctx.st
    took = ctx.now - (st.started_at or ctx.now)
    st.phase, st.finished_at = Phase.SUCCEEDED, ctx.now
    st.stable_version, st.stable_revision, st.stable_source = str(candidate), st.revision, None
    st.canary_version, st.canary_source = "", None
    st.desired_weight, st.canary_weight, st.canary_replicas = 0, 0, 0
    st.promotion_started_at = None
    pods = sum(1 for p in ctx.obs.pods if p.serving)
    st.message = (
        f"model version {candidate} is stable on all {pods} pod(s) (traffic file {st.traffic_generation})"
    )
    ctx.event(EventType.NORMAL, EventReason.ROLLOUT_SUCCEEDED, f"{st.message}; took {format_duration(took)}")


def traffic_rolling_back(ctx: Context) -> None:
    st = ctx.st
    ctx.cleanup_canary()
    if not st.stable_version.isdigit():
        st.message = "cannot roll back: the stable version is unknown (no pod reported one)"
        ctx.wake(RETRY_SECONDS)
        return
    stable = int(st.stable_version)
    candidate = [int(st.canary_version)] if st.canary_version.isdigit() else []
    st.desired_weight = 0
    done, _summary = confirm(ctx, _plan(ctx, stable, ROLLBACK), available=(stable,), gone=candidate)
    if not done:  # the message keeps the reason of the rollback until it is done
        ctx.wake(RETRY_SECONDS)
        return
    ctx.rolled_back(f"version {stable}")
