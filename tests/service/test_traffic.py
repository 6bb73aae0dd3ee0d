"""The traffic split against a real server process: exact shares, visibility, sticky, live reload."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc

from tests.fixtures import ServerProcess, export_linear, train_linear
from tests.service.traffic_helpers import (
    PREDICT,
    X,
    apply,
    expected,
    metric,
    model_config,
    status,
    wait_until,
    write_traffic,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, linear_run: Path) -> Path:
    """linear/1 and linear/2, trained with different seeds: they answer differently."""
    base = tmp_path_factory.mktemp("traffic")
    export_linear(linear_run, base, 1)
    export_linear(train_linear(base / "run2", seed=7), base, 2)
    return base


@pytest.fixture(scope="module")
def answers(base: Path) -> dict[int, float]:
    out = expected(base, [1, 2])
    assert abs(out[1] - out[2]) > 1e-3
    return out


@pytest.fixture(scope="module")
def traffic_file(base: Path) -> Path:
    path = base / "traffic.json"
    write_traffic(path, {"generation": "start", "models": {"linear": {"weights": {"1": 90, "2": 10}}}})
    return path


@pytest.fixture(scope="module")
def server(
    base: Path, traffic_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    config = base / "models.config"
    config.write_text(model_config(base, {"stable": 1, "canary": 2}))
    args = [
        f"--model_config_file={config}",
        f"--traffic_config_file={traffic_file}",
        "--traffic_config_file_poll_wait_seconds=0.1",
    ]
    with ServerProcess.running(args, tmp_path_factory.mktemp("log") / "server.log") as server:
        server.wait_ready()
        for v in (1, 2):  # both versions AVAILABLE before any share is measured
            url = f"{server.url}/v1/models/linear/versions/{v}:predict"
            wait_until(lambda url=url: httpx.post(url, json=PREDICT, timeout=10).status_code == 200, 120)
        yield server


def _rest_version(
    url: str, answers: dict[int, float], path: str = "/v1/models/linear:predict", **kw: object
) -> int:
    r = httpx.post(url + path, json=PREDICT, timeout=10, **kw)  # type: ignore[arg-type]  # a new connection each time
    assert r.status_code == 200, r.text
    version = int(r.headers["x-modelship-model-version"])
    assert r.json()["predictions"][0] == pytest.approx(answers[version], rel=1e-4)
    return version


def _within_one(counts: Counter[int], weights: dict[int, int], n: int) -> None:
    total = sum(weights.values())
    for version, weight in weights.items():
        assert abs(counts[version] - n * weight / total) <= 1, (counts, weights)


@pytest.mark.parametrize("weights", [{1: 90, 2: 10}, {1: 50, 2: 50}])
def test_rest_name_only_requests_split_exactly(
    server: ServerProcess, traffic_file: Path, answers: dict[int, float], weights: dict[int, int]
) -> None:
    gen = f"rest-{weights[1]}"
    apply(
        server.url,
        traffic_file,
        {"generation": gen, "models": {"linear": {"weights": {str(k): w for k, w in weights.items()}}}},
    )
    counts = Counter(_rest_version(server.url, answers) for _ in range(1000))
    _within_one(counts, weights, 1000)


@pytest.mark.parametrize("weights", [{1: 90, 2: 10}, {1: 50, 2: 50}])
def test_grpc_one_channel_split_exactly(
    server: ServerProcess, traffic_file: Path, answers: dict[int, float], weights: dict[int, int]
) -> None:
    gen = f"grpc-{weights[1]}"
    apply(
        server.url,
        traffic_file,
        {"generation": gen, "models": {"linear": {"weights": {str(k): w for k, w in weights.items()}}}},
    )
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="linear"))
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(X))
    counts: Counter[int] = Counter()
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for _ in range(1000):
            response = stub.Predict(request, timeout=10)
            version = response.model_spec.version.value
            assert response.outputs["y"].float_val[0] == pytest.approx(answers[version], rel=1e-4)
            counts[version] += 1
    _within_one(counts, weights, 1000)


def test_v2_infer_reports_the_version_that_answered(
    server: ServerProcess, traffic_file: Path, answers: dict[int, float]
) -> None:
    apply(server.url, traffic_file, {"generation": "v2", "models": {"linear": {"weights": {"1": 1, "2": 1}}}})
    body = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": X.ravel().tolist()}]}
    seen = Counter()
    for _ in range(20):
        reply = httpx.post(f"{server.url}/v2/models/linear/infer", json=body, timeout=10).json()
        version = int(reply["model_version"])
        assert reply["outputs"][0]["data"][0] == pytest.approx(answers[version], rel=1e-4)
        seen[version] += 1
    assert seen == {1: 10, 2: 10}


def test_version_and_label_requests_are_not_split(
    server: ServerProcess, traffic_file: Path, answers: dict[int, float]
) -> None:
    apply(
        server.url,
        traffic_file,
        {"generation": "direct", "models": {"linear": {"weights": {"1": 1, "2": 1}}}},
    )
    for path, version in (
        ("/v1/models/linear/versions/1:predict", 1),
        ("/v1/models/linear/versions/2:predict", 2),
        ("/v1/models/linear/labels/stable:predict", 1),
        ("/v1/models/linear/labels/canary:predict", 2),
    ):
        assert {_rest_version(server.url, answers, path) for _ in range(10)} == {version}
    # and they did not move the split: the next name-only requests continue the cycle exactly
    counts = Counter(_rest_version(server.url, answers) for _ in range(10))
    assert counts == {1: 5, 2: 5}


def test_sticky_header_and_fallbacks(
    server: ServerProcess, traffic_file: Path, answers: dict[int, float]
) -> None:
    apply(
        server.url,
        traffic_file,
        {
            "generation": "sticky",
            "models": {"linear": {"weights": {"1": 70, "2": 30}, "sticky_header": "x-user-id"}},
        },
    )
    per_user = {}
    for user in range(200):
        seen = {_rest_version(server.url, answers, headers={"x-user-id": f"u{user}"}) for _ in range(3)}
        assert len(seen) == 1, user
        per_user[user] = seen.pop()
    share = Counter(per_user.values())[2] / 200
    assert 0.18 < share < 0.42, share
    # the same key over gRPC metadata gets the same version
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="linear"))
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(X))
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for user in range(20):
            response = stub.Predict(request, metadata=[("x-user-id", f"u{user}")], timeout=10)
            assert response.model_spec.version.value == per_user[user]
    # weights on versions that are not loaded: skipped; none loaded: TF Serving's latest
    apply(
        server.url, traffic_file, {"generation": "gone", "models": {"linear": {"weights": {"1": 1, "9": 5}}}}
    )
    assert {_rest_version(server.url, answers) for _ in range(10)} == {1}
    apply(
        server.url,
        traffic_file,
        {"generation": "none", "models": {"linear": {"weights": {"9": 1}}, "other": {"weights": {"1": 1}}}},
    )
    assert {_rest_version(server.url, answers) for _ in range(10)} == {2}


def test_live_reload_under_load_and_invalid_file(
    server: ServerProcess, traffic_file: Path, answers: dict[int, float]
) -> None:
    apply(server.url, traffic_file, {"generation": "before", "models": {"linear": {"weights": {"1": 100}}}})
    failures: list[str] = []
    versions: Counter[int] = Counter()
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                try:
                    r = client.post(f"{server.url}/v1/models/linear:predict", json=PREDICT)
                    if r.status_code != 200:
                        failures.append(r.text)
                    else:
                        versions[int(r.headers["x-modelship-model-version"])] += 1
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: versions[1] >= 20)  # the load runs on the old config first
        applied = apply(
            server.url, traffic_file, {"generation": "after", "models": {"linear": {"weights": {"2": 100}}}}
        )
        before = versions[2]
        threading.Event().wait(1.0)
        assert versions[2] > before
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert versions[1] > 0
    assert versions[2] > 0
    assert {_rest_version(server.url, answers) for _ in range(10)} == {2}
    assert metric(server.url, "modelship_traffic_config_info", generation="after", hash=applied["hash"]) == 1
    assert applied["config"]["models"]["linear"]["weights"] == {"2": 100}
    assert applied["source"] == str(traffic_file)
    # an invalid file: the old config stays, the error is counted and shown
    errors = metric(server.url, "modelship_traffic_config_errors_total")
    write_traffic(traffic_file, {"generation": "broken", "models": {"linear": {"weights": {"2": -5}}}})
    deadline = threading.Event()
    for _ in range(100):
        if metric(server.url, "modelship_traffic_config_errors_total") > errors:
            break
        deadline.wait(0.1)
    now = status(server.url)
    assert now["hash"] == applied["hash"]
    assert now["generation"] == "after"
    assert "models.linear.weights" in now["last_error"]["message"]
    assert metric(server.url, "modelship_traffic_config_errors_total") == errors + 1
    assert {_rest_version(server.url, answers) for _ in range(10)} == {2}


def test_missing_traffic_file_is_a_start_up_error(tmp_path: Path, base: Path) -> None:
    server = ServerProcess(
        [
            f"--model_base_path={base / 'linear'}",
            "--model_name=linear",
            f"--traffic_config_file={tmp_path / 'no.json'}",
        ],
        log=tmp_path / "server.log",
    )
    assert server.wait(60) == 2
    assert "no.json" in server.logs()
