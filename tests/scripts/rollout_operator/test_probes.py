"""Verification and measurement against real model server processes (``python -m service``)."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from rollout_operator.observations import PodView
from rollout_operator.pod_http import DirectPodHttp
from rollout_operator.probes import measure, served_version, verify_pod
from rollout_operator.spec import DisagreementCheck, parse_spec
from tests.fixtures import ServerProcess, free_port
from tests.scripts.rollout_operator.models import export_kind
from tests.scripts.rollout_operator.sim import spec_dict

pytestmark = pytest.mark.slow
INPUTS = ([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [-1.5, 4.0, 0.25])
CHECK = DisagreementCheck(inputs=INPUTS, abs_tolerance=1e-4, rel_tolerance=1e-4)


class LocalPods:
    """Pods are local server processes: one port per pod name, the real DirectPodHttp code path."""

    def __init__(self, ports: dict[str, int]) -> None:
        self.ports = ports

    def request(self, pod: PodView, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        return DirectPodHttp(self.ports[pod.name], timeout=5).request(pod, method, path, body)


def pod(name: str, canary: bool = False) -> PodView:
    return PodView(
        name=name, uid=name, ip="127.0.0.1", containers_ready=True, gate_open=True, ready=True, canary=canary
    )


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    """stable: good model version 1; good/wrong/broken: that model as version 2."""
    procs: dict[str, ServerProcess] = {}
    try:
        for name, kind, version in (
            ("stable", "good", 1),
            ("good", "good", 2),
            ("wrong", "wrong", 2),
            ("broken", "broken", 2),
        ):
            base = tmp_path_factory.mktemp(name)
            export_kind(base / "linear" / str(version), kind)
            procs[name] = ServerProcess(
                ["--model_name=linear", f"--model_base_path={base / 'linear'}"], log=base / "server.log"
            )
        for proc in procs.values():
            proc.wait_ready(120)
        yield procs
    finally:
        for proc in procs.values():
            proc.terminate()


@pytest.fixture
def pods_http(servers: dict[str, ServerProcess]) -> LocalPods:
    return LocalPods({name: proc.rest_port for name, proc in servers.items()} | {"dead": free_port()})


def test_good_canary_passes_verification(pods_http: LocalPods) -> None:
    v = verify_pod(pods_http, pod("good", True), pod("stable"), "linear", 2, CHECK)
    assert v.outcome == "passed", v.message
    assert "0/3 predictions differ" in v.message
    assert verify_pod(pods_http, pod("good", True), None, "linear", 2, None).outcome == "passed"


def test_wrong_answers_fail_verification(pods_http: LocalPods) -> None:
    v = verify_pod(pods_http, pod("wrong", True), pod("stable"), "linear", 2, CHECK)
    assert v.outcome == "failed"
    assert "3/3 predictions differ" in v.message


def test_a_model_that_errors_fails_verification(pods_http: LocalPods) -> None:
    v = verify_pod(pods_http, pod("broken", True), pod("stable"), "linear", 2, CHECK)
    assert v.outcome == "failed"
    assert "HTTP 400" in v.message


def test_a_version_that_is_not_served_fails_verification(pods_http: LocalPods) -> None:
    v = verify_pod(pods_http, pod("stable", True), pod("stable"), "linear", 2, CHECK)
    assert v.outcome == "failed"
    assert "not AVAILABLE" in v.message


def test_unreachable_pod_is_an_error_not_a_failure(pods_http: LocalPods) -> None:
    assert verify_pod(pods_http, pod("dead", True), pod("stable"), "linear", 2, CHECK).outcome == "error"
    v = verify_pod(pods_http, pod("good", True), pod("dead"), "linear", 2, CHECK)
    assert v.outcome == "error"


def test_served_version(pods_http: LocalPods) -> None:
    assert served_version(pods_http, pod("stable"), "linear") == "1"
    assert served_version(pods_http, pod("good"), "linear") == "2"


def send(server: ServerProcess, n: int, instances: list[list[float]]) -> None:
    with httpx.Client() as client:
        for _ in range(n):
            client.post(f"{server.url}/v1/models/linear:predict", json={"instances": instances})


def test_measurement_windows(servers: dict[str, ServerProcess], pods_http: LocalPods) -> None:
    spec = parse_spec(
        spec_dict(
            analysis={
                "interval": "30s",
                "minRequests": 10,
                "errorRatio": {"max": 0.1},
                "latencyP99": {"maxSeconds": 5, "maxRatioToStable": 50},
                "disagreement": {"inputs": [list(x) for x in INPUTS], "absTolerance": 1e-4},
            }
        )
    ).analysis
    assert spec is not None
    canary, stable = [pod("good", True)], [pod("stable")]
    first = measure(pods_http, spec, "ns", "linear", 2, canary, stable, None)
    assert first.kind == "baseline"
    assert first.baseline is not None
    send(servers["good"], 30, [[1.0, 2.0, 3.0]])
    send(servers["stable"], 30, [[1.0, 2.0, 3.0]])
    m = measure(pods_http, spec, "ns", "linear", 2, canary, stable, first.baseline)
    values = {x["name"]: x for x in m.metrics}
    assert m.phase == "Successful", m.message
    assert values["requests"]["value"] == 30  # exactly the window: the baseline's counts are subtracted
    assert values["errorRatio"]["value"] == 0
    assert values["disagreement"]["value"] == 0
    assert 0 < values["latencyP99"]["value"] < 5
    # now a third of the canary's requests fail (wrong shape): error ratio 0.33 > 0.1
    send(servers["good"], 20, [[1.0, 2.0, 3.0]])
    send(servers["good"], 10, [[1.0, 2.0]])
    m2 = measure(pods_http, spec, "ns", "linear", 2, canary, stable, m.baseline)
    values = {x["name"]: x for x in m2.metrics}
    assert m2.phase == "Failed"
    assert "errorRatio" in m2.message
    assert values["requests"]["value"] == 31  # + the disagreement request of the previous measurement
    assert values["errorRatio"]["value"] == pytest.approx(10 / 31, abs=1e-3)
    # a quiet window is inconclusive, never a pass
    m3 = measure(pods_http, spec, "ns", "linear", 2, canary, stable, m2.baseline)
    assert m3.phase == "Inconclusive"


def test_a_pod_missed_by_one_scrape_keeps_its_baseline(
    servers: dict[str, ServerProcess], pods_http: LocalPods
) -> None:
    """ "flaky" is the canary server, unreachable for one window: its next window counts the
    window's requests, not everything it served since it started."""
    spec = parse_spec(spec_dict(analysis={"interval": "30s", "minRequests": 1})).analysis
    assert spec is not None
    http = LocalPods(dict(pods_http.ports, flaky=pods_http.ports["good"]))
    canary, stable = [pod("flaky", True)], [pod("stable")]
    send(servers["good"], 9, [[1.0, 2.0, 3.0]])  # history before the rollout's baseline
    first = measure(http, spec, "ns", "linear", 2, canary, stable, None)
    http.ports["flaky"] = free_port()
    missed = measure(http, spec, "ns", "linear", 2, canary, stable, first.baseline)
    assert missed.phase == "Error"
    assert "flaky" in missed.message
    http.ports["flaky"] = pods_http.ports["good"]
    send(servers["good"], 3, [[1.0, 2.0, 3.0]])
    back = measure(http, spec, "ns", "linear", 2, canary, stable, missed.baseline)
    values = {x["name"]: x for x in back.metrics}
    assert values["requests"]["value"] == 3  # the window's 3, not 9 + 3


def test_measurement_with_unreachable_canary_is_an_error(pods_http: LocalPods) -> None:
    spec = parse_spec(spec_dict()).analysis
    assert spec is not None
    baseline = {"pods": {}}
    m = measure(pods_http, spec, "ns", "linear", 2, [pod("dead", True)], [pod("stable")], baseline)
    assert m.phase == "Error"
    assert "dead" in m.message


class FakePrometheus(BaseHTTPRequestHandler):
    """Answers instant queries from a table of substrings (Prometheus itself is not available here)."""

    answers: ClassVar[dict[str, str]] = {}
    queries: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)["query"][0]
        FakePrometheus.queries.append(query)
        value = next((v for k, v in self.answers.items() if k in query), None)
        result = [] if value is None else [{"metric": {}, "value": [0, value]}]
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


def test_prometheus_source(pods_http: LocalPods, tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePrometheus)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        spec = parse_spec(
            spec_dict(
                analysis={
                    "minRequests": 10,
                    "errorRatio": {"max": 0.05},
                    "latencyP99": {"maxSeconds": 0.5},
                    "prometheus": {"url": url},
                }
            )
        ).analysis
        assert spec is not None
        FakePrometheus.answers = {
            'pod=~"canary-1",model="linear",api=~"predict|classify|regress|infer",code': "6",
            'pod=~"canary-1"': "100",
            "histogram_quantile": "0.05",
        }
        first = measure(pods_http, spec, "ml", "linear", 2, [pod("canary-1", True)], [pod("stable-1")], None)
        assert first.kind == "baseline"
        assert FakePrometheus.queries == []
        m = measure(
            pods_http, spec, "ml", "linear", 2, [pod("canary-1", True)], [pod("stable-1")], first.baseline
        )
        assert m.phase == "Failed"
        assert "0.0600 > 0.05" in m.message
        assert any('namespace="ml"' in q and "[30s]" in q for q in FakePrometheus.queries)
        FakePrometheus.answers = {}
        m = measure(pods_http, spec, "ml", "linear", 2, [pod("canary-1", True)], [], first.baseline)
        assert m.phase == "Inconclusive"  # empty vectors: no data
    finally:
        server.shutdown()
        server.server_close()
