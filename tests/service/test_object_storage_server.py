"""A real server process serving from real object stores while clients keep sending requests.

Publishing a version to the bucket is all it takes: the server lists, downloads, verifies and
swaps with no failed request; a store outage shows in status and metrics and unloads nothing.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures import ServerProcess, export_linear
from tests.object_store import BUCKET, FakeGcs, MotoS3, publish

pytestmark = pytest.mark.slow
_prefixes = itertools.count()
BODY = {"instances": [[1.0, 2.0, 3.0]]}


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory, linear_run: Path) -> Path:
    base = tmp_path_factory.mktemp("exported")
    for v in (1, 2, 3):
        export_linear(linear_run, base, v)
    return base / "linear"


class Load:
    """Clients sending predict requests by model name until stopped; counts answers by status."""

    def __init__(self, url: str, clients: int = 4) -> None:
        self.url = url
        self.codes: dict[int, int] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    code = client.post(f"{self.url}/v1/models/linear:predict", json=BODY).status_code
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.errors.append(repr(exc))
                    continue
                with self._lock:
                    self.codes[code] = self.codes.get(code, 0) + 1

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)


def _states(url: str) -> dict[int, str]:
    body = httpx.get(f"{url}/v1/models/linear", timeout=5).json()
    return {int(s["version"]): s["state"] for s in body["model_version_status"]}


def _wait_available(url: str, version: int, timeout: float = 60) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if _states(url).get(version) == "AVAILABLE":
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"version {version} not AVAILABLE after {timeout}s: {_states(url)}")


def _metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def _serve(
    store: MotoS3 | FakeGcs, scheme: str, prefix: str, tmp_path: Path, env: dict[str, str]
) -> ServerProcess:
    server = ServerProcess(
        [
            "--model_name=linear",
            f"--model_base_path={scheme}://{BUCKET}/{prefix}",
            "--object_store_poll_wait_seconds=0.5",
            f"--model_cache_dir={tmp_path / 'cache'}",
            "--model_cache_max_bytes=64Mi",
        ],
        env=env,
        log=tmp_path / "server.log",
    )
    server.wait_ready()
    return server


@pytest.mark.parametrize("scheme", ["s3", "gs"])
def test_publishing_a_version_is_all_it_takes_under_load(
    scheme: str, request: pytest.FixtureRequest, versions: Path, tmp_path: Path
) -> None:
    store: MotoS3 | FakeGcs = request.getfixturevalue("s3" if scheme == "s3" else "gcs")
    prefix = f"srv{next(_prefixes)}/linear"
    publish(store, f"{prefix}/1", versions / "1")
    server = _serve(store, scheme, prefix, tmp_path, store.env())
    try:
        load = Load(server.url)
        time.sleep(1)
        timings = []
        for v in (2, 3):
            publish(store, f"{prefix}/{v}", versions / str(v))
            timings.append(_wait_available(server.url, v))
            time.sleep(0.5)
        load.stop()
        assert load.errors == [], load.errors[:3]
        assert set(load.codes) == {200}, load.codes
        assert load.codes[200] > 100
        assert _states(server.url) == {3: "AVAILABLE", 2: "END", 1: "END"}
        assert all(t < 30 for t in timings), timings
        assert _metric(server.url, 'modelship_model_source_up{model="linear"}') == 1
        print(
            f"{scheme}: upload -> AVAILABLE in {', '.join(f'{t:.2f}s' for t in timings)}; {load.codes[200]} requests, 0 failed"
        )
    finally:
        assert server.terminate() == 0, server.logs()


def test_a_store_outage_shows_in_status_and_metrics_and_serving_continues(
    s3: MotoS3, versions: Path, tmp_path: Path
) -> None:
    prefix = f"srv{next(_prefixes)}/linear"
    publish(s3, f"{prefix}/1", versions / "1")
    server = _serve(s3, "s3", prefix, tmp_path, s3.env(through_relay=True))
    try:
        load = Load(server.url, clients=2)
        s3.relay.cut()
        try:
            publish(s3, f"{prefix}/2", versions / "2")
            deadline = time.monotonic() + 30
            while _metric(server.url, 'modelship_model_source_errors_total{model="linear"}') < 2:
                assert time.monotonic() < deadline, "no failed listing counted"
                time.sleep(0.2)
            assert _metric(server.url, 'modelship_model_source_up{model="linear"}') == 0
            status = httpx.get(f"{server.url}/v1/models/linear", timeout=5).json()["model_version_status"]
            assert status[0]["state"] == "AVAILABLE"
            assert status[0]["status"]["error_code"] == "UNAVAILABLE"
            assert "model source unreadable since" in status[0]["status"]["error_message"]
        finally:
            s3.relay.restore()
        _wait_available(server.url, 2, timeout=60)  # after backoff, the missed version arrives
        load.stop()
        assert _metric(server.url, 'modelship_model_source_up{model="linear"}') == 1
        assert load.errors == [], load.errors[:3]
        assert set(load.codes) == {200}, load.codes
    finally:
        assert server.terminate() == 0, server.logs()
