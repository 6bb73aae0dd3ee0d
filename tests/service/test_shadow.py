"""Shadow scoring against a real server process: agree, disagree, errors, drops, never in the answer."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tensorflow as tf

from tests.fixtures import ServerProcess, export_linear, train_linear
from tests.service.traffic_helpers import (
    PREDICT,
    apply,
    expected,
    metric,
    model_config,
    wait_until,
    write_traffic,
)

pytestmark = pytest.mark.slow


class SlowLinear(tf.Module):  # type: ignore[misc]
    """The linear model's signature (x: [None, 3] -> y: [None]) taking ~``rounds`` ms per call."""

    def __init__(self, rounds: int) -> None:
        super().__init__()
        self.rounds = rounds

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def predict(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        m = tf.eye(128) * 0.5

        def body(i: tf.Tensor, acc: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            return i + 1, tf.matmul(acc, m) + tf.eye(128)

        _, acc = tf.while_loop(lambda i, _: i < self.rounds, body, [tf.constant(0), tf.eye(128)])
        return {"y": tf.reduce_sum(x, axis=1) + 0.0 * acc[0, 0]}


class OtherInput(tf.Module):  # type: ignore[misc]
    """A candidate whose input is named differently: every shadow request on it fails."""

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="z")])
    def predict(self, z: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": tf.reduce_sum(z, axis=1)}


def _save(module: tf.Module, path: Path) -> None:
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.predict})


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, linear_run: Path) -> Path:
    """1: the primary; 2: trained with another seed; 3: an identical copy of 1; 4: slow; 5: fails."""
    base = tmp_path_factory.mktemp("shadow")
    export_linear(linear_run, base, 1)
    export_linear(train_linear(base / "run2", seed=7), base, 2)
    export_linear(linear_run, base, 3)
    _save(SlowLinear(400), base / "linear" / "4")
    _save(OtherInput(), base / "linear" / "5")
    return base


@pytest.fixture(scope="module")
def traffic_file(base: Path) -> Path:
    path = base / "traffic.json"
    write_traffic(path, {"generation": "start", "models": {"linear": {"weights": {"1": 1}}}})
    return path


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("log") / "server.log"


@pytest.fixture(scope="module")
def server(base: Path, traffic_file: Path, log_path: Path) -> Iterator[ServerProcess]:
    config = base / "models.config"
    config.write_text(model_config(base, {}))
    args = [
        f"--model_config_file={config}",
        f"--traffic_config_file={traffic_file}",
        "--traffic_config_file_poll_wait_seconds=0.1",
        "--shadow_queue_size=2",
        "--log_level=debug",
    ]
    with ServerProcess.running(args, log_path) as server:
        for v in range(1, 6):
            url = f"{server.url}/v1/models/linear/versions/{v}"
            wait_until(lambda url=url: _state(url) == "AVAILABLE", 180)
        yield server


def _state(url: str) -> str:
    body = httpx.get(url, timeout=5).json()
    return str(body["model_version_status"][0]["state"]) if "model_version_status" in body else ""


def _shadow(url: str, version: int, result: str) -> float:
    return metric(url, "modelship_shadow_requests_total", model="linear", version=str(version), result=result)


def _shadowing(url: str, path: Path, version: int, percent: float, gen: str) -> None:
    doc = {
        "generation": gen,
        "models": {"linear": {"weights": {"1": 1}, "shadow": {"version": version, "percent": percent}}},
    }
    apply(url, path, doc)


def _predict(url: str, client: httpx.Client | None = None) -> tuple[float, float]:
    started = time.perf_counter()
    r = (client or httpx).post(f"{url}/v1/models/linear:predict", json=PREDICT, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["x-modelship-model-version"] == "1"
    return r.json()["predictions"][0], time.perf_counter() - started


def test_different_candidate_disagrees_identical_copy_agrees(
    server: ServerProcess, traffic_file: Path, base: Path
) -> None:
    answers = expected(base, [1, 2])
    _shadowing(server.url, traffic_file, 2, 100, "vs-2")
    for _ in range(20):
        value, _ = _predict(server.url)
        assert value == pytest.approx(answers[1], rel=1e-5)  # the primary's answer, never the shadow's
        time.sleep(0.02)  # the queue holds 2: let the shadow thread keep up
    wait_until(lambda: _shadow(server.url, 2, "disagree") + _shadow(server.url, 2, "dropped") >= 20)
    assert _shadow(server.url, 2, "disagree") >= 10
    assert _shadow(server.url, 2, "agree") == 0
    assert metric(server.url, "modelship_shadow_max_abs_diff", model="linear", version="2") > 1e-3

    _shadowing(server.url, traffic_file, 3, 10, "vs-3")
    for _ in range(100):
        _predict(server.url)
        time.sleep(0.01)
    wait_until(lambda: _shadow(server.url, 3, "agree") + _shadow(server.url, 3, "dropped") >= 10)
    assert _shadow(server.url, 3, "agree") >= 5
    assert _shadow(server.url, 3, "disagree") == 0
    assert _shadow(server.url, 3, "agree") + _shadow(server.url, 3, "dropped") == 10  # exactly 10 %
    assert metric(server.url, "modelship_shadow_duration_seconds_count", model="linear", version="3") >= 5


def test_failing_candidate_counts_errors(server: ServerProcess, traffic_file: Path) -> None:
    _shadowing(server.url, traffic_file, 5, 100, "vs-5")
    for _ in range(10):
        _predict(server.url)
        time.sleep(0.02)
    wait_until(lambda: _shadow(server.url, 5, "error") + _shadow(server.url, 5, "dropped") >= 10)
    assert _shadow(server.url, 5, "error") >= 5


def test_slow_candidate_never_slows_the_primary_and_drops_are_counted(
    server: ServerProcess, traffic_file: Path
) -> None:
    _shadowing(server.url, traffic_file, 4, 0, "no-shadow")
    with httpx.Client() as client:  # one connection: the latencies are the server's, not TLS set-up
        baseline = statistics.median(_predict(server.url, client)[1] for _ in range(60))
        _shadowing(server.url, traffic_file, 4, 100, "vs-slow")
        started = time.perf_counter()
        durations = [_predict(server.url, client)[1] for _ in range(60)]
        elapsed = time.perf_counter() - started
    shadowed = statistics.median(durations)
    print(f"primary p50 {baseline * 1e3:.2f} ms without shadow, {shadowed * 1e3:.2f} ms with a slow one")
    # a candidate call takes ~0.4 s: had the primary waited for it, 60 requests would take 24 s
    assert elapsed < 10
    assert shadowed < max(5 * baseline, baseline + 0.02)
    results = ("agree", "disagree", "shape_mismatch", "error", "dropped")
    wait_until(lambda: sum(_shadow(server.url, 4, r) for r in results) == 60, 120)
    dropped, scored = _shadow(server.url, 4, "dropped"), _shadow(server.url, 4, "disagree")
    print(f"slow candidate: {scored:.0f} scored, {dropped:.0f} dropped")
    assert dropped >= 10  # a queue of 2, one at a time: many are dropped, every one is counted
    assert scored >= 2
    # the request metrics count only what clients sent
    total = metric(
        server.url,
        "modelship_requests_total",
        model="linear",
        version="4",
        api="predict",
        code="OK",
        transport="rest",
    )
    assert total == 0


def test_shadow_outputs_never_reach_responses_or_logs(
    server: ServerProcess, log_path: Path, base: Path
) -> None:
    answers = expected(base, [2])
    text = log_path.read_text(errors="replace")
    for value in (f"{answers[2]:.4f}", f"{np.float32(answers[2])}"):
        assert value not in text
    assert "shadow request on linear/5 failed: InvalidArgument" in text  # the error's type, no values
