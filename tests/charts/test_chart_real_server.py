"""The chart's rendered wiring run for real: server flags, env, model config, probes, init container,
auth file and the `helm test` script, against the real ``python -m service`` on this machine.

Paths the pod would mount (/models, /etc/modelship/...) are mapped into a temp directory; nothing
else is changed from what `helm template` produced.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.traffic.config import config_hash, parse
from tests.fixtures import ROOT, ServerProcess, export_linear
from tests.tls_certs import CertificateAuthority

pytestmark = pytest.mark.chart

Obj = dict[str, Any]


class _Paths:
    """Map the pod's mount points into ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mounts = {
            "/etc/modelship/config": root / "config",
            "/etc/modelship/auth": root / "auth",
            "/etc/modelship/traffic": root / "traffic",
            "/etc/modelship/tls": root / "tls",
            "/etc/modelship/tls-ca": root / "tls-ca",
            "/etc/modelship/tls-client": root / "tls-client",
            "/models": root / "models",
        }
        for path in self.mounts.values():
            path.mkdir(parents=True, exist_ok=True)

    def __call__(self, text: str) -> str:
        for pod_path, local in self.mounts.items():
            text = text.replace(f'"{pod_path}/', f'"{local}/').replace(f"={pod_path}/", f"={local}/")
            if text == pod_path or text.startswith(pod_path + "/"):
                text = str(local) + text[len(pod_path) :]
        return text


def _server_from_chart(rendered: Any, paths: _Paths, log: Path, tls_ca: Path | None = None) -> ServerProcess:
    """Start the server exactly as the Deployment's container would run, ports aside."""
    cm = rendered.one("ConfigMap", "modelship")
    for name, content in cm["data"].items():
        (paths.mounts["/etc/modelship/config"] / name).write_text(paths(content))
    (container,) = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "service"]
    args = [paths(a) for a in container["args"] if not a.startswith(("--port=", "--rest_api_port="))]
    env = {e["name"]: paths(e["value"]) for e in container["env"]}
    env["HOME"] = str(paths.root)
    server = ServerProcess(args, env=env, log=log, tls_ca=tls_ca)
    try:
        server.wait_ready(timeout=120)
    except (RuntimeError, TimeoutError):
        server.terminate()
        raise
    return server


def _probe_paths_answer(rendered: Any, server: ServerProcess) -> None:
    (container,) = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        path = container[probe]["httpGet"]["path"]
        https = container[probe]["httpGet"].get("scheme") == "HTTPS"
        assert https == server.url.startswith("https://"), (probe, container[probe])
        # unauthenticated, without a client certificate and, with HTTPS, unverified: like the kubelet
        response = httpx.get(server.url + path, timeout=5, verify=False)
        assert response.status_code == 200, (probe, path, response.text)


def _run_helm_test(
    rendered: Any,
    server: ServerProcess,
    paths: _Paths,
    drop_env: tuple[str, ...] = (),
    set_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the test pod's command with its env, pointed at the local server."""
    (pod,) = rendered.maybe("Pod")
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: paths(e["value"]) for e in container["env"] if e["name"] not in drop_env}
    scheme = env["MODELSHIP_TEST_REST_URL"].split("://", 1)[0]
    assert server.url.startswith(f"{scheme}://"), (env["MODELSHIP_TEST_REST_URL"], server.url)
    env["MODELSHIP_TEST_REST_URL"] = server.url
    if env["MODELSHIP_TEST_GRPC_TARGET"]:
        env["MODELSHIP_TEST_GRPC_TARGET"] = f"127.0.0.1:{server.grpc_port}"
    env["MODELSHIP_TEST_TIMEOUT"] = "30"
    env.update(set_env or {})
    env["HOME"] = str(paths.root)
    cmd = [sys.executable if c == "python" else c for c in container["command"]] + container["args"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)


@pytest.fixture
def paths(tmp_path: Path) -> _Paths:
    return _Paths(tmp_path / "pod")


GRPC_ON = "helmTest.grpcHealth=true"


@pytest.mark.parametrize("grpc_server", ["grpcio", "modelship"])
def test_image_source_config_labels_probes_and_helm_test(
    render: Any, fresh_base: Path, paths: _Paths, tmp_path: Path, grpc_server: str
) -> None:
    rendered = render(
        set_=[
            f"model.source.image.basePath={fresh_base}",
            "model.versionLabels.stable=1",
            "model.versionPolicy.type=specific",
            "model.versionPolicy.specificVersions={1}",
            f"server.grpcServer={grpc_server}",
            GRPC_ON,
        ]
    )
    (container,) = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert f"--grpc_server={grpc_server}" in container["args"]
    server = _server_from_chart(rendered, paths, tmp_path / "server.log")
    try:
        _probe_paths_answer(rendered, server)
        labelled = httpx.post(
            f"{server.url}/v1/models/linear/labels/stable:predict",
            json={"instances": [[1.0, 2.0, 3.0]]},
            timeout=10,
        )
        assert labelled.status_code == 200, labelled.text
        result = _run_helm_test(rendered, server, paths)
        assert result.returncode == 0, result.stdout + result.stderr + server.logs()
        assert "PASS POST /v1/models/linear:predict -> 200" in result.stdout
        assert "PASS gRPC Health/Check" in result.stdout, result.stdout
        assert "helm test: all checks passed" in result.stdout
    finally:
        assert server.terminate() == 0, server.logs()


@pytest.fixture
def archive_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_url_source_init_container_then_server(
    render: Any, fresh_base: Path, paths: _Paths, tmp_path: Path, archive_server: tuple[str, Path]
) -> None:
    url, root = archive_server
    archive = root / "linear-1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(fresh_base / "linear" / "1", arcname="1")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()

    def init_for(sha256: str) -> tuple[Any, subprocess.CompletedProcess[str]]:
        rendered = render(
            set_=[
                "model.source.type=url",
                f"model.source.url.url={url}/{archive.name}",
                f"model.source.url.sha256={sha256}",
                "model.source.url.version=7",
                GRPC_ON,
            ]
        )
        (init,) = rendered.one("Deployment")["spec"]["template"]["spec"]["initContainers"]
        cmd = [sys.executable if c == "python" else c for c in init["command"]] + [
            paths(a) for a in init["args"]
        ]
        env = {e["name"]: paths(e["value"]) for e in init["env"]}
        return rendered, subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
        )

    _, tampered = init_for("0" * 64)
    assert tampered.returncode == 1, tampered.stderr
    assert "sha256 mismatch" in tampered.stderr
    assert not (paths.mounts["/models"] / "linear" / "7").exists()

    rendered, fetched = init_for(digest)
    assert fetched.returncode == 0, fetched.stderr
    assert (paths.mounts["/models"] / "linear" / "7" / "saved_model.pb").is_file()
    server = _server_from_chart(rendered, paths, tmp_path / "server.log")
    try:
        status = httpx.get(f"{server.url}/v1/models/linear", timeout=5).json()
        assert [v["version"] for v in status["model_version_status"]] == ["7"]
        result = _run_helm_test(rendered, server, paths)
        assert result.returncode == 0, result.stdout + result.stderr + server.logs()
    finally:
        assert server.terminate() == 0, server.logs()


def test_auth_token_file_and_batching_flags(
    render: Any, fresh_base: Path, paths: _Paths, tmp_path: Path
) -> None:
    token = "chart-test-token-not-a-secret"
    rendered = render(
        set_=[
            f"model.source.image.basePath={fresh_base}",
            "auth.enabled=true",
            f"auth.token={token}",
            "server.batching.enabled=true",
            GRPC_ON,
        ]
    )
    secret: Obj = rendered.one("Secret")
    (paths.mounts["/etc/modelship/auth"] / "token").write_bytes(base64.b64decode(secret["data"]["token"]))
    server = _server_from_chart(rendered, paths, tmp_path / "server.log")
    try:
        _probe_paths_answer(rendered, server)  # probes stay open while the model API is protected
        denied = httpx.post(
            f"{server.url}/v1/models/linear:predict", json={"instances": [[1.0, 2.0, 3.0]]}, timeout=10
        )
        assert denied.status_code == 401, denied.text
        allowed = _run_helm_test(rendered, server, paths)
        assert allowed.returncode == 0, allowed.stdout + allowed.stderr + server.logs()
        without_token = _run_helm_test(rendered, server, paths, drop_env=("MODELSHIP_AUTH_TOKEN_FILE",))
        assert without_token.returncode == 1
        assert "FAIL GET /v1/models/linear -> 401" in without_token.stdout
    finally:
        assert server.terminate() == 0, server.logs()


def test_traffic_file_from_the_chart_splits_and_changes_live(
    render: Any, fresh_base: Path, linear_run: Path, paths: _Paths, tmp_path: Path
) -> None:
    """The rendered env and traffic.json drive the real server; a new file content is applied
    without a restart (as when the kubelet swaps the ConfigMap's ..data symlink)."""
    export_linear(linear_run, fresh_base, 2)
    config = {"generation": "chart-50-50", "models": {"linear": {"weights": {"1": 1, "2": 1}}}}
    rendered = render(
        set_=[
            f"model.source.image.basePath={fresh_base}",
            "model.versionPolicy.latestNumVersions=2",
            "traffic.enabled=true",
        ],
        extra=["--set-json", f"traffic.config={json.dumps(config)}"],
    )
    text = rendered.one("ConfigMap", "-traffic")["data"]["traffic.json"]
    traffic_file = paths.mounts["/etc/modelship/traffic"] / "traffic.json"
    traffic_file.write_text(text)
    server = _server_from_chart(rendered, paths, tmp_path / "server.log")
    try:
        deadline = time.monotonic() + 60
        while True:  # both versions loaded
            states = httpx.get(f"{server.url}/v1/models/linear", timeout=5).json()["model_version_status"]
            if sorted(s["version"] for s in states if s["state"] == "AVAILABLE") == ["1", "2"]:
                break
            assert time.monotonic() < deadline, states
            time.sleep(0.2)
        status = httpx.get(f"{server.url}/v1/modelship/traffic", timeout=5).json()
        assert status["generation"] == "chart-50-50"
        assert status["hash"] == config_hash(parse(text))

        def served(n: int) -> list[str]:
            out = []
            for _ in range(n):
                r = httpx.post(
                    f"{server.url}/v1/models/linear:predict",
                    json={"instances": [[1.0, 2.0, 3.0]]},
                    timeout=10,
                )
                assert r.status_code == 200, r.text
                out.append(r.headers["x-modelship-model-version"])
            return out

        assert sorted(served(4)) == ["1", "1", "2", "2"]  # exact 1:1 split
        shifted = {"generation": "chart-all-2", "models": {"linear": {"weights": {"1": 0, "2": 1}}}}
        new = tmp_path / "traffic.json.new"
        new.write_text(json.dumps(shifted))
        os.replace(new, traffic_file)
        deadline = time.monotonic() + 30
        while (
            httpx.get(f"{server.url}/v1/modelship/traffic", timeout=5).json()["generation"] != "chart-all-2"
        ):
            assert time.monotonic() < deadline, server.logs()
            time.sleep(0.2)
        assert served(4) == ["2"] * 4
    finally:
        assert server.terminate() == 0, server.logs()


@pytest.mark.parametrize("grpc_server", ["grpcio", "modelship"])
def test_tls_with_required_client_certificates_and_helm_test(
    render: Any, fresh_base: Path, paths: _Paths, tmp_path: Path, grpc_server: str
) -> None:
    """tls.enabled with clientAuth=require and an existing Secret: the rendered flags start an
    HTTPS/TLS server from the Secret's files, the HTTPS probes answer without a client certificate,
    and the helm test (https, TLS gRPC health, the client certificate, the refusal without it)
    passes; it fails without the client certificate and when the server name does not match."""
    server_name = "modelship.serving.svc"
    ca = CertificateAuthority()
    # 127.0.0.1 too, for ServerProcess's own readiness wait; the helm test checks server_name.
    names = ("modelship", "modelship.serving", server_name, "modelship.serving.svc.cluster.local")
    issued = ca.issue(server_name, dns_names=names, ips=("127.0.0.1",))
    issued.write(paths.mounts["/etc/modelship/tls"])
    (paths.mounts["/etc/modelship/tls"] / "ca.crt").write_bytes(ca.pem)
    (paths.mounts["/etc/modelship/tls-ca"] / "ca.crt").write_bytes(ca.pem)
    ca.client("modelship-client").write(paths.mounts["/etc/modelship/tls-client"])
    rendered = render(
        set_=[
            f"model.source.image.basePath={fresh_base}",
            f"server.grpcServer={grpc_server}",
            "tls.enabled=true",
            "tls.secretName=modelship-tls",
            "tls.clientAuth=require",
            "tls.clientSecretName=modelship-client-tls",
            "tls.pollSeconds=1",
            GRPC_ON,
        ]
    )
    (container,) = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert "--tls_client_ca_file=/etc/modelship/tls/ca.crt" in container["args"]
    server = _server_from_chart(
        rendered, paths, tmp_path / "server.log", tls_ca=paths.mounts["/etc/modelship/tls-ca"] / "ca.crt"
    )
    try:
        assert server.url.startswith("https://")
        _probe_paths_answer(rendered, server)
        result = _run_helm_test(rendered, server, paths)
        out = result.stdout
        assert result.returncode == 0, out + result.stderr + server.logs()
        assert f"TLS: server name {server_name}" in out
        assert "PASS POST /v1/models/linear:predict -> 200" in out
        assert "PASS POST /v1/models/linear:predict without a client certificate -> 401 (mTLS" in out
        assert "PASS gRPC Health/Check" in out, out
        assert "helm test: all checks passed" in out

        no_cert = _run_helm_test(
            rendered, server, paths, drop_env=("MODELSHIP_TEST_CERT_FILE", "MODELSHIP_TEST_KEY_FILE")
        )
        assert no_cert.returncode == 1, no_cert.stdout + no_cert.stderr
        assert "PASS GET /v2/health/ready -> 200" in no_cert.stdout  # the health paths stay open
        assert "FAIL GET /v1/models/linear -> 401" in no_cert.stdout

        wrong_name = _run_helm_test(
            rendered,
            server,
            paths,
            set_env={"MODELSHIP_TEST_TLS_SERVER_NAME": "other.serving.svc", "MODELSHIP_TEST_TIMEOUT": "3"},
        )
        assert wrong_name.returncode == 1, wrong_name.stdout + wrong_name.stderr
        assert "FAIL GET /v2/health/ready never returned 200" in wrong_name.stdout
        assert "certificate verify failed" in wrong_name.stdout, wrong_name.stdout
        assert "other.serving.svc" in wrong_name.stdout
    finally:
        assert server.terminate() == 0, server.logs()
