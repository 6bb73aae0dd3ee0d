"""The traffic strategy's probes against real model server processes (``python -m service``).

Each "pod" is a server with linear/1 (good) and linear/2 (good, wrong or broken) under one base
path and a traffic file pinning both versions, as the chart's objectStore/pvc source with the
operator's ConfigMap gives it: :func:`pod_traffic` reads the applied generation and the AVAILABLE
versions, :func:`verify_versions` compares version-addressed predicts on the same pod, and
:func:`measure_versions` diffs the per-version request and shadow counters of two servers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rollout_operator.spec import AnalysisSpec, parse_spec
from rollout_operator.traffic_config import only_plan, split_plan
from rollout_operator.traffic_driver import traffic_configmap
from rollout_operator.traffic_probes import measure_versions, pod_traffic, verify_versions
from rollout_operator.traffic_target import TrafficMount
from tests.fixtures import ServerProcess, free_port
from tests.scripts.rollout_operator.models import export_kind
from tests.scripts.rollout_operator.test_probes import CHECK, LocalPods, pod
from tests.scripts.rollout_operator.traffic_sim import traffic_spec
from tests.service.traffic_helpers import apply, metric, status, wait_until, write_traffic

pytestmark = pytest.mark.slow
GOOD_X = [[1.0, 2.0, 3.0]]
BOTH = {"versions": [1, 2], "weights": {"1": 100, "2": 0}}


class Pod:
    """One server process and the traffic file it reads."""

    def __init__(self, proc: ServerProcess, traffic: Path | None) -> None:
        self.proc, self.traffic = proc, traffic

    def write(self, generation: str, entry: dict[str, Any]) -> dict[str, Any]:
        """Apply ``{"generation", "models": {"linear": entry}}`` and wait until the server reports it."""
        assert self.traffic is not None
        return apply(self.proc.url, self.traffic, {"generation": generation, "models": {"linear": entry}})


@pytest.fixture(scope="module")
def pods(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Pod]]:
    """good/wrong/broken: linear/1 good and linear/2 of that kind, both pinned; plain: version 1
    and no traffic file at all."""
    out: dict[str, Pod] = {}
    try:
        for name, kind in (("good", "good"), ("wrong", "wrong"), ("broken", "broken"), ("plain", None)):
            base = tmp_path_factory.mktemp(name)
            export_kind(base / "linear" / "1", "good")
            args = ["--model_name=linear", f"--model_base_path={base / 'linear'}"]
            traffic = None
            if kind is not None:
                export_kind(base / "linear" / "2", kind)
                traffic = base / "traffic.json"
                write_traffic(traffic, {"generation": "start", "models": {"linear": BOTH}})
                args += [f"--traffic_config_file={traffic}", "--traffic_config_file_poll_wait_seconds=0.1"]
            out[name] = Pod(ServerProcess(args, log=base / "server.log"), traffic)
        for p in out.values():
            p.proc.wait_ready(120)
        yield out
    finally:
        for p in out.values():
            p.proc.terminate()


@pytest.fixture
def http(pods: dict[str, Pod]) -> LocalPods:
    return LocalPods({name: p.proc.rest_port for name, p in pods.items()} | {"dead": free_port()})


@pytest.fixture
def reset(pods: dict[str, Pod], http: LocalPods) -> None:
    """Every pinned pod back to both versions AVAILABLE, all name-only traffic on 1, no shadow.

    The generation is reported as soon as the file is applied, before a re-pinned version has
    loaded: the operator waits for both (``available``), so does this."""
    for name, p in pods.items():
        if p.traffic is not None:
            p.write(f"reset-{time.monotonic_ns()}", BOTH)
            wait_until(lambda name=name: pod_traffic(http, pod(name), "linear").available == (1, 2))


def predict(p: Pod, n: int, version: int | None = None, instances: list[list[float]] = GOOD_X) -> list[int]:
    """``n`` predicts (name-only, or version-addressed); the HTTP status of each."""
    path = "/v1/models/linear" + (f"/versions/{version}" if version else "") + ":predict"
    with httpx.Client(timeout=10) as client:
        return [client.post(p.proc.url + path, json={"instances": instances}).status_code for _ in range(n)]


def analysis(**overrides: Any) -> AnalysisSpec:
    d: dict[str, Any] = {"interval": "30s", "count": 1, "minRequests": 10, "errorRatio": {"max": 0.05}}
    d.update(overrides)
    spec = parse_spec(traffic_spec(analysis=d)).analysis
    assert spec is not None
    return spec


def values(m: Any) -> dict[str, Any]:
    return {x["name"]: x.get("value") for x in m.metrics}


# pod_traffic


def test_pod_traffic_reports_the_generation_and_both_versions(
    pods: dict[str, Pod], http: LocalPods, reset: None
) -> None:
    pods["good"].write("linear-1-prep", BOTH)
    t = pod_traffic(http, pod("good"), "linear")
    assert (t.generation, t.available, t.error) == ("linear-1-prep", (1, 2), "")


def test_pod_traffic_follows_a_rewritten_file(pods: dict[str, Pod], http: LocalPods, reset: None) -> None:
    p = pods["good"]
    assert p.traffic is not None
    write_traffic(p.traffic, {"generation": "linear-1-0", "models": {"linear": BOTH}})
    wait_until(lambda: pod_traffic(http, pod("good"), "linear").generation == "linear-1-0", timeout=5)
    # a pin of version 2 alone: 1 leaves the AVAILABLE versions (it unloads)
    write_traffic(p.traffic, {"generation": "linear-1-promote", "models": {"linear": {"versions": [2]}}})
    wait_until(lambda: pod_traffic(http, pod("good"), "linear").available == (2,), timeout=10)
    assert pod_traffic(http, pod("good"), "linear").generation == "linear-1-promote"


def test_pod_traffic_without_a_traffic_file(http: LocalPods) -> None:
    t = pod_traffic(http, pod("plain"), "linear")
    assert (t.generation, t.available, t.error) == ("", (1,), "")


def test_pod_traffic_of_a_pod_that_does_not_answer(http: LocalPods) -> None:
    t = pod_traffic(http, pod("dead"), "linear")
    assert t.error
    assert "GET /v1/modelship/traffic" in t.error
    assert "dead" in t.error
    assert (t.generation, t.available) == ("", ())


def test_pod_traffic_of_an_unknown_model(http: LocalPods) -> None:
    t = pod_traffic(http, pod("good"), "nosuch")
    assert t.error
    assert "GET /v1/models/nosuch: HTTP 404" in t.error


# verify_versions


def test_verify_same_answers_passes(http: LocalPods, reset: None) -> None:
    v = verify_versions(http, pod("good"), "linear", 2, 1, CHECK)
    assert v.outcome == "passed", v.message
    assert "0/3 predictions differ" in v.message


def test_verify_wrong_answers_fails_naming_the_disagreement(http: LocalPods, reset: None) -> None:
    v = verify_versions(http, pod("wrong"), "linear", 2, 1, CHECK)
    assert v.outcome == "failed", v.message
    assert "3/3 predictions differ" in v.message
    assert "differ from version 1" in v.message
    assert "row 0: version 2 -1.5 vs version 1 4.75" in v.message  # an example, both sides named


def test_verify_a_broken_version_fails_with_its_error(http: LocalPods, reset: None) -> None:
    v = verify_versions(http, pod("broken"), "linear", 2, 1, CHECK)
    assert v.outcome == "failed", v.message  # the candidate's own refusal: a failure, not an error
    assert "version 2 answered HTTP 400" in v.message
    assert "expects shape [-1,4]" in v.message  # the server's own reason


def test_verify_an_unloaded_version_or_dead_pod_is_not_passed(
    pods: dict[str, Pod], http: LocalPods, reset: None
) -> None:
    assert verify_versions(http, pod("dead"), "linear", 2, 1, CHECK).outcome == "error"
    v = verify_versions(http, pod("plain"), "linear", 2, 1, CHECK)  # version 2 is not served there
    assert v.outcome == "failed"
    assert "HTTP 404" in v.message or "HTTP 400" in v.message, v.message


# measure_versions


def test_window_counts_each_version_exactly_over_two_pods(
    pods: dict[str, Pod], http: LocalPods, reset: None
) -> None:
    spec = analysis(minRequests=5, errorRatio={"max": 0.05})
    serving = [pod("good"), pod("broken")]
    first = measure_versions(http, spec, "linear", 2, 1, serving, None)
    assert first.kind == "baseline"
    assert set(first.baseline["versionPods"]) == {"good", "broken"}  # type: ignore[index]
    assert predict(pods["good"], 7) == [200] * 7  # name-only: weights 100/0, all on 1
    assert predict(pods["broken"], 5, version=1) == [200] * 5
    assert predict(pods["good"], 6, version=2) == [200] * 6
    assert predict(pods["broken"], 3, version=2) == [400] * 3  # the broken version refuses
    m = measure_versions(http, spec, "linear", 2, 1, serving, first.baseline)
    got = values(m)
    assert got["requests"] == 9  # 6 + 3 on the candidate, the stable ones not counted
    assert got["errorRatio"] == pytest.approx(3 / 9)
    assert m.phase == "Failed", m.message
    assert "errorRatio" in m.message
    # a quiet window after that: inconclusive, never a pass
    quiet = measure_versions(http, spec, "linear", 2, 1, serving, m.baseline)
    assert quiet.phase == "Inconclusive", quiet.message
    assert values(quiet)["requests"] == 0


def test_window_of_a_good_candidate_succeeds(pods: dict[str, Pod], http: LocalPods, reset: None) -> None:
    spec = analysis(minRequests=10, latencyP99={"maxSeconds": 5, "maxRatioToStable": 50})
    serving = [pod("good"), pod("wrong")]
    first = measure_versions(http, spec, "linear", 2, 1, serving, None)
    pods["good"].write("w50", {"versions": [1, 2], "weights": {"1": 0, "2": 100}})
    assert predict(pods["good"], 12) == [200] * 12  # name-only, all answered by 2 (weights)
    assert predict(pods["wrong"], 8) == [200] * 8  # all answered by 1
    m = measure_versions(http, spec, "linear", 2, 1, serving, first.baseline)
    got = values(m)
    assert m.phase == "Successful", m.message
    assert got["requests"] == 12
    assert got["errorRatio"] == 0
    assert 0 < got["latencyP99"] < 5


def test_disagreement_is_left_out_of_a_window_with_no_shadow_and_no_inputs(
    pods: dict[str, Pod], http: LocalPods, reset: None
) -> None:
    """A weight step after the shadow was switched off: nothing can measure disagreement, so the
    window is judged on the rest (inconclusive would pause every such rollout for a human)."""
    spec = analysis(minRequests=5, disagreement={"maxRatio": 0})
    serving = [pod("good")]
    first = measure_versions(http, spec, "linear", 2, 1, serving, None, shadowing=False)
    assert predict(pods["good"], 6, version=2) == [200] * 6
    m = measure_versions(http, spec, "linear", 2, 1, serving, first.baseline, shadowing=False)
    assert m.phase == "Successful", m.message
    assert "disagreement" not in values(m)
    assert "disagreement not measured" in m.message
    assert predict(pods["good"], 6, version=2) == [200] * 6
    shadowed = measure_versions(http, spec, "linear", 2, 1, serving, m.baseline, shadowing=True)
    assert shadowed.phase == "Inconclusive", shadowed.message  # a shadow step without results
    assert "no shadow results" in shadowed.message


def shadow(p: Pod, percent: float = 100) -> None:
    """Shadow ``percent`` % of the name-only requests (all answered by 1) on version 2."""
    p.write(
        f"shadow-{time.monotonic_ns()}",
        {**BOTH, "shadow": {"version": 2, "percent": percent, "rtol": 1e-4, "atol": 1e-6}},
    )


def shadow_results(p: Pod) -> float:
    return sum(
        metric(p.proc.url, "modelship_shadow_requests_total", model="linear", version="2", result=r)
        for r in ("agree", "disagree", "shape_mismatch", "error", "dropped")
    )


def test_shadow_on_a_wrong_candidate_fails_on_disagreement(
    pods: dict[str, Pod], http: LocalPods, reset: None
) -> None:
    spec = analysis(disagreement={"maxRatio": 0})
    p = pods["wrong"]
    shadow(p)
    first = measure_versions(http, spec, "linear", 2, 1, [pod("wrong")], None)
    before = shadow_results(p)
    assert predict(p, 12) == [200] * 12
    wait_until(lambda: shadow_results(p) >= before + 12, timeout=10)
    m = measure_versions(http, spec, "linear", 2, 1, [pod("wrong")], first.baseline)
    got = values(m)
    assert m.phase == "Failed", m.message
    assert got["requests"] == 12  # the shadow results: no client request was answered by 2
    assert got["disagreement"] == 1
    assert "12/12 shadowed requests disagree" in m.message
    assert "judged on 12 shadow results (0 client requests)" in m.message


def test_shadow_on_a_good_candidate_succeeds(pods: dict[str, Pod], http: LocalPods, reset: None) -> None:
    spec = analysis(disagreement={"maxRatio": 0})
    p = pods["good"]
    shadow(p)
    first = measure_versions(http, spec, "linear", 2, 1, [pod("good")], None)
    before = shadow_results(p)
    assert predict(p, 12) == [200] * 12
    wait_until(lambda: shadow_results(p) >= before + 12, timeout=10)
    m = measure_versions(http, spec, "linear", 2, 1, [pod("good")], first.baseline)
    got = values(m)
    assert m.phase == "Successful", m.message
    assert got["disagreement"] == 0
    assert got["requests"] == 12


def test_window_with_a_pod_that_does_not_answer(http: LocalPods, reset: None) -> None:
    spec = analysis()
    first = measure_versions(http, spec, "linear", 2, 1, [pod("dead")], None)
    m = measure_versions(http, spec, "linear", 2, 1, [pod("dead")], first.baseline)
    assert m.phase == "Error", m.message
    assert "dead" in m.message


def test_a_pod_missed_in_one_window_is_not_counted_from_zero_in_the_next(
    pods: dict[str, Pod], reset: None
) -> None:
    """ "flaky" is the good server, unreachable for one window: its counters stay in the baseline."""
    ports = {name: p.proc.rest_port for name, p in pods.items()}
    http = LocalPods(dict(ports, flaky=ports["good"]))
    spec = analysis(minRequests=5)
    serving = [pod("flaky"), pod("wrong")]
    assert predict(pods["good"], 5, version=2) == [200] * 5  # history before the rollout's baseline
    first = measure_versions(http, spec, "linear", 2, 1, serving, None)
    http.ports["flaky"] = free_port()
    assert predict(pods["wrong"], 6, version=2) == [200] * 6
    missed = measure_versions(http, spec, "linear", 2, 1, serving, first.baseline)
    assert values(missed)["requests"] == 6
    assert "flaky" in missed.message
    http.ports["flaky"] = ports["good"]
    assert predict(pods["good"], 7, version=2) == [200] * 7
    back = measure_versions(http, spec, "linear", 2, 1, serving, missed.baseline)
    assert values(back)["requests"] == 7  # the window's 7, not the good server's whole history
    assert back.phase == "Successful", back.message


def test_every_file_the_operator_writes_is_applied_by_a_real_server(
    pods: dict[str, Pod], http: LocalPods, reset: None
) -> None:
    """prep, each step (shadow with the disagreement tolerances, weights, sticky header), promote and
    rollback, through the driver's ConfigMap body: the server applies each one, no error."""
    spec = parse_spec(
        traffic_spec(
            analysis={"minRequests": 10, "disagreement": {"relTolerance": 1e-3, "absTolerance": 1e-5}}
        )
    )
    p = pods["good"]
    assert p.traffic is not None
    mount = TrafficMount(configmap="linear-traffic", key=p.traffic.name)
    plans = [split_plan(spec, "linear", 3, 1, 2, None)]
    plans += [split_plan(spec, "linear", 3, 1, 2, i) for i in range(len(spec.strategy.traffic.steps))]
    plans += [only_plan("linear", 3, 2, "promote"), only_plan("linear", 3, 1, "rollback")]
    assert any("shadow" in plan.entry for plan in plans)
    errors = status(p.proc.url)["errors_total"]
    for plan in plans:
        found = {"data": {mount.key: p.traffic.read_text()}}
        body = traffic_configmap("ml", mount, found, "linear", plan.generation, plan.entry)
        applied = apply(p.proc.url, p.traffic, json.loads(body["data"][mount.key]))
        assert applied["config"]["models"]["linear"]["versions"] == sorted(plan.entry["versions"])
        if "shadow" in plan.entry:
            assert applied["config"]["models"]["linear"]["shadow"]["rtol"] == 1e-3
    assert status(p.proc.url)["errors_total"] == errors
    t = pod_traffic(http, pod("good"), "linear")
    assert t.generation == "linear-3-rollback"
    wait_until(lambda: pod_traffic(http, pod("good"), "linear").available == (1,))
