"""The real server process over HTTP: hot reload under load, tampering, graceful shutdown, config."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from model.metrics import QualityGate
from model.pipeline import export_run
from tests.fixtures import ROOT, ServerProcess, export_slow

pytestmark = pytest.mark.slow
PREDICT = {"instances": [[1.0, 2.0, 3.0]]}


def _status(url: str, version: int) -> dict[str, object]:
    body = httpx.get(f"{url}/v1/models/linear/versions/{version}", timeout=5).json()
    return body["model_version_status"][0] if "model_version_status" in body else body


def _wait(predicate: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise TimeoutError("condition not met")


class Load:
    """Client threads sending predictions nonstop; counts answers by status and served version."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.codes: Counter[int] = Counter()
        self.versions: Counter[str] = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        body = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    r = client.post(f"{self.url}/v2/models/linear/infer", json=body)
                    self.codes[r.status_code] += 1
                    if r.status_code == 200:
                        self.versions[r.json()["model_version"]] += 1
                    else:
                        self.errors.append(r.text)
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()


def test_hot_reload_under_load_and_tampered_version(
    tmp_path: Path, fresh_base: Path, linear_run: Path
) -> None:
    server = ServerProcess(
        [
            f"--model_base_path={fresh_base / 'linear'}",
            "--model_name=linear",
            "--file_system_poll_wait_seconds=0.2",
        ],
        log=tmp_path / "server.log",
    )
    try:
        server.wait_ready()
        with Load(server.url) as load:
            time.sleep(1.0)
            export_run(linear_run, fresh_base, "linear", QualityGate(), 2)
            _wait(lambda: _status(server.url, 2).get("state") == "AVAILABLE")
            _wait(lambda: load.versions["2"] > 50)
            # a tampered copy of version 3 is refused while version 2 keeps serving
            staging = export_run(linear_run, tmp_path / "staging", "linear", QualityGate(), 3)
            (staging / "saved_model.pb").write_bytes((staging / "saved_model.pb").read_bytes() + b"\0")
            shutil.move(str(staging), fresh_base / "linear" / "3")
            _wait(lambda: _status(server.url, 3).get("state") == "END")
            time.sleep(0.5)
        status3 = _status(server.url, 3)
        assert status3["status"]["error_code"] == "DATA_LOSS"  # type: ignore[index]
        assert "sha256 mismatch for saved_model.pb" in status3["status"]["error_message"]  # type: ignore[index]
        assert load.errors == []
        assert set(load.codes) == {200}
        assert load.versions["1"] > 0
        assert load.versions["2"] > 0
        print(f"hot reload: {sum(load.codes.values())} requests, 0 failed, versions {dict(load.versions)}")
        assert _status(server.url, 1)["state"] == "END"
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'modelship_model_version_state{model="linear",state="AVAILABLE",version="2"} 1.0' in metrics
    finally:
        assert server.terminate() == 0, server.logs()


def test_sigterm_turns_unready_and_drains_in_flight_requests(tmp_path: Path) -> None:
    export_slow(tmp_path)
    server = ServerProcess(
        [
            f"--model_base_path={tmp_path / 'slow'}",
            "--model_name=slow",
            "--shutdown_delay_seconds=1",
            "--shutdown_timeout_seconds=20",
        ],
        log=tmp_path / "server.log",
    )
    server.wait_ready()
    started = time.monotonic()
    assert (
        httpx.post(f"{server.url}/v1/models/slow:predict", json={"instances": [5]}, timeout=30).status_code
        == 200
    )
    results: list[int | str] = []

    def slow_call() -> None:
        try:
            r = httpx.post(f"{server.url}/v1/models/slow:predict", json={"instances": [4000]}, timeout=60)
            results.append(r.status_code)
        except httpx.HTTPError as exc:
            results.append(repr(exc))

    threads = [threading.Thread(target=slow_call) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    started = time.monotonic()
    server.proc.send_signal(15)
    time.sleep(0.3)
    ready = httpx.get(f"{server.url}/v2/health/ready", timeout=5)
    assert ready.status_code == 503
    assert ready.json() == {"ready": False}
    for t in threads:
        t.join()
    code = server.wait(30)
    elapsed = time.monotonic() - started
    assert results == [200] * 6, server.logs()
    assert code == 0, server.logs()
    assert elapsed < 20
    assert "shutdown complete" in server.logs()


def test_shutdown_is_bounded_when_requests_overrun(tmp_path: Path) -> None:
    export_slow(tmp_path)
    server = ServerProcess(
        [f"--model_base_path={tmp_path / 'slow'}", "--model_name=slow", "--shutdown_timeout_seconds=1"],
        log=tmp_path / "server.log",
    )
    server.wait_ready()

    def endless_call() -> None:
        with contextlib.suppress(httpx.HTTPError):  # cut off by the bounded shutdown: expected
            httpx.post(f"{server.url}/v1/models/slow:predict", json={"instances": [200000]}, timeout=120)

    t = threading.Thread(target=endless_call, daemon=True)
    t.start()
    time.sleep(0.5)
    started = time.monotonic()
    server.proc.send_signal(15)
    assert server.wait(30) == 1, server.logs()  # the watchdog ends an overrunning drain
    assert time.monotonic() - started < 10


def test_invalid_configuration_exits_with_a_message(tmp_path: Path) -> None:
    bad = tmp_path / "models.config"
    bad.write_text("model_config_list { config { name: 'x' } }")
    done = subprocess.run(
        [sys.executable, "-m", "service", f"--model_config_file={bad}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "has no base_path" in done.stderr
    assert "Traceback" not in done.stderr


def test_auth_token_file_and_config_file(tmp_path: Path, fresh_base: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    cfg = tmp_path / "models.config"
    cfg.write_text(
        f"model_config_list {{ config {{ name: 'linear' base_path: '{fresh_base / 'linear'}' "
        "version_labels { key: 'stable' value: 1 } } }"
    )
    server = ServerProcess(
        [f"--model_config_file={cfg}", f"--auth_token_file={token}"], log=tmp_path / "server.log"
    )
    try:
        server.wait_ready()
        url = f"{server.url}/v1/models/linear/labels/stable:predict"
        assert httpx.post(url, json=PREDICT).status_code == 401
        ok = httpx.post(url, json=PREDICT, headers={"Authorization": "Bearer t0ken"})
        assert ok.status_code == 200
        assert len(ok.json()["predictions"]) == 1
    finally:
        assert server.terminate() == 0


@pytest.mark.parametrize(
    ("args", "env"), [(["--auth_token_file={token}"], {}), ([], {"MODELSHIP_AUTH_TOKEN": ""})]
)
def test_a_blank_auth_token_refuses_to_start_the_server(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    token = tmp_path / "token"
    token.write_text("\n")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSHIP_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "service",
            "--model_base_path=/nonexistent",
            *(a.format(token=token) for a in args),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**full_env, **env},
    )
    assert done.returncode == 2, done.stderr
    assert "is empty: refusing to start an unauthenticated server" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_shell_that_ran_the_project_scripts_can_still_start_a_server(
    tmp_path: Path, fresh_base: Path
) -> None:
    server = ServerProcess(
        [f"--model_base_path={fresh_base / 'linear'}", "--model_name=linear"],
        env={
            "MODELSHIP_IMAGE": "modelship:0.1.0",
            "MODELSHIP_HELM": "/usr/bin/helm",
            "MODELSHIP_CACHE": str(tmp_path),
        },
        log=tmp_path / "server.log",
    )
    try:
        server.wait_ready()
    finally:
        assert server.terminate() == 0, server.logs()
