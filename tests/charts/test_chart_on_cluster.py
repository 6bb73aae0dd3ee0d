"""`helm install`, `helm upgrade` and `helm test` of the chart on the real single-node cluster.

Uses scripts/cluster/up (Kubernetes 1.33, source-built; idempotent), the image built by
scripts/docker/build-image and imported with scripts/cluster/load-image. Covers the image source
(rollout, checksum roll on a config change, helm test with REST predict and gRPC health) and the
url source (init container downloading from an HTTP server on the node address, verified by
sha256; a wrong digest keeps the pod from starting) and TLS with mTLS required (the helm test over
HTTPS and TLS gRPC with a client certificate, from namespace-local kubernetes.io/tls Secrets). Every
release is uninstalled afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import secrets
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.k8s import Kube, run_script, source_built_cluster
from tests.tls_certs import CertificateAuthority, Issued

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "modelship"
IMAGE_TAG = "chart-e2e"


@pytest.fixture(scope="module")
def kube() -> Kube:
    return source_built_cluster()


@pytest.fixture(scope="module")
def image(kube: Kube) -> str:
    """The server image built from this tree and imported into the cluster's containerd."""
    ref = (
        run_script("scripts/docker/build-image", "--version", IMAGE_TAG, "--no-latest")
        .strip()
        .splitlines()[-1]
    )
    assert ref == f"modelship:{IMAGE_TAG}"
    run_script("scripts/cluster/load-image", "--docker", ref)
    return ref


@pytest.fixture(scope="module")
def slim_image(kube: Kube) -> str:
    """The slim flavor (no TensorFlow), built from this tree and imported likewise."""
    out = run_script("scripts/docker/build-image", "--flavor", "slim", "--version", IMAGE_TAG, "--no-latest")
    ref = out.strip().splitlines()[-1]
    assert ref == f"modelship:{IMAGE_TAG}-slim"
    run_script("scripts/cluster/load-image", "--docker", ref)
    return ref


@pytest.fixture
def release(kube: Kube, image: str) -> Iterator[str]:
    """A fresh namespace (= release name); uninstalled and deleted afterwards."""
    name = f"chart-{secrets.token_hex(3)}"
    yield name
    kube.run("helm", "uninstall", name, "--namespace", name, "--wait", check=False, timeout=300)
    kube.run("kubectl", "delete", "namespace", name, "--wait=true", check=False, timeout=300)


def _install(kube: Kube, name: str, *sets: str, wait: bool = True) -> None:
    args = [
        "upgrade",
        "--install",
        name,
        str(CHART),
        "--namespace",
        name,
        "--create-namespace",
        "--set",
        f"image.tag={IMAGE_TAG}",
        *[a for s in sets for a in ("--set", s)],
    ]
    kube.run("helm", *args, *(["--wait", "--timeout", "5m"] if wait else []), timeout=400)


def _helm_test(kube: Kube, name: str) -> str:
    return kube.run("helm", "test", name, "--namespace", name, "--logs", "--timeout", "5m", timeout=400)


def test_install_upgrade_and_helm_test(kube: Kube, release: str) -> None:
    _install(kube, release)
    deployment = kube.json("get", "deployment", "--namespace", release, f"{release}-modelship")
    assert deployment["status"]["readyReplicas"] == 2
    pods = kube.json("get", "pods", "--namespace", release, "-l", f"app.kubernetes.io/instance={release}")
    for pod in pods["items"]:
        (container,) = pod["spec"]["containers"]
        assert pod["status"]["phase"] == "Running"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["lifecycle"]["preStop"]["sleep"]["seconds"] == 5
    pdb = kube.json("get", "pdb", "--namespace", release, f"{release}-modelship")
    assert pdb["status"]["disruptionsAllowed"] >= 1

    logs = _helm_test(kube, release)
    assert "PASS POST /v1/models/linear:predict -> 200" in logs
    assert "PASS gRPC Health/Check" in logs
    assert "helm test: all checks passed" in logs

    # A model-config change rolls the pods (checksum annotation) and the rollout completes.
    before = {p["metadata"]["name"] for p in pods["items"]}
    _install(kube, release, "model.versionLabels.stable=1")
    kube.run(
        "kubectl",
        "rollout",
        "status",
        "--namespace",
        release,
        f"deployment/{release}-modelship",
        "--timeout=300s",
        timeout=320,
    )
    after = kube.json("get", "pods", "--namespace", release, "-l", f"app.kubernetes.io/instance={release}")
    running = {p["metadata"]["name"] for p in after["items"] if not p["metadata"].get("deletionTimestamp")}
    assert running.isdisjoint(before)
    assert "helm test: all checks passed" in _helm_test(kube, release)


def test_slim_flavor_serves_and_passes_helm_test(kube: Kube, release: str, slim_image: str) -> None:
    _install(kube, release, "image.flavor=slim", f"image.tag={slim_image.split(':', 1)[1]}", "replicaCount=1")
    pods = kube.json("get", "pods", "--namespace", release, "-l", f"app.kubernetes.io/instance={release}")
    (pod,) = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
    (container,) = pod["spec"]["containers"]
    assert container["image"].endswith(slim_image)
    assert "--runtime=litert" in container["args"]
    logs = _helm_test(kube, release)
    assert "PASS POST /v1/models/linear:predict -> 200" in logs
    assert "helm test: all checks passed" in logs
    server_log = kube.run("kubectl", "logs", "--namespace", release, pod["metadata"]["name"], "-c", "server")
    assert "LiteRT for serving_default" in server_log


@pytest.fixture
def archive_url(kube: Kube, fresh_base: Path, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The exported linear model as a .tar.gz on an HTTP server on the node address."""
    root = tmp_path / "www"
    root.mkdir()
    archive = root / "linear.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(fresh_base / "linear" / "1", arcname="linear/1")
    os.chmod(root, 0o755)
    os.chmod(archive, 0o644)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer((kube.node_ip, 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield (
            f"http://{kube.node_ip}:{httpd.server_address[1]}/{archive.name}",
            hashlib.sha256(archive.read_bytes()).hexdigest(),
        )
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_url_source_fetches_verifies_and_serves(
    kube: Kube, release: str, archive_url: tuple[str, str]
) -> None:
    url, digest = archive_url
    source = [
        "model.source.type=url",
        f"model.source.url.url={url}",
        "model.source.url.version=3",
        "replicaCount=1",
    ]
    _install(kube, release, *source, f"model.source.url.sha256={digest}")
    logs = _helm_test(kube, release)
    assert "helm test: all checks passed" in logs
    pod = kube.json("get", "pods", "--namespace", release, "-l", "app.kubernetes.io/name=modelship")["items"][
        0
    ]
    init_log = kube.run(
        "kubectl", "logs", "--namespace", release, pod["metadata"]["name"], "-c", "fetch-model"
    )
    assert "sha256 verified" in init_log


def test_url_source_with_a_wrong_digest_never_starts(
    kube: Kube, release: str, archive_url: tuple[str, str]
) -> None:
    url, _ = archive_url
    _install(
        kube,
        release,
        "model.source.type=url",
        f"model.source.url.url={url}",
        f"model.source.url.sha256={'0' * 64}",
        "replicaCount=1",
        "helmTest.enabled=false",
        wait=False,
    )
    selector = f"app.kubernetes.io/instance={release}"
    kube.run(
        "kubectl",
        "wait",
        "--namespace",
        release,
        "pods",
        "-l",
        selector,
        "--timeout=180s",
        "--for=jsonpath={.status.initContainerStatuses[0].lastState.terminated.exitCode}=1",
        timeout=200,
    )
    pod = kube.json("get", "pods", "--namespace", release, "-l", selector)["items"][0]
    assert pod["status"]["containerStatuses"][0]["ready"] is False
    assert "running" not in pod["status"]["containerStatuses"][0]["state"]
    # terminationMessagePolicy FallbackToLogsOnError: the reason is in the pod status itself.
    terminated = pod["status"]["initContainerStatuses"][0]["lastState"]["terminated"]
    assert "sha256 mismatch" in terminated["message"], terminated


def _tls_secret(name: str, namespace: str, issued: Issued, ca: bytes) -> dict[str, Any]:
    """A kubernetes.io/tls Secret with ca.crt, the layout cert-manager writes."""
    files = {"tls.crt": issued.cert, "tls.key": issued.key, "ca.crt": ca}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace},
        "data": {key: base64.b64encode(value).decode() for key, value in files.items()},
    }


def test_tls_release_passes_helm_test(kube: Kube, release: str) -> None:
    """tls.enabled with an existing server Secret and tls.clientAuth=require: the HTTPS probes let
    the rollout finish, and the helm test verifies the server by its Service name through the CA,
    predicts with the client certificate, sees a request without it refused, and checks TLS gRPC."""
    fullname = f"{release}-modelship"
    service = f"{fullname}.{release}.svc"
    ca = CertificateAuthority()
    server = ca.issue(
        service, dns_names=(fullname, f"{fullname}.{release}", service, f"{service}.cluster.local")
    )
    client = ca.issue(f"{fullname}-client", client=True)
    kube.run("kubectl", "create", "namespace", release)
    for name, issued in ((f"{fullname}-tls", server), (f"{fullname}-client-tls", client)):
        kube.run("kubectl", "apply", "-f", "-", input=json.dumps(_tls_secret(name, release, issued, ca.pem)))
    _install(
        kube,
        release,
        "replicaCount=1",
        "tls.enabled=true",
        f"tls.secretName={fullname}-tls",
        "tls.clientAuth=require",
        f"tls.clientSecretName={fullname}-client-tls",
    )
    pods = kube.json("get", "pods", "--namespace", release, "-l", f"app.kubernetes.io/instance={release}")
    (pod,) = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
    (container,) = pod["spec"]["containers"]
    assert "--tls_client_auth=require" in container["args"]
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert pod["status"]["containerStatuses"][0]["ready"] is True

    logs = _helm_test(kube, release)
    assert "REST https://" in logs, logs  # the Service's name, or its cluster IP without cluster DNS
    assert f"TLS: server name {service}" in logs, logs
    assert "PASS POST /v1/models/linear:predict -> 200" in logs
    assert "PASS POST /v1/models/linear:predict without a client certificate -> 401 (mTLS enforced)" in logs
    assert "PASS gRPC Health/Check" in logs
    assert "helm test: all checks passed" in logs
