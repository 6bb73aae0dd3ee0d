"""The traffic file's ``versions`` pin against real server processes: what is loaded follows the file.

A directory source holds linear/1 and linear/2 and the model config says ``latest 1``; the pin
decides from the first load on (a new pod never loads an unpinned version), rewrites load and
unload versions in the same process with no failed request, and removing the pin gives the policy
back. With an ``s3://`` source a newly pinned version loads from the last listing, long before the
next one.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures import ServerProcess, export_linear, train_linear
from tests.object_store import BUCKET, MotoS3, publish
from tests.service.traffic_helpers import (
    PREDICT,
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
    base = tmp_path_factory.mktemp("pin")
    export_linear(linear_run, base, 1)
    export_linear(train_linear(base / "run2", seed=7), base, 2)
    return base


@pytest.fixture(scope="module")
def answers(base: Path) -> dict[int, float]:
    out = expected(base, [1, 2])
    assert abs(out[1] - out[2]) > 1e-3
    return out


def _states(url: str) -> dict[int, str]:
    body = httpx.get(f"{url}/v1/models/linear", timeout=5).json()
    return {int(s["version"]): s["state"] for s in body["model_version_status"]}


def _wait_states(url: str, want: dict[int, str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _states(url) == want:
            return
        time.sleep(0.05)
    raise AssertionError(f"states not {want} after {timeout}s: {_states(url)}")


def _answered(url: str, answers: dict[int, float], path: str = "/v1/models/linear:predict") -> int:
    r = httpx.post(url + path, json=PREDICT, timeout=10)
    assert r.status_code == 200, r.text
    version = int(r.headers["x-modelship-model-version"])
    assert r.json()["predictions"][0] == pytest.approx(answers[version], rel=1e-4)
    return version


class _StatusWatcher:
    """Polls a model's status from before the server listens until stopped: every state it saw."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: set[tuple[int, str]] = set()
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                try:
                    body = client.get(f"{self.url}/v1/models/linear").json()
                except (httpx.HTTPError, ValueError):
                    time.sleep(0.01)
                    continue
                self.polls += 1
                for s in body.get("model_version_status", []):
                    self.seen.add((int(s["version"]), s["state"]))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


class _Load:
    """Clients sending name-only predict requests until stopped; every failure is kept."""

    def __init__(self, url: str, clients: int = 4) -> None:
        self.url = url
        self.versions: Counter[int] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    r = client.post(f"{self.url}/v1/models/linear:predict", json=PREDICT)
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.failures.append(repr(exc))
                    continue
                with self._lock:
                    if r.status_code == 200:
                        self.versions[int(r.headers["x-modelship-model-version"])] += 1
                    else:
                        self.failures.append(f"{r.status_code} {r.text}")

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)


def _version_series(url: str, version: int) -> list[str]:
    """The ``modelship_model_version_state`` lines of ``linear``/``version`` (none: never seen)."""
    text = httpx.get(url + "/metrics", timeout=5).text
    return [
        line
        for line in text.splitlines()
        if line.startswith("modelship_model_version_state{")
        and 'model="linear"' in line
        and f'version="{version}"' in line
    ]


@pytest.fixture(scope="module")
def pinned(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    """A server started with the pin [1] while the policy (latest 1) alone would serve 2."""
    logs = tmp_path_factory.mktemp("pinlog")
    config = logs / "models.config"
    config.write_text(model_config(base, {"stable": 1, "canary": 2}, policy="latest { num_versions: 1 }"))
    traffic = logs / "traffic.json"
    write_traffic(traffic, {"generation": "start", "models": {"linear": {"versions": [1]}}})
    server = ServerProcess(
        [
            f"--model_config_file={config}",
            f"--traffic_config_file={traffic}",
            "--traffic_config_file_poll_wait_seconds=0.1",
            "--file_system_poll_wait_seconds=0.2",
        ],
        log=logs / "server.log",
    )
    watcher = _StatusWatcher(server.url)
    try:
        server.wait_ready(120)
        time.sleep(2)  # several polls of the source after the first load
    finally:
        watcher.stop()
    try:
        assert watcher.polls > 0
        assert {version for version, _ in watcher.seen} == {1}, watcher.seen  # 2 never showed at all
        assert (1, "AVAILABLE") in watcher.seen, watcher.seen
        yield server, traffic
    finally:
        assert server.terminate() == 0, server.logs()


def test_pin_at_start_up_loads_only_the_pinned_version(
    pinned: tuple[ServerProcess, Path], answers: dict[int, float]
) -> None:
    server, _ = pinned
    assert _states(server.url) == {1: "AVAILABLE"}
    assert _version_series(server.url, 2) == []  # version 2 never had any state at all
    assert (
        metric(server.url, "modelship_model_version_state", model="linear", version="1", state="AVAILABLE")
        == 1
    )
    assert "version 2 of linear" not in server.logs()
    assert {_answered(server.url, answers) for _ in range(5)} == {1}
    assert status(server.url)["config"]["models"]["linear"]["versions"] == [1]


def test_rewriting_the_pin_loads_and_unloads_in_the_same_process(
    pinned: tuple[ServerProcess, Path], answers: dict[int, float]
) -> None:
    server, traffic = pinned
    pid = server.proc.pid
    applied = apply(
        server.url,
        traffic,
        {"generation": "both", "models": {"linear": {"versions": [2, 1], "weights": {"1": 50, "2": 50}}}},
    )
    assert applied["config"]["models"]["linear"]["versions"] == [1, 2]
    _wait_states(server.url, {2: "AVAILABLE", 1: "AVAILABLE"}, 30)
    assert _answered(server.url, answers, "/v1/models/linear/labels/canary:predict") == 2
    counts = Counter(_answered(server.url, answers) for _ in range(200))
    assert abs(counts[1] - 100) <= 1, counts
    assert abs(counts[2] - 100) <= 1, counts

    # pin [2] while clients keep sending: 1 unloads, not one request fails
    load = _Load(server.url)
    try:
        wait_until(lambda: sum(load.versions.values()) >= 50)
        apply(server.url, traffic, {"generation": "two", "models": {"linear": {"versions": [2]}}})
        _wait_states(server.url, {2: "AVAILABLE", 1: "END"}, 30)
        before = load.versions[2]
        wait_until(lambda: load.versions[2] >= before + 50)
    finally:
        load.stop()
    assert load.failures == [], load.failures[:3]
    assert load.versions[1] > 0
    assert load.versions[2] > 0
    assert {_answered(server.url, answers) for _ in range(10)} == {2}
    assert metric(server.url, "modelship_model_version_state", model="linear", version="1", state="END") == 1
    # a label pointing to the version the pin unloaded: a clear 400, never a 5xx
    r = httpx.post(f"{server.url}/v1/models/linear/labels/stable:predict", json=PREDICT, timeout=10)
    assert r.status_code == 400, r.text
    assert "pins the model to versions [2]" in r.json()["error"]

    # back to [1], then no pin at all: the policy (latest 1) serves 2 again
    apply(server.url, traffic, {"generation": "one", "models": {"linear": {"versions": [1]}}})
    _wait_states(server.url, {1: "AVAILABLE", 2: "END"}, 30)
    assert {_answered(server.url, answers) for _ in range(5)} == {1}
    unpinned = apply(server.url, traffic, {"generation": "unpinned", "models": {}})
    assert unpinned["config"]["models"] == {}
    _wait_states(server.url, {2: "AVAILABLE", 1: "END"}, 30)
    assert {_answered(server.url, answers) for _ in range(5)} == {2}
    assert server.proc.poll() is None  # never restarted
    assert server.proc.pid == pid


def test_a_bad_pin_is_refused_and_the_applied_config_stays(pinned: tuple[ServerProcess, Path]) -> None:
    server, traffic = pinned
    good = apply(server.url, traffic, {"generation": "good", "models": {"linear": {"versions": [2]}}})
    _wait_states(server.url, {2: "AVAILABLE", 1: "END"}, 30)
    errors = metric(server.url, "modelship_traffic_config_errors_total")
    bad: dict[str, Any] = {
        "generation": "bad",
        "models": {"linear": {"versions": [2], "weights": {"1": 10, "2": 90}}},
    }
    write_traffic(traffic, bad)
    wait_until(lambda: metric(server.url, "modelship_traffic_config_errors_total") > errors)
    now = status(server.url)
    assert (now["generation"], now["hash"]) == ("good", good["hash"])
    assert "models.linear.weights" in now["last_error"]["message"]
    assert "not in versions [2]" in now["last_error"]["message"]
    assert metric(server.url, "modelship_traffic_config_errors_total") == errors + 1
    time.sleep(1)
    assert _states(server.url) == {2: "AVAILABLE", 1: "END"}  # nothing loaded nor unloaded


def test_a_pinned_object_store_version_loads_from_the_last_listing(
    s3: MotoS3, base: Path, tmp_path: Path
) -> None:
    prefix = "pin/linear"
    for v in (1, 2):
        publish(s3, f"{prefix}/{v}", base / "linear" / str(v))
    traffic = tmp_path / "traffic.json"
    write_traffic(traffic, {"generation": "start", "models": {"linear": {"versions": [1]}}})
    server = ServerProcess(
        [
            "--model_name=linear",
            f"--model_base_path=s3://{BUCKET}/{prefix}",
            "--object_store_poll_wait_seconds=60",
            f"--model_cache_dir={tmp_path / 'cache'}",
            f"--traffic_config_file={traffic}",
            "--traffic_config_file_poll_wait_seconds=0.1",
        ],
        env=s3.env(),
        log=tmp_path / "server.log",
    )
    try:
        server.wait_ready(120)
        assert _states(server.url) == {1: "AVAILABLE"}
        assert _version_series(server.url, 2) == []
        lists = metric(server.url, "modelship_model_source_requests_total", model="linear", op="list")
        assert lists >= 1
        started = time.monotonic()
        apply(server.url, traffic, {"generation": "two", "models": {"linear": {"versions": [2]}}})
        _wait_states(server.url, {2: "AVAILABLE", 1: "END"}, 20)
        took = time.monotonic() - started
        assert took < 10, took  # the next listing is a minute away
        # decided from the listing it already had: no new one was needed
        assert metric(server.url, "modelship_model_source_requests_total", model="linear", op="list") == lists
        assert (tmp_path / "cache").is_dir()
    finally:
        assert server.terminate() == 0, server.logs()


def test_an_optional_traffic_file_may_appear_after_start_up(base: Path, tmp_path: Path) -> None:
    """As an operator-created ConfigMap mounted optional: the server starts without the file (the
    policy decides), then applies it, pin included, once it appears."""
    config = tmp_path / "models.config"
    config.write_text(model_config(base, {}, policy="latest { num_versions: 1 }"))
    traffic = tmp_path / "traffic" / "traffic.json"
    traffic.parent.mkdir()
    server = ServerProcess(
        [
            f"--model_config_file={config}",
            f"--traffic_config_file={traffic}",
            "--traffic_config_file_optional",
            "--traffic_config_file_poll_wait_seconds=0.1",
            "--file_system_poll_wait_seconds=0.2",
        ],
        log=tmp_path / "server.log",
    )
    try:
        server.wait_ready(120)
        assert _states(server.url) == {2: "AVAILABLE"}
        assert status(server.url)["generation"] == ""
        write_traffic(traffic, {"generation": "operator-1", "models": {"linear": {"versions": [1]}}})
        wait_until(lambda: status(server.url)["generation"] == "operator-1", 10)
        _wait_states(server.url, {1: "AVAILABLE", 2: "END"})
        assert status(server.url)["errors_total"] == 0
    finally:
        assert server.terminate() == 0, server.logs()
    without = ServerProcess(
        [f"--model_config_file={config}", f"--traffic_config_file={tmp_path / 'none.json'}"],
        log=tmp_path / "refused.log",
    )
    without.proc.wait(60)
    assert without.terminate() == 2  # not optional: a missing file is a configuration error
    assert "none.json" in without.logs()
