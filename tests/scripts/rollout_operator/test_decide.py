"""The rollout state machine, on fixture observations and on a simulated cluster (no API server)."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollout_operator import actions, probe_plan
from rollout_operator.actions import ApplyCanary, ApplyTargetModel, DeleteCanary, OpenGate
from rollout_operator.decide import reconcile
from rollout_operator.names import ANN_PROMOTE, ANN_RETRY
from rollout_operator.observations import (
    CanaryView,
    Measurement,
    Observations,
    PodView,
    TargetView,
    Verification,
)
from rollout_operator.probe_plan import plan_probes
from rollout_operator.spec import ModelSpec, SpecError, UrlSource
from rollout_operator.status import Status
from rollout_operator.weights import canary_replicas, weight_percent
from tests.scripts.rollout_operator.sim import NOW, SHA_B, World, mk_spec, result, spec_dict

REV = mk_spec().model.revision()


def target(**kw: object) -> TargetView:
    base: dict[str, object] = {"name": "prod-modelship", "replicas": 2, "available_replicas": 2}
    base.update(kw)
    return TargetView(**base)  # type: ignore[arg-type]


def stable_pods(n: int = 2, revision: str = "") -> tuple[PodView, ...]:
    return tuple(
        PodView(
            name=f"s{i}", uid=f"s{i}", ip="10.0.0.1", revision=revision, containers_ready=True, ready=True
        )
        for i in range(n)
    )


def canary_pod(
    name: str = "c0", *, ready: bool = True, gate: bool = True, revision: str = REV, terminating: bool = False
) -> PodView:
    return PodView(
        name=name,
        uid=name,
        ip="10.0.0.2",
        revision=revision,
        containers_ready=ready,
        gate_open=gate,
        ready=ready and gate,
        terminating=terminating,
        canary=True,
    )


def obs(**kw: object) -> Observations:
    base: dict[str, object] = {"target": target(), "pods": stable_pods()}
    base.update(kw)
    return Observations(**base)  # type: ignore[arg-type]


def started(spec_overrides: dict[str, object] | None = None, **obs_kw: object) -> Status:
    """The status right after the rollout started (phase Progressing at step 0)."""
    d = reconcile(mk_spec(**(spec_overrides or {})), Status(), obs(**obs_kw), NOW)
    assert d.status.phase == "Progressing"
    return d.status


def reasons(d: actions.Decision) -> list[str]:
    return [e.reason for e in d.events]


def condition(status: Status, type_: str) -> dict[str, object]:
    return next(c for c in status.conditions if c["type"] == type_)


# ------------------------------------------------------------------------------------------------
# weights


@pytest.mark.parametrize(
    ("stable", "weight", "cap", "want"),
    [
        (2, 25, None, 1),
        (2, 50, None, 2),
        (2, 75, None, 2),
        (2, 75, 6, 6),
        (2, 10, None, 1),
        (10, 10, None, 1),
        (10, 20, None, 3),
        (10, 50, None, 10),
        (4, 50, 2, 2),
        (0, 30, None, 1),
        (3, 0, None, 0),
    ],
)
def test_canary_replicas(stable: int, weight: int, cap: int | None, want: int) -> None:
    assert canary_replicas(stable, weight, cap) == want


@given(st.integers(0, 200), st.integers(1, 99), st.one_of(st.none(), st.integers(1, 50)))
def test_canary_replicas_bounds(stable: int, weight: int, cap: int | None) -> None:
    n = canary_replicas(stable, weight, cap)
    assert 1 <= n <= (cap if cap is not None else max(stable, 1))
    if cap is None and stable >= 1 and weight <= 50:
        # closest achievable share: one pod more or fewer would be no closer to the weight
        share = weight_percent(n, stable)
        assert abs(share - weight) <= abs(weight_percent(n + 1, stable) - weight)
        if n > 1:
            assert abs(share - weight) <= abs(weight_percent(n - 1, stable) - weight) + 1


def test_weight_percent() -> None:
    assert weight_percent(1, 2) == 33
    assert weight_percent(0, 0) == 0
    assert weight_percent(2, 2) == 50


# ------------------------------------------------------------------------------------------------
# start, pending, invalid


def test_first_reconcile_starts_the_canary() -> None:
    d = reconcile(mk_spec(), Status(), obs(), NOW)
    st_ = d.status
    assert st_.phase == "Progressing"
    assert st_.revision == REV
    assert st_.attempt == 1
    assert st_.canary_version == "2"
    assert st_.current_step == 0
    assert st_.steps == 4
    assert st_.progress == "0/4"
    assert ApplyCanary(mk_spec().model, 1) in d.actions  # 25% of 2 stable pods: 1 canary pod
    assert "RolloutStarted" in reasons(d)
    assert condition(st_, "Progressing")["status"] == "True"
    assert condition(st_, "Completed")["status"] == "False"
    assert "waiting for 1 canary pod(s)" in st_.message
    assert d.requeue_after <= actions.WAIT_SECONDS


def test_commands_set_before_the_operator_saw_the_rollout_are_not_executed() -> None:
    d = reconcile(mk_spec(), Status(), obs(annotations={ANN_PROMOTE: "old"}), NOW)
    assert d.status.handled["promote"] == "old"
    assert "CommandIgnored" not in reasons(d)
    assert d.status.current_step == 0


def test_missing_target_waits_in_pending() -> None:
    d = reconcile(mk_spec(), Status(), obs(target=None), NOW)
    assert d.status.phase == "Pending"
    assert "prod-modelship" in d.status.message
    assert d.actions == []
    assert d.requeue_after == 10.0


def test_invalid_spec_is_reported_once() -> None:
    d = reconcile(SpecError("spec.model.version: required"), Status(), obs(), NOW)
    assert d.status.phase == "Invalid"
    degraded = condition(d.status, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "InvalidSpec")
    assert reasons(d) == ["InvalidSpec"]
    again = reconcile(SpecError("spec.model.version: required"), d.status, obs(), NOW + 5)
    assert again.events == []
    assert again.actions == []


def test_invalid_target_then_fixed_starts() -> None:
    d = reconcile(
        mk_spec(), Status(), obs(target=target(overlay_error="the model root /models is a pvc volume")), NOW
    )
    assert d.status.phase == "Invalid"
    assert d.status.rollback_reason == "InvalidTarget"
    assert d.actions == []
    fixed = reconcile(mk_spec(), d.status, obs(), NOW + 5)
    assert fixed.status.phase == "Progressing"
    assert condition(fixed.status, "Degraded")["status"] == "False"


def test_version_already_stable_succeeds_without_a_canary() -> None:
    d = reconcile(mk_spec(), Status(), obs(target=target(template_revision=REV, template_version="2")), NOW)
    assert d.status.phase == "Succeeded"
    assert "AlreadyStable" in reasons(d)
    assert not any(isinstance(a, ApplyCanary) for a in d.actions)
    assert condition(d.status, "Completed")["status"] == "True"


def test_stable_version_comes_from_the_template_or_the_pods() -> None:
    d = reconcile(mk_spec(), Status(), obs(stable_served_version="1"), NOW)
    assert d.status.stable_version == "1"
    assert d.status.stable_revision == ""
    d = reconcile(mk_spec(), Status(), obs(target=target(template_revision="r1", template_version="7")), NOW)
    assert d.status.stable_version == "7"
    assert d.status.stable_revision == "r1"


# ------------------------------------------------------------------------------------------------
# steps, gates, pauses


def test_canary_pods_are_gated_until_verified() -> None:
    status = started()
    waiting = obs(canary=CanaryView(1, REV), pods=(*stable_pods(), canary_pod(gate=False)))
    d = reconcile(mk_spec(), status, waiting, NOW + 5)
    assert d.status.current_step == 0
    assert not any(isinstance(a, OpenGate) for a in d.actions)
    verified = Observations(**{**waiting.__dict__, "verifications": {"c0": Verification("passed", "ok")}})
    d = reconcile(mk_spec(), status, verified, NOW + 5)
    assert OpenGate("c0") in d.actions
    assert "TrafficGateOpened" in reasons(d)
    assert d.status.current_step == 0  # the pod is not Ready until the gate condition lands
    ready = obs(canary=CanaryView(1, REV), pods=(*stable_pods(), canary_pod()))
    d = reconcile(mk_spec(), status, ready, NOW + 10)
    assert d.status.current_step == 1
    assert "StepCompleted" in reasons(d)
    assert d.status.canary_weight == 33


def test_plan_verifies_only_ready_ungated_pods_of_this_revision() -> None:
    status = started()
    pods = (
        *stable_pods(),
        canary_pod("a", gate=False),
        canary_pod("b", gate=True),
        canary_pod("c", ready=False, gate=False),
        canary_pod("d", gate=False, revision="old"),
        canary_pod("e", gate=False, terminating=True),
    )
    plan = plan_probes(mk_spec(), status, obs(canary=CanaryView(1, REV), pods=pods), NOW)
    assert plan.verify == ("a",)
    no_gate = spec_dict(
        strategy={"type": "canary", "canary": {"trafficGate": False, "steps": [{"setWeight": 10}]}}
    )
    assert plan_probes(mk_spec(**no_gate), status, obs(pods=pods), NOW).verify == ()
    promoting = copy.deepcopy(status)
    promoting.phase = "Promoting"
    assert plan_probes(mk_spec(), promoting, obs(pods=pods), NOW).verify == ()


def test_plan_measures_when_due_and_serving() -> None:
    status = started()
    serving = obs(canary=CanaryView(1, REV), pods=(*stable_pods(), canary_pod()))
    assert plan_probes(mk_spec(), status, serving, NOW).measure
    assert not plan_probes(mk_spec(), status, obs(pods=(*stable_pods(), canary_pod(gate=False))), NOW).measure
    status.analysis.last_measured_at = NOW
    assert not plan_probes(mk_spec(), status, serving, NOW + 10).measure
    assert plan_probes(mk_spec(), status, serving, NOW + 30).measure
    assert not plan_probes(mk_spec(analysis=None), status, serving, NOW + 30).measure
    assert plan_probes(SpecError("x"), status, serving, NOW) == probe_plan.ProbePlan()


def test_plan_asks_for_the_stable_version_only_when_unknown() -> None:
    assert plan_probes(mk_spec(), Status(), obs(), NOW).stable_version
    assert not plan_probes(mk_spec(), Status(stable_version="1"), obs(), NOW).stable_version
    assert not plan_probes(mk_spec(), Status(), obs(target=target(template_version="3")), NOW).stable_version


def test_verification_failure_rolls_back_before_any_traffic() -> None:
    status = started()
    o = obs(
        canary=CanaryView(1, REV),
        pods=(*stable_pods(), canary_pod(gate=False)),
        verifications={"c0": Verification("failed", "3/3 predictions differ")},
    )
    d = reconcile(mk_spec(), status, o, NOW + 5)
    assert d.status.phase == "RollingBack"
    assert d.status.rollback_reason == "VerificationFailed"
    assert DeleteCanary() in d.actions
    assert not any(isinstance(a, OpenGate) for a in d.actions)
    assert not any(isinstance(a, ApplyTargetModel) for a in d.actions)  # stable never touched
    gone = reconcile(mk_spec(), d.status, obs(), NOW + 10)
    assert gone.status.phase == "Failed"
    assert "RolledBack" in reasons(gone)
    assert condition(gone.status, "Degraded")["reason"] == "VerificationFailed"
    assert "3/3 predictions differ" in gone.status.message


def test_verification_errors_wait_then_hit_the_progress_deadline() -> None:
    status = started()
    o = obs(
        canary=CanaryView(1, REV),
        pods=(*stable_pods(), canary_pod(gate=False)),
        verifications={"c0": Verification("error", "connection refused")},
    )
    d = reconcile(mk_spec(), status, o, NOW + 5)
    assert d.status.phase == "Progressing"
    assert "connection refused" in d.status.message
    late = reconcile(mk_spec(), status, o, NOW + 301)
    assert late.status.phase == "RollingBack"
    assert late.status.rollback_reason == "ProgressDeadlineExceeded"
    assert "connection refused" in late.status.message


def test_timed_pause_waits_and_survives_a_restart() -> None:
    w = World(spec_dict())
    w.run_until(("Progressing",))
    for _ in range(10):
        w.tick()
        if w.status["currentStep"] == 1:
            break
    assert w.status["currentStep"] == 1  # in the 60 s pause
    started_at = w.status["stepStartedAt"]
    w.now += 30
    d = w.tick(0)
    assert d.status.current_step == 1
    assert "pausing" in d.status.message
    assert 25 <= d.requeue_after <= 31
    # a new operator process: only the stored status survives; the pause is anchored to it
    assert Status.from_dict(w.status).step_started_at is not None
    assert w.status["stepStartedAt"] == started_at
    w.now += 31
    d = w.tick(0)
    assert d.status.current_step >= 2


def test_manual_pause_waits_for_promote() -> None:
    w = World(spec_dict(analysis=None))
    d = w.run_until(("Paused",))
    assert d.status.pause_reason == "ManualPause"
    assert d.status.current_step == 3
    assert condition(d.status, "Paused")["status"] == "True"
    assert w.reasons().count("Paused") == 1
    for _ in range(3):
        assert w.tick().status.phase == "Paused"
    assert w.reasons().count("Paused") == 1  # one event, not one per reconcile
    w.command("promote", "t1")
    d = w.tick()
    assert d.status.phase == "Promoting"
    assert d.status.handled["promote"] == "t1"
    assert ApplyTargetModel(mk_spec().model) in d.actions


def test_promote_on_a_weight_step_is_acknowledged_and_ignored() -> None:
    status = started()
    d = reconcile(mk_spec(), status, obs(annotations={ANN_PROMOTE: "x"}), NOW + 5)
    assert "CommandIgnored" in reasons(d)
    assert d.status.handled["promote"] == "x"
    assert d.status.current_step == 0
    again = reconcile(mk_spec(), d.status, obs(annotations={ANN_PROMOTE: "x"}), NOW + 10)
    assert "CommandIgnored" not in reasons(again)


def test_promote_skips_a_timed_pause() -> None:
    w = World(spec_dict())
    while w.status.get("currentStep", 0) < 1:
        w.tick()
    w.command("promote", "go")
    d = w.tick()
    assert d.status.current_step >= 2
    assert any("promoted before the pause ended" in e.message for e in w.events)


def test_full_promotion_skips_steps_and_analysis() -> None:
    status = started()
    d = reconcile(mk_spec(), status, obs(annotations={"modelship.io/promote-full": "now"}), NOW + 5)
    assert d.status.phase == "Promoting"
    assert "PromotedFull" in reasons(d)
    assert ApplyTargetModel(mk_spec().model) in d.actions


def test_user_pause_freezes_steps_but_not_failures() -> None:
    status = started()
    serving = obs(canary=CanaryView(1, REV), pods=(*stable_pods(), canary_pod()))
    d = reconcile(mk_spec(paused=True), status, serving, NOW + 5)
    assert d.status.phase == "Paused"
    assert d.status.current_step == 0
    assert condition(d.status, "Paused")["reason"] == "UserPaused"
    failing = Observations(**{**serving.__dict__, "measurement": result("Failed", "errors")})
    d = reconcile(
        mk_spec(paused=True, analysis={"failureLimit": 0, "errorRatio": {"max": 0.01}}),
        d.status,
        failing,
        NOW + 40,
    )
    assert d.status.phase == "RollingBack"
    assert d.status.rollback_reason == "AnalysisFailed"


def test_waits_for_analysis_count_before_promoting() -> None:
    spec = spec_dict(strategy={"type": "canary", "canary": {"steps": [{"setWeight": 50}]}})
    status = started(spec)
    serving = obs(canary=CanaryView(2, REV), pods=(*stable_pods(), canary_pod("c0"), canary_pod("c1")))
    d = reconcile(mk_spec(**spec), status, serving, NOW + 5)
    assert d.status.phase == "Progressing"
    assert d.status.current_step == 1
    assert "waiting for analysis: 0/2" in d.status.message
    status = d.status
    for i in range(2):
        m = Observations(**{**serving.__dict__, "measurement": result("Successful")})
        d = reconcile(mk_spec(**spec), status, m, NOW + 35 * (i + 1))
        status = d.status
    assert d.status.phase == "Promoting"
    assert d.status.analysis.successes == 2


def test_promote_also_ends_the_wait_for_analysis() -> None:
    spec = spec_dict(strategy={"type": "canary", "canary": {"steps": [{"setWeight": 50}]}})
    status = started(spec)
    serving = obs(
        canary=CanaryView(2, REV),
        pods=(*stable_pods(), canary_pod("c0"), canary_pod("c1")),
        annotations={ANN_PROMOTE: "p"},
    )
    d = reconcile(mk_spec(**spec), status, serving, NOW + 5)
    assert d.status.phase == "Promoting"


# ------------------------------------------------------------------------------------------------
# analysis


def test_baseline_measurement_records_without_judging() -> None:
    status = started()
    m = Measurement(kind="baseline", baseline={"pods": {"c0": {"requests": 3.0}}})
    d = reconcile(mk_spec(), status, obs(measurement=m), NOW + 5)
    a = d.status.analysis
    assert a.measurements == 0
    assert a.baseline == {"pods": {"c0": {"requests": 3.0}}}
    assert a.last_measured_at == NOW + 5
    assert d.requeue_after <= 30


def test_failures_up_to_the_limit_are_tolerated() -> None:
    status = started()
    d = reconcile(mk_spec(), status, obs(measurement=result("Failed", "error ratio 0.2")), NOW + 30)
    assert d.status.phase == "Progressing"
    assert d.status.analysis.failures == 1
    assert "AnalysisFailed" in reasons(d)
    d = reconcile(
        mk_spec(),
        d.status,
        obs(measurement=result("Failed", "error ratio 0.3"), canary=CanaryView(1, REV)),
        NOW + 60,
    )
    assert d.status.phase == "RollingBack"
    assert d.status.rollback_reason == "AnalysisFailed"
    assert DeleteCanary() in d.actions
    assert d.status.analysis.history
    assert "Failed" in d.status.analysis.history[-1]
    assert d.status.analysis.last is not None
    assert d.status.analysis.last["message"] == "error ratio 0.3"


def test_inconclusive_analysis_pauses_for_a_human() -> None:
    status = started()
    d = reconcile(mk_spec(), status, obs(measurement=result("Inconclusive", "too few requests")), NOW + 30)
    assert d.status.phase == "Progressing"
    d = reconcile(mk_spec(), d.status, obs(measurement=result("Inconclusive", "too few requests")), NOW + 60)
    assert d.status.phase == "Paused"
    assert d.status.pause_reason == "InconclusiveAnalysis"
    assert "too few requests" in d.status.message
    d = reconcile(mk_spec(), d.status, obs(annotations={ANN_PROMOTE: "go"}), NOW + 70)
    assert d.status.phase == "Progressing"
    assert d.status.analysis.inconclusives == 0
    assert "Resumed" in reasons(d)


def test_consecutive_errors_abort_but_a_success_resets_them() -> None:
    status = started()
    t = NOW
    for phase in ("Error", "Error", "Successful", "Error", "Error"):
        t += 30
        d = reconcile(mk_spec(), status, obs(measurement=result(phase)), t)
        status = d.status
        assert status.phase == "Progressing"
    d = reconcile(
        mk_spec(),
        status,
        obs(measurement=result("Error", "cannot scrape"), canary=CanaryView(1, REV)),
        t + 30,
    )
    assert d.status.phase == "RollingBack"
    assert d.status.rollback_reason == "AnalysisError"
    assert d.status.analysis.errors == 5


def test_inconclusive_during_promotion_does_not_pause() -> None:
    status = started()
    status.phase, status.promotion_started_at = "Promoting", NOW
    for i in range(3):
        d = reconcile(mk_spec(), status, obs(measurement=result("Inconclusive")), NOW + 30 * (i + 1))
        status = d.status
    assert status.phase == "Promoting"


def test_history_keeps_the_last_five() -> None:
    status = started()
    for i in range(7):
        status = reconcile(
            mk_spec(), status, obs(measurement=result("Successful")), NOW + 30 * (i + 1)
        ).status
    assert len(status.analysis.history) == 5
    assert status.analysis.summary() == "7 ok, 0 failed, 0 inconclusive"


# ------------------------------------------------------------------------------------------------
# promotion, rollback, abort, retry


def promoting_status(
    spec_overrides: dict[str, object] | None = None,
    stable_revision: str = "",
    stable_source: dict[str, str] | None = None,
    stable_version: str = "1",
) -> Status:
    s = started(
        spec_overrides,
        target=target(
            template_revision=stable_revision, template_version=stable_version, template_source=stable_source
        ),
    )
    s.phase, s.promotion_started_at = "Promoting", NOW + 1
    return s


def test_promotion_completes_when_the_deployment_rolled() -> None:
    status = promoting_status()
    d = reconcile(
        mk_spec(),
        status,
        obs(target=target(template_revision=REV, rollout_complete=False), canary=CanaryView(2, REV)),
        NOW + 10,
    )
    assert d.status.phase == "Promoting"
    assert ApplyTargetModel(mk_spec().model) in d.actions
    assert "rolling to version 2" in d.status.message
    d = reconcile(
        mk_spec(), d.status, obs(target=target(template_revision=REV), canary=CanaryView(2, REV)), NOW + 20
    )
    assert d.status.phase == "Succeeded"
    assert DeleteCanary() in d.actions
    assert (d.status.stable_version, d.status.stable_revision, d.status.canary_version) == ("2", REV, "")
    assert d.status.stable_source == mk_spec().model.source_dict()
    assert "RolloutSucceeded" in reasons(d)
    assert condition(d.status, "Completed")["status"] == "True"
    assert condition(d.status, "Progressing")["status"] == "False"


def test_stuck_promotion_restores_the_charts_model() -> None:
    status = promoting_status()
    d = reconcile(
        mk_spec(),
        status,
        obs(target=target(template_revision=REV, rollout_complete=False, progress_failed=True)),
        NOW + 10,
    )
    assert d.status.phase == "RollingBack"
    assert d.status.rollback_reason == "PromotionFailed"
    assert ApplyTargetModel(None) in d.actions
    d = reconcile(
        mk_spec(), d.status, obs(target=target(template_revision="", rollout_complete=False)), NOW + 15
    )
    assert d.status.phase == "RollingBack"
    d = reconcile(mk_spec(), d.status, obs(target=target(template_revision="")), NOW + 20)
    assert d.status.phase == "Failed"


def test_rollback_restores_a_previous_operator_version() -> None:
    old = ModelSpec(version=1, source=UrlSource("http://models.local/linear-1.tar.gz", SHA_B))
    status = promoting_status(stable_revision=old.revision(), stable_source=old.source_dict())
    d = reconcile(mk_spec(abort=True), status, obs(target=target(template_revision=REV)), NOW + 10)
    assert d.status.phase == "RollingBack"
    assert d.status.rollback_reason == "Aborted"
    restore = [a for a in d.actions if isinstance(a, ApplyTargetModel)]
    assert restore
    assert restore[0].model is not None
    assert restore[0].model.revision() == old.revision()
    d = reconcile(
        mk_spec(abort=True), d.status, obs(target=target(template_revision=old.revision())), NOW + 20
    )
    assert d.status.phase == "Aborted"


def test_abort_mid_step_removes_the_canary_and_leaves_stable_alone() -> None:
    w = World(spec_dict())
    while w.status.get("currentStep", 0) < 2:
        w.tick()
    w.spec["abort"] = True
    d = w.tick()
    assert d.status.phase == "RollingBack"
    d = w.run_until(("Aborted",))
    assert d.status.message.startswith("Aborted:")
    assert not any(isinstance(a, ApplyTargetModel) for a in w.actions)
    assert w.canary is None
    assert not [p for p in w.pods if p.canary]
    assert w.min_stable_serving == 2
    assert condition(d.status, "Degraded")["reason"] == "Aborted"


def test_clearing_abort_retries() -> None:
    d = reconcile(mk_spec(abort=True), Status(), obs(), NOW)
    assert d.status.phase == "Aborted"
    assert d.status.attempt == 1
    d = reconcile(mk_spec(), d.status, obs(), NOW + 5)
    assert d.status.phase == "Progressing"
    assert d.status.attempt == 2
    assert "Retried" in reasons(d)


def test_retry_after_failure_and_retry_ignored_while_aborted() -> None:
    status = started()
    d = reconcile(mk_spec(), status, obs(measurement=result("Failed")), NOW + 30)
    d = reconcile(mk_spec(), d.status, obs(measurement=result("Failed")), NOW + 60)
    d = reconcile(mk_spec(), d.status, obs(), NOW + 65)
    assert d.status.phase == "Failed"
    stay = reconcile(mk_spec(), d.status, obs(), NOW + 70)
    assert stay.status.phase == "Failed"
    assert stay.actions == []
    retried = reconcile(mk_spec(), d.status, obs(annotations={ANN_RETRY: "r1"}), NOW + 75)
    assert retried.status.phase == "Progressing"
    assert retried.status.attempt == 2
    assert retried.status.analysis.failures == 0
    ignored = reconcile(mk_spec(abort=True), d.status, obs(annotations={ANN_RETRY: "r2"}), NOW + 75)
    assert "RetryIgnored" in reasons(ignored)
    assert ignored.status.phase == "Failed"


def test_retry_while_progressing_is_ignored() -> None:
    d = reconcile(mk_spec(), started(), obs(annotations={ANN_RETRY: "r"}), NOW + 5)
    assert "CommandIgnored" in reasons(d)
    assert d.status.attempt == 1


def test_new_version_mid_canary_replaces_the_canary() -> None:
    w = World(spec_dict())
    while w.status.get("currentStep", 0) < 2:
        w.tick()
    old_rev = w.status["revision"]
    w.spec["model"] = {
        "version": 3,
        "source": {"url": "http://models.local/linear-3.tar.gz", "sha256": SHA_B},
    }
    d = w.tick()
    assert "NewVersion" in w.reasons()
    assert d.status.canary_version == "3"
    assert d.status.current_step == 0
    assert d.status.attempt == 2
    assert DeleteCanary() in d.actions
    assert not any(isinstance(a, ApplyCanary) for a in d.actions)
    d = w.run_until(("Paused",))
    assert w.canary is not None
    assert w.canary[1] != old_rev
    assert all(p.revision != old_rev for p in w.pods if p.canary)


def test_new_version_during_promotion_waits_for_it_to_finish() -> None:
    status = promoting_status()
    spec3 = mk_spec(model={"version": 3, "source": {"url": "http://m/3.tgz", "sha256": SHA_B}})
    d = reconcile(spec3, status, obs(target=target(template_revision=REV, rollout_complete=False)), NOW + 10)
    assert d.status.phase == "Promoting"
    assert d.status.revision == REV
    assert ApplyTargetModel(mk_spec().model) in d.actions  # keeps promoting version 2
    d = reconcile(spec3, d.status, obs(target=target(template_revision=REV)), NOW + 20)
    assert d.status.phase == "Succeeded"
    assert d.status.stable_version == "2"
    d = reconcile(spec3, d.status, obs(target=target(template_revision=REV, template_version="2")), NOW + 25)
    assert d.status.phase == "Progressing"
    assert d.status.canary_version == "3"
    assert d.status.stable_version == "2"


def test_succeeded_corrects_drift_and_otherwise_rests() -> None:
    status = promoting_status()
    done = reconcile(mk_spec(), status, obs(target=target(template_revision=REV)), NOW + 10).status
    calm = reconcile(mk_spec(), done, obs(target=target(template_revision=REV)), NOW + 40)
    assert calm.actions == []
    assert calm.events == []
    assert calm.requeue_after == actions.RESYNC_SECONDS
    drift = reconcile(mk_spec(), done, obs(target=target(template_revision="")), NOW + 50)
    assert ApplyTargetModel(mk_spec().model) in drift.actions
    assert "DriftCorrected" in reasons(drift)
    assert drift.status.phase == "Succeeded"


def test_rolling_strategy_uses_the_deployment_and_post_analysis() -> None:
    spec = spec_dict(strategy={"type": "rolling"})
    w = World(spec, measure=lambda world: result("Successful"))
    d = w.tick()
    assert d.status.phase == "Promoting"
    assert d.status.steps == 0
    assert not any(isinstance(a, ApplyCanary) for a in w.actions)
    d = w.run_until(("Succeeded",))
    assert d.status.analysis.successes >= 2
    assert w.min_stable_serving >= 2


def test_rolling_strategy_rolls_back_on_analysis_failure() -> None:
    spec = spec_dict(strategy={"type": "rolling"})
    w = World(spec, measure=lambda world: result("Failed", "error ratio 0.5"))
    d = w.run_until(("Failed",))
    assert d.status.rollback_reason == "AnalysisFailed"
    assert w.stable_revision == ""  # the chart's model is back
    assert ApplyTargetModel(None) in w.actions


# ------------------------------------------------------------------------------------------------
# whole rollouts on the simulated cluster


def test_good_version_goes_through_every_step() -> None:
    w = World(spec_dict(), measure=lambda world: result("Successful"))
    d = w.run_until(("Paused",))
    assert d.status.current_step == 3
    w.command("promote", "ok")
    d = w.run_until(("Succeeded",))
    assert w.reasons().count("StepCompleted") == 4
    tail = [r for r in w.reasons() if r in ("PromotionStarted", "RolloutSucceeded")]
    assert tail == ["PromotionStarted", "RolloutSucceeded"]
    assert w.stable_version == "2"
    assert w.canary is None
    assert w.min_stable_serving == 2  # stable capacity never reduced
    assert w.opened_unverified == []  # no canary pod served before it was verified
    assert d.status.stable_version == "2"
    w.tick()
    assert not [p for p in w.pods if p.canary]


def test_bad_version_never_gets_traffic() -> None:
    w = World(spec_dict(), verify=lambda pod: Verification("failed", "1/3 predictions differ"))
    d = w.run_until(("Failed",))
    assert d.status.rollback_reason == "VerificationFailed"
    assert not [p for p in w.pods if p.canary and p.gate_open]
    assert w.stable_revision == ""
    assert w.min_stable_serving == 2


def test_metrics_failure_at_the_second_weight_rolls_back() -> None:
    def measure(world: World) -> Measurement:
        bad = world.status.get("currentStep", 0) >= 2
        return result("Failed" if bad else "Successful", "error ratio 0.3" if bad else "")

    w = World(spec_dict(), measure=measure)
    d = w.run_until(("Failed",))
    assert d.status.rollback_reason == "AnalysisFailed"
    assert d.status.analysis.failures == 2
    assert w.min_stable_serving == 2
    assert w.canary is None


def test_status_round_trips_through_json() -> None:
    w = World(spec_dict(), measure=lambda world: result("Successful"))
    for _ in range(12):
        w.tick()
        assert Status.from_dict(w.status).to_dict() == w.status
