"""The single-node cluster from scripts/cluster/up runs real pods.

Brings the cluster up (idempotent: seconds when it already runs), then checks the node is
Ready at the pinned version, and that a pod made from a locally imported image runs, answers
`kubectl logs`/`exec`, is reachable through a Service and through `kubectl port-forward` on
127.0.0.1, and has no route off the machine. Needs root, and the binaries from
scripts/cluster/build (which `up` builds on first use: ~10 min cold).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[3]
SCRIPTS = REPO / "scripts" / "cluster"


@dataclass(frozen=True)
class Cluster:
    """How to reach the cluster that scripts/cluster/up started."""

    kubeconfig: str
    kubectl: str
    version: str

    def kubectl_run(self, *args: str, timeout: float = 60, check: bool = True) -> str:
        """Run kubectl against the cluster and return its stdout."""
        proc = subprocess.run(
            [self.kubectl, "--kubeconfig", self.kubeconfig, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc.stdout


def _exports(text: str) -> dict[str, str]:
    return dict(re.findall(r"^export (\w+)=(.*)$", text, flags=re.MULTILINE))


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    """Run scripts/cluster/up and return the cluster it reports."""
    if os.geteuid() != 0:
        pytest.fail("scripts/cluster/up needs root (it creates interfaces and iptables rules)")
    proc = subprocess.run([str(SCRIPTS / "up")], capture_output=True, text=True, timeout=3600, check=False)
    assert proc.returncode == 0, f"scripts/cluster/up failed:\n{proc.stderr[-4000:]}"
    env = _exports(proc.stdout)
    paths = dict(
        line.split("=", 1)
        for line in subprocess.run(
            [str(SCRIPTS / "build"), "--print-paths"], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    kubectl = str(Path(paths["K8S_BIN_DIR"]) / "kubectl")
    version = Path(paths["K8S_BIN_DIR"]).parent.name
    return Cluster(kubeconfig=env["KUBECONFIG"], kubectl=kubectl, version=version)


@pytest.fixture(scope="session")
def busybox_image(cluster: Cluster) -> str:
    """Import the locally built busybox test image into the cluster; return its reference."""
    tar = subprocess.run(
        [str(SCRIPTS / "busybox-image")], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run([str(SCRIPTS / "load-image"), tar], capture_output=True, text=True, check=True)
    return subprocess.run(
        [str(SCRIPTS / "busybox-image"), "--name-only"], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace, deleted after the test."""
    name = f"cluster-test-{secrets.token_hex(3)}"
    cluster.kubectl_run("create", "namespace", name)
    try:
        yield name
    finally:
        cluster.kubectl_run("delete", "namespace", name, "--wait=false", check=False)


def test_node_ready_at_pinned_version(cluster: Cluster) -> None:
    nodes = json.loads(cluster.kubectl_run("get", "nodes", "-o", "json"))["items"]
    assert len(nodes) == 1
    node = nodes[0]
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
    assert ready == "True"
    assert node["status"]["nodeInfo"]["kubeletVersion"] == cluster.version
    server = json.loads(cluster.kubectl_run("version", "-o", "json"))["serverVersion"]
    assert server["gitVersion"] == cluster.version
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")


def _pod_manifest(namespace: str, image: str, token: str) -> dict[str, object]:
    script = (
        f"mkdir -p /www && echo {token} > /www/index.html && echo started-{token} "
        "&& exec httpd -f -v -p 8080 -h /www"
    )
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "web", "namespace": namespace, "labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "web",
                            "image": image,
                            "imagePullPolicy": "Never",
                            "command": ["/bin/sh", "-c", script],
                            "ports": [{"containerPort": 8080}],
                            "readinessProbe": {
                                "httpGet": {"path": "/", "port": 8080},
                                "periodSeconds": 1,
                            },
                        }
                    ],
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web", "namespace": namespace},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
            },
        ],
    }


def _apply(cluster: Cluster, manifest: dict[str, object]) -> None:
    proc = subprocess.run(
        [cluster.kubectl, "--kubeconfig", cluster.kubeconfig, "apply", "-f", "-"],
        input=json.dumps(manifest),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def _port_forward_get(cluster: Cluster, namespace: str, target: str) -> str:
    """GET / through `kubectl port-forward TARGET :80` on 127.0.0.1 and return the body."""
    with subprocess.Popen(
        [
            cluster.kubectl,
            "--kubeconfig",
            cluster.kubeconfig,
            "-n",
            namespace,
            "port-forward",
            "--address",
            "127.0.0.1",
            target,
            ":80",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as pf:
        try:
            assert pf.stdout is not None
            line = pf.stdout.readline()
            match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
            assert match, f"unexpected port-forward output: {line!r}"
            with urllib.request.urlopen(f"http://127.0.0.1:{match.group(1)}/", timeout=10) as resp:
                body: bytes = resp.read()
                return body.decode().strip()
        finally:
            pf.terminate()
            pf.wait(timeout=10)


def test_pod_runs_and_is_reachable(cluster: Cluster, busybox_image: str, namespace: str) -> None:
    token = secrets.token_hex(8)
    _apply(cluster, _pod_manifest(namespace, busybox_image, token))
    cluster.kubectl_run(
        "-n", namespace, "wait", "--for=condition=Ready", "pod/web", "--timeout=90s", timeout=100
    )
    pod = json.loads(cluster.kubectl_run("-n", namespace, "get", "pod", "web", "-o", "json"))
    assert pod["status"]["phase"] == "Running"
    pod_ip = pod["status"]["podIP"]
    assert pod_ip.startswith("10.244.0.")

    assert f"started-{token}" in cluster.kubectl_run("-n", namespace, "logs", "web")
    out = cluster.kubectl_run("-n", namespace, "exec", "web", "--", "wget", "-qO-", "http://127.0.0.1:8080/")
    assert out.strip() == token

    # Service: the ClusterIP answers from inside the pod (kube-proxy DNAT, hairpin) and from
    # the host; `kubectl port-forward svc/...` answers on 127.0.0.1.
    svc_ip = cluster.kubectl_run("-n", namespace, "get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}")
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://{svc_ip}/", timeout=3) as resp:
                assert resp.read().decode().strip() == token
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    out = cluster.kubectl_run("-n", namespace, "exec", "web", "--", "wget", "-qO-", f"http://{svc_ip}/")
    assert out.strip() == token
    assert _port_forward_get(cluster, namespace, "svc/web") == token


def test_pod_has_no_route_off_the_machine(cluster: Cluster, busybox_image: str, namespace: str) -> None:
    _apply(cluster, _pod_manifest(namespace, busybox_image, "routes"))
    cluster.kubectl_run(
        "-n", namespace, "wait", "--for=condition=Ready", "pod/web", "--timeout=90s", timeout=100
    )
    routes = cluster.kubectl_run("-n", namespace, "exec", "web", "--", "cat", "/proc/net/route")
    destinations = [line.split()[1] for line in routes.splitlines()[1:] if line.strip()]
    assert destinations, routes
    assert "00000000" not in destinations, f"pod has a default route:\n{routes}"
    resolv = cluster.kubectl_run("-n", namespace, "exec", "web", "--", "cat", "/etc/resolv.conf")
    nameservers = re.findall(r"^nameserver (\S+)", resolv, flags=re.MULTILINE)
    assert nameservers == ["10.96.0.10"], resolv
