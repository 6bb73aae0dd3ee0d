"""The rollout state machine: ``reconcile(spec, status, observations, now) -> Decision``. Pure.

Level-triggered: the decision depends only on the spec, the stored status and what is observed
now, and every action is idempotent (server-side apply of a whole desired state, delete,
set-a-condition), so running a reconcile twice, or after a crash between acting and writing the
status, converges to the same place. :func:`plan_probes` says which pods the driver must verify
or measure before calling :func:`reconcile`; their answers arrive in the observations.

Phases: Pending -> Progressing <-> Paused -> Promoting -> Succeeded, and from any active phase
RollingBack -> Failed (analysis, verification, deadline) or Aborted (``spec.abort``). Failed and
Aborted wait for a retry (or, for Aborted, ``spec.abort: false``) or a new model in the spec.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rollout_operator.analysis import history_line
from rollout_operator.durations import format_duration
from rollout_operator.names import COMMAND_ANNOTATIONS
from rollout_operator.observations import Observations
from rollout_operator.spec import ModelSpec, RolloutSpec, SpecError, parse_source
from rollout_operator.status import (
    ABORTED,
    ACTIVE_PHASES,
    FAILED,
    HISTORY,
    INVALID,
    PAUSED,
    PENDING,
    PROGRESSING,
    PROMOTING,
    ROLLING_BACK,
    SUCCEEDED,
    AnalysisStatus,
    Status,
    set_condition,
    to_rfc3339,
)

RESYNC_SECONDS = 30.0
WAIT_SECONDS = 5.0
MANUAL_PAUSE = "ManualPause"
INCONCLUSIVE_PAUSE = "InconclusiveAnalysis"


# ------------------------------------------------------------------------------------------------
# actions and events


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


Action = ApplyCanary | DeleteCanary | ApplyTargetModel | OpenGate


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Decision:
    status: Status
    actions: list[Action] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    requeue_after: float = RESYNC_SECONDS


@dataclass(frozen=True)
class ProbePlan:
    """What the driver must ask the pods before reconciling."""

    verify: tuple[str, ...] = ()
    measure: bool = False
    stable_version: bool = False


# ------------------------------------------------------------------------------------------------
# weights


def canary_replicas(stable: int, weight: int, cap: int | None) -> int:
    """Canary pods so that canary / (canary + stable) is closest to ``weight`` percent.

    The stable Deployment is never scaled down: the canary is extra capacity. At least one pod for
    any weight above 0; at most ``cap`` (default: as many as stable, i.e. a 50 % split)."""
    if weight <= 0:
        return 0
    limit = cap if cap is not None else max(stable, 1)
    if stable <= 0:
        return min(1, limit)
    want = max(1, math.floor(stable * weight / (100 - weight) + 0.5))
    return min(want, limit)


def weight_percent(canary: int, stable: int) -> int:
    return round(100 * canary / (canary + stable)) if canary + stable > 0 else 0


# ------------------------------------------------------------------------------------------------
# probes


def plan_probes(spec: RolloutSpec | SpecError, status: Status, obs: Observations, now: float) -> ProbePlan:
    """Pods to verify (canary pods ready but not yet let into the Service) and whether a measurement
    is due. Reads only the Kubernetes part of ``obs``."""
    if isinstance(spec, SpecError) or obs.target is None:
        return ProbePlan()
    rev = spec.model.revision()
    current = status.revision == rev
    verify: tuple[str, ...] = ()
    if (
        current
        and status.phase in (PROGRESSING, PAUSED)
        and spec.strategy.type == "canary"
        and spec.strategy.canary.traffic_gate
    ):
        verify = tuple(
            p.name
            for p in obs.canary_pods
            if p.revision == rev and p.containers_ready and not p.gate_open and not p.terminating
        )
    measure = False
    if spec.analysis is not None and current and status.phase in (PROGRESSING, PAUSED, PROMOTING):
        due = (
            status.analysis.last_measured_at is None
            or now - status.analysis.last_measured_at >= spec.analysis.interval - 0.5
        )
        measure = due and any(p.serving and p.revision == rev for p in obs.pods)
    stable_version = (
        not status.stable_version
        and not obs.target.template_version
        and any(p.serving for p in obs.stable_pods)
    )
    return ProbePlan(verify=verify, measure=measure, stable_version=stable_version)


# ------------------------------------------------------------------------------------------------
# reconcile


def reconcile(spec: RolloutSpec | SpecError, status: Status, obs: Observations, now: float) -> Decision:
    """Compute the next status and the actions that move the cluster towards it."""
    return _Reconciler(spec, status, obs, now).run()


class _Reconciler:
    def __init__(self, spec: RolloutSpec | SpecError, status: Status, obs: Observations, now: float) -> None:
        self.raw_spec = spec
        self.st = status.copy()
        self.obs = obs
        self.now = now
        self.actions: list[Action] = []
        self.events: list[Event] = []
        self.requeue = RESYNC_SECONDS
        self.commands: set[str] = set()

    # -- helpers ---------------------------------------------------------------------------------

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))

    def wake(self, seconds: float) -> None:
        self.requeue = min(self.requeue, max(0.5, seconds))

    def act(self, action: Action) -> None:
        if action not in self.actions:
            self.actions.append(action)

    def tokens(self) -> dict[str, str]:
        return {
            key: self.obs.annotations[ann]
            for key, ann in COMMAND_ANNOTATIONS.items()
            if self.obs.annotations.get(ann)
        }

    def consume(self, command: str) -> bool:
        if command in self.commands:
            self.commands.discard(command)
            return True
        return False

    def stable_label(self) -> str:
        return self.st.stable_version or "the chart's model"

    # -- entry -----------------------------------------------------------------------------------

    def run(self) -> Decision:
        st = self.st
        st.observed_generation = self.obs.generation
        if isinstance(self.raw_spec, SpecError):
            self.invalid("InvalidSpec", str(self.raw_spec))
            return self.finish()
        self.spec = self.raw_spec
        self.rev = self.spec.model.revision()
        if not st.phase:
            st.phase = PENDING
            st.handled = self.tokens()  # commands set before the operator ever saw the rollout are history
        tokens = self.tokens()
        self.commands = {k for k, v in tokens.items() if st.handled.get(k) != v}
        st.handled.update(tokens)
        target = self.obs.target
        if target is None:
            st.message = f"waiting for Deployment {self.spec.target} to exist"
            if st.phase in (PENDING, INVALID):
                st.phase = PENDING
            self.wake(10.0)
            return self.finish()
        self.target = target
        if target.overlay_error and st.phase != ROLLING_BACK:
            self.invalid("InvalidTarget", f"Deployment {target.name}: {target.overlay_error}")
            return self.finish()
        if st.phase not in (SUCCEEDED, PROMOTING, ROLLING_BACK):
            self.track_stable()
        if st.phase in (PENDING, INVALID):
            self.start("new rollout")
        elif self.rev != st.revision and st.phase not in (PROMOTING, ROLLING_BACK):
            replacing = (f"replacing the canary of version {st.canary_version}"
                         if st.phase in (PROGRESSING, PAUSED) else f"previous rollout {st.phase}")
            wanted = f"spec asks for model version {self.spec.model.version} (revision {self.rev})"
            self.event("Normal", "NewVersion", f"{wanted}; {replacing}")
            self.start("new version in spec")
        elif st.phase in (PROGRESSING, PAUSED):
            self.progress()
        elif st.phase == PROMOTING:
            self.promoting()
        elif st.phase == ROLLING_BACK:
            self.rolling_back()
        elif st.phase == SUCCEEDED:
            self.steady()
        else:
            self.terminal()
        return self.finish()

    def finish(self) -> Decision:
        st = self.st
        for command in sorted(self.commands):
            self.event(
                "Normal",
                "CommandIgnored",
                f"{command} has no effect in phase {st.phase}"
                + (f" at step {st.current_step + 1}/{st.steps}" if st.phase in (PROGRESSING, PAUSED) else ""),
            )
        gen, now = st.observed_generation, self.now
        paused_reason = st.pause_reason or "UserPaused"
        set_condition(
            st.conditions, "Progressing", st.phase in ACTIVE_PHASES, st.phase or PENDING, st.message, now, gen
        )
        set_condition(
            st.conditions,
            "Paused",
            st.phase == PAUSED,
            paused_reason if st.phase == PAUSED else "NotPaused",
            st.message if st.phase == PAUSED else "",
            now,
            gen,
        )
        set_condition(
            st.conditions,
            "Completed",
            st.phase == SUCCEEDED,
            st.phase or PENDING,
            st.message if st.phase == SUCCEEDED else "",
            now,
            gen,
        )
        degraded = st.phase in (INVALID, FAILED, ABORTED)
        set_condition(
            st.conditions,
            "Degraded",
            degraded,
            (st.rollback_reason or st.phase) if degraded else "NotDegraded",
            st.message if degraded else "",
            now,
            gen,
        )
        spec = self.raw_spec
        if (
            not isinstance(spec, SpecError)
            and spec.analysis is not None
            and st.phase in (PROGRESSING, PAUSED, PROMOTING)
            and st.analysis.last_measured_at is not None
        ):
            self.wake(st.analysis.last_measured_at + spec.analysis.interval - now)
        return Decision(status=st, actions=self.actions, events=self.events, requeue_after=self.requeue)

    # -- bookkeeping -----------------------------------------------------------------------------

    def track_stable(self) -> None:
        """Outside promotion and rollback, stable is whatever the serving Deployment's template holds."""
        st, t = self.st, self.target
        previous = st.stable_revision
        st.stable_revision, st.stable_source = t.template_revision, t.template_source
        if t.template_version:
            st.stable_version = t.template_version
        elif self.obs.stable_served_version:
            st.stable_version = self.obs.stable_served_version
        elif previous != t.template_revision:
            st.stable_version = ""

    def invalid(self, reason: str, message: str) -> None:
        st = self.st
        if st.phase != INVALID or st.message != message:
            self.event("Warning", reason, message)
        st.phase, st.message, st.rollback_reason = INVALID, message, reason
        self.wake(RESYNC_SECONDS)

    def stable_model(self) -> ModelSpec | None:
        """The model of the stable version, to restore on rollback (None: the chart's own)."""
        st = self.st
        if not st.stable_revision or not st.stable_source:
            return None
        try:
            model = ModelSpec(
                version=int(st.stable_version),
                source=parse_source(st.stable_source),
                name=self.spec.model.name,
            )
        except (SpecError, ValueError):
            self.event(
                "Warning", "StableUnknown", "cannot read the stable model source; restoring the chart's model"
            )
            return None
        return model

    # -- transitions -----------------------------------------------------------------------------

    def start(self, why: str) -> None:
        st, spec = self.st, self.spec
        st.revision, st.attempt = self.rev, st.attempt + 1
        st.canary_version, st.canary_source = str(spec.model.version), spec.model.source_dict()
        st.current_step, st.steps = 0, len(spec.strategy.steps)
        st.step_started_at, st.started_at, st.finished_at = self.now, self.now, None
        st.pause_reason, st.rollback_reason = "", ""
        st.desired_weight = st.canary_weight = st.canary_replicas = 0
        st.promotion_started_at = None
        st.analysis = AnalysisStatus()
        st.handled.update(self.tokens())
        self.commands.discard("retry")
        if spec.abort:
            st.phase = PROGRESSING
            self.begin_rollback(
                "Aborted", "spec.abort is true; set it to false (scripts/rollout retry) to roll out"
            )
            return
        if self.rev == st.stable_revision:
            st.phase, st.canary_version, st.canary_source, st.finished_at = SUCCEEDED, "", None, self.now
            st.message = f"model version {spec.model.version} is already the stable version"
            self.event("Normal", "AlreadyStable", st.message)
            self.cleanup_canary()
            return
        self.event(
            "Normal",
            "RolloutStarted",
            f"rolling out model version {spec.model.version} (revision {self.rev}, attempt {st.attempt}) "
            f"with the {spec.strategy.type} strategy over stable {self.stable_label()} ({why})",
        )
        if spec.strategy.type == "rolling":
            self.begin_promotion("rolling strategy")
        else:
            st.phase = PROGRESSING
            self.progress()

    def advance(self, note: str) -> None:
        st = self.st
        step = self.spec.strategy.steps[st.current_step]
        self.event(
            "Normal",
            "StepCompleted",
            f"step {st.current_step + 1}/{st.steps} ({step.describe()}) done: {note}",
        )
        st.current_step += 1
        st.step_started_at = self.now

    def progress(self) -> None:
        st, spec, obs, t = self.st, self.spec, self.obs, self.target
        steps = spec.strategy.steps
        if spec.abort:
            self.begin_rollback("Aborted", "aborted by the user (spec.abort is true)")
            return
        for pod, verification in sorted(obs.verifications.items()):
            if verification.outcome == "failed":
                self.begin_rollback(
                    "VerificationFailed", f"canary pod {pod} failed verification: {verification.message}"
                )
                return
        if self.apply_measurement():
            return
        if self.consume("promoteFull"):
            self.event(
                "Normal",
                "PromotedFull",
                "full promotion requested: skipping the remaining steps and analysis",
            )
            self.begin_promotion("full promotion requested")
            return
        stale = obs.canary is not None and obs.canary.revision != self.rev
        if stale:
            self.act(DeleteCanary())
            st.message = "removing the canary of the previous version before starting this one"
            st.phase = PROGRESSING
            self.wake(2.0)
            return
        if st.pause_reason == INCONCLUSIVE_PAUSE and self.consume("promote"):
            st.pause_reason = ""
            st.analysis.inconclusives = 0
            self.event("Normal", "Resumed", "promoted past inconclusive analysis; measuring again")
        elif st.pause_reason == MANUAL_PAUSE and self.consume("promote"):
            st.pause_reason = ""
            self.advance("promoted")
        for pod, verification in sorted(obs.verifications.items()):
            if verification.outcome == "passed":
                self.act(OpenGate(pod))
                self.event(
                    "Normal",
                    "TrafficGateOpened",
                    f"canary pod {pod} verified ({verification.message}); letting it into the Service",
                )
        errors = [
            f"{pod}: {v.message}" for pod, v in sorted(obs.verifications.items()) if v.outcome == "error"
        ]
        cap = spec.strategy.canary.max_replicas
        serving = sum(1 for p in obs.canary_pods if p.serving and p.revision == self.rev)
        stable_serving = sum(1 for p in obs.stable_pods if p.serving)
        waiting = ""
        while st.current_step < len(steps) and not st.pause_reason and not spec.paused:
            step = steps[st.current_step]
            if step.kind == "setWeight":
                st.desired_weight = step.weight
                want = canary_replicas(t.replicas, step.weight, cap)
                c = obs.canary
                if (
                    c is not None
                    and c.revision == self.rev
                    and c.up_to_date
                    and c.replicas == want
                    and serving >= want
                ):
                    self.advance(
                        f"{serving} canary pod(s) serving next to {stable_serving} stable "
                        f"({weight_percent(serving, stable_serving)}% of pods)"
                    )
                    continue
                elapsed = self.now - (st.step_started_at or self.now)
                if elapsed > spec.progress_deadline:
                    self.begin_rollback(
                        "ProgressDeadlineExceeded",
                        f"the canary did not reach {want} verified, ready pod(s) at step "
                        f"{st.current_step + 1} within {format_duration(spec.progress_deadline)}"
                        + (f" ({'; '.join(errors)})" if errors else ""),
                    )
                    return
                waiting = (
                    f"step {st.current_step + 1}/{st.steps} (setWeight {step.weight}%): waiting for "
                    f"{want} canary pod(s) to be verified and ready ({serving}/{want})"
                    + (f"; verification: {'; '.join(errors)}" if errors else "")
                )
                self.wake(WAIT_SECONDS)
                break
            if step.duration is None:
                if self.consume("promote"):
                    self.advance("promoted")
                    continue
                st.pause_reason = MANUAL_PAUSE
                self.event(
                    "Normal",
                    "Paused",
                    f"step {st.current_step + 1}/{st.steps}: paused until promoted "
                    "(scripts/rollout promote, or annotate modelship.io/promote)",
                )
                break
            end = (st.step_started_at or self.now) + step.duration
            if self.consume("promote"):
                self.advance("promoted before the pause ended")
            elif self.now >= end:
                self.advance(f"paused {format_duration(step.duration)}")
            else:
                waiting = (
                    f"step {st.current_step + 1}/{st.steps}: pausing {format_duration(end - self.now)} more"
                )
                self.wake(end - self.now)
                break
        want = canary_replicas(t.replicas, st.desired_weight, cap)
        self.act(ApplyCanary(self.spec.model, want))
        st.canary_replicas = want
        st.canary_weight = weight_percent(serving, stable_serving)
        if st.current_step >= len(steps) and not st.pause_reason and not spec.paused:
            need = spec.analysis.count if spec.analysis is not None else 0
            if st.analysis.successes >= need or self.consume("promote"):
                self.begin_promotion(
                    f"all {st.steps} steps done, {st.analysis.successes} successful measurement(s)"
                )
                return
            done = st.analysis.successes
            waiting = f"all steps done; waiting for analysis: {done}/{need} successful measurements"
        st.phase = PAUSED if (spec.paused or st.pause_reason) else PROGRESSING
        if spec.paused:
            st.message = f"paused by spec.paused at step {min(st.current_step + 1, st.steps)}/{st.steps}"
        elif st.pause_reason == MANUAL_PAUSE:
            st.message = (
                f"step {st.current_step + 1}/{st.steps}: paused until promoted; canary {st.canary_version} "
                f"at {st.canary_weight}% of pods; analysis {st.analysis.summary()}"
            )
        elif st.pause_reason == INCONCLUSIVE_PAUSE:
            st.message = (
                f"paused: analysis inconclusive {st.analysis.inconclusives} times "
                f"({(st.analysis.last or {}).get('message', '')}); promote to continue or abort"
            )
        else:
            st.message = waiting or f"step {st.current_step + 1}/{st.steps}"

    def apply_measurement(self) -> bool:
        """Record the measurement; True when it started a rollback."""
        m, analysis, st = self.obs.measurement, self.spec.analysis, self.st
        if m is None or analysis is None:
            return False
        a = st.analysis
        a.last_measured_at, a.baseline = self.now, m.baseline
        if m.kind == "baseline":
            return False
        a.measurements += 1
        a.last = {
            "at": to_rfc3339(self.now),
            "phase": m.phase,
            "message": m.message,
            "metrics": list(m.metrics),
        }
        a.history = [*a.history, history_line(m, to_rfc3339(self.now))][-HISTORY:]
        if m.phase == "Successful":
            a.successes += 1
            a.consecutive_errors = 0
        elif m.phase == "Failed":
            a.failures += 1
            a.consecutive_errors = 0
            self.event(
                "Warning",
                "AnalysisFailed",
                f"measurement {a.measurements} failed ({a.failures}/{analysis.failure_limit + 1} "
                f"failures abort): {m.message}",
            )
            if a.failures > analysis.failure_limit:
                self.begin_rollback("AnalysisFailed", f"analysis failed {a.failures} time(s): {m.message}")
                return True
        elif m.phase == "Inconclusive":
            a.inconclusives += 1
            a.consecutive_errors = 0
            self.event(
                "Warning", "AnalysisInconclusive", f"measurement {a.measurements} inconclusive: {m.message}"
            )
            if (
                a.inconclusives > analysis.inconclusive_limit
                and st.phase in (PROGRESSING, PAUSED)
                and st.pause_reason != INCONCLUSIVE_PAUSE
            ):
                st.pause_reason = INCONCLUSIVE_PAUSE
                self.event(
                    "Warning",
                    "Paused",
                    f"analysis inconclusive {a.inconclusives} times "
                    f"(limit {analysis.inconclusive_limit}); waiting for a human to "
                    "promote or abort",
                )
        else:
            a.errors += 1
            a.consecutive_errors += 1
            self.event(
                "Warning", "AnalysisError", f"measurement {a.measurements} could not be taken: {m.message}"
            )
            if a.consecutive_errors > analysis.consecutive_error_limit:
                self.begin_rollback(
                    "AnalysisError", f"analysis errored {a.consecutive_errors} times in a row: {m.message}"
                )
                return True
        return False

    def flight(self) -> ModelSpec:
        """The model of the rollout in progress (the spec may have moved on during a promotion)."""
        st = self.st
        if st.revision == self.rev or not st.canary_source:
            return self.spec.model
        try:
            return ModelSpec(version=int(st.canary_version), source=parse_source(st.canary_source),
                             name=self.spec.model.name)
        except (SpecError, ValueError):
            return self.spec.model

    def begin_promotion(self, why: str) -> None:
        st, model = self.st, self.flight()
        st.phase, st.promotion_started_at, st.pause_reason = PROMOTING, self.now, ""
        self.act(ApplyTargetModel(model))
        self.event(
            "Normal",
            "PromotionStarted",
            f"promoting model version {model.version}: updating Deployment {self.target.name} "
            f"with its own rolling-update policy ({why})",
        )
        st.message = f"promoting: Deployment {self.target.name} is rolling to version {model.version}"
        self.wake(WAIT_SECONDS)

    def promoting(self) -> None:
        st, spec, t, model = self.st, self.spec, self.target, self.flight()
        if spec.abort:
            self.begin_rollback("Aborted", "aborted by the user during promotion (spec.abort is true)")
            return
        if self.apply_measurement():
            return
        self.act(ApplyTargetModel(model))
        if t.template_revision == st.revision and t.rollout_complete:
            need = spec.analysis.count if spec.analysis is not None and spec.strategy.type == "rolling" else 0
            if st.analysis.successes < need:
                st.message = (
                    f"Deployment {t.name} runs version {model.version} on all pods; waiting for "
                    f"analysis: {st.analysis.successes}/{need} successful measurements"
                )
                self.wake(WAIT_SECONDS)
                return
            self.cleanup_canary()
            took = self.now - (st.started_at or self.now)
            st.phase, st.finished_at = SUCCEEDED, self.now
            st.stable_version, st.stable_revision = str(model.version), st.revision
            st.stable_source = model.source_dict()
            st.canary_version, st.canary_source = "", None
            st.desired_weight, st.canary_weight, st.canary_replicas = 0, 0, 0
            st.promotion_started_at = None
            st.message = f"model version {model.version} is stable on all {t.replicas} pod(s)"
            self.event("Normal", "RolloutSucceeded", f"{st.message}; took {format_duration(took)}")
            return
        elapsed = self.now - (st.promotion_started_at or self.now)
        if t.progress_failed or elapsed > spec.progress_deadline:
            self.begin_rollback(
                "PromotionFailed",
                f"Deployment {t.name} did not finish rolling to version "
                f"{model.version} within {format_duration(spec.progress_deadline)}",
            )
            return
        st.message = (
            f"promoting: Deployment {t.name} rolling to version {model.version} "
            f"({t.available_replicas}/{t.replicas} available)"
        )
        self.wake(WAIT_SECONDS)

    def begin_rollback(self, reason: str, message: str) -> None:
        st = self.st
        restoring = st.promotion_started_at is not None
        st.phase, st.rollback_reason, st.pause_reason, st.message = ROLLING_BACK, reason, "", message
        self.event(
            "Warning",
            "RollbackStarted",
            f"{reason}: {message}; removing the canary"
            + (f" and restoring {self.stable_label()} on Deployment {self.target.name}" if restoring else ""),
        )
        self.rolling_back()

    def rolling_back(self) -> None:
        st, t = self.st, self.target
        done = self.cleanup_canary()
        if st.promotion_started_at is not None:
            self.act(ApplyTargetModel(self.stable_model()))
            done = done and t.template_revision == st.stable_revision and t.rollout_complete
        if not done:
            self.wake(3.0)
            return
        why = st.message
        st.phase = ABORTED if st.rollback_reason == "Aborted" else FAILED
        st.finished_at, st.promotion_started_at = self.now, None
        st.desired_weight = st.canary_weight = st.canary_replicas = 0
        st.message = f"{st.rollback_reason}: {why}; rolled back, {self.stable_label()} serves all traffic"
        self.event(
            "Warning",
            "RolledBack",
            f"version {st.canary_version} rolled back ({st.rollback_reason}); "
            f"{self.stable_label()} serves all traffic",
        )

    def cleanup_canary(self) -> bool:
        """Delete the canary if any of it is left; True when nothing is left."""
        if self.obs.canary is not None or self.obs.canary_pods:
            self.act(DeleteCanary())
            return False
        return True

    def steady(self) -> None:
        st, spec, t = self.st, self.spec, self.target
        self.cleanup_canary()
        if t.template_revision != self.rev:
            self.act(ApplyTargetModel(spec.model))
            self.event(
                "Warning",
                "DriftCorrected",
                f"Deployment {t.name} lost the operator's model fields (helm upgrade --force, kubectl "
                f"replace?); re-applied version {spec.model.version}",
            )
        st.message = f"model version {spec.model.version} is stable on all {t.replicas} pod(s)"

    def terminal(self) -> None:
        st, spec = self.st, self.spec
        self.cleanup_canary()
        if st.phase == ABORTED and not spec.abort:
            self.event("Normal", "Retried", "spec.abort was cleared; rolling out again")
            self.start("abort cleared")
        elif "retry" in self.commands:
            if spec.abort:
                self.commands.discard("retry")
                self.event("Warning", "RetryIgnored", "spec.abort is true; clear it to retry")
            else:
                self.event(
                    "Normal", "Retried", f"retry requested; rolling out version {spec.model.version} again"
                )
                self.start("retry requested")
