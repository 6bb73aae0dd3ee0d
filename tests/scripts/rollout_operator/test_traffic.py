"""The traffic strategy on a simulated cluster: the traffic files written, pods confirming them."""

from __future__ import annotations

import pytest

from rollout_operator.actions import ApplyTrafficConfig
from rollout_operator.decide import reconcile
from rollout_operator.observations import Verification
from rollout_operator.spec import SpecError, live_revision, parse_spec
from rollout_operator.status import Status
from rollout_operator.traffic_probes import judge_window, shadow_outcome
from rollout_operator.traffic_target import traffic_target
from rollout_operator.version_metrics import parse_version_metrics, version_delta
from tests.scripts.rollout_operator.sim import result
from tests.scripts.rollout_operator.traffic_sim import TrafficPod, TrafficWorld, traffic_spec

STICKY = {"sticky_header": "x-user-id"}
SHADOW = {"shadow": {"version": 2, "percent": 100.0}}


def ok(world: TrafficWorld) -> object:
    return result("Successful")


def test_good_rollout_writes_each_config_and_promotes() -> None:
    w = TrafficWorld(traffic_spec(), measure=ok)  # type: ignore[arg-type]
    w.run_until(("Succeeded",))
    assert w.written == [
        ("linear-1-prep", {"versions": [1, 2], "weights": {"1": 100, "2": 0}, **STICKY}),
        ("linear-1-0", {"versions": [1, 2], "weights": {"1": 100, "2": 0}, **STICKY, **SHADOW}),
        ("linear-1-1", {"versions": [1, 2], "weights": {"1": 95, "2": 5}, **STICKY, **SHADOW}),
        ("linear-1-3", {"versions": [1, 2], "weights": {"1": 50, "2": 50}, **STICKY, **SHADOW}),
        ("linear-1-promote", {"versions": [2]}),
    ]
    assert w.status["stableVersion"] == "2"
    assert w.status["stableRevision"] == live_revision(2)
    assert w.reasons().count("TrafficApplied") == 5
    assert all(p.versions == (2,) for p in w.pods)


def test_a_step_waits_for_every_pod_and_a_new_pod_too() -> None:
    w = TrafficWorld(traffic_spec(), measure=ok)  # type: ignore[arg-type]
    w.pods[1].stuck = True
    for _ in range(5):
        d = w.tick()
    assert d.status.phase == "Progressing"
    assert not d.status.traffic_prepared
    assert "1/2 pod(s) applied linear-1-prep" in d.status.message
    w.pods[1].stuck = False
    while w.status["currentStep"] < 1:
        w.tick()
    # an HPA adds a pod mid-step: it has not read the file yet, so step 2 (setWeight 5) waits for it
    w.pods.append(TrafficPod("pod-new", stuck=True))
    for _ in range(3):
        d = w.tick()
    assert d.status.current_step == 1
    assert "pod-new" in d.status.message
    assert d.status.canary_weight == 0  # 5% is not confirmed by every pod
    w.pods[-1].stuck = False
    w.run_until(("Succeeded",))


def test_analysis_failure_during_shadow_rolls_back_to_stable_only() -> None:
    w = TrafficWorld(traffic_spec(), measure=lambda world: result("Failed", "disagreement"))
    d = w.run_until(("Failed",))
    assert d.status.rollback_reason == "AnalysisFailed"
    assert w.written[-1] == ("linear-1-rollback", {"versions": [1]})
    assert "linear-1-1" not in w.generations()  # never got a weight
    assert all(p.versions == (1,) for p in w.pods)
    assert "RolledBack" in w.reasons()


def test_error_at_the_first_weight_step_rolls_back() -> None:
    spec = traffic_spec(strategy={"type": "traffic", "traffic": {"steps": [{"setWeight": 5}, {"pause": {}}]}})

    def measure(world: TrafficWorld) -> object:
        return (
            result("Failed", "errorRatio") if world.status.get("trafficGeneration") == "linear-1-0" else None
        )

    w = TrafficWorld(spec, measure=measure)  # type: ignore[arg-type]
    d = w.run_until(("Failed",))
    assert w.generations() == ["linear-1-prep", "linear-1-0", "linear-1-rollback"]
    assert d.status.stable_version == "1"


def test_deadline_when_a_pod_never_loads_the_candidate() -> None:
    w = TrafficWorld(traffic_spec())
    w.pods[0].stuck = True
    d = w.run_until(("RollingBack",))
    assert d.status.rollback_reason == "ProgressDeadlineExceeded"
    assert "pod-0 at no generation" in d.status.message
    for _ in range(3):  # RolledBack only once every pod applied the rollback
        assert w.tick().status.phase == "RollingBack"
    w.pods[0].stuck = False
    d = w.run_until(("Failed",))
    assert w.written[-1] == ("linear-1-rollback", {"versions": [1]})


def test_failed_verification_rolls_back() -> None:
    spec = traffic_spec(
        analysis={"interval": "30s", "disagreement": {"inputs": [[1, 2, 3]], "relTolerance": 0.01}}
    )
    w = TrafficWorld(spec, verify=lambda pod: Verification("failed", "3/3 predictions differ"))
    d = w.run_until(("Failed",))
    assert d.status.rollback_reason == "VerificationFailed"
    assert w.generations() == ["linear-1-prep", "linear-1-rollback"]


def test_shadow_takes_the_disagreement_tolerances() -> None:
    spec = traffic_spec(
        analysis={
            "count": 0,
            "disagreement": {"inputs": [[1, 2, 3]], "relTolerance": 0.01, "absTolerance": 0.5},
        }
    )
    w = TrafficWorld(spec)
    w.run_until(("Succeeded",))
    assert w.written[1][1]["shadow"] == {"version": 2, "percent": 100.0, "rtol": 0.01, "atol": 0.5}


def test_disagreement_without_inputs_prepares_without_verification_and_shadows() -> None:
    """No inputs to send: every pod only has to load the candidate; the shadow compares live traffic."""
    spec = traffic_spec(analysis={"count": 0, "disagreement": {"relTolerance": 0.01, "absTolerance": 0.5}})
    w = TrafficWorld(spec, verify=lambda pod: Verification("failed", "must not be asked"))
    w.run_until(("Succeeded",))
    assert w.generations()[:2] == ["linear-1-prep", "linear-1-0"]
    assert w.written[1][1]["shadow"] == {"version": 2, "percent": 100.0, "rtol": 0.01, "atol": 0.5}


def test_disagreement_without_inputs_needs_a_shadow_step() -> None:
    steps = {"type": "traffic", "traffic": {"steps": [{"setWeight": 10}, {"shadow": {"percent": 0}}]}}
    with pytest.raises(SpecError, match="add a shadow step"):
        parse_spec(traffic_spec(strategy=steps, analysis={"disagreement": {"maxRatio": 0}}))
    with_inputs = {"disagreement": {"inputs": [[1, 2, 3]]}}
    assert parse_spec(traffic_spec(strategy=steps, analysis=with_inputs)).analysis is not None


def test_abort_rolls_back() -> None:
    w = TrafficWorld(traffic_spec())
    for _ in range(4):
        w.tick()
    w.spec["abort"] = True
    d = w.run_until(("Aborted",))
    assert w.written[-1] == ("linear-1-rollback", {"versions": [1]})
    assert d.status.rollback_reason == "Aborted"


def test_promote_ends_a_manual_pause_and_promote_full_skips_everything() -> None:
    spec = traffic_spec(
        strategy={"type": "traffic", "traffic": {"steps": [{"setWeight": 10}, {"pause": {}}]}}
    )
    spec["analysis"]["count"] = 0
    w = TrafficWorld(spec)
    for _ in range(6):
        d = w.tick()
    assert d.status.phase == "Paused"
    w.command("promote", "t1")
    w.run_until(("Succeeded",))
    full = TrafficWorld(traffic_spec())
    full.tick()
    full.command("promoteFull", "t2")
    full.run_until(("Succeeded",))
    assert full.generations() == ["linear-1-prep", "linear-1-promote"]


def test_a_restarted_operator_writes_the_same_generation() -> None:
    w = TrafficWorld(traffic_spec(), measure=ok)  # type: ignore[arg-type]
    while w.status.get("currentStep", 0) < 1 or not w.status.get("trafficPrepared"):
        w.tick()
    again = [
        reconcile(parse_spec(w.spec), Status.from_dict(w.status), w.observations(), w.now) for _ in range(2)
    ]
    applied = [[a for a in d.actions if isinstance(a, ApplyTrafficConfig)] for d in again]
    assert applied[0] == applied[1]
    assert applied[0][0].generation == "linear-1-1"


def test_a_new_version_mid_rollout_replaces_the_candidate() -> None:
    w = TrafficWorld(traffic_spec())
    for _ in range(4):
        w.tick()
    w.spec["model"] = {"version": 3}
    w.tick()
    assert w.written[-1] == ("linear-2-prep", {"versions": [1, 3], "weights": {"1": 100, "3": 0}, **STICKY})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": {"version": 2, "source": {"image": "m:2"}}}, "the traffic strategy changes no pod"),
        ({"analysis": {"prometheus": {"url": "http://p"}}}, "leave out analysis.prometheus"),
    ],
)
def test_invalid_specs(change: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(traffic_spec(**change))


def test_disagreement_inputs_are_optional_only_with_traffic() -> None:
    """The traffic strategy's servers shadow live traffic; the canary's gate needs inputs to send."""
    spec = parse_spec(traffic_spec(analysis={"disagreement": {"maxRatio": 0}}))
    assert spec.analysis is not None
    assert spec.analysis.disagreement is not None
    assert spec.analysis.disagreement.inputs is None
    canary = traffic_spec(
        strategy={"type": "canary"},
        model={"version": 2, "source": {"image": "m:2"}},
        analysis={"disagreement": {"maxRatio": 0}},
    )
    with pytest.raises(SpecError, match=r"analysis\.disagreement\.inputs"):
        parse_spec(canary)


def test_canary_still_needs_a_source() -> None:
    spec = traffic_spec(strategy={"type": "canary"})
    with pytest.raises(SpecError, match=r"need model\.source"):
        parse_spec(spec)


def test_an_invalid_target_is_reported() -> None:
    w = TrafficWorld(
        traffic_spec(), overlay_error="ConfigMap x is rendered by Helm: set traffic.existingConfigMap"
    )
    d = w.tick()
    assert d.status.phase == "Invalid"
    assert "traffic.existingConfigMap" in d.status.message
    assert w.written == []


def _template(
    volume: dict[str, object], env: list[dict[str, str]], mounts: list[dict[str, str]]
) -> dict[str, object]:
    return {
        "spec": {
            "containers": [{"name": "server", "env": env, "volumeMounts": mounts}],
            "volumes": [volume, {"name": "traffic", "configMap": {"name": "tcm"}}],
        }
    }


TRAFFIC_ENV = {"name": "MODELSHIP_TRAFFIC_CONFIG_FILE", "value": "/etc/modelship/traffic/traffic.json"}
TRAFFIC_MOUNT = {"name": "traffic", "mountPath": "/etc/modelship/traffic"}


def test_target_requirements() -> None:
    store = {"name": "MODELSHIP_MODEL_BASE_PATH", "value": "s3://bucket/linear"}
    cache = {"name": "model-cache", "emptyDir": {}}
    mount, error = traffic_target(_template(cache, [store, TRAFFIC_ENV], [TRAFFIC_MOUNT]), "server")
    assert error is None
    assert mount is not None
    assert (mount.configmap, mount.key) == ("tcm", "traffic.json")
    pvc = {"name": "models", "persistentVolumeClaim": {"claimName": "c"}}
    models = {"name": "models", "mountPath": "/models"}
    assert traffic_target(_template(pvc, [TRAFFIC_ENV], [models, TRAFFIC_MOUNT]), "server")[1] is None
    url = {"name": "models", "emptyDir": {}}
    _, error = traffic_target(_template(url, [TRAFFIC_ENV], [models, TRAFFIC_MOUNT]), "server")
    assert error is not None
    assert "use the canary strategy" in error
    _, error = traffic_target(_template(pvc, [], [models]), "server")
    assert error is not None
    assert "traffic.enabled=true" in error
    sub = {**TRAFFIC_MOUNT, "subPath": "traffic.json"}
    _, error = traffic_target(_template(pvc, [TRAFFIC_ENV], [models, sub]), "server")
    assert error is not None
    assert "mounted as a directory" in error


METRICS = """\
# TYPE modelship_requests_total counter
modelship_requests_total{{model="linear",version="1",api="predict",code="OK",transport="rest"}} {s}
modelship_requests_total{{model="linear",version="2",api="predict",code="OK",transport="rest"}} {c}
modelship_requests_total{{model="linear",version="2",api="predict",code="INTERNAL",transport="rest"}} {e}
modelship_requests_total{{model="linear",version="2",api="status",code="OK",transport="rest"}} 99
# TYPE modelship_shadow_requests_total counter
modelship_shadow_requests_total{{model="linear",version="2",result="agree"}} {agree}
modelship_shadow_requests_total{{model="linear",version="2",result="disagree"}} {dis}
modelship_shadow_requests_total{{model="linear",version="2",result="error"}} 0
"""


def _snap(**kw: float) -> dict[str, object]:
    values = {"s": 0, "c": 0, "e": 0, "agree": 0, "dis": 0, **kw}
    return parse_version_metrics(METRICS.format(**values), "linear", ("OK",))


def test_per_version_window_and_shadow_judgment() -> None:
    base = {"a": _snap(s=10, agree=5), "b": _snap()}
    now = {"a": _snap(s=40, c=3, e=1, agree=35, dis=1), "b": _snap(s=5, agree=10), "new": _snap(agree=4)}
    window = version_delta(now, base, "2", "1")
    assert window.stable.requests == 35  # 30 + 5, status calls left out
    assert (window.candidate.requests, window.candidate.errors) == (4, 1)
    assert window.shadow["agree"] == 30 + 10 + 4
    assert window.shadow["disagree"] == 1
    spec = parse_spec(
        traffic_spec(
            analysis={"minRequests": 10, "errorRatio": {"max": 0.5}, "disagreement": {"inputs": [[1]]}}
        )
    ).analysis
    assert spec is not None
    assert spec.disagreement is not None
    m = judge_window(spec, window, shadow_outcome(window, spec.disagreement), [])
    assert m.phase == "Failed"  # 1/45 disagree, maxRatio 0
    assert "disagree" in m.message
    lenient = spec.model_copy(
        update={"disagreement": spec.disagreement.model_copy(update={"max_ratio": 0.1})}
    )
    assert lenient.disagreement is not None
    m = judge_window(lenient, window, shadow_outcome(window, lenient.disagreement), [])
    assert m.phase == "Successful", m.message  # 4 client requests only, but 45 shadow results
