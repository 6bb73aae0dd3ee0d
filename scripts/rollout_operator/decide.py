"""The rollout state machine: ``reconcile(spec, status, observations, now) -> Decision``. Pure.

Level-triggered: the decision depends only on the spec, the stored status and what is observed
now, and every action is idempotent (server-side apply of a whole desired state, delete,
set-a-condition), so running a reconcile twice, or after a crash between acting and writing the
status, converges to the same place. :func:`rollout_operator.probe_plan.plan_probes` says which
pods the driver must verify or measure first; their answers arrive in the observations.

Phases: Pending -> Progressing <-> Paused -> Promoting -> Succeeded, and from any active phase
RollingBack -> Failed (analysis, verification, deadline) or Aborted (``spec.abort``). Failed and
Aborted wait for a retry (or, for Aborted, ``spec.abort: false``) or a new model in the spec.
This module starts rollouts and dispatches on the phase; :mod:`~rollout_operator.canary`,
:mod:`~rollout_operator.promotion` and :mod:`~rollout_operator.rollback` run the phases.
"""

from __future__ import annotations

from rollout_operator.actions import ApplyTargetModel, Decision
from rollout_operator.canary import progress
from rollout_operator.conditions import update_conditions
from rollout_operator.context import Context
from rollout_operator.observations import Observations
from rollout_operator.phases import (
    CANARY_PHASES,
    MEASURED_PHASES,
    EventReason,
    EventType,
    FailureReason,
    Phase,
)
from rollout_operator.promotion import begin_promotion, promoting
from rollout_operator.rollback import begin_rollback, rolling_back
from rollout_operator.spec import RolloutSpec, SpecError
from rollout_operator.status import AnalysisStatus, Status
from rollout_operator.traffic_strategy import progress as traffic_progress

NO_TARGET_SECONDS = 10.0


def reconcile(spec: RolloutSpec | SpecError, status: Status, obs: Observations, now: float) -> Decision:
    """Compute the next status and the actions that move the cluster towards it."""
    ctx = Context(status, obs, now)
    ctx.st.observed_generation = obs.generation
    if isinstance(spec, SpecError):
        ctx.invalid(FailureReason.INVALID_SPEC, str(spec))
    else:
        _reconcile(ctx, spec)
    return _finish(ctx, spec)


def _reconcile(ctx: Context, spec: RolloutSpec) -> None:
    st = ctx.st
    ctx.spec, ctx.rev = spec, spec.model.revision()
    if not st.phase:
        st.phase = Phase.PENDING
        st.handled = ctx.tokens()  # commands set before the operator ever saw the rollout are history
    tokens = ctx.tokens()
    ctx.commands = {k for k, v in tokens.items() if st.handled.get(k) != v}
    st.handled.update(tokens)
    target = ctx.obs.target
    if target is None:
        st.message = f"waiting for Deployment {spec.target} to exist"
        if st.phase in (Phase.PENDING, Phase.INVALID):
            st.phase = Phase.PENDING
        ctx.wake(NO_TARGET_SECONDS)
        return
    ctx.target = target
    if target.overlay_error and st.phase != Phase.ROLLING_BACK:
        ctx.invalid(FailureReason.INVALID_TARGET, f"Deployment {target.name}: {target.overlay_error}")
        return
    if st.phase not in (Phase.SUCCEEDED, Phase.PROMOTING, Phase.ROLLING_BACK):
        ctx.track_stable()
    if st.phase in (Phase.PENDING, Phase.INVALID):
        _start(ctx, "new rollout")
    elif ctx.rev != st.revision and st.phase not in (Phase.PROMOTING, Phase.ROLLING_BACK):
        replacing = (
            f"replacing the canary of version {st.canary_version}"
            if st.phase in CANARY_PHASES
            else f"previous rollout {st.phase}"
        )
        wanted = f"spec asks for model version {spec.model.version} (revision {ctx.rev})"
        ctx.event(EventType.NORMAL, EventReason.NEW_VERSION, f"{wanted}; {replacing}")
        _start(ctx, "new version in spec")
    elif st.phase in CANARY_PHASES:
        _progress(ctx)
    elif st.phase == Phase.PROMOTING:
        promoting(ctx)
    elif st.phase == Phase.ROLLING_BACK:
        rolling_back(ctx)
    elif st.phase == Phase.SUCCEEDED:
        _steady(ctx)
    else:
        _terminal(ctx)


def _finish(ctx: Context, spec: RolloutSpec | SpecError) -> Decision:
    """Report unused commands, set the conditions and the wake-up for the next measurement."""
    st = ctx.st
    for command in sorted(ctx.commands):
        ctx.event(
            EventType.NORMAL,
            EventReason.COMMAND_IGNORED,
            f"{command} has no effect in phase {st.phase}"
            + (f" at step {st.current_step + 1}/{st.steps}" if st.phase in CANARY_PHASES else ""),
        )
    update_conditions(st, ctx.now)
    if (
        not isinstance(spec, SpecError)
        and spec.analysis is not None
        and st.phase in MEASURED_PHASES
        and st.analysis.last_measured_at is not None
    ):
        ctx.wake(st.analysis.last_measured_at + spec.analysis.interval - ctx.now)
    return Decision(status=st, actions=ctx.actions, events=ctx.events, requeue_after=ctx.requeue)


def _start(ctx: Context, why: str) -> None:
    """A new attempt at the spec's model: fresh counters, then the strategy's first phase."""
    st, spec = ctx.st, ctx.spec
    st.revision, st.attempt = ctx.rev, st.attempt + 1
    st.canary_version, st.canary_source = str(spec.model.version), spec.model.source_dict()
    st.current_step, st.steps = 0, len(spec.strategy.steps)
    st.step_started_at, st.started_at, st.finished_at = ctx.now, ctx.now, None
    st.pause_reason, st.rollback_reason = "", ""
    st.desired_weight = st.canary_weight = st.canary_replicas = 0
    st.promotion_started_at = None
    st.traffic_prepared, st.traffic_generation = False, ""
    st.analysis = AnalysisStatus()
    st.handled.update(ctx.tokens())
    ctx.commands.discard("retry")
    if spec.abort:
        st.phase = Phase.PROGRESSING
        begin_rollback(
            ctx,
            FailureReason.ABORTED,
            "spec.abort is true; set it to false (scripts/rollout retry) to roll out",
        )
        return
    if ctx.rev == st.stable_revision:
        st.phase, st.canary_version, st.canary_source, st.finished_at = Phase.SUCCEEDED, "", None, ctx.now
        st.message = f"model version {spec.model.version} is already the stable version"
        ctx.event(EventType.NORMAL, EventReason.ALREADY_STABLE, st.message)
        ctx.cleanup_canary()
        return
    ctx.event(
        EventType.NORMAL,
        EventReason.ROLLOUT_STARTED,
        f"rolling out model version {spec.model.version} (revision {ctx.rev}, attempt {st.attempt}) "
        f"with the {spec.strategy.type} strategy over stable {ctx.stable_label()} ({why})",
    )
    if spec.strategy.type == "rolling":
        begin_promotion(ctx, "rolling strategy")
    else:
        st.phase = Phase.PROGRESSING
        _progress(ctx)


def _progress(ctx: Context) -> None:
    if ctx.spec.strategy.type == "traffic":
        traffic_progress(ctx)
    else:
        progress(ctx)


def _steady(ctx: Context) -> None:
    """Succeeded: keep the promoted model on the serving Deployment (Helm may have dropped it)."""
    st, spec, t = ctx.st, ctx.spec, ctx.target
    ctx.cleanup_canary()
    if spec.strategy.type == "traffic":
        st.message = f"model version {st.stable_version} is stable (traffic file {st.traffic_generation})"
        return
    if t.template_revision != ctx.rev:
        ctx.act(ApplyTargetModel(spec.model))
        ctx.event(
            EventType.WARNING,
            EventReason.DRIFT_CORRECTED,
            f"Deployment {t.name} lost the operator's model fields (helm upgrade --force, kubectl "
            f"replace?); re-applied version {spec.model.version}",
        )
    st.message = f"model version {spec.model.version} is stable on all {t.replicas} pod(s)"


def _terminal(ctx: Context) -> None:
    """Failed or Aborted: wait for a retry (or ``spec.abort: false``)."""
    st, spec = ctx.st, ctx.spec
    ctx.cleanup_canary()
    if st.phase == Phase.ABORTED and not spec.abort:
        ctx.event(EventType.NORMAL, EventReason.RETRIED, "spec.abort was cleared; rolling out again")
        _start(ctx, "abort cleared")
    elif "retry" in ctx.commands:
        if spec.abort:
            ctx.commands.discard("retry")
            ctx.event(EventType.WARNING, EventReason.RETRY_IGNORED, "spec.abort is true; clear it to retry")
        else:
            ctx.event(
                EventType.NORMAL,
                EventReason.RETRIED,
                f"retry requested; rolling out version {spec.model.version} again",
            )
            _start(ctx, "retry requested")
