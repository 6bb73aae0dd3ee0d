"""The container images (service/Dockerfile: full and slim), built and run with a real Docker engine.

Every test runs on both flavors: ``full`` (TensorFlow) and ``slim`` (the ``slim`` target: LiteRT
only, no TensorFlow). Each is built once per session by ``scripts/docker/build-image --flavor``
(which starts dockerd and makes the local base image when needed), or taken from
``MODELSHIP_TEST_IMAGE`` / ``MODELSHIP_TEST_SLIM_IMAGE`` when CI built it in an earlier step. Containers run locked down the way the Helm chart runs the pod: read-only
root filesystem with a tmpfs ``/tmp``, UID 10001, no capabilities, no privilege escalation, and
ports published on 127.0.0.1 only. The tests predict over REST and gRPC against the baked model
and compare with the same SavedModel evaluated in this process, and stop the container with
``docker stop`` while slow requests are in flight to check that SIGTERM drains them.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import shutil
import subprocess
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tests.fixtures import ROOT, expected_linear, wait_http_ready

# A cold build downloads TensorFlow and makes the base image (minutes); the limit covers it.
pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]

BUILD_SCRIPT = ROOT / "scripts" / "docker" / "build-image"
UID = 10001
LOCKED_DOWN = [
    "--read-only",
    "--tmpfs",
    "/tmp",
    "--user",
    str(UID),
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
]
# flavor -> (prebuilt-image variable, size budget, smallest the dependency layer can be, RSS budget).
# Measured: full 1.16 GB (TensorFlow ~0.76 GB of it), ~560 MiB RSS; slim 292 MB, ~93 MiB RSS. The
# budgets catch a lost trim, a fat context or TensorFlow creeping back into the slim image.
FLAVORS = {
    "full": ("MODELSHIP_TEST_IMAGE", 1_300_000_000, 500e6, 900),
    "slim": ("MODELSHIP_TEST_SLIM_IMAGE", 300_000_000, 100e6, 128),
}
X = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [-1.5, 0.25, 4.0], [10.0, -3.0, 0.5]], np.float32)


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; on failure the error carries its stderr."""
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


@dataclass
class Container:
    """A detached container of the image with its REST and gRPC ports published on loopback."""

    id: str
    rest_port: int
    grpc_port: int
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = f"http://127.0.0.1:{self.rest_port}"

    @classmethod
    def start(cls, image: str, *options: str, args: tuple[str, ...] = ()) -> Container:
        """``options`` go to ``docker run``, ``args`` to the server."""
        cid = docker(
            "run",
            "-d",
            *LOCKED_DOWN,
            "-p",
            "127.0.0.1::8501",
            "-p",
            "127.0.0.1::8500",
            *options,
            image,
            *args,
        ).stdout.strip()
        return cls(cid, _published_port(cid, 8501), _published_port(cid, 8500))

    def state(self) -> dict[str, Any]:
        return json.loads(docker("inspect", "--format", "{{json .State}}", self.id).stdout)  # type: ignore[no-any-return]

    def logs(self) -> str:
        proc = docker("logs", "--tail", "60", self.id, check=False)
        return (proc.stdout + proc.stderr)[-6000:]

    def exec(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        return docker("exec", self.id, *cmd, check=False)

    def wait_ready(self, timeout: float = 180) -> None:
        def alive() -> None:
            if not self.state()["Running"]:
                raise AssertionError(f"container exited ({self.state()['ExitCode']}):\n{self.logs()}")

        if not wait_http_ready(
            f"{self.url}/v2/health/ready", timeout, alive, interval=0.25, request_timeout=2
        ):
            raise AssertionError(f"not ready after {timeout}s:\n{self.logs()}")

    def remove(self) -> None:
        docker("rm", "-f", "-v", self.id, check=False)


def _published_port(cid: str, port: int) -> int:
    # e.g. "127.0.0.1:49153" (one line per published address)
    line = docker("port", cid, f"{port}/tcp").stdout.split()[0]
    return int(line.rsplit(":", 1)[1])


@pytest.fixture(scope="session", params=sorted(FLAVORS))
def flavor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def image(flavor: str) -> str:
    """The image under test: the flavor's prebuilt variable, or a fresh build by build-image."""
    prebuilt = os.environ.get(FLAVORS[flavor][0])
    if prebuilt:
        docker("image", "inspect", prebuilt)
        return prebuilt
    proc = subprocess.run(
        [str(BUILD_SCRIPT), "--flavor", flavor], capture_output=True, text=True, timeout=1700, cwd=ROOT
    )
    if proc.returncode != 0:
        raise AssertionError(f"build-image exited {proc.returncode}:\n{proc.stderr[-6000:]}")
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def server(image: str) -> Iterator[Container]:
    """One locked-down container of the image, ready, shared by the read-only tests below."""
    container = Container.start(image)
    try:
        container.wait_ready()
        yield container
    finally:
        container.remove()


@pytest.fixture(scope="module")
def baked_model(image: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the image's /models/linear/1, taken with `docker cp` from a stopped container."""
    cid = docker("create", image).stdout.strip()
    try:
        dest = tmp_path_factory.mktemp("baked")
        docker("cp", f"{cid}:/models/linear/1", str(dest / "1"))
    finally:
        docker("rm", "-f", cid, check=False)
    return dest / "1"


@pytest.fixture(scope="module")
def expected(baked_model: Path) -> np.ndarray:
    """What the baked SavedModel computes for X, evaluated by TensorFlow in this process."""
    return expected_linear(baked_model, X)


def _rest_predict(url: str, model: str, rows: np.ndarray) -> np.ndarray:
    resp = httpx.post(f"{url}/v1/models/{model}:predict", json={"instances": rows.tolist()}, timeout=10)
    assert resp.status_code == 200, resp.text
    return np.asarray(resp.json()["predictions"], np.float32)


# --- the image itself ------------------------------------------------------------------------


def test_image_config_matches_the_contract(image: str, flavor: str) -> None:
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", image).stdout)
    assert config["User"] == f"{UID}:{UID}"  # numeric, so runAsNonRoot can verify it
    assert config["Entrypoint"] == ["/opt/venv/bin/python", "-m", "service"]
    assert set(config["ExposedPorts"]) == {"8500/tcp", "8501/tcp"}
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["MODEL_NAME"] == "linear"
    assert env["MODEL_BASE_PATH"] == "/models"
    assert env["HOME"] == "/tmp"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env.get("MODELSHIP_RUNTIME") == ("litert" if flavor == "slim" else None)
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == ("modelship-slim" if flavor == "slim" else "modelship")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    if not os.environ.get("MODELSHIP_TEST_IMAGE"):
        assert labels["org.opencontainers.image.version"] == version
    for key in ("title", "version", "revision", "created", "licenses", "description"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"missing OCI label {key}"


def test_runtime_stage_has_no_build_tools_or_pip(image: str, flavor: str) -> None:
    # The base image's own pip stays; the server's venv has none, and no compiler or binutils.
    script = (
        "for t in gcc cc make strip ld as /opt/venv/bin/pip; do command -v $t && echo FOUND $t; done;"
        " /opt/venv/bin/python -c 'import pip' 2>/dev/null && echo FOUND pip-module;"
        " ls -d /opt/venv/lib/python3*/site-packages/tensorflow/include 2>/dev/null"
        " && echo FOUND headers;"
        " ls /models/linear"
    )
    out = docker("run", "--rm", "--entrypoint", "/bin/sh", image, "-c", script).stdout
    assert "FOUND" not in out, out
    assert out.split() == ["1"]
    if flavor == "slim":  # TensorFlow's protobuf modules only: no runtime, no __init__.py
        check = (
            "import importlib.util as u, pathlib, tensorflow as t;"
            "assert u.find_spec('tensorflow.python') is None;"
            "files = [p for d in t.__path__ for p in pathlib.Path(d).rglob('*') if p.is_file()];"
            "bad = [str(p) for p in files if not p.name.endswith(('_pb2.py', '.pyc'))];"
            "assert files and not bad, bad; print(len(files))"
        )
        proc = docker("run", "--rm", "--entrypoint", "/opt/venv/bin/python", image, "-c", check, check=False)
        assert proc.returncode == 0, proc.stderr


def test_image_size_and_layer_order(image: str, flavor: str, report: Callable[[str], None]) -> None:
    """Within budget, and code/model layers above the big dependency layer; sizes by layer reported."""
    _, budget, venv_floor, _ = FLAVORS[flavor]
    size = int(docker("image", "inspect", "--format", "{{.Size}}", image).stdout)
    assert size < budget, f"image is {size / 1e6:.0f} MB, budget {budget / 1e6:.0f} MB"
    history = docker("history", "--human=false", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}", image)
    rows = [line.split("\t", 1) for line in history.stdout.splitlines()]  # newest first
    ours_until = next(i for i, (_, cmd) in enumerate(rows) if "groupadd" in cmd)  # the first own step
    layers = [int(size_) for size_, _ in rows[:ours_until]]
    base = sum(int(size_) for size_, _ in rows[ours_until:])
    biggest = layers.index(max(layers))
    assert layers[biggest] > venv_floor  # the third-party virtualenv
    newer = layers[:biggest]
    # the model, the code and the standard library's bytecode (~5-6 MB): each a few MB at most
    assert all(s < 8e6 for s in newer), f"layers above the venv should be small: {newer}"
    by_layer = ", ".join(f"{int(s) / 1e6:.1f}" for s in reversed(layers) if int(s) > 0)
    report(f"{flavor}: {size / 1e6:.0f} MB = base {base / 1e6:.0f} MB + layers (MB, oldest first) {by_layer}")


# --- a running container ---------------------------------------------------------------------


def test_server_runs_as_uid_10001_without_capabilities(server: Container) -> None:
    status = server.exec("cat", "/proc/1/status").stdout
    fields = {k: v.split() for k, v in (line.split(":", 1) for line in status.splitlines() if ":" in line)}
    assert fields["Uid"] == [str(UID)] * 4
    assert fields["Gid"] == [str(UID)] * 4
    assert fields["CapEff"] == ["0000000000000000"]
    assert fields["CapPrm"] == ["0000000000000000"]
    assert fields["NoNewPrivs"] == ["1"]
    cmdline = server.exec("cat", "/proc/1/cmdline").stdout.split("\0")
    assert cmdline[:3] == ["/opt/venv/bin/python", "-m", "service"]  # PID 1 is the server itself


@pytest.mark.parametrize("path", ["/opt/venv/x", "/models/linear/x", "/x", "/etc/x", "/var/tmp/x"])
def test_writes_outside_tmp_fail(server: Container, path: str) -> None:
    proc = server.exec("touch", path)
    assert proc.returncode != 0
    assert "Read-only file system" in proc.stderr


def test_tmp_is_writable(server: Container) -> None:
    proc = server.exec("sh", "-c", "echo ok > /tmp/probe && cat /tmp/probe")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_health_and_baked_model_status(server: Container) -> None:
    assert httpx.get(f"{server.url}/v2/health/live", timeout=5).json() == {"live": True}
    assert httpx.get(f"{server.url}/v2/health/ready", timeout=5).json() == {"ready": True}
    status = httpx.get(f"{server.url}/v1/models/linear", timeout=5).json()["model_version_status"]
    assert [(s["version"], s["state"]) for s in status] == [("1", "AVAILABLE")]


def test_baked_model_is_a_sane_linear_regression(baked_model: Path, expected: np.ndarray) -> None:
    manifest = json.loads((baked_model / "manifest.json").read_text())
    assert manifest["name"] == "linear"
    assert manifest["version"] == 1
    assert manifest["metrics"]["r2"] >= 0.9  # the build's quality gate
    assert manifest["input_schema"]["inputs"]["x"]["shape"] == [-1, 3]
    # Linear: f(a) + f(b) - f(0) == f(a + b); and not a constant.
    a, b = X[0], X[2]
    fa, fb, f0, fab = expected_linear(baked_model, np.stack([a, b, np.zeros(3, np.float32), a + b]))
    assert fa + fb - f0 == pytest.approx(fab, rel=1e-4, abs=1e-4)
    assert np.ptp(expected) > 1.0


def test_rest_predict_matches_the_savedmodel(server: Container, expected: np.ndarray) -> None:
    got = _rest_predict(server.url, "linear", X)
    assert got.shape == (len(X),)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    # The same through an explicit version.
    resp = httpx.post(
        f"{server.url}/v1/models/linear/versions/1:predict", json={"instances": X[:1].tolist()}, timeout=10
    )
    assert resp.status_code == 200, resp.text
    np.testing.assert_allclose(resp.json()["predictions"], expected[:1], rtol=1e-6, atol=1e-6)


def test_grpc_predict_matches_the_savedmodel(server: Container, expected: np.ndarray) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=10)
        except grpc.FutureTimeoutError:
            pytest.fail(f"gRPC port 8500 of the container does not answer:\n{server.logs()}")
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=10
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING

        request = predict_pb2.PredictRequest()
        request.model_spec.name = "linear"
        request.model_spec.signature_name = "serving_default"
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(X))
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=10)
        assert response.model_spec.name == "linear"
        assert response.model_spec.version.value == 1
        np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), expected, rtol=1e-6, atol=1e-6)

        status_req = get_model_status_pb2.GetModelStatusRequest()
        status_req.model_spec.name = "linear"
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status_req, timeout=10)
        assert [(s.version, s.state) for s in status.model_version_status] == [
            (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)
        ]


def test_model_base_path_from_a_volume(
    image: str, baked_model: Path, expected: np.ndarray, tmp_path: Path
) -> None:
    """MODEL_BASE_PATH/MODEL_NAME select a mounted model instead of the baked one."""
    base = tmp_path / "srv"
    shutil.copytree(baked_model, base / "other" / "7")
    for p in [base, *base.rglob("*")]:  # readable by UID 10001 (pytest's tmp dirs are 0700)
        p.chmod(0o755 if p.is_dir() else 0o644)
    container = Container.start(
        image, "-v", f"{base}:/srv/models:ro", "-e", "MODEL_BASE_PATH=/srv/models", "-e", "MODEL_NAME=other"
    )
    try:
        container.wait_ready()
        status = httpx.get(f"{container.url}/v1/models/other", timeout=5).json()["model_version_status"]
        assert [(s["version"], s["state"]) for s in status] == [("7", "AVAILABLE")]
        np.testing.assert_allclose(_rest_predict(container.url, "other", X), expected, rtol=1e-6, atol=1e-6)
        assert httpx.get(f"{container.url}/v1/models/linear", timeout=5).status_code == 404
    finally:
        container.remove()


# --- SIGTERM drains in-flight requests -------------------------------------------------------


@dataclass
class Outcome:
    """One slow request: when its headers went out, when it ended, and how."""

    sent: float
    ended: float
    status: int | None  # None: no HTTP response (refused / reset)
    predictions: int = 0
    error: str = ""


def _slow_predict(port: int, rows: int, chunks: int, pause: float) -> Outcome:
    """POST a predict request whose body trickles in over ``chunks * pause`` seconds."""
    body = json.dumps({"instances": [[float(i), 1.0, -1.0] for i in range(rows)]}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    sent = time.monotonic()
    try:
        conn.putrequest("POST", "/v1/models/linear:predict")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        sent = time.monotonic()
        step = math.ceil(len(body) / chunks)
        for i in range(0, len(body), step):
            time.sleep(pause)
            conn.send(body[i : i + step])
        resp = conn.getresponse()
        payload = resp.read()
        n = len(json.loads(payload).get("predictions", [])) if resp.status == 200 else 0
        return Outcome(sent, time.monotonic(), resp.status, n, payload[:200].decode(errors="replace"))
    except (OSError, http.client.HTTPException) as exc:
        return Outcome(sent, time.monotonic(), None, error=repr(exc))
    finally:
        conn.close()


@pytest.mark.parametrize("delay", [0, 2], ids=["no-delay", "shutdown-delay-2s"])
def test_docker_stop_drains_in_flight_requests(image: str, delay: int) -> None:
    timeout = 20  # MODELSHIP_SHUTDOWN_TIMEOUT_SECONDS
    container = Container.start(
        image,
        "-e",
        f"MODELSHIP_SHUTDOWN_TIMEOUT_SECONDS={timeout}",
        "-e",
        f"MODELSHIP_SHUTDOWN_DELAY_SECONDS={delay}",
    )
    try:
        container.wait_ready()
        outcomes: list[Outcome] = []
        lock = threading.Lock()
        done = threading.Event()

        def client(offset: float) -> None:
            time.sleep(offset)
            while not done.is_set():
                outcome = _slow_predict(container.rest_port, rows=64, chunks=8, pause=0.25)
                with lock:
                    outcomes.append(outcome)
                if outcome.status is None:
                    time.sleep(0.1)  # refused after shutdown: do not spin

        workers = [threading.Thread(target=client, args=(i * 0.33,), daemon=True) for i in range(6)]
        for w in workers:
            w.start()
        time.sleep(4)  # every client is mid-request now

        stop_result: dict[str, Any] = {}

        def stop() -> None:
            start = time.monotonic()
            stop_result["proc"] = docker(
                "stop", "-t", str(timeout + delay + 20), container.id, check=False, timeout=120
            )
            stop_result["seconds"] = time.monotonic() - start

        t_term = time.monotonic()
        stopper = threading.Thread(target=stop)
        stopper.start()
        time.sleep(0.5)
        try:  # readiness turns false at once (a 503, or no answer once listeners are closed)
            ready_status: int | None = httpx.get(f"{container.url}/v2/health/ready", timeout=5).status_code
        except httpx.HTTPError:
            ready_status = None
        stopper.join(timeout=150)
        done.set()
        for w in workers:
            w.join(timeout=70)

        assert stop_result["proc"].returncode == 0, stop_result["proc"].stderr
        state = container.state()
        assert state["ExitCode"] == 0, container.logs()
        assert not state["OOMKilled"]
        assert stop_result["seconds"] < timeout + delay + 5, container.logs()

        # Requests whose headers went out well before SIGTERM were accepted: all must succeed,
        # including those still streaming their body when the signal arrived.
        accepted = [o for o in outcomes if o.sent < t_term - 0.3]
        in_flight = [o for o in accepted if o.ended > t_term]
        assert len(in_flight) >= 3, f"test did not catch requests in flight: {outcomes}"
        bad = [o for o in accepted if o.status != 200 or o.predictions != 64]
        assert not bad, f"accepted requests failed during drain: {bad}\n{container.logs()}"
        # Later ones may be served, refused or told 503 — never anything else.
        late = [o for o in outcomes if o.sent >= t_term - 0.3]
        assert all(o.status in (None, 200, 503) for o in late), late
        if delay:
            # During the shutdown delay the listener stays open and reports not ready.
            assert ready_status == 503
            assert any(o.status == 200 and o.sent > t_term for o in late), late
        else:
            assert ready_status in (None, 503)
    finally:
        container.remove()


# --- footprint: start-up and memory ----------------------------------------------------------


def test_start_up_and_memory(image: str, flavor: str, report: Callable[[str], None]) -> None:
    """Time from `docker run` to ready, the server's own start-up split, and RSS once ready."""
    rss_budget = FLAVORS[flavor][3]
    started = time.monotonic()
    container = Container.start(image)
    try:
        container.wait_ready()
        ready = time.monotonic() - started
        status = container.exec("cat", "/proc/1/status").stdout
        rss_mib = (
            int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024
        )
        logs = container.logs()
        imports = next(line for line in logs.splitlines() if "imports done" in line)
        available = next(line for line in logs.splitlines() if "is AVAILABLE" in line)
        report(
            f"{flavor}: docker run -> ready {ready:.2f}s; RSS {rss_mib:.0f} MiB; "
            f"{imports.split('INFO service: ')[-1]}; {available.split('linear is ')[-1]}"
        )
        assert rss_mib < rss_budget, (
            f"{flavor} server holds {rss_mib:.0f} MiB once ready (budget {rss_budget})"
        )
        if flavor == "slim":
            assert "LiteRT for serving_default" in available
    finally:
        container.remove()


# --- slim only: what it refuses, and how ------------------------------------------------------


def test_slim_refuses_a_signature_without_an_artifact(server: Container, flavor: str) -> None:
    if flavor != "slim":
        pytest.skip("the full image serves every signature with TensorFlow")
    resp = httpx.post(
        f"{server.url}/v1/models/linear:regress",
        json={"examples": [{"x0": 1.0, "x1": 2.0, "x2": 3.0}]},
        timeout=10,
    )
    assert resp.status_code == 400, resp.text
    assert "has no LiteRT artifact" in resp.json()["error"]


def test_slim_refuses_a_version_without_artifacts(
    image: str, flavor: str, baked_model: Path, tmp_path: Path
) -> None:
    """A version exported with --no-litert: refused with its reason, the other version serves."""
    if flavor != "slim":
        pytest.skip("the full image converts at load instead")
    base = tmp_path / "srv"
    shutil.copytree(baked_model, base / "linear" / "1")
    plain = base / "linear" / "2"
    shutil.copytree(baked_model, plain)
    shutil.rmtree(plain / "litert")
    manifest = json.loads((plain / "manifest.json").read_text())
    del manifest["litert"]
    manifest["files"] = {k: v for k, v in manifest["files"].items() if not k.startswith("litert/")}
    (plain / "manifest.json").write_text(json.dumps(manifest))
    (base / "models.config").write_text(
        'model_config_list { config { name: "linear" base_path: "/srv/models/linear" '
        'model_platform: "tensorflow" model_version_policy { all {} } } }'
    )
    for p in [base, *base.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    container = Container.start(
        image, "-v", f"{base}:/srv/models:ro", args=("--model_config_file=/srv/models/models.config",)
    )
    try:
        container.wait_ready()
        status = httpx.get(f"{container.url}/v1/models/linear", timeout=5).json()["model_version_status"]
        by_version = {s["version"]: s for s in status}
        assert by_version["1"]["state"] == "AVAILABLE"
        assert by_version["2"]["state"] == "END"
        assert by_version["2"]["status"]["error_code"] == "FAILED_PRECONDITION"
        assert "no verified LiteRT artifact" in by_version["2"]["status"]["error_message"]
    finally:
        container.remove()
